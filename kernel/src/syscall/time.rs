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

pub fn nanosleep(req: u64, _rem: u64) -> SysResult {
    let d = read_timespec(req)?;
    sleep_until_monotonic(monotonic_ns().saturating_add(d));
    Ok(0)
}

pub fn clock_nanosleep(clock: u64, flags: u64, req: u64, _rem: u64) -> SysResult {
    let d = read_timespec(req)?;
    let start = now(clock)?;
    let wait = if flags & TIMER_ABSTIME != 0 {
        d.saturating_sub(start)
    } else {
        d
    };
    sleep_until_monotonic(monotonic_ns().saturating_add(wait));
    Ok(0)
}
