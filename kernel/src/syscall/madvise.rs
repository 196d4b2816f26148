//! madvise, mincore, msync and the mlock family: memory is mapped up front
//! and never paged, so these check the range and are otherwise no-ops
//! (DONTNEED zeroes, as Linux's private anonymous memory reads back).

use super::mmap::page_up;
use crate::process;
use crate::uaccess::{self, UserPtr};
use linux_abi::mman::{MADV_DONTNEED, MADV_REMOVE, PROT_WRITE};
use linux_abi::{Errno, SysResult, PAGE_SIZE as PAGE};

pub fn madvise(addr: u64, len: u64, advice: u32) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::EINVAL)?;
    process::with(|p| {
        if !p.aspace.regions().check_range(addr, len, 0) {
            return Err(Errno::ENOMEM);
        }
        let pieces = p.aspace.pieces(addr, len);
        match advice {
            MADV_DONTNEED => {
                // Private anonymous memory reads back as zeros after DONTNEED; a
                // shared object keeps its contents (the pages come back from it).
                for r in pieces
                    .iter()
                    .filter(|r| r.kind.shared_object().is_none() && r.kind.is_backed())
                {
                    uaccess::zero_user(&p.aspace, r.start, r.len)?;
                }
            }
            MADV_REMOVE => {
                // Frees the backing store of shared memory: every process
                // mapping the object reads zeros.
                if pieces.iter().any(|r| r.kind.shared_object().is_none()) {
                    return Err(Errno::EINVAL);
                }
                if pieces.iter().any(|r| r.prot & PROT_WRITE == 0) {
                    return Err(Errno::EACCES);
                }
                for r in &pieces {
                    p.aspace.zero_phys(r.phys, r.len);
                }
            }
            _ => {}
        }
        Ok(0)
    })
}

fn check_mapped(addr: u64, len: u64) -> SysResult {
    let start = addr & !(PAGE - 1);
    let len = page_up(len + (addr - start)).ok_or(Errno::ENOMEM)?;
    process::with(|p| {
        if p.aspace.regions().check_range(start, len, 0) {
            Ok(0)
        } else {
            Err(Errno::ENOMEM)
        }
    })
}

pub fn mincore(addr: u64, len: u64, vec: UserPtr<u8>) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    process::with(|p| {
        if !p.aspace.regions().check_range(addr, len, 0) {
            return Err(Errno::ENOMEM);
        }
        // Everything is resident: memory is mapped up front.
        // One byte per page, written a page of them at a time (the range
        // may be large).
        let ones = [1u8; 4096];
        let pages = len / PAGE;
        let mut done = 0u64;
        while done < pages {
            let n = (pages - done).min(ones.len() as u64);
            let at = vec.addr().checked_add(done).ok_or(Errno::EFAULT)?;
            uaccess::copy_to_user(&p.aspace, at, &ones[..n as usize])?;
            done += n;
        }
        Ok(0)
    })
}

/// Memory of the partition needs no writing back; a plugged file's pages
/// are Linux's page cache, which the proxy's msync of its mirror writes back
/// (MS_SYNC: before returning, as on Linux).
pub fn msync(addr: u64, len: u64, flags: u64) -> SysResult {
    check_mapped(addr, len)?;
    let start = addr & !(PAGE - 1);
    let file_backed = process::with(|p| {
        p.aspace
            .pieces(start, len.saturating_add(addr - start))
            .iter()
            .any(|r| r.kind.shared_object().is_some_and(crate::shm::is_plugged))
    });
    if file_backed {
        return super::offload_result(
            u64::from(linux_abi::syscalls_gen::SYS_MSYNC),
            [addr, len, flags, 0, 0, 0],
        );
    }
    Ok(0)
}

pub fn mlock(addr: u64, len: u64) -> SysResult {
    check_mapped(addr, len)
}

pub fn munlock(addr: u64, len: u64) -> SysResult {
    check_mapped(addr, len)
}

pub fn mlock2(addr: u64, len: u64, _flags: u64) -> SysResult {
    check_mapped(addr, len)
}

pub fn mlockall(_flags: u64) -> SysResult {
    Ok(0)
}

pub fn munlockall() -> SysResult {
    Ok(0)
}
