//! The proxy: one Linux process per LWK process. It owns the application's Linux
//! side (fd table, cwd, identity), mirrors the application's memory at the same
//! virtual addresses, and serves the requests the LWK posts in its channel slots.
//!
//! One poller thread watches the doorbell bitmap, takes each posted slot and
//! hands the request to a pool of worker threads (`pool`), so that calls of
//! different LWK threads run in parallel and one blocked in Linux does not hold
//! up the others. Requests of one LWK thread are serialized by its slot: the
//! kernel waits for Done before it posts the next.
//!
//! Started by `margay run` as `margay __proxy ...` (see `spawn_args`); it never
//! exits by itself: margay kills it after the LWK is done, and PR_SET_PDEATHSIG
//! kills it if margay dies.

mod doorbell;
// Until helper "abi" moves its raw syscall and fd adoption behind sys.
#[allow(unsafe_code)]
mod exec;
#[cfg(test)]
mod fuzz;
mod leader;
pub mod mirror;
mod pool;
pub(crate) mod signals;
mod user_mem;
mod views;
mod window;

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use linux_abi::Errno;
use wire::{RequestKind, Slot, MAX_CPUS, MAX_SLOTS, SHARED_PHYS};

use crate::cli::ProxyArgs;
use crate::guest_mem::GuestMem;
use doorbell::Claim;
use mirror::{Mirror, TableError};
use pool::Pool;
use user_mem::UserMem;
use window::Window;

/// Spin this long after the last request before sleeping, then nap with growing
/// sleeps from MIN_NAP to MAX_NAP. Under TCG the guest often runs for a few ms
/// between offloaded calls (translating new code); with 100 µs / 1 ms a `busybox sh`
/// start-up waited ~3.9 ms in total for the proxy, with 2 ms / 200 µs ~0.5 ms. Idle
/// cost: at most 5000 wake-ups a second. Idle workers spin for SPIN too (a few of
/// them at a time), so a request is handed over without a futex wake-up.
const SPIN: Duration = Duration::from_millis(2);
const MIN_NAP: Duration = Duration::from_micros(10);
const MAX_NAP: Duration = Duration::from_micros(200);
/// Most worker threads: one per slot (every LWK thread may be blocked in Linux
/// at once), plus a polling leader and its standby.
const MAX_WORKERS: usize = MAX_SLOTS + 2;

/// A request decoded from a posted slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Syscall {
        nr: u64,
        args: [u64; 6],
    },
    Clock,
    Trace {
        nr: u64,
        args: [u64; 6],
        result: u64,
        flags: u64,
    },
    /// The application executed a new program, whose path is at `path`.
    Exec {
        path: u64,
    },
    /// The process forks; the child's region table is at `table`.
    Fork {
        table: u64,
    },
    /// The process ended with `status`, or of `signal` when non-zero.
    Exit {
        status: u64,
        signal: u64,
    },
    /// The process stopped on stop signal `signal`.
    Stop {
        signal: u64,
    },
}

/// The proxy's answer: `ret` and `aux` of the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub ret: i64,
    pub aux: Option<[u64; 4]>,
}

impl Response {
    fn ret(ret: i64) -> Self {
        Response { ret, aux: None }
    }
    fn err(e: Errno) -> Self {
        Response::ret(e.as_ret())
    }
    fn clock() -> Self {
        Response {
            ret: 0,
            aux: Some([
                crate::sys::clock_ns(crate::sys::ClockId::Realtime),
                crate::sys::clock_ns(crate::sys::ClockId::Monotonic),
                0,
                0,
            ]),
        }
    }
}

/// Decode a slot the guest posted; any garbage is an error (answered with EINVAL).
pub fn decode(slot: &Slot) -> Result<Request, u32> {
    Ok(match RequestKind::try_from(slot.kind)? {
        RequestKind::Syscall => Request::Syscall {
            nr: slot.nr,
            args: slot.args,
        },
        RequestKind::Clock => Request::Clock,
        RequestKind::Trace => Request::Trace {
            nr: slot.nr,
            args: slot.args,
            result: slot.aux[0],
            flags: slot.aux[1],
        },
        RequestKind::Exec => Request::Exec { path: slot.args[0] },
        RequestKind::Fork => Request::Fork {
            table: slot.args[0],
        },
        RequestKind::Exit => Request::Exit {
            status: slot.args[0],
            signal: slot.args[1],
        },
        RequestKind::Stop => Request::Stop {
            signal: slot.args[0],
        },
    })
}

/// Arguments `margay run` passes to `margay __proxy`.
pub fn spawn_args(
    ram: &std::path::Path,
    mem_size: u64,
    cpus: u32,
    exe: &std::path::Path,
    trace: bool,
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![
        "__proxy".into(),
        "--ram".into(),
        ram.into(),
        "--mem-size".into(),
        mem_size.to_string().into(),
        "--cpus".into(),
        cpus.to_string().into(),
        "--exe".into(),
        exe.into(),
    ];
    if trace {
        v.push("--trace".into());
    }
    v
}

/// State of the mirror relative to the kernel's table.
#[derive(Clone, Copy)]
enum MirrorState {
    /// Mirrors the table of this generation.
    Current(u64),
    /// The table of this generation was invalid: every offloaded call fails.
    Poisoned(u64),
    /// Nothing mirrored yet (or a mapping failed): read the table again.
    Unknown,
}

/// The mirror and what it mirrors; behind `Shared::mirror`'s lock.
struct MirrorView {
    mirror: Mirror,
    state: MirrorState,
    complained: bool,
}

/// What the poller and the workers share.
struct Shared {
    ram: Arc<GuestMem>,
    /// Guest-physical address of this proxy's LWK process's region table.
    table: u64,
    /// The application as Linux would describe it; execve changes it.
    app: RwLock<exec::App>,
    trace: bool,
    window: &'static Window,
    /// Readers validate pointers against it; a writer brings it up to date.
    mirror: RwLock<MirrorView>,
    /// Who polls the doorbell (see `leader`).
    role: leader::Role,
    /// The thread (Linux tid) serving each slot right now (0 when none), for interrupts.
    running: Box<[AtomicU64]>,
}

/// A request taken from slot `slot`.
struct Job {
    slot: usize,
    req: Request,
}

/// What the proxy's threads do (see `leader`).
enum Task {
    /// Poll the doorbell as the leader of this epoch.
    Lead(u32),
    /// Watch the leader and take over when it is stuck in a call.
    Standby,
    /// Serve one request.
    Serve(Job),
}

/// Entry point of `margay __proxy`. Returns only on a set-up error.
pub fn main(args: ProxyArgs) -> anyhow::Result<()> {
    // Terminal signals are margay's business; a write to a closed pipe must return
    // EPIPE to the application instead of killing the proxy.
    crate::sys::ignore_signals(&[libc::SIGPIPE]).context("cannot set signal dispositions")?;
    // Best effort: only makes idle wake-ups more punctual (inherited by workers).
    let _ = crate::sys::set_timer_slack_ns(1_000);
    let cpus = args.cpus;
    if cpus == 0 || cpus as usize > MAX_CPUS {
        bail!("--cpus {cpus} is out of range");
    }
    // Reserve the user window before anything else is mapped (worker stacks
    // included: they are created later, outside it).
    let window: &'static Window = Box::leak(Box::new(Window::reserve()?));
    let ram = {
        let f = File::options()
            .read(true)
            .write(true)
            .open(&args.ram)
            .with_context(|| format!("cannot open guest RAM {}", args.ram.display()))?;
        Arc::new(GuestMem::map_shared(f.as_fd(), args.mem_size).context("cannot map guest RAM")?)
        // `f` is closed here: the application's first open returns 3.
    };
    let app = exec::App {
        exe: args.exe.as_os_str().as_bytes().to_vec(),
        exe_id: views::FileId::of(&args.exe).unwrap_or_default(),
        pid: std::process::id(),
        cpus,
    };
    // Signals Linux sends the application arrive here: post them to the LWK.
    signals::install(Arc::clone(&ram)).context("cannot install signal handlers")?;
    crate::sys::remember_margay();
    let _proxy = Shared::new(ram, app, args.trace, window).start();
    loop {
        std::thread::park();
    }
}

/// The poller's spin-then-nap policy.
struct Poller {
    last: Instant,
    nap: Duration,
}

impl Poller {
    fn new() -> Self {
        Poller {
            last: Instant::now(),
            nap: MIN_NAP,
        }
    }

    fn busy(&mut self) {
        self.last = Instant::now();
        self.nap = MIN_NAP;
    }

    /// Nothing was posted: spin on, or nap.
    fn idle(&mut self) {
        if self.last.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(self.nap);
            self.nap = (self.nap * 2).min(MAX_NAP);
        }
    }
}

/// A running proxy: its threads serve the channel until the process ends.
struct Running {
    #[cfg_attr(not(test), allow(dead_code))]
    shared: Arc<Shared>,
}

impl Shared {
    fn new(
        ram: impl Into<Arc<GuestMem>>,
        app: exec::App,
        trace: bool,
        window: &'static Window,
    ) -> Self {
        Self::for_table(
            ram.into(),
            app,
            trace,
            window,
            SHARED_PHYS + wire::REGIONS_OFF,
        )
    }

    fn for_table(
        ram: Arc<GuestMem>,
        app: exec::App,
        trace: bool,
        window: &'static Window,
        table: u64,
    ) -> Self {
        Shared {
            ram,
            table,
            app: RwLock::new(app),
            trace,
            window,
            mirror: RwLock::new(MirrorView {
                mirror: Mirror::default(),
                state: MirrorState::Unknown,
                complained: false,
            }),
            role: leader::Role::default(),
            running: (0..MAX_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Start the leader and its standby on worker threads.
    fn start(self) -> Running {
        let shared = Arc::new(self);
        let pool: Arc<OnceLock<Pool<Task>>> = Arc::new(OnceLock::new());
        let (s, p) = (Arc::clone(&shared), Arc::clone(&pool));
        // Idle workers park at once: spinning ones would compete with the
        // leader and the guest's vCPUs for host cores.
        let workers = Pool::new(MAX_WORKERS, Duration::ZERO, move |task: Task| {
            let pool = p
                .get()
                .expect("the pool is set before any task is submitted");
            match task {
                Task::Lead(epoch) => s.lead(epoch, pool),
                Task::Standby => s.standby(pool),
                Task::Serve(job) => s.serve(job),
            }
        });
        let pool = pool.get_or_init(|| workers);
        pool.submit(Task::Lead(0));
        pool.submit(Task::Standby);
        Running { shared }
    }

    fn serve(&self, job: Job) {
        let me = crate::sys::thread_id();
        let running = self.running.get(job.slot);
        if let Some(r) = running {
            r.store(me, Ordering::Release);
        }
        let resp = self.handle(job.req);
        if let Some(r) = running {
            r.store(0, Ordering::Release);
        }
        doorbell::complete(&self.ram, job.slot, &resp);
    }

    /// Interrupt the syscalls the kernel asked to interrupt (a signal is
    /// waiting for their LWK thread). Repeated on every pass while the bit
    /// stays set, so a signal that lands just before the call blocks is not
    /// lost; the kernel clears the bit once the slot is answered.
    fn interrupt_pass(&self, slots: &mut Vec<usize>) {
        signals::requested(&self.ram, slots);
        for &slot in slots.iter() {
            if let Some(r) = self.running.get(slot) {
                signals::interrupt_thread(r.load(Ordering::Acquire));
            }
        }
    }

    /// Poll the doorbell as the leader of `epoch`, serving the last request of
    /// each batch itself (no hand-over on the common path) and the others on
    /// workers. Returns when a standby has taken over during a long call.
    fn lead(&self, epoch: u32, pool: &Pool<Task>) {
        let mut poller = Poller::new();
        let mut posted = Vec::with_capacity(MAX_SLOTS);
        let mut jobs = Vec::with_capacity(MAX_SLOTS);
        loop {
            if self.take_posted(&mut posted, &mut jobs) == 0 {
                poller.idle();
                continue;
            }
            poller.busy();
            let Some(mine) = jobs.pop() else {
                continue;
            };
            for job in jobs.drain(..) {
                pool.submit(Task::Serve(job));
            }
            let token = self.role.enter(epoch);
            self.serve(mine);
            if !self.role.leave(token) {
                return;
            }
        }
    }

    /// Watch the leader; take over (and appoint a new standby) when it has been
    /// in the same call for a whole nap.
    fn standby(&self, pool: &Pool<Task>) {
        let mut watch = leader::Watch::default();
        let mut slots = Vec::new();
        loop {
            self.interrupt_pass(&mut slots);
            let (epoch, nap) = watch.check(&self.role);
            if let Some(epoch) = epoch {
                pool.submit(Task::Standby);
                return self.lead(epoch, pool);
            }
            std::thread::sleep(nap);
        }
    }

    /// Take every posted slot the doorbell names: answer clock samples and
    /// garbage at once, collect the rest in `jobs`. Returns how many were taken.
    fn take_posted(&self, posted: &mut Vec<usize>, jobs: &mut Vec<Job>) -> usize {
        posted.clear();
        doorbell::take_own(&self.ram, self.table, posted);
        let mut taken = 0;
        for &slot in posted.iter() {
            let resp = match doorbell::claim(&self.ram, slot) {
                Claim::NotPosted => continue,
                Claim::Unreadable => Response::err(Errno::EFAULT),
                Claim::Taken(s) => match decode(&s) {
                    Ok(Request::Clock) => Response::clock(),
                    Ok(req) => {
                        jobs.push(Job { slot, req });
                        taken += 1;
                        continue;
                    }
                    Err(_) => Response::err(Errno::EINVAL),
                },
            };
            doorbell::complete(&self.ram, slot, &resp);
            taken += 1;
        }
        taken
    }

    fn handle(&self, req: Request) -> Response {
        match req {
            Request::Clock => Response::clock(),
            Request::Syscall { nr, args } => {
                // Validate under the lock, execute without it: the call may block.
                let checked = self.with_mirror(|current, mirror| {
                    current?;
                    let user = UserMem {
                        mirror,
                        ram: &self.ram,
                    };
                    let app = self.app.read().unwrap_or_else(|e| e.into_inner());
                    exec::check(nr, &args, &user, &app).map_err(Response::ret)
                });
                match checked {
                    Ok(c) => Response::ret(c.run()),
                    Err(resp) => resp,
                }
            }
            Request::Trace {
                nr,
                args,
                result,
                flags,
            } => {
                if self.trace {
                    // A stale or poisoned mirror only makes pointers print as hex.
                    let mut line = self.with_mirror(|_, mirror| {
                        let user = UserMem {
                            mirror,
                            ram: &self.ram,
                        };
                        crate::trace::format_line(nr, &args, result, flags, &user)
                    });
                    line.push('\n');
                    // fd 2 is the application's stderr; if it closed it, so be it.
                    // Printed before Done, so the line precedes the call's effects.
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
                Response::ret(0)
            }
            Request::Exec { path } => {
                let path = self.with_mirror(|current, mirror| {
                    current.ok()?;
                    let user = UserMem {
                        mirror,
                        ram: &self.ram,
                    };
                    user.read_cstr(path, 4095).ok()
                });
                let Some(path) = path else {
                    return Response::err(Errno::EFAULT);
                };
                let exe = std::fs::canonicalize(std::ffi::OsStr::from_bytes(&path))
                    .map(|p| p.into_os_string().into_vec())
                    .unwrap_or(path);
                {
                    let mut app = self.app.write().unwrap_or_else(|e| e.into_inner());
                    app.exe_id =
                        views::FileId::of(std::path::Path::new(std::ffi::OsStr::from_bytes(&exe)))
                            .unwrap_or_default();
                    app.exe = exe;
                }
                crate::sys::close_cloexec_fds();
                Response::ret(0)
            }
            Request::Fork { table } => self.fork(table),
            Request::Exit { status, signal } => crate::sys::exit_like(status, signal),
            Request::Stop { signal } => match i32::try_from(signal) {
                Ok(sig @ (libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)) => {
                    signals::stop(sig);
                    Response::ret(0)
                }
                _ => Response::err(Errno::EINVAL),
            },
        }
    }

    /// Fork this proxy for a forked LWK process: the child serves the process
    /// whose region table is at `table` (checked to lie in guest RAM).
    fn fork(&self, table: u64) -> Response {
        let end = table.saturating_add(wire::REGION_TABLE_BYTES);
        let clear_of_shared = end <= SHARED_PHYS || table >= SHARED_PHYS + wire::SHARED_SIZE;
        let aligned = table.is_multiple_of(4096) && table >= 1 << 20 && clear_of_shared;
        if !aligned || self.ram.host_addr(table, wire::REGION_TABLE_BYTES).is_err() {
            return Response::err(Errno::EINVAL);
        }
        // Hold both locks across fork(): the child gets them in a state this
        // very thread can release (no other thread is copied into it).
        let mirror = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
        let app = self.app.write().unwrap_or_else(PoisonError::into_inner);
        let pid = crate::sys::fork();
        if pid != 0 {
            drop(app);
            drop(mirror);
            return Response::ret(pid);
        }
        // The child proxy: forget the parent's mirror, then serve the child.
        for e in mirror.mirror.entries() {
            let _ = self.window.release(e);
        }
        let child_app = exec::App {
            exe: app.exe.clone(),
            exe_id: app.exe_id,
            pid: std::process::id(),
            cpus: app.cpus,
        };
        drop(app);
        drop(mirror);
        signals::retarget(&self.ram, table);
        let child = Shared::for_table(
            Arc::clone(&self.ram),
            child_app,
            self.trace,
            self.window,
            table,
        );
        let _running = child.start();
        crate::sys::exit_after_margay()
    }

    /// Run `f` on the mirror, brought up to date with the kernel's region table
    /// first; `f` also learns whether that worked (`Err(response)` if not).
    fn with_mirror<R>(&self, f: impl FnOnce(Result<(), Response>, &Mirror) -> R) -> R {
        let gen = self
            .ram
            .load_u64(self.table + wire::REGION_GEN_OFF, Ordering::Acquire);
        if let Ok(gen) = gen {
            let view = self.mirror.read().unwrap_or_else(PoisonError::into_inner);
            match view.state {
                MirrorState::Current(g) if g == gen => return f(Ok(()), &view.mirror),
                MirrorState::Poisoned(g) if g == gen => {
                    return f(Err(Response::err(Errno::EFAULT)), &view.mirror)
                }
                _ => {}
            }
        }
        let mut view = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
        let r = view
            .refresh(&self.ram, self.window, self.table)
            .map_err(Response::err);
        f(r, &view.mirror)
    }
}

impl MirrorView {
    /// Bring the mirror up to date with the kernel's region table.
    fn refresh(&mut self, ram: &GuestMem, window: &Window, table: u64) -> Result<(), Errno> {
        let gen = ram
            .load_u64(table + wire::REGION_GEN_OFF, Ordering::Acquire)
            .map_err(|_| Errno::EFAULT)?;
        match self.state {
            MirrorState::Current(g) if g == gen => return Ok(()),
            MirrorState::Poisoned(g) if g == gen => return Err(Errno::EFAULT),
            _ => {}
        }
        let (gen, table) = match Mirror::read_at(ram, table) {
            Ok(t) => t,
            Err(e) => {
                self.complain(&e);
                return Err(Errno::EFAULT);
            }
        };
        let new = match table {
            Ok(m) => m,
            Err(e) => {
                self.complain(&e);
                self.unmap_all(window);
                self.state = MirrorState::Poisoned(gen);
                return Err(Errno::EFAULT);
            }
        };
        let (removed, added) = mirror::diff(&self.mirror, &new);
        let result = removed
            .iter()
            .try_for_each(|e| window.release(e))
            .and_then(|()| added.iter().try_for_each(|e| window.mirror(ram, e)));
        match result {
            Ok(()) => {
                self.mirror = new;
                self.state = MirrorState::Current(gen);
                Ok(())
            }
            Err(e) => {
                eprintln!("margay: proxy: {e}");
                // Start from a clean slate: every mapping of both tables goes.
                for e in new.entries() {
                    let _ = window.release(e);
                }
                self.unmap_all(window);
                self.state = MirrorState::Unknown;
                Err(Errno::ENOMEM)
            }
        }
    }

    fn unmap_all(&mut self, window: &Window) {
        for e in self.mirror.entries() {
            let _ = window.release(e);
        }
        self.mirror = Mirror::default();
    }

    fn complain(&mut self, e: &TableError) {
        if !self.complained {
            self.complained = true;
            eprintln!("margay: proxy: rejecting the LWK's region table: {e}; offloaded calls fail with EFAULT until it is fixed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_slots_are_rejected() {
        let mut s = Slot {
            kind: RequestKind::Syscall as u32,
            nr: 1,
            args: [1, 2, 3, 4, 5, 6],
            ..Slot::default()
        };
        assert_eq!(
            decode(&s),
            Ok(Request::Syscall {
                nr: 1,
                args: [1, 2, 3, 4, 5, 6]
            })
        );
        s.kind = RequestKind::Trace as u32;
        s.aux = [7, wire::TRACE_LOCAL, 0, 0];
        assert_eq!(
            decode(&s),
            Ok(Request::Trace {
                nr: 1,
                args: [1, 2, 3, 4, 5, 6],
                result: 7,
                flags: wire::TRACE_LOCAL
            })
        );
        s.kind = RequestKind::Clock as u32;
        assert_eq!(decode(&s), Ok(Request::Clock));
        s.kind = RequestKind::Exec as u32;
        assert_eq!(decode(&s), Ok(Request::Exec { path: 1 }));
        s.kind = RequestKind::Exit as u32;
        assert_eq!(
            decode(&s),
            Ok(Request::Exit {
                status: 1,
                signal: 2
            })
        );
        s.kind = RequestKind::Stop as u32;
        s.args[0] = 20;
        assert_eq!(decode(&s), Ok(Request::Stop { signal: 20 }));
        for kind in [0, 8, 0xdead_beef, u32::MAX] {
            s.kind = kind;
            assert_eq!(decode(&s), Err(kind));
        }
    }

    /// The user window, reserved once for this test binary (it stays reserved).
    pub(super) fn test_window() -> &'static Window {
        static W: std::sync::OnceLock<Window> = std::sync::OnceLock::new();
        W.get_or_init(|| Window::reserve().expect("user window already in use"))
    }

    /// Wait until `done` holds (or fail after a while).
    fn wait_until(mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Two LWK threads: one blocks in recvfrom on a socket, the other's sendto
    /// to it must still be served (a standby takes over from the blocked
    /// leader), and both complete. Garbage in the slots and stale doorbell bits
    /// are ignored or answered with EINVAL.
    #[test]
    fn calls_of_different_slots_run_in_parallel() {
        use doorbell::kernel::*;
        use linux_abi::syscalls_gen::{SYS_GETPPID, SYS_RECVFROM, SYS_SENDTO};
        use std::os::fd::AsRawFd as _;
        use wire::SlotState;

        let ram = GuestMem::anonymous(wire::MIN_MEM as usize);
        // An all-zero region table: generation 0, empty (nothing is mapped).
        let app = exec::App {
            exe: b"/x".to_vec(),
            exe_id: views::FileId::default(),
            pid: std::process::id(),
            cpus: 1,
        };
        let proxy = Shared::new(ram, app, false, test_window()).start();
        let ram = &proxy.shared.ram;
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let (a, b) = (a.as_raw_fd() as u64, b.as_raw_fd() as u64);
        let done = |i| state(ram, i) == SlotState::Done as u32;

        // Slot 5 blocks in recvfrom(a, NULL, 0): waits for a datagram.
        post_syscall(ram, 5, SYS_RECVFROM, [a, 0, 0, 0, 0, 0]);
        wait_until(|| state(ram, 5) == SlotState::Taken as u32);
        // Meanwhile, other slots are served: getppid, a clock sample, garbage.
        post_syscall(ram, 300, SYS_GETPPID, [0; 6]);
        post(ram, 64, RequestKind::Clock as u32, 0, [0; 6]);
        post(ram, 9, 0xdead, 0, [0; 6]);
        set_state(ram, 10, 0xbad);
        ring(ram, 10);
        ring(ram, 11); // a stale bit: slot 11 is Free
        wait_until(|| done(300) && done(64) && done(9));
        assert!(slot(ram, 300).ret > 0);
        assert!(slot(ram, 64).aux[1] > 0);
        assert_eq!(slot(ram, 9).ret, Errno::EINVAL.as_ret());
        wait_until(|| doorbell(ram) == [0; wire::DOORBELL_WORDS]);
        assert_eq!(state(ram, 10), 0xbad);
        assert_eq!(state(ram, 11), SlotState::Free as u32);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            state(ram, 5),
            SlotState::Taken as u32,
            "recvfrom returned early"
        );

        // Slot 7 sends the datagram (sendto(b, NULL, 0)): both complete.
        post_syscall(ram, 7, SYS_SENDTO, [b, 0, 0, 0, 0, 0]);
        wait_until(|| done(5) && done(7));
        assert_eq!((slot(ram, 5).ret, slot(ram, 7).ret), (0, 0));

        // Several requests posted at once are all served.
        for i in 100..140 {
            post_syscall(ram, i, SYS_GETPPID, [0; 6]);
        }
        wait_until(|| (100..140).all(done));
    }

    /// The real mechanism: reserve the user window, mirror guest RAM into it with
    /// mremap, and let Linux read and write the application's memory there.
    #[test]
    fn mirrored_memory_is_what_linux_sees() {
        use linux_abi::mman::{PROT_READ, PROT_WRITE};
        use linux_abi::syscalls_gen::{SYS_READ, SYS_WRITE};
        use mirror::tests::entry;
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;

        let window = test_window();
        let ram = crate::partition::Ram::create(wire::MIN_MEM).unwrap();
        let mem = ram.mem();
        let (rw, ro) = (0x40_0000, 0x50_0000);
        let table = Mirror::new(
            vec![
                entry(rw, 0x2000, 0x200_0000, PROT_READ | PROT_WRITE),
                entry(ro, 0x1000, 0x300_0000, PROT_READ),
            ],
            mem.size(),
        )
        .unwrap();
        for e in table.entries() {
            window.mirror(mem, e).unwrap();
        }
        let user = UserMem {
            mirror: &table,
            ram: mem,
        };
        let (mut r, mut w) = std::io::pipe().unwrap();
        let (rfd, wfd) = (r.as_raw_fd() as u64, w.as_raw_fd() as u64);

        // write(2) from mirrored pages, spanning into the second page.
        mem.write_bytes(0x200_0ffe, b"hello").unwrap();
        let n = exec::execute(
            u64::from(SYS_WRITE),
            &[wfd, rw + 0xffe, 5, 0, 0, 0],
            &user,
            b"/x",
            1,
        );
        assert_eq!(n, 5);
        let mut got = [0u8; 5];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        // read(2) into mirrored pages shows up in guest RAM.
        w.write_all(b"world").unwrap();
        let n = exec::execute(
            u64::from(SYS_READ),
            &[rfd, rw + 0x10, 5, 0, 0, 0],
            &user,
            b"/x",
            1,
        );
        assert_eq!(n, 5);
        assert_eq!(mem.read_bytes(0x200_0010, 5).unwrap(), b"world");

        // Read-only and unmirrored memory are refused before Linux runs.
        w.write_all(b"x").unwrap();
        let n = exec::execute(u64::from(SYS_READ), &[rfd, ro, 1, 0, 0, 0], &user, b"/x", 1);
        assert_eq!(n, Errno::EFAULT.as_ret());
        for e in table.entries() {
            window.release(e).unwrap();
        }
        let empty = Mirror::default();
        let user = UserMem {
            mirror: &empty,
            ram: mem,
        };
        let n = exec::execute(
            u64::from(SYS_WRITE),
            &[wfd, rw, 1, 0, 0, 0],
            &user,
            b"/x",
            1,
        );
        assert_eq!(n, Errno::EFAULT.as_ret());
    }

    #[test]
    fn spawn_args_round_trip_through_the_cli() {
        use clap::Parser as _;
        let args = spawn_args(
            std::path::Path::new("/proc/1/fd/3"),
            64 << 20,
            2,
            std::path::Path::new("/bin/true"),
            true,
        );
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once("margay".into()).chain(args)).unwrap();
        let crate::cli::Command::Proxy(p) = cli.command else {
            panic!("not the proxy subcommand");
        };
        use std::path::PathBuf;
        assert_eq!(p.ram, PathBuf::from("/proc/1/fd/3"));
        assert_eq!((p.mem_size, p.cpus, p.trace), (64 << 20, 2, true));
        assert_eq!(p.exe, PathBuf::from("/bin/true"));
    }
}
