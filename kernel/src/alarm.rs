//! Firing alarms: each process's ITIMER_REAL (`process::Entry::alarm`) is
//! checked by the scheduler's timer path on core 0, which calls `fire_due`;
//! SIGALRM goes to the process that owns the alarm, whichever core its
//! threads run on and whether or not they are blocked.

/// Fire the alarms due at TSC `now` (registered as `sched::Hooks::fire_alarms`).
pub fn fire_due(now: u64) {
    for (pid, e) in crate::process::entries() {
        if e.alarm.fire_if_due(now) {
            crate::signal::post_to(pid, linux_abi::signal::SIGALRM, crate::signal::SI_KERNEL, 0);
        }
    }
}
