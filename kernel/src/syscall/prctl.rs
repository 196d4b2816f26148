//! prctl (the process's name, dumpable, parent-death signal) and
//! arch_prctl (FS/GS bases).

use crate::process;
use crate::uaccess::{self, UserPtr};
use linux_abi::prctl::*;
use linux_abi::{Errno, SysResult, CANONICAL_USER_END};

pub fn arch_prctl(code: u32, addr: u64) -> SysResult {
    use crate::arch::cpu::{rdmsr, MSR_FS_BASE, MSR_KERNEL_GS_BASE};
    match code {
        ARCH_SET_FS | ARCH_SET_GS => {
            if addr >= CANONICAL_USER_END {
                return Err(Errno::EPERM);
            }
            crate::arch::set_user_segment_base(code == ARCH_SET_FS, addr);
            Ok(0)
        }
        ARCH_GET_FS | ARCH_GET_GS => {
            let v = rdmsr(if code == ARCH_GET_FS {
                MSR_FS_BASE
            } else {
                MSR_KERNEL_GS_BASE
            });
            UserPtr::<u64>::new(addr).write(&v)?;
            Ok(0)
        }
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

pub fn prctl(option: i32, arg: u64, _arg3: u64, _arg4: u64, _arg5: u64) -> SysResult {
    let Ok(option) = u32::try_from(option) else {
        crate::kprintln!("prctl option {option} is not supported on the LWK");
        return Err(Errno::EINVAL);
    };
    process::with(|p| match option {
        PR_SET_NAME => {
            let s = uaccess::read_cstring(&p.aspace, arg, 4096)?;
            let mut n = [0u8; 16];
            let l = s.len().min(15);
            n[..l].copy_from_slice(&s[..l]);
            p.name = n;
            Ok(0)
        }
        PR_GET_NAME => {
            uaccess::copy_to_user(&p.aspace, arg, &p.name)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE | PR_SET_PDEATHSIG => Ok(0),
        _ => {
            crate::kprintln!("prctl option {option} is not supported on the LWK");
            Err(Errno::EINVAL)
        }
    })
}
