//! clock_gettime, clock_getres, gettimeofday, time, nanosleep,
//! clock_nanosleep from the calibrated TSC.

use crate::time::{monotonic_ns, realtime_ns, sleep_until_monotonic};
use crate::uaccess::UserPtr;
use linux_abi::clock::*;
use linux_abi::uapi::{timespec, timeval, timezone};
use linux_abi::{Errno, SysResult};

const NS: u64 = 1_000_000_000;
/// The alarm clocks (linux/time.h): the real-time and boot-time clocks.
const CLOCK_REALTIME_ALARM: u32 = 8;
const CLOCK_BOOTTIME_ALARM: u32 = 9;

fn now(clock: i32) -> Result<u64, Errno> {
    match crate::alarm::clock_id(clock)? {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_TAI | CLOCK_REALTIME_ALARM => {
            Ok(realtime_ns())
        }
        CLOCK_MONOTONIC
        | CLOCK_MONOTONIC_RAW
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME
        | CLOCK_BOOTTIME_ALARM => Ok(monotonic_ns()),
        // CPU time as the scheduler charges it (user and kernel).
        c @ (CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID) => {
            let t = crate::sched::current().ok_or(Errno::EINVAL)?;
            let cycles = crate::alarm::cpu_clock_cycles(c, &t);
            Ok(
                ((u128::from(cycles) * u128::from(NS)) / u128::from(crate::time::tsc_hz().max(1)))
                    as u64,
            )
        }
        _ => Err(Errno::EINVAL),
    }
}

/// A timespec of `ns` nanoseconds.
pub(super) fn timespec_of(ns: u64) -> timespec {
    timespec {
        tv_sec: (ns / NS) as i64,
        tv_nsec: (ns % NS) as i64,
    }
}

/// The nanoseconds a user's timespec stands for (EINVAL when malformed).
pub(super) fn timespec_ns(ts: &timespec) -> Result<u64, Errno> {
    let s = u64::try_from(ts.tv_sec).map_err(|_| Errno::EINVAL)?;
    let ns = u64::try_from(ts.tv_nsec).map_err(|_| Errno::EINVAL)?;
    if ns >= NS {
        return Err(Errno::EINVAL);
    }
    Ok(s.saturating_mul(NS).saturating_add(ns))
}

pub fn clock_gettime(clock: i32, ts: UserPtr<timespec>) -> SysResult {
    let t = now(clock)?;
    ts.write(&timespec_of(t))?;
    Ok(0)
}

pub fn clock_getres(clock: i32, res: UserPtr<timespec>) -> SysResult {
    now(clock)?;
    if let Some(r) = res.non_null() {
        r.write(&timespec_of(1))?;
    }
    Ok(0)
}

pub fn gettimeofday(tv: UserPtr<timeval>, tz: UserPtr<timezone>) -> SysResult {
    let t = realtime_ns();
    if let Some(tv) = tv.non_null() {
        tv.write(&timeval {
            tv_sec: (t / NS) as i64,
            tv_usec: ((t % NS) / 1000) as i64,
        })?;
    }
    if let Some(tz) = tz.non_null() {
        tz.write(&timezone {
            tz_minuteswest: 0,
            tz_dsttime: 0,
        })?;
    }
    Ok(0)
}

pub fn time(tloc: UserPtr<u64>) -> SysResult {
    let s = realtime_ns() / NS;
    if let Some(t) = tloc.non_null() {
        t.write(&s)?;
    }
    Ok(s)
}

/// Sleep until `end_ns` on CLOCK_MONOTONIC; on a signal, EINTR with the
/// remaining time written to `rem` (when given).
fn sleep_or_eintr(end_ns: u64, rem: Option<UserPtr<timespec>>) -> SysResult {
    if sleep_until_monotonic(end_ns) {
        return Ok(0);
    }
    if let Some(rem) = rem {
        rem.write(&timespec_of(end_ns.saturating_sub(monotonic_ns())))?;
    }
    Err(Errno::EINTR)
}

pub fn nanosleep(req: UserPtr<timespec>, rem: UserPtr<timespec>) -> SysResult {
    let d = timespec_ns(&req.read()?)?;
    sleep_or_eintr(monotonic_ns().saturating_add(d), rem.non_null())
}

pub fn clock_nanosleep(
    clock: i32,
    flags: u32,
    req: UserPtr<timespec>,
    rem: UserPtr<timespec>,
) -> SysResult {
    let d = timespec_ns(&req.read()?)?;
    let start = now(clock)?;
    let absolute = flags & TIMER_ABSTIME != 0;
    let wait = if absolute { d.saturating_sub(start) } else { d };
    // An absolute sleep leaves nothing to report.
    sleep_or_eintr(
        monotonic_ns().saturating_add(wait),
        rem.non_null().filter(|_| !absolute),
    )
}
