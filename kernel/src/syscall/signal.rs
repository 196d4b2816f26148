//! Signal bookkeeping: dispositions, mask, alternate stack, and signals a
//! process sends itself (their default action). Handler delivery is a later
//! issue; a signal whose handler is installed is logged and treated by its
//! default action.

use crate::process::{self, SigAction};
use crate::uaccess;
use linux_abi::signal::SIGPIPE;
use linux_abi::{Errno, SysResult};

const SIGKILL: u64 = 9;
const SIGSTOP: u64 = 19;

pub fn rt_sigaction(sig: u64, act: u64, oact: u64, size: u64) -> SysResult {
    if size != 8 || sig == 0 || sig > 64 {
        return Err(Errno::EINVAL);
    }
    if act != 0 && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    process::with(|p| {
        let old = p.sigactions[sig as usize];
        let new = if act != 0 {
            let mut b = [0u8; 32];
            uaccess::copy_from_user(&p.aspace, act, &mut b)?;
            let w = |i: usize| {
                u64::from_le_bytes([
                    b[i],
                    b[i + 1],
                    b[i + 2],
                    b[i + 3],
                    b[i + 4],
                    b[i + 5],
                    b[i + 6],
                    b[i + 7],
                ])
            };
            Some(SigAction {
                handler: w(0),
                flags: w(8),
                restorer: w(16),
                mask: w(24),
            })
        } else {
            None
        };
        if oact != 0 {
            let mut b = [0u8; 32];
            for (i, v) in [old.handler, old.flags, old.restorer, old.mask]
                .into_iter()
                .enumerate()
            {
                b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            uaccess::copy_to_user(&p.aspace, oact, &b)?;
        }
        if let Some(n) = new {
            p.sigactions[sig as usize] = n;
        }
        Ok(0)
    })
}

pub fn rt_sigprocmask(how: u64, set: u64, oset: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if set != 0 {
        Some(process::with(|p| uaccess::read_u64(&p.aspace, set))?)
    } else {
        None
    };
    if new.is_some() && how > 2 {
        return Err(Errno::EINVAL);
    }
    let old = crate::signal::sigprocmask(how, new)?;
    if oset != 0 {
        process::with(|p| uaccess::write_u64(&p.aspace, oset, old))?;
    }
    Ok(0)
}

pub fn rt_sigpending(set: u64, size: u64) -> SysResult {
    if size > 8 {
        return Err(Errno::EINVAL);
    }
    let pending = crate::signal::pending();
    process::with(|p| uaccess::write_u64(&p.aspace, set, pending))?;
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

pub fn rt_sigsuspend(mask: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let m = process::with(|p| uaccess::read_u64(&p.aspace, mask))?;
    let me = crate::sched::current().ok_or(Errno::EINVAL)?;
    let old = crate::signal::sigprocmask(2, Some(m))?;
    // The handler's frame records the mask from before the suspend.
    me.restore_mask
        .store(old, core::sync::atomic::Ordering::Release);
    wait_for_signal()
}

pub fn rt_sigtimedwait(set: u64, info: u64, timeout: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let want = process::with(|p| uaccess::read_u64(&p.aspace, set))?;
    let deadline = if timeout != 0 {
        let (s, ns) = process::with(|p| uaccess::read_pair(&p.aspace, timeout))?;
        if (s as i64) < 0 || ns >= 1_000_000_000 {
            return Err(Errno::EINVAL);
        }
        Some(crate::time::deadline_after_ns(
            s.saturating_mul(1_000_000_000).saturating_add(ns),
        ))
    } else {
        None
    };
    loop {
        if let Some(sig) = crate::signal::take_from(want) {
            if info != 0 {
                let mut si = [0u8; 128];
                si[..4].copy_from_slice(&(sig as i32).to_le_bytes());
                process::with(|p| uaccess::copy_to_user(&p.aspace, info, &si))?;
            }
            return Ok(u64::from(sig));
        }
        match deadline {
            Some(d) => {
                if crate::sched::sleep_until(d, None) == crate::sched::Wakeup::Deadline {
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

pub fn sigaltstack(ss: u64, old: u64) -> SysResult {
    process::with(|p| {
        let prev = p.altstack;
        if ss != 0 {
            let mut b = [0u8; 24];
            uaccess::copy_from_user(&p.aspace, ss, &mut b)?;
            let sp = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
            let flags = u64::from(u32::from_le_bytes(
                b[8..12].try_into().map_err(|_| Errno::EFAULT)?,
            ));
            let size = u64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EFAULT)?);
            if flags & !(2 | (1 << 31)) != 0 {
                return Err(Errno::EINVAL);
            }
            if flags & 2 == 0 && size < 2048 {
                return Err(Errno::ENOMEM);
            }
            p.altstack = (sp, flags, size);
        }
        if old != 0 {
            let mut b = [0u8; 24];
            b[0..8].copy_from_slice(&prev.0.to_le_bytes());
            b[8..12].copy_from_slice(&(prev.1 as u32).to_le_bytes());
            b[16..24].copy_from_slice(&prev.2.to_le_bytes());
            uaccess::copy_to_user(&p.aspace, old, &b)?;
        }
        Ok(0)
    })
}

pub fn kill(pid: u64, sig: u64) -> SysResult {
    let me = process::with(|p| p.pid);
    let pid32 = pid as i32;
    if pid32 == 0 || pid32 == -1 || pid32 == me as i32 || pid32 == -(me as i32) {
        if sig > 64 {
            return Err(Errno::EINVAL);
        }
        if sig != 0 {
            crate::signal::post_process(sig as u32, crate::signal::SI_USER, u64::from(me));
        }
        return Ok(0);
    }
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    // Another LWK process: posted here, so that stop signals stop it (Linux
    // would stop only its proxy) and nothing waits for the proxies. SIGCONT
    // goes through Linux: it continues the target's proxy, which passes it
    // on; SIGKILL goes both ways, so the proxy dies even while stopped.
    if pid32 > 0 && sig != 0 && sig != 18 && process::entry(pid32 as u32).is_some() {
        crate::signal::post_to(
            pid32 as u32,
            sig as u32,
            crate::signal::SI_USER,
            u64::from(me),
        );
        if sig != 9 {
            return Ok(0);
        }
    }
    // Another Linux process (or a process group): the proxy sends it.
    Ok(super::offload(
        u64::from(linux_abi::syscalls_gen::SYS_KILL),
        [pid, sig, 0, 0, 0, 0],
    ))
}

pub fn tgkill(tgid: u64, tid: u64, sig: u64) -> SysResult {
    let me = u64::from(process::with(|p| p.pid));
    if tgid != 0 && tgid != me {
        return Err(Errno::ESRCH);
    }
    let tid = u32::try_from(tid).map_err(|_| Errno::ESRCH)?;
    crate::signal::send_to_thread(tid, sig, crate::signal::SI_TKILL)
}

const MSG_NOSIGNAL: u64 = 0x4000;

/// Linux raises SIGPIPE when a write hits a pipe without readers.
pub fn after_offload(nr: u64, args: [u64; 6], ret: u64) {
    use linux_abi::syscalls_gen::*;
    if ret as i64 != Errno::EPIPE.as_ret() {
        return;
    }
    let Ok(n) = u32::try_from(nr) else { return };
    let raises = match n {
        SYS_WRITE | SYS_WRITEV | SYS_PWRITE64 | SYS_PWRITEV | SYS_PWRITEV2 | SYS_SENDFILE
        | SYS_SPLICE | SYS_TEE | SYS_VMSPLICE => true,
        SYS_SENDTO => args[3] & MSG_NOSIGNAL == 0,
        SYS_SENDMSG => args[2] & MSG_NOSIGNAL == 0,
        _ => false,
    };
    if !raises {
        return;
    }
    if let Some(me) = crate::sched::current() {
        let pid = process::with(|p| p.pid);
        crate::signal::post_thread(&me, SIGPIPE, crate::signal::SI_USER, u64::from(pid));
    }
}
