//! shmat and shmdt. SysV segments are Linux's own: shmget and shmctl are
//! offloaded, so `ipcs` and Linux processes see and attach the same
//! segments. shmat has the proxy attach the segment too (Linux then counts
//! the LWK process's attachment, and a removed segment lives until its last
//! detach) and maps the segment's file from its dimm, as a shared file
//! mapping is mapped: the same page-cache pages as every Linux attacher.

use super::mmap::{self, file_map, Source, MMAP_BOTTOM};
use crate::process::{self, SysvAttach};
use crate::shm;
use linux_abi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};
use linux_abi::{Errno, SysResult, PAGE_SIZE as PAGE};
use wire::{FILEMAP_SHMAT, FILEMAP_SHMDT, MMAP_TOP};

const SHM_RDONLY: u64 = 0o10000;
const SHM_RND: u64 = 0o20000;
const SHM_REMAP: u64 = 0o40000;
const SHM_EXEC: u64 = 0o100000;

pub fn shmat(shmid: i32, addr: u64, flags: u64) -> SysResult {
    if shmid < 0 {
        return Err(Errno::EINVAL);
    }
    // SHMLBA is a page on x86-64.
    let mut addr = addr;
    if !addr.is_multiple_of(PAGE) {
        if flags & SHM_RND == 0 {
            return Err(Errno::EINVAL);
        }
        addr &= !(PAGE - 1);
    }
    if flags & SHM_REMAP != 0 && addr == 0 {
        return Err(Errno::EINVAL);
    }
    let r = file_map(FILEMAP_SHMAT, shmid as u64, [flags & SHM_RDONLY, 0, 0, 0])?;
    let [dev, ino, size, handle] = r.aux;
    let detach = || {
        let _ = file_map(FILEMAP_SHMDT, handle, [0; 4]);
    };
    let Some(len) = mmap::page_up(size).filter(|&l| l > 0) else {
        detach();
        return Err(Errno::EINVAL);
    };
    let mut prot = PROT_READ;
    if flags & SHM_RDONLY == 0 {
        prot |= PROT_WRITE;
    }
    if flags & SHM_EXEC != 0 {
        prot |= PROT_EXEC;
    }
    let id = match mmap::hold_or_plug(Source::Sysv(handle), dev, ino, len, len, len) {
        Ok(id) => id,
        Err(e) => {
            detach();
            return Err(e);
        }
    };
    let mapped = process::with(|p| {
        let va = if addr == 0 {
            p.aspace
                .find_free(len, PAGE, MMAP_BOTTOM, MMAP_TOP)
                .ok_or(Errno::ENOMEM)?
        } else {
            if !mmap::in_window(addr, len) {
                return Err(Errno::EINVAL);
            }
            if flags & SHM_REMAP != 0 {
                p.aspace.unmap(addr, len)?;
            } else if !p.aspace.is_free(addr, len) {
                return Err(Errno::EINVAL);
            }
            addr
        };
        p.sysv.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        p.aspace.map_held(va, id, 0, len, prot)?;
        p.sysv.push(SysvAttach { va, len, handle });
        Ok(va)
    });
    if mapped.is_err() {
        shm::unmapped(id, len);
        detach();
    }
    mapped
}

pub fn shmdt(addr: u64) -> SysResult {
    let handle = process::with(|p| {
        let i = p
            .sysv
            .iter()
            .position(|a| a.va == addr)
            .ok_or(Errno::EINVAL)?;
        let a = p.sysv.remove(i);
        p.aspace.unmap(a.va, a.len)?;
        Ok(a.handle)
    })?;
    file_map(FILEMAP_SHMDT, handle, [0; 4])?;
    Ok(0)
}
