//! mmap, munmap, mprotect, mremap: memory is region based and mapped up
//! front; there is no overcommit, so running out is ENOMEM.

use crate::process::{self, Process};
use crate::uaccess;
use linux_abi::mman::*;
use linux_abi::syscalls_gen::SYS_PREAD64;
use linux_abi::{Errno, SysResult, PAGE_SIZE as PAGE};
use lwk_core::region::RegionKind;
use wire::{MMAP_TOP, USER_MAX, USER_MIN};

/// Lowest address the kernel picks for mappings without a hint.
pub(super) const MMAP_BOTTOM: u64 = 0x2000_0000_0000;

/// Round `v` up to a whole page (`None` on overflow).
pub(super) fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE - 1).map(|x| x & !(PAGE - 1))
}

/// Whether `[addr, addr+len)` lies in the user window.
pub(super) fn in_window(addr: u64, len: u64) -> bool {
    addr >= USER_MIN && addr.checked_add(len).is_some_and(|e| e <= USER_MAX)
}

fn place(p: &Process, addr: u64, len: u64, flags: u64) -> Result<u64, Errno> {
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        if !in_window(addr, len) {
            return Err(Errno::ENOMEM);
        }
        if flags & MAP_FIXED_NOREPLACE != 0 && !p.aspace.is_free(addr, len) {
            return Err(Errno::EEXIST);
        }
        return Ok(addr);
    }
    if addr != 0 && addr.is_multiple_of(PAGE) && in_window(addr, len) && p.aspace.is_free(addr, len)
    {
        return Ok(addr);
    }
    // Pack mappings at page granularity, as Linux does. 2 MiB-aligning large
    // ones made same-sized buffers start a multiple of 2 MiB apart (16 MiB for
    // STREAM's calloc'd arrays), which alias in QEMU's direct-mapped software
    // TLB (STREAM at a quarter of the speed under TCG) as they would in a
    // hardware cache. map_anon still gives the aligned interior 2 MiB pages.
    p.aspace
        .find_free(len, PAGE, MMAP_BOTTOM, MMAP_TOP)
        .ok_or(Errno::ENOMEM)
}

pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: i32, off: u64) -> SysResult {
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if len == 0 || prot & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = flags & MAP_TYPE;
    if kind == 0 {
        return Err(Errno::EINVAL);
    }
    let anon = flags & MAP_ANONYMOUS != 0;
    if !anon {
        if kind != MAP_PRIVATE {
            crate::kprintln!("mmap: MAP_SHARED of a file is not supported on the LWK (fd {fd})");
            return Err(Errno::ENODEV);
        }
        if !off.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
    }
    let prot = u32::try_from(prot).map_err(|_| Errno::EINVAL)?;
    let va = process::with(|p| {
        let va = place(p, addr, len, flags)?;
        if flags & MAP_FIXED != 0 {
            p.aspace.unmap(va, len)?;
        }
        let initial = if anon {
            prot
        } else {
            prot | PROT_READ | PROT_WRITE
        };
        p.aspace.map_anon(va, len, initial, RegionKind::Anon)?;
        Ok::<u64, Errno>(va)
    })?;
    if !anon {
        // MAP_PRIVATE file mapping: LWK memory filled from the file by the proxy.
        let mut done = 0u64;
        while done < len {
            let r = super::offload_result(
                u64::from(SYS_PREAD64),
                [fd as u64, va + done, len - done, off + done, 0, 0],
            );
            let r = match r {
                Ok(n) => n,
                Err(e) => {
                    let _ = process::with(|p| p.aspace.unmap(va, len));
                    // What Linux says for files that cannot be mapped.
                    return Err(match e {
                        Errno::ESPIPE | Errno::EISDIR => Errno::ENODEV,
                        e => e,
                    });
                }
            };
            if r == 0 {
                break;
            }
            done += r;
        }
        if prot != prot | PROT_READ | PROT_WRITE {
            process::with(|p| p.aspace.protect(va, len, prot))?;
        }
    }
    Ok(va)
}

pub fn munmap(addr: u64, len: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::EINVAL)?;
    if !in_window(addr, len) {
        return Err(Errno::EINVAL);
    }
    process::with(|p| p.aspace.unmap(addr, len))?;
    Ok(0)
}

pub fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE)
        || prot & !7 != 0 && prot & !(7 | PROT_GROWSDOWN | PROT_GROWSUP) != 0
    {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if len == 0 {
        return Ok(0);
    }
    process::with(|p| p.aspace.protect(addr, len, (prot & 7) as u32))?;
    Ok(0)
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    if !old.is_multiple_of(PAGE) || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
    {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::EINVAL);
    }
    let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
    let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
    if new_len == 0 || old_len == 0 {
        return Err(Errno::EINVAL);
    }
    process::with(|p| {
        let r = p.aspace.regions().find(old).copied().ok_or(Errno::EFAULT)?;
        if !p.aspace.regions().check_range(old, old_len, 0) {
            return Err(Errno::EFAULT);
        }
        if flags & MREMAP_FIXED == 0 {
            if new_len <= old_len {
                p.aspace.unmap(old + new_len, old_len - new_len)?;
                return Ok(old);
            }
            // Grow in place when the following range is free.
            let extra = new_len - old_len;
            if in_window(old + old_len, extra) && p.aspace.is_free(old + old_len, extra) {
                p.aspace.map_anon(old + old_len, extra, r.prot, r.kind)?;
                return Ok(old);
            }
            if flags & MREMAP_MAYMOVE == 0 {
                return Err(Errno::ENOMEM);
            }
        }
        let dst = if flags & MREMAP_FIXED != 0 {
            if !new_addr.is_multiple_of(PAGE) || !in_window(new_addr, new_len) {
                return Err(Errno::EINVAL);
            }
            p.aspace.unmap(new_addr, new_len)?;
            new_addr
        } else {
            p.aspace
                .find_free(new_len, PAGE, MMAP_BOTTOM, MMAP_TOP)
                .ok_or(Errno::ENOMEM)?
        };
        p.aspace
            .map_anon(dst, new_len, r.prot | PROT_READ | PROT_WRITE, r.kind)?;
        // Copy the old contents through the kernel (page by page through the region map).
        let copy_len = old_len.min(new_len);
        let mut buf = alloc::vec![0u8; 64 * 1024];
        let mut done = 0;
        while done < copy_len {
            let n = (copy_len - done).min(buf.len() as u64) as usize;
            copy_raw(p, old + done, dst + done, &mut buf[..n])?;
            done += n as u64;
        }
        if r.prot != r.prot | PROT_READ | PROT_WRITE {
            p.aspace.protect(dst, new_len, r.prot)?;
        }
        p.aspace.unmap(old, old_len)?;
        Ok(dst)
    })
}

fn copy_raw(p: &Process, src: u64, dst: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let asp = &p.aspace;
    // Read regardless of protection (PROT_NONE mappings move too).
    let mut off = 0usize;
    while off < buf.len() {
        let r = asp.regions().find(src + off as u64).ok_or(Errno::EFAULT)?;
        let n = ((r.end() - (src + off as u64)) as usize).min(buf.len() - off);
        crate::arch::mem::read_phys(
            r.phys + (src + off as u64 - r.start),
            &mut buf[off..off + n],
        );
        off += n;
    }
    uaccess::fill_user(asp, dst, buf)
}
