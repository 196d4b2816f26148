//! alarm, getitimer, setitimer: the process's one real-time interval timer
//! (ITIMER_REAL), which raises SIGALRM.

use crate::uaccess::UserPtr;
use linux_abi::clock::ITIMER_REAL;
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

fn cycles_to_timeval(c: u64) -> timeval {
    let ns = ((u128::from(c) * 1_000_000_000) / u128::from(crate::time::tsc_hz().max(1))) as u64;
    timeval {
        tv_sec: (ns / NS) as i64,
        tv_usec: ((ns % NS) / 1000) as i64,
    }
}

fn timeval_to_cycles(tv: &timeval) -> Result<u64, Errno> {
    let sec = u64::try_from(tv.tv_sec).map_err(|_| Errno::EINVAL)?;
    let usec = u64::try_from(tv.tv_usec).map_err(|_| Errno::EINVAL)?;
    if usec >= 1_000_000 {
        return Err(Errno::EINVAL);
    }
    let ns = sec.saturating_mul(NS).saturating_add(usec * 1000);
    Ok(((u128::from(ns) * u128::from(crate::time::tsc_hz())) / 1_000_000_000) as u64)
}

fn write_itimerval(ptr: UserPtr<itimerval>, (value, interval): (u64, u64)) -> Result<(), Errno> {
    ptr.write(&itimerval {
        it_interval: cycles_to_timeval(interval),
        it_value: cycles_to_timeval(value),
    })
}

pub fn getitimer(which: i32, cur: UserPtr<itimerval>) -> SysResult {
    if which != ITIMER_REAL as i32 {
        crate::kprintln!("getitimer: only ITIMER_REAL is supported on the LWK");
        return Err(Errno::EINVAL);
    }
    write_itimerval(cur, crate::process::alarm_remaining())?;
    Ok(0)
}

pub fn setitimer(which: i32, new: UserPtr<itimerval>, old: UserPtr<itimerval>) -> SysResult {
    if which != ITIMER_REAL as i32 {
        crate::kprintln!("setitimer: only ITIMER_REAL is supported on the LWK");
        return Err(Errno::EINVAL);
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
    let prev = crate::process::set_alarm(value, if value == 0 { 0 } else { interval });
    if let Some(old) = old.non_null() {
        write_itimerval(old, prev)?;
    }
    Ok(0)
}
