//! rt_sigaction and sigaltstack: a process's signal dispositions and the
//! alternate signal stack.

use crate::process::{self, SigAction};
use crate::uaccess::UserPtr;
use linux_abi::signal::{MINSIGSTKSZ, NSIG, SIGKILL, SIGSTOP, SS_AUTODISARM, SS_DISABLE};
use linux_abi::uapi::{kernel_sigaction, sigset_t, stack_t};
use linux_abi::{Errno, SysResult};

pub fn rt_sigaction(
    sig: i32,
    act: UserPtr<kernel_sigaction>,
    oact: UserPtr<kernel_sigaction>,
    size: usize,
) -> SysResult {
    let sig = u32::try_from(sig).map_err(|_| Errno::EINVAL)?;
    if size != size_of::<sigset_t>() || sig == 0 || sig > NSIG {
        return Err(Errno::EINVAL);
    }
    if !act.is_null() && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    process::with(|p| {
        let old = p.sigactions[sig as usize];
        let new = match act.non_null() {
            Some(a) => {
                let a = a.read_in(&p.aspace)?;
                Some(SigAction {
                    handler: a.sa_handler,
                    flags: a.sa_flags,
                    restorer: a.sa_restorer,
                    mask: a.sa_mask,
                })
            }
            None => None,
        };
        if let Some(o) = oact.non_null() {
            let k = kernel_sigaction {
                sa_handler: old.handler,
                sa_flags: old.flags,
                sa_restorer: old.restorer,
                sa_mask: old.mask,
            };
            o.write_in(&p.aspace, &k)?;
        }
        if let Some(n) = new {
            p.sigactions[sig as usize] = n;
        }
        Ok(0)
    })
}

pub fn sigaltstack(ss: UserPtr<stack_t>, old: UserPtr<stack_t>) -> SysResult {
    process::with(|p| {
        let prev = p.altstack;
        if let Some(ss) = ss.non_null() {
            let s = ss.read_in(&p.aspace)?;
            let flags = s.ss_flags as u32;
            if flags & !(SS_DISABLE | SS_AUTODISARM) != 0 {
                return Err(Errno::EINVAL);
            }
            if flags & SS_DISABLE == 0 && s.ss_size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            p.altstack = (s.ss_sp, u64::from(flags), s.ss_size);
        }
        if let Some(old) = old.non_null() {
            let o = stack_t {
                ss_sp: prev.0,
                ss_flags: prev.1 as i32,
                _pad: 0,
                ss_size: prev.2,
            };
            old.write_in(&p.aspace, &o)?;
        }
        Ok(0)
    })
}
