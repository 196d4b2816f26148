//! The proxy's worker threads. Offloaded calls of different LWK threads run in
//! parallel on them, so that one blocked in Linux (a read on a pipe, accept, a
//! sleep) cannot hold up another (the write to that pipe). They are threads of
//! the proxy process, so they share its fd table, cwd and identity exactly as
//! the LWK threads share the application's.
//!
//! The pool grows on demand: a job goes to an idle worker if there is one, to a
//! new worker otherwise (up to `max`), and waits in a backlog only when `max`
//! workers are all busy. An idle worker spins for a while (at most
//! `MAX_SPINNERS` at a time) so that back-to-back requests are handed over
//! without a futex wake-up, then parks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Idle workers that may spin at the same time; the rest park at once.
const MAX_SPINNERS: usize = 2;

type Run<J> = Box<dyn Fn(J) + Send + Sync>;

pub struct Pool<J: Send + 'static> {
    inner: Arc<Inner<J>>,
}

struct Inner<J> {
    state: Mutex<State<J>>,
    run: Run<J>,
    max: usize,
    spin: Duration,
    spinners: AtomicUsize,
}

struct State<J> {
    /// Idle workers, most recently idle last (the likeliest to be spinning).
    idle: Vec<Arc<Worker<J>>>,
    /// Jobs no worker could take yet.
    backlog: VecDeque<J>,
    /// Workers started (busy or idle).
    workers: usize,
}

struct Worker<J> {
    mailbox: Mutex<Option<J>>,
    ready: AtomicBool,
    thread: Thread,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<J: Send + 'static> Pool<J> {
    /// A pool of at most `max` (at least 1) workers that run each job with `run`;
    /// idle workers spin for `spin` before they park.
    pub fn new(max: usize, spin: Duration, run: impl Fn(J) + Send + Sync + 'static) -> Self {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    idle: Vec::new(),
                    backlog: VecDeque::new(),
                    workers: 0,
                }),
                run: Box::new(run),
                max: max.max(1),
                spin,
                spinners: AtomicUsize::new(0),
            }),
        }
    }

    /// Run `job` on some worker.
    pub fn submit(&self, job: J) {
        let mut st = lock(&self.inner.state);
        if let Some(w) = st.idle.pop() {
            drop(st);
            *lock(&w.mailbox) = Some(job);
            w.ready.store(true, Ordering::Release);
            w.thread.unpark();
            return;
        }
        st.backlog.push_back(job);
        if st.workers >= self.inner.max {
            return;
        }
        st.workers += 1;
        drop(st);
        let inner = Arc::clone(&self.inner);
        let spawned = thread::Builder::new()
            .name("margay-worker".into())
            .spawn(move || inner.worker_main());
        if let Err(e) = spawned {
            let mut st = lock(&self.inner.state);
            st.workers -= 1;
            if st.workers > 0 {
                // A busy worker will get to the backlog.
                return;
            }
            eprintln!("margay: proxy: cannot start a worker thread ({e}); serving inline");
            let jobs: Vec<J> = st.backlog.drain(..).collect();
            drop(st);
            for j in jobs {
                (self.inner.run)(j);
            }
        }
    }

    /// Workers started so far.
    #[cfg(test)]
    pub fn workers(&self) -> usize {
        lock(&self.inner.state).workers
    }

    /// Workers waiting for a job.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        lock(&self.inner.state).idle.len()
    }
}

impl<J: Send + 'static> Inner<J> {
    fn worker_main(self: Arc<Self>) {
        let me = Arc::new(Worker {
            mailbox: Mutex::new(None),
            ready: AtomicBool::new(false),
            thread: thread::current(),
        });
        loop {
            let job = {
                let mut st = lock(&self.state);
                match st.backlog.pop_front() {
                    Some(j) => Some(j),
                    None => {
                        st.idle.push(Arc::clone(&me));
                        None
                    }
                }
            };
            let job = match job {
                Some(j) => j,
                None => self.wait(&me),
            };
            (self.run)(job);
        }
    }

    /// Wait (idle) until `submit` hands `me` a job.
    fn wait(&self, me: &Worker<J>) -> J {
        if self.spinners.fetch_add(1, Ordering::Relaxed) < MAX_SPINNERS {
            let start = Instant::now();
            while !me.ready.load(Ordering::Acquire) && start.elapsed() < self.spin {
                std::hint::spin_loop();
            }
        }
        self.spinners.fetch_sub(1, Ordering::Relaxed);
        loop {
            if me.ready.swap(false, Ordering::Acquire) {
                if let Some(j) = lock(&me.mailbox).take() {
                    return j;
                }
            }
            thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::sync::mpsc;

    type Job = Box<dyn FnOnce() + Send>;

    fn pool(max: usize) -> Pool<Job> {
        Pool::new(max, Duration::from_micros(100), |j: Job| j())
    }

    #[test]
    fn a_blocked_job_does_not_hold_up_the_next() {
        let p = pool(8);
        let (mut r, mut w) = std::io::pipe().unwrap();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        p.submit(Box::new(move || {
            let mut b = [0u8; 3];
            r.read_exact(&mut b).unwrap();
            tx.send(("read", b.to_vec())).unwrap();
        }));
        std::thread::sleep(Duration::from_millis(20));
        p.submit(Box::new(move || {
            w.write_all(b"abc").unwrap();
            tx2.send(("wrote", vec![])).unwrap();
        }));
        let mut got: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, [("read", b"abc".to_vec()), ("wrote", vec![])]);
        assert_eq!(p.workers(), 2);
    }

    #[test]
    fn idle_workers_are_reused_and_the_limit_holds() {
        let p = pool(3);
        let (tx, rx) = mpsc::channel();
        for i in 0..50 {
            let tx = tx.clone();
            p.submit(Box::new(move || tx.send(i).unwrap()));
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), i);
            while p.idle() == 0 {
                std::thread::yield_now();
            }
        }
        // Sequential jobs, each submitted once the previous worker was idle again.
        assert_eq!(p.workers(), 1);

        // More blocked jobs than workers: the backlog drains as workers free up.
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        for i in 0..10 {
            let (tx, gate) = (tx.clone(), Arc::clone(&gate));
            p.submit(Box::new(move || {
                let (m, cv) = &*gate;
                let mut open = m.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                tx.send(100 + i).unwrap();
            }));
        }
        assert_eq!(p.workers(), 3);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let mut got: Vec<i32> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (100..110).collect::<Vec<_>>());
        assert_eq!(p.workers(), 3);
    }
}
