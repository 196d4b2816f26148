//! Per-core run queues: round-robin among a core's runnable tasks, waking,
//! blocking, yielding, migrating between cores, and the idle loop.

use super::task::{self, Task, TaskRef, BLOCKED, DEAD, NO_CPU, RUNNABLE, RUNNING};
use super::{hooks, switch, timer};
use crate::arch::cpu::rdtsc;
use crate::arch::gdt::this_cpu;
use crate::arch::mem::SpinLock;
use crate::arch::smp as cores;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use wire::MAX_CPUS;

#[derive(Default)]
pub(super) struct RunQueue {
    pub(super) queue: VecDeque<TaskRef>,
    pub(super) current: Option<TaskRef>,
    /// (TSC deadline, task) of tasks sleeping on this core.
    pub(super) sleepers: Vec<(u64, TaskRef)>,
    /// (slot, task) of tasks waiting for an offload while the core runs others.
    pub(super) waiters: Vec<(usize, TaskRef)>,
}

/// A core's scheduling state.
pub(super) struct Cpu {
    pub(super) rq: SpinLock<Option<RunQueue>>,
    queued: AtomicUsize,
    pub(super) timer_irqs: AtomicU64,
    pub(super) ipis: AtomicU64,
    switches: AtomicU64,
    /// Set when this core's queue, sleepers or waiters changed: the timer
    /// must be re-armed before returning to user mode.
    pub(super) timer_dirty: AtomicBool,
}

pub(super) static CPUS: [Cpu; MAX_CPUS] = [const {
    Cpu {
        rq: SpinLock::new(None),
        queued: AtomicUsize::new(0),
        timer_irqs: AtomicU64::new(0),
        ipis: AtomicU64::new(0),
        switches: AtomicU64::new(0),
        timer_dirty: AtomicBool::new(false),
    }
}; MAX_CPUS];

static NCPUS: AtomicUsize = AtomicUsize::new(1);

pub fn ncpus() -> usize {
    NCPUS.load(Ordering::Acquire)
}

pub(super) fn set_ncpus(n: usize) {
    NCPUS.store(n, Ordering::Release);
}

pub fn online_mask() -> u64 {
    (0..ncpus())
        .filter(|&c| cores::is_online(c))
        .fold(0, |m, c| m | 1 << c)
}

/// Per-core counters for `--stats`: (timer interrupts, IPIs, context switches).
pub fn cpu_counters(cpu: usize) -> (u64, u64, u64) {
    let c = &CPUS[cpu];
    (
        c.timer_irqs.load(Ordering::Relaxed),
        c.ipis.load(Ordering::Relaxed),
        c.switches.load(Ordering::Relaxed),
    )
}

/// Give core `cpu` an empty run queue.
pub(super) fn init_cpu(cpu: usize) {
    *CPUS[cpu].rq.lock() = Some(RunQueue::default());
}

/// Make `t` the task running on `cpu` (the main thread at boot).
pub(super) fn set_current(cpu: usize, t: TaskRef) {
    if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
        rq.current = Some(t);
    }
}

/// The least loaded online CPU allowed by `mask`.
fn pick_cpu(mask: u64) -> usize {
    let mut best = (usize::MAX, 0);
    for (c, cpu) in CPUS.iter().enumerate().take(ncpus()) {
        if mask & (1 << c) == 0 || !cores::is_online(c) {
            continue;
        }
        let busy = usize::from(switch::is_busy(c));
        let load = cpu.queued.load(Ordering::Acquire) + busy;
        if load < best.0 {
            best = (load, c);
        }
    }
    best.1
}

/// Make a prepared thread known and queue it on the least loaded allowed CPU.
pub fn start_thread(t: TaskRef) {
    task::insert(&t);
    let cpu = pick_cpu(t.affinity.load(Ordering::Acquire));
    t.cpu.store(cpu, Ordering::Release);
    enqueue(cpu, t);
}

/// Move another task to `cpu`: at once if it is queued or blocked; if it is
/// running, its CPU moves it at its next reschedule IPI.
pub fn request_migration(t: &TaskRef, cpu: usize) {
    let from = t.cpu();
    let mut moved = false;
    if let Some(rq) = CPUS[from].rq.lock().as_mut() {
        if let Some(i) = rq.queue.iter().position(|q| Arc::ptr_eq(q, t)) {
            rq.queue.remove(i);
            CPUS[from].queued.store(rq.queue.len(), Ordering::Release);
            moved = true;
        } else if t.state.load(Ordering::Acquire) == BLOCKED {
            // Woken later on its new CPU.
            t.cpu.store(cpu, Ordering::Release);
            return;
        }
    }
    if moved {
        t.cpu.store(cpu, Ordering::Release);
        enqueue(cpu, t.clone());
    } else {
        t.migrate_to.store(cpu, Ordering::Release);
        cores::send_resched(from);
    }
}

/// Honour a pending migration request of the running task.
pub(super) fn check_migration() {
    if let Some(me) = switch::current() {
        let to = me.migrate_to.swap(NO_CPU, Ordering::AcqRel);
        if to != NO_CPU {
            migrate_current(to);
        }
    }
}

/// Put a runnable task on `cpu`'s queue and make sure that CPU notices.
fn enqueue(cpu: usize, t: TaskRef) {
    t.state.store(RUNNABLE, Ordering::Release);
    if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
        rq.queue.push_back(t);
        CPUS[cpu].queued.store(rq.queue.len(), Ordering::Release);
    }
    CPUS[cpu].timer_dirty.store(true, Ordering::Release);
    if cpu != this_cpu() {
        cores::send_resched(cpu);
    }
}

/// Make a blocked task runnable again (or make its next block return at once).
pub fn wake(t: &TaskRef) {
    t.wake_pending.store(true, Ordering::SeqCst);
    if t.state
        .compare_exchange(BLOCKED, RUNNABLE, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        t.wake_pending.store(false, Ordering::SeqCst);
        enqueue(t.cpu(), t.clone());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Switch {
    /// Stay runnable, go to the back of the queue.
    Yield,
    /// Wait for `wake`.
    Block,
    /// The task has ended.
    Exit,
    /// Move to another CPU's queue.
    Migrate(usize),
}

/// Give up the CPU (interrupts off, kernel mode).
fn schedule(how: Switch) {
    let cpu = this_cpu();
    let c = &CPUS[cpu];
    let (prev, next) = {
        let mut guard = c.rq.lock();
        let Some(rq) = guard.as_mut() else { return };
        let prev = rq.current.take();
        if let Some(p) = &prev {
            match how {
                Switch::Yield => {
                    if rq.queue.is_empty() {
                        rq.current = prev;
                        return;
                    }
                    p.state.store(RUNNABLE, Ordering::Release);
                    rq.queue.push_back(p.clone());
                }
                Switch::Block => {
                    p.state.store(BLOCKED, Ordering::SeqCst);
                    if p.wake_pending.swap(false, Ordering::SeqCst)
                        && p.state
                            .compare_exchange(BLOCKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok()
                    {
                        rq.current = prev;
                        return;
                    }
                    // A waker already queued it: switch away; it runs again from the queue.
                }
                Switch::Exit => p.state.store(DEAD, Ordering::Release),
                Switch::Migrate(_) => p.state.store(RUNNABLE, Ordering::Release),
            }
        }
        let next = rq.queue.pop_front();
        c.queued.store(rq.queue.len(), Ordering::Release);
        if let Some(n) = &next {
            n.state.store(RUNNING, Ordering::Release);
            rq.current = Some(n.clone());
        }
        (prev, next)
    };
    if let (Some(p), Switch::Migrate(to)) = (&prev, how) {
        p.cpu.store(to, Ordering::Release);
        enqueue(to, p.clone());
    }
    if prev.is_some() || next.is_some() {
        c.switches.fetch_add(1, Ordering::Relaxed);
    }
    let now = rdtsc();
    if let Some(p) = &prev {
        charge_run(p, now);
        p.run_since.store(0, Ordering::Release);
    }
    if let Some(n) = &next {
        n.run_since.store(now, Ordering::Release);
    }
    switch::switch(cpu, prev, next);
}

/// The task that ran before a switch is off its CPU: forget it if it ended.
pub(super) fn switched_out(p: &Task) {
    if p.state.load(Ordering::Acquire) == DEAD {
        task::reap(p);
    }
}

/// A task is now running on `cpu`: it will return to user mode with the
/// timer armed for this core's situation.
pub(super) fn switched_in(cpu: usize) {
    cores::set_in_user(cpu, true);
    CPUS[cpu].timer_dirty.store(false, Ordering::Release);
    timer::rearm(cpu);
}

/// Whether this CPU has other runnable tasks (a waiting task should then block).
pub fn others_runnable() -> bool {
    CPUS[this_cpu()].queued.load(Ordering::Acquire) > 0
}

pub fn yield_now() {
    schedule(Switch::Yield);
}

/// Block the current task until `wake`.
pub fn block() {
    schedule(Switch::Block);
}

/// End the current task (never returns).
pub fn exit_current() -> ! {
    schedule(Switch::Exit);
    unreachable!("a dead task was scheduled again")
}

/// Move the current task to `cpu` now.
pub fn migrate_current(cpu: usize) {
    if cpu != this_cpu() {
        schedule(Switch::Migrate(cpu));
    }
}

/// Every CPU runs this when it has nothing to do.
pub(super) fn idle_loop() -> ! {
    loop {
        let cpu = this_cpu();
        cores::set_in_user(cpu, false);
        (hooks::get().take_host_signals)();
        timer::poll_wakeups(cpu);
        if CPUS[cpu].queued.load(Ordering::Acquire) > 0 {
            schedule(Switch::Yield);
            continue;
        }
        let waiting = CPUS[cpu]
            .rq
            .lock()
            .as_ref()
            .is_some_and(|rq| !rq.waiters.is_empty());
        if waiting {
            // Offloads in flight: poll their slots rather than sleep.
            for _ in 0..256 {
                core::hint::spin_loop();
            }
            continue;
        }
        timer::rearm(cpu);
        crate::arch::idle_halt();
    }
}

/// Kernel entry from user mode (syscall or interrupt): this CPU no longer
/// runs user code until `leave_kernel`. The user time since then is
/// charged, and CPU-time timers that ran out fire.
pub fn enter_kernel() {
    cores::set_in_user(this_cpu(), false);
    // The thread's own counters have one writer (the core it runs on):
    // plain loads and stores, which cost far less than atomic
    // read-modify-writes under TCG; the process's totals are shared.
    let armed = switch::with_current(|t| {
        let now = rdtsc();
        let since = t.user_since.load(Ordering::Relaxed);
        t.user_since.store(0, Ordering::Relaxed);
        if since != 0 && now > since {
            let d = now - since;
            let mine = t.user_cycles.load(Ordering::Relaxed);
            t.user_cycles.store(mine + d, Ordering::Relaxed);
            t.account.user.fetch_add(d, Ordering::Relaxed);
        }
        charge_run(t, now);
        t.account.armed()
    });
    if armed == Some(true) {
        if let Some(t) = switch::current() {
            timer::cpu_timers_due(&t);
        }
    }
}

/// About to return to user mode: re-arm the timer for this core's situation.
pub fn leave_kernel() {
    let cpu = this_cpu();
    let mut rearm = CPUS[cpu].timer_dirty.swap(false, Ordering::AcqRel);
    rearm |= switch::with_current(|t| {
        let now = rdtsc();
        charge_run(t, now);
        t.user_since.store(now, Ordering::Relaxed);
        timer::cpu_timer_limit(cpu, t, now)
    })
    .unwrap_or(false);
    if rearm {
        timer::rearm(cpu);
    }
    cores::set_in_user(cpu, true);
}

/// Charge `t` (and its process) the CPU time since it last was, at `now`.
fn charge_run(t: &Task, now: u64) {
    let since = t.run_since.load(Ordering::Relaxed);
    t.run_since.store(now, Ordering::Relaxed);
    if since != 0 && now > since {
        let d = now - since;
        let mine = t.run_cycles.load(Ordering::Relaxed);
        t.run_cycles.store(mine + d, Ordering::Relaxed);
        t.account.run.fetch_add(d, Ordering::Relaxed);
    }
}

/// CPU time of `t` (TSC cycles): (user, all), including the stint in
/// progress when `t` is the current task.
pub fn thread_cycles(t: &Task) -> (u64, u64) {
    let mut user = t.user_cycles.load(Ordering::Acquire);
    let mut run = t.run_cycles.load(Ordering::Acquire);
    if switch::current().is_some_and(|c| core::ptr::eq(&*c, t)) {
        let now = rdtsc();
        let since = t.run_since.load(Ordering::Acquire);
        if since != 0 {
            run += now.saturating_sub(since);
        }
        let us = t.user_since.load(Ordering::Acquire);
        if us != 0 {
            user += now.saturating_sub(us);
        }
    }
    (user, run)
}
