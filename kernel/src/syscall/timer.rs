//! timer_create, timer_settime, timer_gettime, timer_getoverrun,
//! timer_delete: POSIX per-process timers on CLOCK_REALTIME,
//! CLOCK_MONOTONIC, CLOCK_BOOTTIME (and their _ALARM and TAI variants) and
//! the CPU-time clocks of the process and of the creating thread,
//! notifying by a signal to the process (SIGEV_SIGNAL) or to one of its
//! threads (SIGEV_THREAD_ID), or not at all (SIGEV_NONE). The timers live
//! in the process (`alarm::ProcTimers`) and fire from core 0 (`alarm.rs`).

use crate::alarm::{PosixTimer, TIMERS_MAX};
use crate::process;
use crate::time::{monotonic_ns, realtime_ns, tsc_hz};
use crate::uaccess::UserPtr;
use alloc::sync::Arc;
use linux_abi::clock::*;
use linux_abi::signal::{NSIG, SIGALRM, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_THREAD_ID};
use linux_abi::uapi::{itimerspec, sigevent, timespec};
use linux_abi::{Errno, SysResult};

const NS: u64 = 1_000_000_000;
const CLOCK_REALTIME_ALARM: u32 = 8;
const CLOCK_BOOTTIME_ALARM: u32 = 9;

/// The clock's time now (ns), for the clocks a timer can run on.
fn clock_now(clock: u32) -> Result<u64, Errno> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM | CLOCK_TAI => Ok(realtime_ns()),
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => Ok(monotonic_ns()),
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            let t = crate::sched::current().ok_or(Errno::EINVAL)?;
            Ok(cycles_to_ns(crate::alarm::cpu_clock_cycles(clock, &t)))
        }
        // Clocks Linux reads but cannot arm timers on.
        CLOCK_MONOTONIC_RAW | CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE => {
            Err(Errno::EOPNOTSUPP)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn ns_to_cycles(ns: u64) -> u64 {
    ((u128::from(ns) * u128::from(tsc_hz())) / u128::from(NS)).min(u128::from(u64::MAX / 4)) as u64
}

/// Cycles in ns, to the nearest (so that an interval reads back as set).
fn cycles_to_ns(c: u64) -> u64 {
    let hz = u128::from(tsc_hz().max(1));
    ((u128::from(c) * u128::from(NS) + hz / 2) / hz).min(u128::from(u64::MAX)) as u64
}

fn timespec_of(ns: u64) -> timespec {
    timespec {
        tv_sec: (ns / NS) as i64,
        tv_nsec: (ns % NS) as i64,
    }
}

fn itimerspec_of((value, interval): (u64, u64)) -> itimerspec {
    itimerspec {
        it_interval: timespec_of(cycles_to_ns(interval)),
        it_value: timespec_of(cycles_to_ns(value)),
    }
}

fn timer(id: i32) -> Result<Arc<PosixTimer>, Errno> {
    process::current_entry()
        .timers
        .find(id)
        .ok_or(Errno::EINVAL)
}

pub fn timer_create(clock: i32, sevp: UserPtr<sigevent>, timerid: UserPtr<i32>) -> SysResult {
    let clock = crate::alarm::clock_id(clock)?;
    clock_now(clock)?;
    let e = process::current_entry();
    let pid = process::with(|p| p.pid);
    // A thread CPU-time clock is the creating thread's.
    let owner = crate::sched::current_tid();
    let ev = match sevp.non_null() {
        Some(p) => Some(p.read()?),
        None => None,
    };
    let (notify, signo, value, tid) = match ev {
        None => (SIGEV_SIGNAL, SIGALRM, None, 0),
        Some(ev) => {
            let tid = match ev.sigev_notify {
                // SIGEV_THREAD is the C library's business (glibc asks for
                // SIGEV_THREAD_ID); given to the kernel, it signals the
                // process like SIGEV_SIGNAL, as on Linux.
                SIGEV_NONE | SIGEV_SIGNAL | SIGEV_THREAD => 0,
                SIGEV_THREAD_ID => {
                    let tid = u32::try_from(ev.sigev_tid).map_err(|_| Errno::EINVAL)?;
                    match crate::sched::find(tid) {
                        Some(t) if t.pid == pid => tid,
                        _ => return Err(Errno::EINVAL),
                    }
                }
                _ => return Err(Errno::EINVAL),
            };
            let signo = u32::try_from(ev.sigev_signo).unwrap_or(0);
            if ev.sigev_notify != SIGEV_NONE && !(1..=NSIG).contains(&signo) {
                return Err(Errno::EINVAL);
            }
            let notify = if ev.sigev_notify == SIGEV_THREAD {
                SIGEV_SIGNAL
            } else {
                ev.sigev_notify
            };
            (notify, signo, Some(ev.sigev_value), tid)
        }
    };
    let mut list = e.timers.posix.lock();
    if list.len() >= TIMERS_MAX || list.try_reserve(1).is_err() {
        return Err(Errno::EAGAIN);
    }
    // The lowest free id (Linux numbers a process's timers from 0).
    let mut id = 0;
    while list.iter().any(|t| t.id == id) {
        id += 1;
    }
    // Without a sigevent, si_value is the timer's id.
    let value = value.unwrap_or(id as u64);
    timerid.write(&id)?;
    list.push(Arc::new(PosixTimer::new(
        id, clock, notify, signo, value, tid, owner,
    )));
    Ok(0)
}

/// The nanoseconds a timespec of timer_settime stands for.
fn ts_ns(ts: &timespec) -> Result<u64, Errno> {
    super::clock::timespec_ns(ts)
}

pub fn timer_settime(
    id: i32,
    flags: i32,
    new: UserPtr<itimerspec>,
    old: UserPtr<itimerspec>,
) -> SysResult {
    let t = timer(id)?;
    let v = new.non_null().ok_or(Errno::EINVAL)?.read()?;
    let value = ts_ns(&v.it_value)?;
    let interval = if value == 0 {
        0
    } else {
        ns_to_cycles(ts_ns(&v.it_interval)?)
    };
    // Disarmed first: a signal of the old setting still pending goes (as
    // in Linux 6.13 and later), as do its overruns; then the new setting.
    let prev = t.disarm();
    let e = process::current_entry();
    e.sigq.remove_timer(&e, &t);
    t.reset_overrun();
    if value != 0 {
        let now = clock_now(t.clock)?;
        // How far the expiry lies ahead (negative: an absolute time
        // already past, whose missed periods count as overruns).
        let ahead = if flags as u32 & TIMER_ABSTIME != 0 {
            i128::from(value) - i128::from(now)
        } else {
            i128::from(value)
        };
        let cycles = ns_to_cycles(ahead.unsigned_abs().min(u128::from(u64::MAX)) as u64);
        let base = if t.is_cpu() {
            let me = crate::sched::current().ok_or(Errno::EINVAL)?;
            crate::alarm::cpu_clock_cycles(t.clock, &me)
        } else {
            crate::arch::cpu::rdtsc()
        };
        // An expiry already past fires at once, the whole periods since
        // counting as overruns (kept in phase).
        let at = if ahead > 0 {
            base.saturating_add(cycles.max(1))
        } else {
            match cycles.checked_div(interval) {
                Some(k) => {
                    t.add_overrun(k);
                    base.saturating_sub(cycles % interval)
                }
                None => base,
            }
        };
        if t.is_cpu() {
            t.arm_cpu(at, interval);
        } else {
            t.alarm.set_deadline(at, interval);
        }
    }
    if let Some(o) = old.non_null() {
        o.write(&itimerspec_of(prev))?;
    }
    Ok(0)
}

pub fn timer_gettime(id: i32, cur: UserPtr<itimerspec>) -> SysResult {
    let t = timer(id)?;
    cur.write(&itimerspec_of(t.remaining()))?;
    Ok(0)
}

pub fn timer_getoverrun(id: i32) -> SysResult {
    let t = timer(id)?;
    Ok(t.last_overrun.load(core::sync::atomic::Ordering::Acquire) as u64)
}

pub fn timer_delete(id: i32) -> SysResult {
    if crate::alarm::delete(&process::current_entry(), id) {
        Ok(0)
    } else {
        Err(Errno::EINVAL)
    }
}
