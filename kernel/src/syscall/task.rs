//! Task bookkeeping: exit, identity, TLS base, tid address, robust list,
//! affinity and futexes (one task per process for now).

use crate::process;
use crate::uaccess;
use linux_abi::{Errno, SysResult};

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const ARCH_SET_CPUID: u64 = 0x1012;
const CANONICAL_USER_END: u64 = 0x8000_0000_0000;

pub fn exit(nr: u64, status: u64) -> SysResult {
    if super::tracing() {
        super::trace(nr, [status, 0, 0, 0, 0, 0], 0, wire::TRACE_LOCAL);
    }
    process::exit(status)
}

pub fn getpid() -> SysResult {
    Ok(u64::from(process::with(|p| p.pid)))
}

pub fn arch_prctl(code: u64, addr: u64) -> SysResult {
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
            process::with(|p| uaccess::write_u64(&p.aspace, addr, v))?;
            Ok(0)
        }
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

pub fn set_tid_address(ptr: u64) -> SysResult {
    process::with(|p| {
        p.clear_child_tid = ptr;
        Ok(u64::from(p.pid))
    })
}

pub fn set_robust_list(head: u64, len: u64) -> SysResult {
    if len != 24 {
        return Err(Errno::EINVAL);
    }
    process::with(|p| p.robust_list = (head, len));
    Ok(0)
}

pub fn get_robust_list(pid: u64, head_ptr: u64, len_ptr: u64) -> SysResult {
    process::with(|p| {
        if pid != 0 && pid != u64::from(p.pid) {
            return Err(Errno::ESRCH);
        }
        uaccess::write_u64(&p.aspace, head_ptr, p.robust_list.0)?;
        uaccess::write_u64(&p.aspace, len_ptr, p.robust_list.1)?;
        Ok(0)
    })
}

pub fn sched_getaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    process::with(|p| {
        if pid != 0 && pid != u64::from(p.pid) {
            return Err(Errno::ESRCH);
        }
        let bytes = (p.ncpus as usize).div_ceil(64) * 8;
        if (len as usize) < bytes {
            return Err(Errno::EINVAL);
        }
        let mut buf = alloc::vec![0u8; bytes];
        // Only the boot core runs tasks until SMP arrives.
        buf[0] = 1;
        uaccess::copy_to_user(&p.aspace, mask, &buf)?;
        Ok(bytes as u64)
    })
}

pub fn sched_setaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    process::with(|p| {
        if pid != 0 && pid != u64::from(p.pid) {
            return Err(Errno::ESRCH);
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let mut first = [0u8; 1];
        uaccess::copy_from_user(&p.aspace, mask, &mut first)?;
        if first[0] & 1 == 0 {
            return Err(Errno::EINVAL);
        }
        Ok(0)
    })
}

pub fn getcpu(cpu: u64, node: u64) -> SysResult {
    process::with(|p| {
        if cpu != 0 {
            uaccess::write_u32(&p.aspace, cpu, 0)?;
        }
        if node != 0 {
            uaccess::write_u32(&p.aspace, node, 0)?;
        }
        Ok(0)
    })
}

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;

/// Futexes with a single task: nobody else can change the word or wake us.
pub fn futex(uaddr: u64, op: u64, val: u64, timeout: u64) -> SysResult {
    let cmd = op & 0x7f;
    let word = process::with(|p| uaccess::read_u32(&p.aspace, uaddr))?;
    match cmd {
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Ok(0),
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if u64::from(word) != val & 0xffff_ffff {
                return Err(Errno::EAGAIN);
            }
            if timeout == 0 {
                crate::kprintln!("futex: the only task waits forever on {uaddr:#x} (deadlock)");
                crate::arch::cpu::halt_forever();
            }
            let (s, ns) = process::with(|p| uaccess::read_pair(&p.aspace, timeout))?;
            let d = s.saturating_mul(1_000_000_000).saturating_add(ns);
            let now = crate::time::monotonic_ns();
            let deadline = if cmd == FUTEX_WAIT_BITSET {
                d
            } else {
                now.saturating_add(d)
            };
            crate::time::sleep_until_monotonic(deadline);
            Err(Errno::ETIMEDOUT)
        }
        _ => Err(Errno::ENOSYS),
    }
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;

pub fn prctl(option: u64, arg: u64) -> SysResult {
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
