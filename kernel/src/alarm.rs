//! A process's timers and how they fire: ITIMER_REAL (`process::Entry::alarm`)
//! and POSIX timers on the real-time clocks (`ProcTimers`) are TSC deadlines
//! in the process, checked by the scheduler's timer path on core 0, which
//! calls `fire_due`; their signals go to the process (or, SIGEV_THREAD_ID,
//! to one thread of it) whichever core its threads run on and whether or
//! not they are blocked. Nothing here is global: a forked child starts
//! with none (its `Entry` is new), exec deletes the POSIX timers and keeps
//! the interval timers, as on Linux.

use crate::arch::mem::SpinLock;
use crate::sched::Alarm;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use linux_abi::signal::{SIGALRM, SIGEV_NONE};
use linux_abi::uapi::siginfo;

/// POSIX timers one process may hold (Linux bounds them by
/// RLIMIT_SIGPENDING); timer_create then fails with EAGAIN.
pub const TIMERS_MAX: usize = 256;

/// One POSIX timer (timer_create).
pub struct PosixTimer {
    pub id: i32,
    pub clock: u32,
    /// SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD_ID.
    pub notify: i32,
    pub signo: u32,
    pub value: u64,
    /// SIGEV_THREAD_ID: the thread its signal goes to.
    pub tid: u32,
    pub alarm: Alarm,
    /// Its signal is queued and not yet taken.
    queued: AtomicBool,
    /// Expiries since its signal was queued (counted until it is taken).
    overrun: AtomicU64,
    /// The overrun count of the last signal taken (timer_getoverrun).
    pub last_overrun: AtomicI32,
}

/// Linux caps overrun counts at DELAYTIMER_MAX.
const DELAYTIMER_MAX: u64 = i32::MAX as u64;

impl PosixTimer {
    pub fn new(id: i32, clock: u32, notify: i32, signo: u32, value: u64, tid: u32) -> Self {
        PosixTimer {
            id,
            clock,
            notify,
            signo,
            value,
            tid,
            alarm: Alarm::new(),
            queued: AtomicBool::new(false),
            overrun: AtomicU64::new(0),
            last_overrun: AtomicI32::new(0),
        }
    }

    /// Its signal was taken: the overruns it carries (also what
    /// timer_getoverrun reports from now on).
    pub fn taken(&self) -> i32 {
        self.queued.store(false, Ordering::Release);
        let n = self.overrun.swap(0, Ordering::AcqRel).min(DELAYTIMER_MAX) as i32;
        self.last_overrun.store(n, Ordering::Release);
        n
    }

    /// (Re)armed by timer_settime, its pending signal removed: expiries of
    /// the old setting are forgotten.
    pub fn reset_overrun(&self) {
        self.queued.store(false, Ordering::Release);
        self.overrun.store(0, Ordering::Release);
    }

    /// The timer expired `n` times (n - 1 of them missed): queue its signal,
    /// or count overruns if it is still pending.
    fn expire(self: &Arc<Self>, pid: u32, n: u64) {
        if self.notify == SIGEV_NONE {
            return;
        }
        if self.queued.swap(true, Ordering::AcqRel) {
            self.overrun.fetch_add(n, Ordering::AcqRel);
            return;
        }
        self.overrun.fetch_add(n - 1, Ordering::AcqRel);
        let info = siginfo::from_timer(self.signo as i32, self.id, 0, self.value);
        let thread = (self.tid != 0)
            .then(|| crate::sched::find(self.tid))
            .flatten()
            .filter(|t| t.pid == pid);
        let posted =
            crate::signal::post_info(pid, thread.as_ref(), info, Some(self.clone()), false);
        if posted != Ok(crate::signal::Posted::Queued) {
            // Ignored, or merged into a pending instance: not queued by us.
            self.queued.store(false, Ordering::Release);
        }
    }
}

/// A process's POSIX timers (and, later, its CPU-time timers).
pub struct ProcTimers {
    pub posix: SpinLock<Vec<Arc<PosixTimer>>>,
}

impl Default for ProcTimers {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcTimers {
    pub const fn new() -> Self {
        ProcTimers {
            posix: SpinLock::new(Vec::new()),
        }
    }

    pub fn find(&self, id: i32) -> Option<Arc<PosixTimer>> {
        self.posix.lock().iter().find(|t| t.id == id).cloned()
    }
}

/// Fire the timers due at TSC `now` (registered as `sched::Hooks::fire_alarms`).
pub fn fire_due(now: u64) {
    for (pid, e) in crate::process::entries() {
        if e.alarm.fire_count(now) > 0 {
            crate::signal::post_to(pid, SIGALRM, crate::signal::SI_KERNEL, 0);
        }
        let due: Vec<(Arc<PosixTimer>, u64)> = e
            .timers
            .posix
            .lock()
            .iter()
            .filter_map(|t| {
                let n = t.alarm.fire_count(now);
                (n > 0).then(|| (t.clone(), n))
            })
            .collect();
        for (t, n) in due {
            t.expire(pid, n);
        }
    }
}

/// Remove timer `id` of process `e`, and the signal it has queued.
pub fn delete(e: &crate::process::Entry, id: i32) -> bool {
    let t = {
        let mut list = e.timers.posix.lock();
        let Some(i) = list.iter().position(|t| t.id == id) else {
            return false;
        };
        list.swap_remove(i)
    };
    t.alarm.set(0, 0);
    e.sigq.remove_timer(e, &t);
    true
}

/// execve: the process's POSIX timers are deleted (interval timers stay).
pub fn on_exec() {
    let e = crate::process::current_entry();
    let ids: Vec<i32> = e.timers.posix.lock().iter().map(|t| t.id).collect();
    for id in ids {
        delete(&e, id);
    }
}

/// An ITIMER_VIRTUAL or ITIMER_PROF timer of process `pid` ran out
/// (registered as `sched::Hooks::cpu_timer_fired`).
pub fn cpu_timer_fired(pid: u32, sig: u32) {
    crate::signal::post_to(pid, sig, crate::signal::SI_KERNEL, 0);
}
