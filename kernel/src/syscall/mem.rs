//! brk, mmap, munmap, mprotect, madvise, mremap, mincore: memory is region
//! based and mapped up front; there is no overcommit, so running out is ENOMEM.

use crate::process::{self, Process};
use crate::uaccess;
use linux_abi::mman::*;
use linux_abi::{Errno, SysResult};
use lwk_core::region::RegionKind;
use wire::{MMAP_TOP, USER_MAX, USER_MIN};

const PAGE: u64 = 4096;
const MB2: u64 = 2 << 20;
/// Lowest address the kernel picks for mappings without a hint.
const MMAP_BOTTOM: u64 = 0x2000_0000_0000;

fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE - 1).map(|x| x & !(PAGE - 1))
}

fn in_window(addr: u64, len: u64) -> bool {
    addr >= USER_MIN && addr.checked_add(len).is_some_and(|e| e <= USER_MAX)
}

pub fn brk(addr: u64) -> SysResult {
    process::with(|p| {
        if addr < p.brk_start {
            return Ok(p.brk);
        }
        let Some(want_end) = page_up(addr) else {
            return Ok(p.brk);
        };
        if want_end > p.heap_end {
            // Grow the mapped heap in generous steps so the region table stays small.
            let need = want_end - p.heap_end;
            let heap_size = p.heap_end - p.brk_start;
            let step = need.max(heap_size.min(64 << 20)).max(MB2);
            let step = page_up(step).unwrap_or(need);
            let grown = [step, need].into_iter().find(|&len| {
                in_window(p.heap_end, len)
                    && p.aspace.is_free(p.heap_end, len)
                    && p.aspace
                        .map_anon(p.heap_end, len, PROT_READ | PROT_WRITE, RegionKind::Heap)
                        .is_ok()
            });
            match grown {
                Some(len) => p.heap_end += len,
                None => return Ok(p.brk),
            }
        } else if addr < p.brk {
            // Shrinking: memory above the new break reads as zero when it is grown again.
            let start = page_up(addr).unwrap_or(p.brk);
            let end = page_up(p.brk).unwrap_or(start);
            if end > start {
                let _ = uaccess::zero_user(&p.aspace, start, end - start);
            }
        }
        p.brk = addr;
        Ok(p.brk)
    })
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

pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: u64, off: u64) -> SysResult {
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if len == 0 || prot & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = flags & 0x3;
    if kind == 0 {
        return Err(Errno::EINVAL);
    }
    let anon = flags & MAP_ANONYMOUS != 0;
    let shared = kind != MAP_PRIVATE;
    if !anon && !off.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let prot = prot as u32;
    // File mappings are filled (or, shared, checked) through the mapping
    // itself, so they start readable and writable.
    let initial = if anon {
        prot
    } else {
        prot | PROT_READ | PROT_WRITE
    };
    let va = process::with(|p| {
        let va = place(p, addr, len, flags)?;
        if flags & MAP_FIXED != 0 {
            p.aspace.unmap(va, len)?;
        }
        if shared {
            p.aspace.map_shared_anon(va, len, initial)?;
        } else {
            p.aspace.map_anon(va, len, initial, RegionKind::Anon)?;
        }
        Ok::<u64, Errno>(va)
    })?;
    if anon {
        return Ok(va);
    }
    let filled = if shared {
        shared_file(va, fd)
    } else {
        fill_from_file(va, len, fd, off)
    };
    if let Err(e) = filled {
        let _ = process::with(|p| p.aspace.unmap(va, len));
        return Err(e);
    }
    if prot != initial {
        process::with(|p| p.aspace.protect(va, len, prot))?;
    }
    Ok(va)
}

/// MAP_PRIVATE file mapping: LWK memory filled from the file by the proxy.
fn fill_from_file(va: u64, len: u64, fd: u64, off: u64) -> Result<(), Errno> {
    let mut done = 0u64;
    while done < len {
        let r = super::offload(
            u64::from(linux_abi::syscalls_gen::SYS_PREAD64),
            [fd, va + done, len - done, off + done, 0, 0],
        ) as i64;
        if r < 0 {
            return Err(if r == Errno::ESPIPE.as_ret() {
                Errno::ENODEV
            } else {
                errno_from(r)
            });
        }
        if r == 0 {
            break;
        }
        done += r as u64;
    }
    Ok(())
}

/// MAP_SHARED of a descriptor: `/dev/zero` is anonymous shared memory (the
/// new mapping at `va` already is); any other file is not supported yet. The
/// proxy's fstat writes into the fresh mapping, which is zeroed again after.
fn shared_file(va: u64, fd: u64) -> Result<(), Errno> {
    const ST_MODE: u64 = 24;
    const ST_RDEV: u64 = 40;
    const S_IFMT: u32 = 0o170000;
    const S_IFCHR: u32 = 0o020000;
    const DEV_ZERO: u64 = (1 << 8) | 5;
    let r = super::offload(
        u64::from(linux_abi::syscalls_gen::SYS_FSTAT),
        [fd, va, 0, 0, 0, 0],
    ) as i64;
    if r < 0 {
        return Err(errno_from(r));
    }
    let (mode, rdev) = process::with(|p| {
        let mut m = [0u8; 4];
        let mut d = [0u8; 8];
        uaccess::copy_from_user(&p.aspace, va + ST_MODE, &mut m)?;
        uaccess::copy_from_user(&p.aspace, va + ST_RDEV, &mut d)?;
        uaccess::zero_user(&p.aspace, va, 144)?;
        Ok::<_, Errno>((u32::from_le_bytes(m), u64::from_le_bytes(d)))
    })?;
    if mode & S_IFMT == S_IFCHR && rdev == DEV_ZERO {
        return Ok(());
    }
    crate::kprintln!(
        "mmap: MAP_SHARED of a file is not supported on the LWK yet (fd {})",
        fd as i64
    );
    Err(Errno::ENODEV)
}

fn errno_from(r: i64) -> Errno {
    match -r {
        9 => Errno::EBADF,
        13 => Errno::EACCES,
        19 => Errno::ENODEV,
        21 => Errno::ENODEV,
        _ => Errno::EINVAL,
    }
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
    if !addr.is_multiple_of(PAGE) || prot & !7 != 0 && prot & !(7 | 0x0100_0000 | 0x0200_0000) != 0
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

const MADV_DONTNEED: u64 = 4;
const MADV_REMOVE: u64 = 9;

pub fn madvise(addr: u64, len: u64, advice: u64) -> SysResult {
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
                for r in pieces.iter().filter(|r| r.kind.shared_object().is_none()) {
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

pub fn check_mapped(addr: u64, len: u64) -> SysResult {
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

pub fn mincore(addr: u64, len: u64, vec: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    process::with(|p| {
        if !p.aspace.regions().check_range(addr, len, 0) {
            return Err(Errno::ENOMEM);
        }
        // Everything is resident: memory is mapped up front.
        let pages = (len / PAGE) as usize;
        uaccess::copy_to_user(&p.aspace, vec, &alloc::vec![1u8; pages])?;
        Ok(0)
    })
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    if !old.is_multiple_of(PAGE) || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | 4) != 0 {
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
        if let Some(id) = r.kind.shared_object() {
            return mremap_shared(p, id, old, old_len, new_len, flags, new_addr);
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

/// mremap of a shared mapping: the same object bytes at the new place (never
/// a copy); growing past the object's end is ENOMEM.
fn mremap_shared(
    p: &mut Process,
    id: lwk_core::shm::ObjectId,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> SysResult {
    // The old range must be one contiguous stretch of the object.
    let pieces = p.aspace.pieces(old, old_len);
    let off = crate::shm::offset_of(id, pieces[0].phys).ok_or(Errno::EFAULT)?;
    let mut expect = off;
    for r in &pieces {
        if r.kind.shared_object() != Some(id) || crate::shm::offset_of(id, r.phys) != Some(expect) {
            return Err(Errno::EFAULT);
        }
        expect += r.len;
    }
    let prot = pieces[0].prot;
    if flags & MREMAP_FIXED == 0 {
        if new_len <= old_len {
            p.aspace.unmap(old + new_len, old_len - new_len)?;
            return Ok(old);
        }
        let extra = new_len - old_len;
        if in_window(old + old_len, extra) && p.aspace.is_free(old + old_len, extra) {
            p.aspace
                .map_object(old + old_len, id, off + old_len, extra, prot)?;
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
        if new_addr < old + old_len && old < new_addr + new_len {
            return Err(Errno::EINVAL);
        }
        p.aspace.unmap(new_addr, new_len)?;
        new_addr
    } else {
        p.aspace
            .find_free(new_len, PAGE, MMAP_BOTTOM, MMAP_TOP)
            .ok_or(Errno::ENOMEM)?
    };
    p.aspace.map_object(dst, id, off, new_len, prot)?;
    p.aspace.unmap(old, old_len)?;
    Ok(dst)
}

fn copy_raw(p: &Process, src: u64, dst: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let asp = &p.aspace;
    // Read regardless of protection (PROT_NONE mappings move too).
    let mut off = 0usize;
    while off < buf.len() {
        let r = asp.regions().find(src + off as u64).ok_or(Errno::EFAULT)?;
        let n = ((r.end() - (src + off as u64)) as usize).min(buf.len() - off);
        asp.read_phys(
            r.phys + (src + off as u64 - r.start),
            &mut buf[off..off + n],
        );
        off += n;
    }
    uaccess::fill_user(asp, dst, buf)
}
