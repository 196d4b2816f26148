//! Signal bookkeeping: dispositions, mask, alternate stack, and signals a
//! process sends itself (their default action). Handler delivery is a later
//! issue; a signal whose handler is installed is logged and treated by its
//! default action.

use crate::process::{self, SigAction, SIG_IGN};
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
    process::with(|p| {
        let old = p.sigmask;
        if set != 0 {
            let s = uaccess::read_u64(&p.aspace, set)?;
            let unblockable = (1u64 << (SIGKILL - 1)) | (1u64 << (SIGSTOP - 1));
            p.sigmask = match how {
                0 => old | s,
                1 => old & !s,
                2 => s,
                _ => return Err(Errno::EINVAL),
            } & !unblockable;
        }
        if oset != 0 {
            uaccess::write_u64(&p.aspace, oset, old)?;
        }
        Ok(0)
    })
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

/// A signal the process sends itself: apply its default action now.
fn raise_self(sig: u64) -> SysResult {
    if sig == 0 {
        return Ok(0);
    }
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    let (terminates, handled) = process::with(|p| {
        let a = p.sigactions[sig as usize];
        (
            process::signal_terminates(p, sig as u32),
            a.handler > SIG_IGN,
        )
    });
    if handled {
        crate::kprintln!(
            "signal {sig}: handler delivery is not implemented yet; applying the default action"
        );
    }
    if terminates {
        process::kill(sig as u32, 0, None);
    }
    Ok(0)
}

pub fn kill(pid: u64, sig: u64) -> SysResult {
    let me = u64::from(process::with(|p| p.pid));
    let pid32 = pid as i32;
    if pid32 == 0 || pid32 == -1 || pid == me || pid32 == -(me as i32) {
        return raise_self(sig);
    }
    // Another Linux process: the proxy sends it.
    Ok(super::offload(
        u64::from(linux_abi::syscalls_gen::SYS_KILL),
        [pid, sig, 0, 0, 0, 0],
    ))
}

pub fn tgkill(tgid: u64, tid: u64, sig: u64) -> SysResult {
    let me = u64::from(process::with(|p| p.pid));
    if tid != me || (tgid != 0 && tgid != me) {
        return Err(Errno::ESRCH);
    }
    raise_self(sig)
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
    let (terminates, blocked) = process::with(|p| {
        (
            process::signal_terminates(p, SIGPIPE),
            p.sigmask & (1 << (SIGPIPE - 1)) != 0,
        )
    });
    if terminates && !blocked {
        process::kill(SIGPIPE, 0, None);
    }
}
