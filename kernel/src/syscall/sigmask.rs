//! rt_sigprocmask, rt_sigpending, rt_sigsuspend, rt_sigtimedwait, pause:
//! a thread's signal mask, and waiting for signals.

use crate::uaccess::UserPtr;
use core::sync::atomic::Ordering;
use linux_abi::signal::{SIGKILL, SIGSTOP, SIG_SETMASK};
use linux_abi::uapi::{siginfo, sigset_t, timespec};
use linux_abi::{Errno, SysResult};

/// rt_* calls pass the size of their sigset_t, which must be the kernel's.
fn check_size(size: usize) -> Result<(), Errno> {
    if size == size_of::<sigset_t>() {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

pub fn rt_sigprocmask(
    how: i32,
    set: UserPtr<sigset_t>,
    oset: UserPtr<sigset_t>,
    size: usize,
) -> SysResult {
    check_size(size)?;
    let new = set.non_null().map(UserPtr::read).transpose()?;
    let old = crate::signal::sigprocmask(how, new)?;
    if let Some(o) = oset.non_null() {
        o.write(&old)?;
    }
    Ok(0)
}

pub fn rt_sigpending(set: UserPtr<sigset_t>, size: usize) -> SysResult {
    if size > size_of::<sigset_t>() {
        return Err(Errno::EINVAL);
    }
    set.write(&crate::signal::pending())?;
    Ok(0)
}

/// Block until a signal can be delivered; always ends with EINTR.
fn wait_for_signal() -> SysResult {
    while !crate::signal::interrupted() {
        crate::sched::block();
    }
    Err(Errno::EINTR)
}

pub fn pause() -> SysResult {
    wait_for_signal()
}

pub fn rt_sigsuspend(mask: UserPtr<sigset_t>, size: usize) -> SysResult {
    check_size(size)?;
    let m = mask.read()?;
    let me = crate::sched::current().ok_or(Errno::EINVAL)?;
    let old = crate::signal::sigprocmask(SIG_SETMASK as i32, Some(m))?;
    // The handler's frame records the mask from before the suspend.
    me.restore_mask.store(old, Ordering::Release);
    wait_for_signal()
}

pub fn rt_sigtimedwait(
    set: UserPtr<sigset_t>,
    info: UserPtr<siginfo>,
    timeout: UserPtr<timespec>,
    size: usize,
) -> SysResult {
    check_size(size)?;
    // SIGKILL and SIGSTOP are never waited for.
    let want = set.read()? & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
    let deadline = match timeout.non_null() {
        Some(t) => Some(crate::time::deadline_after_ns(super::clock::timespec_ns(
            &t.read()?,
        )?)),
        None => None,
    };
    let me = crate::sched::current().ok_or(Errno::EINVAL)?;
    // While waiting, a signal of `want` posted to the process wakes this
    // thread even though it blocks it (Linux unblocks them for the wait).
    me.sigwait.store(want, Ordering::Release);
    let r = wait_info(want, deadline);
    me.sigwait.store(0, Ordering::Release);
    let i = r?;
    if let Some(p) = info.non_null() {
        p.write(&i)?;
    }
    Ok(i.si_signo as u64)
}

fn wait_info(want: u64, deadline: Option<u64>) -> Result<siginfo, Errno> {
    loop {
        if let Some(i) = crate::signal::take_from(want) {
            return Ok(i);
        }
        match deadline {
            Some(d) => {
                if crate::sched::sleep_until(d, None) == crate::sched::Wakeup::Deadline
                    && crate::signal::take_peek(want).is_none()
                {
                    return Err(Errno::EAGAIN);
                }
                if crate::signal::take_peek(want).is_none() && crate::signal::interrupted() {
                    return Err(Errno::EINTR);
                }
            }
            None => {
                if crate::signal::take_peek(want).is_none() {
                    if crate::signal::interrupted() {
                        return Err(Errno::EINTR);
                    }
                    crate::sched::block();
                }
            }
        }
    }
}
