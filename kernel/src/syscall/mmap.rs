//! mmap, munmap, mprotect, mremap: memory is region based and mapped up
//! front; there is no overcommit, so running out is ENOMEM.

use crate::process::{self, Process};
use crate::uaccess;
use crate::{ikc, shm};
use core::sync::atomic::{AtomicBool, Ordering};
use linux_abi::mman::*;
use linux_abi::syscalls_gen::SYS_PREAD64;
use linux_abi::{Errno, SysResult, PAGE_SIZE as PAGE};
use lwk_core::region::RegionKind;
use lwk_core::shm::ObjectId;
use wire::{
    RequestKind, FILEMAP_ATTACH, FILEMAP_INFO, FILEMAP_PLUG, FILEMAP_SHM_ATTACH, FILEMAP_SHM_PLUG,
};
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

pub(super) fn place(p: &Process, addr: u64, len: u64, flags: u64) -> Result<u64, Errno> {
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

/// Where a new mapping goes (`place`), with MAP_FIXED's replacement of what
/// was mapped there already done.
fn make_room(p: &mut Process, addr: u64, len: u64, flags: u64) -> Result<u64, Errno> {
    let va = place(p, addr, len, flags)?;
    if flags & MAP_FIXED != 0 {
        p.aspace.unmap(va, len)?;
    }
    Ok(va)
}

/// Linux looks the descriptor of a file mapping up before it checks the
/// other arguments: EBADF comes first. Only asked on error paths.
fn bad_fd_first(anon: bool, fd: i32, e: Errno) -> Errno {
    if anon {
        return e;
    }
    if fd < 0 {
        return Errno::EBADF;
    }
    match file_map(FILEMAP_INFO, fd as u64, [0; 4]) {
        Err(Errno::EBADF) => Errno::EBADF,
        _ => e,
    }
}

pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: i32, off: u64) -> SysResult {
    let anon = flags & MAP_ANONYMOUS != 0;
    let kind = flags & MAP_TYPE;
    let len = page_up(len).ok_or_else(|| bad_fd_first(anon, fd, Errno::ENOMEM))?;
    if len == 0 || prot & !7 != 0 || kind == 0 {
        return Err(bad_fd_first(anon, fd, Errno::EINVAL));
    }
    let shared = kind != MAP_PRIVATE;
    if !anon && !off.is_multiple_of(PAGE) {
        return Err(bad_fd_first(anon, fd, Errno::EINVAL));
    }
    let prot = u32::try_from(prot).map_err(|_| Errno::EINVAL)?;
    if shared && !anon {
        return mmap_shared_file(addr, len, prot, flags, fd, off);
    }
    // Private file mappings are filled through the mapping itself, so they
    // start readable and writable.
    let initial = if anon {
        prot
    } else {
        prot | PROT_READ | PROT_WRITE
    };
    let va = process::with(|p| {
        let va = make_room(p, addr, len, flags)?;
        if anon && !shared && prot == 0 {
            // Inaccessible: reserved without memory until mprotect opens it.
            p.aspace.reserve(va, len)?;
        } else if shared {
            p.aspace.map_shared_anon(va, len, initial)?;
        } else {
            p.aspace.map_anon(va, len, initial, RegionKind::Anon)?;
        }
        Ok::<u64, Errno>(va)
    })?;
    if anon {
        return Ok(va);
    }
    if let Err(e) = fill_from_file(va, len, fd, off) {
        let _ = process::with(|p| p.aspace.unmap(va, len));
        // What Linux's mmap says of the descriptor (EACCES when it is not
        // open for reading, ENODEV when it cannot be mapped), else the error.
        return Err(match file_map(FILEMAP_INFO, fd as u64, [0; 4]) {
            Err(info) => info,
            Ok(_) => e,
        });
    }
    if prot != initial {
        process::with(|p| p.aspace.protect(va, len, prot))?;
    }
    Ok(va)
}

/// One step of a shared file mapping, answered by the proxy; `fd` is the
/// descriptor, or for SysV segments the shmid or the attachment's handle.
pub(super) fn file_map(step: u64, fd: u64, rest: [u64; 4]) -> Result<ikc::Reply, Errno> {
    let r = ikc::call(
        RequestKind::FileMap,
        0,
        [step, fd, rest[0], rest[1], rest[2], rest[3]],
        [0; 4],
    );
    match Errno::from_ret(r.ret) {
        Some(e) => Err(e),
        None => Ok(r),
    }
}

/// Whose file a shared mapping maps: the application's descriptor, or a
/// SysV segment the proxy attached (named by its handle).
#[derive(Clone, Copy)]
pub(super) enum Source {
    Fd(i32),
    Sysv(u64),
}

impl Source {
    /// The step that plugs or attaches to the file, and its "descriptor".
    fn step(self, plug: bool) -> (u64, u64) {
        match (self, plug) {
            (Source::Fd(fd), true) => (FILEMAP_PLUG, fd as u64),
            (Source::Fd(fd), false) => (FILEMAP_ATTACH, fd as u64),
            (Source::Sysv(h), true) => (FILEMAP_SHM_PLUG, h),
            (Source::Sysv(h), false) => (FILEMAP_SHM_ATTACH, h),
        }
    }
}

/// Serialises finding or plugging a file, so that one file is plugged once
/// (its pages then have one guest-physical address: futex keys agree).
static PLUGGING: AtomicBool = AtomicBool::new(false);

/// MAP_SHARED of a descriptor: `/dev/zero` is anonymous shared memory; a
/// regular file (a /dev/shm or tmpfs file, a memfd, a file on disk) is mapped
/// from its dimm: margay plugs the file's whole pages into guest-physical
/// memory once, and every mapping of it in the partition maps those pages,
/// which are Linux's page cache of the file.
fn mmap_shared_file(addr: u64, len: u64, prot: u32, flags: u64, fd: i32, off: u64) -> SysResult {
    // A fixed address outside the user window fails before the file is
    // looked at, as on Linux.
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        if !in_window(addr, len) {
            return Err(Errno::ENOMEM);
        }
    }
    let want_write = u64::from(prot & PROT_WRITE != 0);
    let info = file_map(FILEMAP_INFO, fd as u64, [want_write, 0, 0, 0])?;
    if info.ret == 1 {
        // /dev/zero.
        return process::with(|p| {
            let va = make_room(p, addr, len, flags)?;
            p.aspace.map_shared_anon(va, len, prot)?;
            Ok(va)
        });
    }
    let [dev, ino, size, _] = info.aux;
    // The file's pages, the last one possibly partial (as on Linux, its
    // bytes past the end read as zero and are not written to the file).
    let whole = page_up(size).ok_or(Errno::EOVERFLOW)?;
    off.checked_add(len).ok_or(Errno::EOVERFLOW)?;
    // Pages past the end of the file are mapped too; touching them is
    // SIGBUS, as on Linux (a file that grows later is not seen there).
    let in_file = whole.saturating_sub(off).min(len);
    let past = len - in_file;
    if in_file == 0 {
        return process::with(|p| {
            let va = make_room(p, addr, len, flags)?;
            p.aspace.reserve_as(va, len, prot, RegionKind::PastEof)?;
            Ok(va)
        });
    }
    let id = hold_or_plug(Source::Fd(fd), dev, ino, whole, off + in_file, in_file)?;
    // On failure: the error, and whether the object's bytes went back already.
    let mapped = process::with(|p| {
        let va = make_room(p, addr, len, flags).map_err(|e| (e, false))?;
        p.aspace
            .map_held(va, id, off, in_file, prot)
            .map_err(|e| (e, false))?;
        if past > 0 {
            if let Err(e) = p
                .aspace
                .reserve_as(va + in_file, past, prot, RegionKind::PastEof)
            {
                // The unmap gives the object's bytes back.
                let _ = p.aspace.unmap(va, in_file);
                return Err((e, true));
            }
        }
        Ok(va)
    });
    mapped.map_err(|(e, returned)| {
        if !returned {
            shm::unmapped(id, in_file);
        }
        e
    })
}

/// The shared object of file (`dev`, `ino`) holding bytes `[0, end)`, with
/// `len` of its bytes counted as mapped: the file's dimm if one is plugged
/// (the proxy attaches to it, to mirror it), else a new plug of its `whole`
/// pages.
pub(super) fn hold_or_plug(
    src: Source,
    dev: u64,
    ino: u64,
    whole: u64,
    end: u64,
    len: u64,
) -> Result<ObjectId, Errno> {
    while PLUGGING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // The holder waits for its proxy: wake it when its answer came (no
        // timer interrupt reaches a core spinning in the kernel), then yield.
        crate::sched::poll_while_spinning();
        crate::sched::yield_now();
    }
    let held = hold_or_plug_locked(src, dev, ino, whole, end, len);
    PLUGGING.store(false, Ordering::Release);
    held
}

fn hold_or_plug_locked(
    src: Source,
    dev: u64,
    ino: u64,
    whole: u64,
    end: u64,
    len: u64,
) -> Result<ObjectId, Errno> {
    if let Some((id, p)) = shm::hold_file(dev, ino, end, len) {
        let (step, fd) = src.step(false);
        if let Err(e) = file_map(step, fd, [u64::from(p.slot), p.gpa, p.size, p.host_fd]) {
            shm::unmapped(id, len);
            return Err(e);
        }
        return Ok(id);
    }
    let (step, fd) = src.step(true);
    let r = file_map(step, fd, [whole, 0, 0, 0]).inspect_err(|e| {
        crate::kprintln!(
            "mmap: plugging a file of {whole} bytes into the partition failed: {}",
            e.name()
        );
    })?;
    let [slot, gpa, size, host_fd] = r.aux;
    let slot = u32::try_from(slot).map_err(|_| Errno::EIO)?;
    shm::create_plugged(
        shm::Plugged {
            slot,
            gpa,
            size,
            host_fd,
            dev,
            ino,
        },
        len,
    )
}

/// MAP_PRIVATE file mapping: LWK memory filled from the file by the proxy.
fn fill_from_file(va: u64, len: u64, fd: i32, off: u64) -> Result<(), Errno> {
    let mut done = 0u64;
    while done < len {
        let r = super::offload_result(
            u64::from(SYS_PREAD64),
            [fd as u64, va + done, len - done, off + done, 0, 0],
        )
        .map_err(unmappable)?;
        if r == 0 {
            break;
        }
        done += r;
    }
    Ok(())
}

/// What Linux says for a file that cannot be mapped.
fn unmappable(e: Errno) -> Errno {
    match e {
        Errno::ESPIPE | Errno::EISDIR => Errno::ENODEV,
        e => e,
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
        if let Some(id) = r.kind.shared_object() {
            return mremap_shared(p, id, old, old_len, new_len, flags, new_addr);
        }
        if p.aspace
            .pieces(old, old_len)
            .iter()
            .all(|r| !r.kind.is_backed())
        {
            return mremap_reserved(p, old, old_len, new_len, flags, new_addr);
        }
        remap_with(
            p,
            old,
            old_len,
            new_len,
            flags,
            new_addr,
            |p, va, from, len| {
                if from > 0 {
                    // Grown in place: fresh memory after the old.
                    p.aspace.map_anon(va, len, r.prot, r.kind)
                } else {
                    move_private(p, &r, old, old_len, va, len)
                }
            },
        )
    })
}

/// Private memory moved by mremap: a new mapping at `dst` holding the old
/// contents (copied through the kernel, page by page through the region
/// map), with the old protection.
fn move_private(
    p: &mut Process,
    r: &lwk_core::region::Region,
    old: u64,
    old_len: u64,
    dst: u64,
    new_len: u64,
) -> Result<(), Errno> {
    p.aspace
        .map_anon(dst, new_len, r.prot | PROT_READ | PROT_WRITE, r.kind)?;
    let copy_len = old_len.min(new_len);
    let mut buf = alloc::vec::Vec::new();
    buf.try_reserve_exact(64 * 1024)
        .map_err(|_| Errno::ENOMEM)?;
    buf.resize(64 * 1024, 0u8);
    let mut done = 0;
    while done < copy_len {
        let n = (copy_len - done).min(buf.len() as u64) as usize;
        copy_raw(p, old + done, dst + done, &mut buf[..n])?;
        done += n as u64;
    }
    if r.prot != r.prot | PROT_READ | PROT_WRITE {
        p.aspace.protect(dst, new_len, r.prot)?;
    }
    Ok(())
}

/// mremap of a reservation (PROT_NONE, no memory) or of pages past the end
/// of a file: the unbacked range moves, grows or shrinks.
fn mremap_reserved(
    p: &mut Process,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> SysResult {
    let first = p.aspace.regions().find(old).copied().ok_or(Errno::EFAULT)?;
    remap_with(
        p,
        old,
        old_len,
        new_len,
        flags,
        new_addr,
        |p, va, _, len| p.aspace.reserve_as(va, len, first.prot, first.kind),
    )
}

/// mremap of a shared mapping: the same object bytes at the new place (never
/// a copy); grown past the object's end, the pages beyond it raise SIGBUS
/// (as Linux does past the end of a file or of shared anonymous memory).
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
    let size = crate::shm::len(id).ok_or(Errno::EFAULT)?;
    remap_with(
        p,
        old,
        old_len,
        new_len,
        flags,
        new_addr,
        |p, va, from, len| {
            let inside = size.saturating_sub(off + from).min(len);
            if inside > 0 {
                p.aspace.map_object(va, id, off + from, inside, prot)?;
            }
            if inside < len {
                if let Err(e) =
                    p.aspace
                        .reserve_as(va + inside, len - inside, prot, RegionKind::PastEof)
                {
                    let _ = p.aspace.unmap(va, inside);
                    return Err(e);
                }
            }
            Ok(())
        },
    )
}

/// What mremap does with any mapping (`map(p, va, from, len)` maps its
/// bytes `[from, from+len)` at `va`, the whole mapping when `from` is 0,
/// while the old one is still there): shrink in place, grow in place when
/// the range after it is free, else move (MREMAP_MAYMOVE, or to
/// MREMAP_FIXED's address) and unmap the old range.
fn remap_with(
    p: &mut Process,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
    mut map: impl FnMut(&mut Process, u64, u64, u64) -> Result<(), Errno>,
) -> SysResult {
    if flags & MREMAP_FIXED == 0 {
        if new_len <= old_len {
            p.aspace.unmap(old + new_len, old_len - new_len)?;
            return Ok(old);
        }
        let extra = new_len - old_len;
        if in_window(old + old_len, extra) && p.aspace.is_free(old + old_len, extra) {
            map(p, old + old_len, old_len, extra)?;
            return Ok(old);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
    }
    let dst = move_destination(p, old, old_len, new_len, flags, new_addr)?;
    map(p, dst, 0, new_len)?;
    p.aspace.unmap(old, old_len)?;
    Ok(dst)
}

/// Where mremap moves a mapping: `new_addr` with MREMAP_FIXED (which must
/// not overlap the old range, as Linux checks; whatever is there goes), else
/// a free range.
fn move_destination(
    p: &mut Process,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> Result<u64, Errno> {
    if flags & MREMAP_FIXED == 0 {
        return p
            .aspace
            .find_free(new_len, PAGE, MMAP_BOTTOM, MMAP_TOP)
            .ok_or(Errno::ENOMEM);
    }
    if !new_addr.is_multiple_of(PAGE) || !in_window(new_addr, new_len) {
        return Err(Errno::EINVAL);
    }
    if new_addr < old + old_len && old < new_addr + new_len {
        return Err(Errno::EINVAL);
    }
    p.aspace.unmap(new_addr, new_len)?;
    Ok(new_addr)
}

fn copy_raw(p: &Process, src: u64, dst: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let asp = &p.aspace;
    // Read regardless of protection (PROT_NONE mappings move too).
    let mut off = 0usize;
    while off < buf.len() {
        let r = asp.regions().find(src + off as u64).ok_or(Errno::EFAULT)?;
        let n = ((r.end() - (src + off as u64)) as usize).min(buf.len() - off);
        if r.kind.is_backed() {
            asp.read_phys(
                r.phys + (src + off as u64 - r.start),
                &mut buf[off..off + n],
            );
        } else {
            // A reserved piece has never held anything.
            buf[off..off + n].fill(0);
        }
        off += n;
    }
    uaccess::fill_user(asp, dst, buf)
}
