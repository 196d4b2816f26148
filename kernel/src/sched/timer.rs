//! Time on a core: its one-shot timer, sleeps with deadlines, waits for the
//! proxy while the core runs other tasks, and alarm deadlines (the alarms
//! themselves belong to their processes; core 0 keeps the timer for the
//! earliest and fires them through `hooks::fire_alarms`).

use super::runqueue::{self, CPUS};
use super::{hooks, switch};
use crate::arch::apic;
use crate::arch::cpu::{rdtsc, tsc_hz};
use crate::arch::gdt::this_cpu;
use crate::arch::smp as cores;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Time slice when a core holds several runnable tasks.
const SLICE_NS: u64 = 5_000_000;
/// How often a core that runs other tasks checks its blocked offloads.
const OFFLOAD_POLL_NS: u64 = 200_000;

/// The core that keeps alarms.
const ALARM_CPU: usize = 0;

fn ns_to_cycles(ns: u64) -> u64 {
    ((u128::from(ns) * u128::from(tsc_hz())) / 1_000_000_000) as u64
}

/// How a sleep ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wakeup {
    Deadline,
    Woken,
    Signal,
}

/// Sleep until the TSC reaches `deadline`, until `until_woken` is set, or
/// until a signal can be delivered.
pub fn sleep_until(deadline: u64, until_woken: Option<&AtomicBool>) -> Wakeup {
    let Some(me) = switch::current() else {
        while rdtsc() < deadline {}
        return Wakeup::Deadline;
    };
    loop {
        if rdtsc() >= deadline {
            return Wakeup::Deadline;
        }
        if until_woken.is_some_and(|w| w.load(Ordering::Acquire)) {
            return Wakeup::Woken;
        }
        if (hooks::get().interrupted)() {
            return Wakeup::Signal;
        }
        let cpu = this_cpu();
        if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
            rq.sleepers.push((deadline, me.clone()));
        }
        rearm(cpu);
        runqueue::block();
        if let Some(rq) = CPUS[this_cpu()].rq.lock().as_mut() {
            rq.sleepers.retain(|(_, t)| !Arc::ptr_eq(t, &me));
        }
    }
}

/// Wait for the proxy to answer on `slot` without holding the CPU.
pub fn wait_offload(slot: usize, done: impl Fn() -> bool) {
    let Some(me) = switch::current() else { return };
    while !done() {
        if (hooks::get().interrupted)() {
            crate::ikc::slot::interrupt(slot);
        }
        let cpu = this_cpu();
        if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
            rq.waiters.push((slot, me.clone()));
        }
        rearm(cpu);
        runqueue::block();
    }
}

/// Work a core must not miss while it spins in the kernel with interrupts
/// off (waiting for the proxy): host signals, alarms, and other tasks'
/// completed offloads and expired sleeps (no timer interrupt can arrive).
pub fn poll_while_spinning() {
    (hooks::get().take_host_signals)();
    // Tasks of this core blocked on their own offloads or sleeps: wake the
    // ready ones (the spinning task then blocks and lets them run).
    poll_wakeups(this_cpu());
}

/// A process's real-time timer (ITIMER_REAL / alarm): TSC deadline (0 =
/// off) and interval in cycles. It lives in the process; the timer path
/// finds it through `hooks::fire_alarms`.
#[derive(Default)]
pub struct Alarm {
    deadline: AtomicU64,
    interval: AtomicU64,
}

impl Alarm {
    pub const fn new() -> Self {
        Self {
            deadline: AtomicU64::new(0),
            interval: AtomicU64::new(0),
        }
    }

    /// Arm (or with `after == 0`, disarm) the timer; returns the previous
    /// (remaining, interval) in cycles.
    pub fn set(&self, after: u64, interval: u64) -> (u64, u64) {
        let now = rdtsc();
        let deadline = if after == 0 {
            0
        } else {
            now.saturating_add(after)
        };
        let old = self.deadline.swap(deadline, Ordering::SeqCst);
        let old_interval = self.interval.swap(interval, Ordering::SeqCst);
        if deadline != 0 {
            alarm_armed(deadline);
        }
        (remaining(old, now), old_interval)
    }

    /// Arm the timer for TSC `deadline` (possibly past: the periods since
    /// then count when it fires), then every `interval`.
    pub fn set_deadline(&self, deadline: u64, interval: u64) {
        let deadline = deadline.max(1);
        self.interval.store(interval, Ordering::SeqCst);
        self.deadline.store(deadline, Ordering::SeqCst);
        alarm_armed(deadline);
    }

    /// (remaining, interval) in cycles.
    pub fn remaining(&self) -> (u64, u64) {
        (
            remaining(self.deadline.load(Ordering::Acquire), rdtsc()),
            self.interval.load(Ordering::Acquire),
        )
    }

    /// If the alarm is due at `now`: re-arm it for its next period (or
    /// disarm it) and return how many periods ended (more than one when
    /// some were missed: overruns); 0 when not due.
    pub fn fire_count(&self, now: u64) -> u64 {
        let d = self.deadline.load(Ordering::SeqCst);
        if d == 0 {
            return 0;
        }
        if d > now {
            alarm_armed(d);
            return 0;
        }
        let interval = self.interval.load(Ordering::Acquire);
        // Keep the period's phase; count the periods that passed.
        let (next, n) = match (now - d).checked_div(interval) {
            None => (0, 1),
            Some(missed) => (
                d.saturating_add((missed + 1).saturating_mul(interval)),
                missed + 1,
            ),
        };
        let fired = self
            .deadline
            .compare_exchange(d, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        let cur = self.deadline.load(Ordering::SeqCst);
        if cur != 0 {
            // A very short period is checked no more often than MIN_GAP_NS
            // (the periods in between count as overruns): a program cannot
            // flood the alarm core with timer interrupts.
            alarm_armed(cur.max(now + ns_to_cycles(MIN_GAP_NS)));
        }
        if fired {
            n
        } else {
            0
        }
    }
}

/// The shortest time between two checks of one periodic timer.
const MIN_GAP_NS: u64 = 50_000;

fn remaining(deadline: u64, now: u64) -> u64 {
    if deadline == 0 {
        0
    } else {
        deadline.saturating_sub(now).max(1)
    }
}

/// Earliest alarm deadline of any process (u64::MAX: none).
static NEXT_ALARM: AtomicU64 = AtomicU64::new(u64::MAX);

/// Some process's alarm is due at `deadline`: make the alarm core's timer
/// cover it.
pub fn alarm_armed(deadline: u64) {
    let prev = NEXT_ALARM.fetch_min(deadline, Ordering::SeqCst);
    if deadline < prev {
        CPUS[ALARM_CPU].timer_dirty.store(true, Ordering::Release);
        if this_cpu() != ALARM_CPU {
            cores::send_resched(ALARM_CPU);
        }
    }
}

/// On the alarm core: fire the alarms that are due.
pub(super) fn check_alarms(now: u64) {
    if NEXT_ALARM.load(Ordering::SeqCst) <= now {
        // Forget the earliest deadline first: every alarm still armed
        // re-publishes its own (as does one armed meanwhile).
        NEXT_ALARM.store(u64::MAX, Ordering::SeqCst);
        (hooks::get().fire_alarms)(now);
    }
}

/// Per core: when the running task's process's CPU-time timer
/// (ITIMER_VIRTUAL/ITIMER_PROF) may run out (TSC; 0: none). Its threads
/// charge time only at kernel entries and exits, so a thread computing in
/// user mode is interrupted then to charge it and fire the timer.
static CPU_LIMIT: [AtomicU64; wire::MAX_CPUS] = [const { AtomicU64::new(0) }; wire::MAX_CPUS];

/// Fire `t`'s process's CPU-time timers that ran out (at kernel entry,
/// after charging); each posts its signal through `hooks::cpu_timer_fired`.
pub(super) fn cpu_timers_due(t: &super::Task) {
    let a = &t.account;
    let user = a.user.load(Ordering::Acquire);
    let run = a.run.load(Ordering::Acquire);
    let pairs = [
        (
            &a.virt_at,
            &a.virt_interval,
            user,
            linux_abi::signal::SIGVTALRM,
        ),
        (
            &a.prof_at,
            &a.prof_interval,
            run,
            linux_abi::signal::SIGPROF,
        ),
    ];
    for (at, interval, used, sig) in pairs {
        let due = at.load(Ordering::Acquire);
        if due == 0 || used < due {
            continue;
        }
        let i = interval.load(Ordering::Acquire);
        let next = (used - due)
            .checked_div(i)
            .map_or(0, |k| due.saturating_add((k + 1).saturating_mul(i)));
        if at
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            (hooks::get().cpu_timer_fired)(t.pid, sig);
        }
    }
    if a.cpu_posix.load(Ordering::Acquire) {
        (hooks::get().cpu_posix_timers)(t);
    }
}

/// About to run `t` in user mode on `cpu` at `now`: make the core's timer
/// cover its process's CPU-time timers. Whether the timer must be re-armed.
pub(super) fn cpu_timer_limit(cpu: usize, t: &super::Task, now: u64) -> bool {
    let a = &t.account;
    if !a.armed() {
        // The common case, on every return to user mode: a load, no write.
        return CPU_LIMIT[cpu].load(Ordering::Relaxed) != 0
            && CPU_LIMIT[cpu].swap(0, Ordering::AcqRel) != 0;
    }
    let left = |at: &AtomicU64, used: &AtomicU64| match at.load(Ordering::Acquire) {
        0 => u64::MAX,
        d => d.saturating_sub(used.load(Ordering::Acquire)),
    };
    let mut rem = left(&a.virt_at, &a.user).min(left(&a.prof_at, &a.run));
    if a.cpu_posix.load(Ordering::Acquire) {
        // CPU time left on a timer is the least wall time until it fires.
        rem = rem.min((hooks::get().cpu_posix_timers)(t));
    }
    let limit = now.saturating_add(rem.max(ns_to_cycles(MIN_GAP_NS)));
    CPU_LIMIT[cpu].store(limit, Ordering::Release);
    true
}

/// Wake sleepers whose deadline passed and tasks whose offload completed.
pub(super) fn poll_wakeups(cpu: usize) {
    let now = rdtsc();
    if cpu == ALARM_CPU {
        check_alarms(now);
    }
    let mut ready: Vec<_> = Vec::new();
    if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
        rq.sleepers.retain(|(d, t)| {
            if *d <= now {
                ready.push(t.clone());
                false
            } else {
                true
            }
        });
        rq.waiters.retain(|(slot, t)| {
            if crate::ikc::slot::done(*slot) {
                ready.push(t.clone());
                false
            } else {
                true
            }
        });
    }
    for t in &ready {
        runqueue::wake(t);
    }
}

/// Arm this CPU's one-shot timer for the next thing it must do, or stop it.
pub(super) fn rearm(cpu: usize) {
    let now = rdtsc();
    let mut deadline = u64::MAX;
    if cpu == ALARM_CPU {
        deadline = NEXT_ALARM.load(Ordering::SeqCst);
    }
    match CPU_LIMIT[cpu].load(Ordering::Acquire) {
        0 => {}
        l => deadline = deadline.min(l),
    }
    if let Some(rq) = CPUS[cpu].rq.lock().as_ref() {
        for (d, _) in &rq.sleepers {
            deadline = deadline.min(*d);
        }
        if !rq.waiters.is_empty() && rq.current.is_some() {
            deadline = deadline.min(now + ns_to_cycles(OFFLOAD_POLL_NS));
        }
        if !rq.queue.is_empty() && rq.current.is_some() {
            deadline = deadline.min(now + ns_to_cycles(SLICE_NS));
        }
    }
    if deadline == u64::MAX {
        apic::timer_stop();
    } else {
        apic::timer_oneshot_cycles(deadline.saturating_sub(now).max(1));
    }
}

/// The timer fired (in user mode or in the idle loop).
pub fn on_timer(from_user: bool) {
    let cpu = this_cpu();
    CPUS[cpu].timer_irqs.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    poll_wakeups(cpu);
    if from_user {
        cores::set_in_user(cpu, false);
        runqueue::yield_now();
        rearm(this_cpu());
        cores::set_in_user(this_cpu(), true);
    }
}
