//! alarm, getitimer, setitimer: the process's three interval timers.
//! ITIMER_REAL (and alarm) counts real time and raises SIGALRM
//! (`process::Entry::alarm`, fired from core 0); ITIMER_VIRTUAL counts the
//! process's user time and raises SIGVTALRM, ITIMER_PROF its user and
//! kernel time and raises SIGPROF (`sched::CpuAccount`, fired at the kernel
//! entry of a thread of the process).

use crate::uaccess::UserPtr;
use core::sync::atomic::{AtomicU64, Ordering};
use linux_abi::clock::{ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL};
use linux_abi::uapi::{itimerval, timeval};
use linux_abi::{Errno, SysResult};

const NS: u64 = 1_000_000_000;

/// alarm(seconds): SIGALRM after that long; returns the seconds left on the old one.
pub fn alarm(secs: u32) -> SysResult {
    let hz = crate::time::tsc_hz();
    let after = u64::from(secs).min(u64::MAX / hz.max(1)).saturating_mul(hz);
    let (old, _) = crate::process::set_alarm(after, 0);
    Ok(old.div_ceil(hz.max(1)))
}

/// Cycles as a timeval, to the nearest microsecond (so that an interval
/// reads back as it was set).
fn cycles_to_timeval(c: u64) -> timeval {
    let hz = u128::from(crate::time::tsc_hz().max(1));
    let us = ((u128::from(c) * 1_000_000 + hz / 2) / hz) as u64;
    timeval {
        tv_sec: (us / 1_000_000) as i64,
        tv_usec: (us % 1_000_000) as i64,
    }
}

/// A timeval's cycles; a non-zero time shorter than a microsecond's worth
/// of cycles still counts (rounded up, as Linux rounds to its resolution).
fn timeval_to_cycles(tv: &timeval) -> Result<u64, Errno> {
    let sec = u64::try_from(tv.tv_sec).map_err(|_| Errno::EINVAL)?;
    let usec = u64::try_from(tv.tv_usec).map_err(|_| Errno::EINVAL)?;
    if usec >= 1_000_000 {
        return Err(Errno::EINVAL);
    }
    let ns = sec.saturating_mul(NS).saturating_add(usec * 1000);
    let c = ((u128::from(ns) * u128::from(crate::time::tsc_hz())) / 1_000_000_000)
        .min(u128::from(u64::MAX / 4)) as u64;
    Ok(if ns != 0 { c.max(1) } else { 0 })
}

fn write_itimerval(ptr: UserPtr<itimerval>, (value, interval): (u64, u64)) -> Result<(), Errno> {
    ptr.write(&itimerval {
        it_interval: cycles_to_timeval(interval),
        it_value: cycles_to_timeval(value),
    })
}

/// A CPU-time timer's fields in the process's account: fire-at, interval,
/// and the time it counts.
type CpuTimerFields = fn(&crate::sched::CpuAccount) -> [&AtomicU64; 3];

/// ITIMER_VIRTUAL or ITIMER_PROF (EINVAL for anything else).
fn cpu_timer(which: u32) -> Result<CpuTimerFields, Errno> {
    match which {
        ITIMER_VIRTUAL => Ok(|a| [&a.virt_at, &a.virt_interval, &a.user]),
        ITIMER_PROF => Ok(|a| [&a.prof_at, &a.prof_interval, &a.run]),
        _ => Err(Errno::EINVAL),
    }
}

/// (remaining, interval) of a CPU-time timer.
fn cpu_remaining(which: u32) -> Result<(u64, u64), Errno> {
    let t = crate::sched::current().ok_or(Errno::EINVAL)?;
    let [at, interval, used] = cpu_timer(which)?(&t.account);
    let at = at.load(Ordering::Acquire);
    let rem = if at == 0 {
        0
    } else {
        at.saturating_sub(used.load(Ordering::Acquire)).max(1)
    };
    Ok((rem, interval.load(Ordering::Acquire)))
}

pub fn getitimer(which: i32, cur: UserPtr<itimerval>) -> SysResult {
    let which = u32::try_from(which).map_err(|_| Errno::EINVAL)?;
    let v = if which == ITIMER_REAL {
        crate::process::alarm_remaining()
    } else {
        cpu_remaining(which)?
    };
    write_itimerval(cur, v)?;
    Ok(0)
}

pub fn setitimer(which: i32, new: UserPtr<itimerval>, old: UserPtr<itimerval>) -> SysResult {
    let which = u32::try_from(which).map_err(|_| Errno::EINVAL)?;
    if which != ITIMER_REAL {
        cpu_timer(which)?;
    }
    let (interval, value) = match new.non_null() {
        None => (0, 0),
        Some(new) => {
            let v = new.read()?;
            (
                timeval_to_cycles(&v.it_interval)?,
                timeval_to_cycles(&v.it_value)?,
            )
        }
    };
    let interval = if value == 0 { 0 } else { interval };
    let prev = if which == ITIMER_REAL {
        crate::process::set_alarm(value, interval)
    } else {
        let prev = cpu_remaining(which)?;
        let t = crate::sched::current().ok_or(Errno::EINVAL)?;
        // Charge the time so far first, so that the timer counts from now.
        crate::sched::enter_kernel();
        let [at, iv, used] = cpu_timer(which)?(&t.account);
        iv.store(interval, Ordering::Release);
        let fire_at = if value == 0 {
            0
        } else {
            used.load(Ordering::Acquire).saturating_add(value)
        };
        at.store(fire_at, Ordering::Release);
        prev
    };
    if let Some(old) = old.non_null() {
        write_itimerval(old, prev)?;
    }
    Ok(0)
}
