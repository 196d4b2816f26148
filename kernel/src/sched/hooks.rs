//! Upcalls into the layers above the scheduler, registered once at boot by
//! `main`: the scheduler needs to know whether a signal should cut a sleep
//! short, to poll the signals Linux sent, and to fire alarms, but signals and
//! processes are built on top of it, so it does not import them.

use crate::arch::mem::SpinLock;

/// What the layers above provide.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Whether the current task's blocking call must end (a signal to take,
    /// or its process is ending).
    pub interrupted: fn() -> bool,
    /// Take the signals Linux sent to the application.
    pub take_host_signals: fn(),
    /// Fire every process's alarm that is due at TSC `now` (each re-arms
    /// itself with `alarm_armed`).
    pub fire_alarms: fn(u64),
    /// A CPU-time interval timer of process `pid` ran out: post `sig`.
    pub cpu_timer_fired: fn(u32, u32),
    /// Fire the CPU-time POSIX timers of the task's process that ran out;
    /// the CPU time (cycles) until the next may.
    pub cpu_posix_timers: fn(&super::Task) -> u64,
}

static HOOKS: SpinLock<Hooks> = SpinLock::new(Hooks {
    interrupted: || false,
    take_host_signals: || {},
    fire_alarms: |_| {},
    cpu_timer_fired: |_, _| {},
    cpu_posix_timers: |_| u64::MAX,
});

/// Register the upcalls (once, at boot, before any task runs).
pub fn set_hooks(h: Hooks) {
    *HOOKS.lock() = h;
}

pub(super) fn get() -> Hooks {
    *HOOKS.lock()
}

/// Whether the current task's blocking call must end now (see `Hooks`).
pub fn interrupted() -> bool {
    (get().interrupted)()
}
