//! sched_yield, sched_getaffinity, sched_setaffinity, getcpu: where threads
//! run (one run queue per core; affinity moves a thread between them).

use crate::sched;
use crate::uaccess::UserPtr;
use core::sync::atomic::Ordering;
use linux_abi::{Errno, SysResult};

/// The thread `tid` names (0: the caller).
pub(super) fn task_of(tid: i32) -> Result<sched::TaskRef, Errno> {
    if tid == 0 {
        return sched::current().ok_or(Errno::ESRCH);
    }
    let tid = u32::try_from(tid).map_err(|_| Errno::ESRCH)?;
    sched::find(tid).ok_or(Errno::ESRCH)
}

pub fn sched_getaffinity(tid: i32, len: usize, mask: UserPtr<u8>) -> SysResult {
    let t = task_of(tid)?;
    // Linux copies nr_cpu_ids bits, rounded up to whole longs.
    let bytes = sched::ncpus().div_ceil(64) * 8;
    if len < bytes || !len.is_multiple_of(8) && len < 8 {
        return Err(Errno::EINVAL);
    }
    let m = t.affinity.load(Ordering::Acquire) & sched::online_mask();
    let mut buf = alloc::vec![0u8; bytes];
    buf[..8].copy_from_slice(&m.to_le_bytes());
    mask.write_bytes(&buf)?;
    Ok(bytes as u64)
}

pub fn sched_setaffinity(tid: i32, len: usize, mask: UserPtr<u8>) -> SysResult {
    let t = task_of(tid)?;
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 8];
    let n = len.min(8);
    mask.read_bytes(&mut b[..n])?;
    let m = u64::from_le_bytes(b) & sched::online_mask();
    if m == 0 {
        return Err(Errno::EINVAL);
    }
    t.affinity.store(m, Ordering::Release);
    if m & (1 << t.cpu()) == 0 {
        let target = m.trailing_zeros() as usize;
        match sched::current() {
            Some(me) if alloc::sync::Arc::ptr_eq(&me, &t) => sched::migrate_current(target),
            _ => sched::request_migration(&t, target),
        }
    }
    Ok(0)
}

pub fn getcpu(cpu: UserPtr<u32>, node: UserPtr<u32>, _cache: u64) -> SysResult {
    let here = crate::arch::gdt::this_cpu() as u32;
    if let Some(c) = cpu.non_null() {
        c.write(&here)?;
    }
    if let Some(n) = node.non_null() {
        n.write(&0)?;
    }
    Ok(0)
}

pub fn sched_yield() -> SysResult {
    sched::yield_now();
    Ok(0)
}
