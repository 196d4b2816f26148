//! clock_gettime, gettimeofday, time, nanosleep, clock_nanosleep from the
//! calibrated TSC.

use crate::process;
use crate::time::{monotonic_ns, realtime_ns, sleep_until_monotonic};
use crate::uaccess;
use linux_abi::clock::*;
use linux_abi::{Errno, SysResult};

const NS: u64 = 1_000_000_000;

fn now(clock: u64) -> Result<u64, Errno> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | 11 /* TAI */ => Ok(realtime_ns()),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => Ok(monotonic_ns()),
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            let start = process::with(|p| p.start_ns);
            Ok(monotonic_ns().saturating_sub(start))
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn clock_gettime(clock: u64, ts: u64) -> SysResult {
    let t = now(clock)?;
    process::with(|p| uaccess::write_pair(&p.aspace, ts, t / NS, t % NS))?;
    Ok(0)
}

pub fn clock_getres(clock: u64, res: u64) -> SysResult {
    now(clock)?;
    if res != 0 {
        process::with(|p| uaccess::write_pair(&p.aspace, res, 0, 1))?;
    }
    Ok(0)
}

pub fn gettimeofday(tv: u64, tz: u64) -> SysResult {
    let t = realtime_ns();
    process::with(|p| {
        if tv != 0 {
            uaccess::write_pair(&p.aspace, tv, t / NS, (t % NS) / 1000)?;
        }
        if tz != 0 {
            uaccess::write_u64(&p.aspace, tz, 0)?;
        }
        Ok(0)
    })
}

pub fn time(tloc: u64) -> SysResult {
    let s = realtime_ns() / NS;
    if tloc != 0 {
        process::with(|p| uaccess::write_u64(&p.aspace, tloc, s))?;
    }
    Ok(s)
}

fn read_timespec(ptr: u64) -> Result<u64, Errno> {
    let (s, ns) = process::with(|p| uaccess::read_pair(&p.aspace, ptr))?;
    if (s as i64) < 0 || ns >= NS {
        return Err(Errno::EINVAL);
    }
    Ok(s.saturating_mul(NS).saturating_add(ns))
}

/// Sleep until `end_ns` on CLOCK_MONOTONIC; on a signal, EINTR with the
/// remaining time written to `rem` (when given and the sleep was relative).
fn sleep_or_eintr(end_ns: u64, rem: u64) -> SysResult {
    if sleep_until_monotonic(end_ns) {
        return Ok(0);
    }
    if rem != 0 {
        let left = end_ns.saturating_sub(monotonic_ns());
        process::with(|p| uaccess::write_pair(&p.aspace, rem, left / NS, left % NS))?;
    }
    Err(Errno::EINTR)
}

pub fn nanosleep(req: u64, rem: u64) -> SysResult {
    let d = read_timespec(req)?;
    sleep_or_eintr(monotonic_ns().saturating_add(d), rem)
}

pub fn clock_nanosleep(clock: u64, flags: u64, req: u64, rem: u64) -> SysResult {
    let d = read_timespec(req)?;
    let start = now(clock)?;
    let absolute = flags & TIMER_ABSTIME != 0;
    let wait = if absolute { d.saturating_sub(start) } else { d };
    sleep_or_eintr(
        monotonic_ns().saturating_add(wait),
        if absolute { 0 } else { rem },
    )
}

/// alarm(seconds): SIGALRM after that long; returns the seconds left on the old one.
pub fn alarm(secs: u64) -> SysResult {
    let hz = crate::time::tsc_hz();
    let after = secs.min(u64::MAX / hz.max(1)).saturating_mul(hz);
    let (old, _) = crate::process::set_alarm(after, 0);
    Ok(old.div_ceil(hz.max(1)))
}

fn cycles_to_timeval(c: u64) -> (u64, u64) {
    let ns = ((u128::from(c) * 1_000_000_000) / u128::from(crate::time::tsc_hz().max(1))) as u64;
    (ns / NS, (ns % NS) / 1000)
}

fn timeval_to_cycles(sec: u64, usec: u64) -> Result<u64, Errno> {
    if (sec as i64) < 0 || usec >= 1_000_000 {
        return Err(Errno::EINVAL);
    }
    let ns = sec.saturating_mul(NS).saturating_add(usec * 1000);
    Ok(((u128::from(ns) * u128::from(crate::time::tsc_hz())) / 1_000_000_000) as u64)
}

fn write_itimerval(ptr: u64, (value, interval): (u64, u64)) -> Result<(), Errno> {
    let (is, iu) = cycles_to_timeval(interval);
    let (vs, vu) = cycles_to_timeval(value);
    process::with(|p| {
        uaccess::write_pair(&p.aspace, ptr, is, iu)?;
        uaccess::write_pair(&p.aspace, ptr + 16, vs, vu)
    })
}

const ITIMER_REAL: u64 = 0;

pub fn getitimer(which: u64, cur: u64) -> SysResult {
    if which != ITIMER_REAL {
        crate::kprintln!("getitimer: only ITIMER_REAL is supported on the LWK");
        return Err(Errno::EINVAL);
    }
    write_itimerval(cur, crate::process::alarm_remaining())?;
    Ok(0)
}

pub fn setitimer(which: u64, new: u64, old: u64) -> SysResult {
    if which != ITIMER_REAL {
        crate::kprintln!("setitimer: only ITIMER_REAL is supported on the LWK");
        return Err(Errno::EINVAL);
    }
    let (interval, value) = if new == 0 {
        (0, 0)
    } else {
        let ((is, iu), (vs, vu)) = process::with(|p| {
            Ok::<_, Errno>((
                uaccess::read_pair(&p.aspace, new)?,
                uaccess::read_pair(&p.aspace, new + 16)?,
            ))
        })?;
        (timeval_to_cycles(is, iu)?, timeval_to_cycles(vs, vu)?)
    };
    let prev = crate::process::set_alarm(value, if value == 0 { 0 } else { interval });
    if old != 0 {
        write_itimerval(old, prev)?;
    }
    Ok(0)
}
