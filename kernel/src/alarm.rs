//! A process's timers and how they fire: ITIMER_REAL (`process::Entry::alarm`)
//! and POSIX timers on the real-time clocks (`ProcTimers`) are TSC deadlines
//! in the process, checked by the scheduler's timer path on core 0, which
//! calls `fire_due`; their signals go to the process (or, SIGEV_THREAD_ID,
//! to one thread of it) whichever core its threads run on and whether or
//! not they are blocked. Nothing here is global: a forked child starts
//! with none (its `Entry` is new), exec deletes the POSIX timers and keeps
//! the interval timers, as on Linux.

use crate::arch::mem::SpinLock;
use crate::sched::{Alarm, Task};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use linux_abi::clock::{CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
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
    /// The thread that created it (whose CPU time a
    /// CLOCK_THREAD_CPUTIME_ID timer counts).
    pub owner: u32,
    /// Real-time clocks: a TSC deadline fired from core 0.
    pub alarm: Alarm,
    /// CPU-time clocks: the clock's value (cycles) at which it fires next
    /// (0: disarmed), and its interval; checked at the kernel entries of
    /// the process's threads.
    cpu_at: AtomicU64,
    cpu_interval: AtomicU64,
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
    pub fn new(
        id: i32,
        clock: u32,
        notify: i32,
        signo: u32,
        value: u64,
        tid: u32,
        owner: u32,
    ) -> Self {
        PosixTimer {
            id,
            clock,
            notify,
            signo,
            value,
            tid,
            owner,
            alarm: Alarm::new(),
            cpu_at: AtomicU64::new(0),
            cpu_interval: AtomicU64::new(0),
            queued: AtomicBool::new(false),
            overrun: AtomicU64::new(0),
            last_overrun: AtomicI32::new(0),
        }
    }

    /// Whether it runs on a CPU-time clock.
    pub fn is_cpu(&self) -> bool {
        matches!(
            self.clock,
            CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID
        )
    }

    /// Its clock's value now (CPU-time clocks; cycles), `t` being any
    /// thread of the process.
    fn cpu_now(&self, t: &Task) -> u64 {
        if self.clock == CLOCK_THREAD_CPUTIME_ID && t.tid != self.owner {
            return crate::sched::find(self.owner).map_or(0, |o| cpu_clock_cycles(self.clock, &o));
        }
        cpu_clock_cycles(self.clock, t)
    }

    /// (remaining, interval) in cycles.
    pub fn remaining(&self) -> (u64, u64) {
        if !self.is_cpu() {
            return self.alarm.remaining();
        }
        let at = self.cpu_at.load(Ordering::Acquire);
        let left = match (at, crate::sched::current()) {
            (0, _) | (_, None) => 0,
            (at, Some(t)) => at.saturating_sub(self.cpu_now(&t)).max(1),
        };
        (left, self.cpu_interval.load(Ordering::Acquire))
    }

    /// Disarm it; the previous (remaining, interval).
    pub fn disarm(&self) -> (u64, u64) {
        let prev = self.remaining();
        self.alarm.set(0, 0);
        self.cpu_at.store(0, Ordering::Release);
        self.cpu_interval.store(0, Ordering::Release);
        prev
    }

    /// Arm a CPU-time timer to fire when its clock reaches `at` cycles.
    pub fn arm_cpu(&self, at: u64, interval: u64) {
        self.cpu_interval.store(interval, Ordering::Release);
        self.cpu_at.store(at.max(1), Ordering::Release);
        // The process's threads check its CPU-time timers from now on.
        if let Some(t) = crate::sched::current() {
            t.account.cpu_posix.store(true, Ordering::Release);
        }
    }

    /// A CPU-time timer: fire it if its clock passed its expiry; the cycles
    /// left until it may fire (u64::MAX when disarmed).
    fn check_cpu(self: &Arc<Self>, pid: u32, t: &Task) -> u64 {
        let at = self.cpu_at.load(Ordering::Acquire);
        if at == 0 {
            return u64::MAX;
        }
        let now = self.cpu_now(t);
        if now < at {
            return at - now;
        }
        let i = self.cpu_interval.load(Ordering::Acquire);
        let (next, n) = match (now - at).checked_div(i) {
            None => (0, 1),
            Some(k) => (at.saturating_add((k + 1).saturating_mul(i)), k + 1),
        };
        if self
            .cpu_at
            .compare_exchange(at, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.expire(pid, n);
        }
        if next == 0 {
            u64::MAX
        } else {
            next.saturating_sub(now)
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

    /// Periods an absolute expiry set in the past has already missed.
    pub fn add_overrun(&self, n: u64) {
        self.overrun.fetch_add(n, Ordering::AcqRel);
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

/// A CPU-time clock's value in cycles: the process's CPU time (`t` one of
/// its threads), or thread `t`'s, each with the current stint.
pub fn cpu_clock_cycles(clock: u32, t: &Task) -> u64 {
    let (_, mine) = crate::sched::thread_cycles(t);
    if clock == CLOCK_THREAD_CPUTIME_ID {
        return mine;
    }
    let charged = t.run_cycles();
    t.account
        .run
        .load(Ordering::Acquire)
        .saturating_add(mine.saturating_sub(charged))
}

/// At a kernel entry or exit of thread `t`, whose process has CPU-time
/// POSIX timers: fire those that ran out; the cycles of CPU time until the
/// next may (registered as `sched::Hooks::cpu_posix_timers`).
pub fn cpu_posix_timers(t: &Task) -> u64 {
    let Some(e) = crate::process::entry(t.pid) else {
        return u64::MAX;
    };
    let cpu: Vec<Arc<PosixTimer>> = e
        .timers
        .posix
        .lock()
        .iter()
        .filter(|p| p.is_cpu())
        .cloned()
        .collect();
    if cpu.is_empty() {
        t.account.cpu_posix.store(false, Ordering::Release);
        return u64::MAX;
    }
    cpu.iter()
        .map(|p| p.check_cpu(t.pid, t))
        .min()
        .unwrap_or(u64::MAX)
}

/// A clock id as the caller gave it: negative ids are CPU-time clocks
/// (glibc passes its own process's and thread's as -6 and -2; bits 0-1 say
/// which time, bit 2 per-thread, the rest the complemented pid or tid, 0
/// for the caller); they become CLOCK_PROCESS_CPUTIME_ID or
/// CLOCK_THREAD_CPUTIME_ID. Another process's or thread's CPU clock is
/// EINVAL here.
pub fn clock_id(clock: i32) -> Result<u32, linux_abi::Errno> {
    if let Ok(c) = u32::try_from(clock) {
        return Ok(c);
    }
    let who = !(clock >> 3);
    if who != 0 || clock & 3 == 3 {
        return Err(linux_abi::Errno::EINVAL);
    }
    Ok(if clock & 4 != 0 {
        CLOCK_THREAD_CPUTIME_ID
    } else {
        CLOCK_PROCESS_CPUTIME_ID
    })
}
