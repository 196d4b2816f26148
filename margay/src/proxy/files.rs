//! Shared file mappings on the proxy's side (the kernel's `FileMap` steps):
//! what a descriptor is, plugging a file into guest memory through margay,
//! and attaching to a file plugged earlier. Each plugged file this process
//! maps is remembered (`PluggedFile`), so the mirror maps the file itself (as
//! margay holds it open) at the application's addresses: offloaded calls then
//! see the same page-cache pages as the LWK.

use std::ffi::OsStr;
use std::os::fd::AsFd as _;
use std::os::unix::ffi::OsStrExt as _;

use linux_abi::Errno;
use wire::{HOTPLUG_BASE, HOTPLUG_SLOTS, HOTPLUG_SPACE};

use super::decode::Response;
use super::views::FileId;

const PAGE: u64 = 4096;

/// A file plugged into guest memory that this process maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluggedFile {
    pub slot: u32,
    /// Guest-physical range of the dimm: file bytes `[0, size)`.
    pub gpa: u64,
    pub size: u64,
    /// The descriptor margay keeps open for it (`/proc/<margay>/fd/<n>`).
    pub host_fd: u32,
    /// For /proc/self/maps.
    pub name: Vec<u8>,
    pub id: FileId,
}

impl PluggedFile {
    /// Whether guest-physical `[gpa, gpa+len)` lies in this file's dimm.
    pub fn holds(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.gpa
            && gpa
                .checked_add(len)
                .is_some_and(|e| e <= self.gpa + self.size)
    }

    /// The file as margay holds it, opened for mirroring.
    pub fn open(&self, writable: bool) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(format!(
                "/proc/{}/fd/{}",
                crate::sys::margay_pid(),
                self.host_fd
            ))
    }
}

/// The file that holds guest-physical `[gpa, gpa+len)`, if any.
pub fn find(files: &[PluggedFile], gpa: u64, len: u64) -> Option<&PluggedFile> {
    files.iter().find(|f| f.holds(gpa, len))
}

/// Remember `f`, replacing what was known of its slot.
fn remember(files: &mut Vec<PluggedFile>, f: PluggedFile) {
    files.retain(|o| o.slot != f.slot);
    files.push(f);
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(|n| Errno::try_from(n).ok())
        .unwrap_or(Errno::EIO)
}

fn fd_of(arg: u64) -> Result<i32, Response> {
    i32::try_from(arg)
        .ok()
        .filter(|&fd| fd >= 0)
        .ok_or(Response::err(Errno::EBADF))
}

/// `FILEMAP_INFO`: may descriptor `fd` be mapped shared (for writing when
/// `want_write`)? `ret` 0 with `aux` = [dev, ino, size, 0] for a regular
/// file, 1 for `/dev/zero`, or -errno as Linux's mmap gives it (EPERM for a
/// writable mapping of a memfd sealed against writes).
pub fn info(fd: u64, want_write: bool) -> Response {
    let fd = match fd_of(fd) {
        Ok(fd) => fd,
        Err(r) => return r,
    };
    let (st, mode) = match crate::sys::describe_fd(fd) {
        Ok(v) => v,
        Err(e) => return Response::err(errno_of(&e)),
    };
    // Linux: a shared mapping needs a descriptor open for reading, and for
    // writing too when the mapping is writable.
    if mode == libc::O_WRONLY || (want_write && mode != libc::O_RDWR) {
        return Response::err(Errno::EACCES);
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG if want_write && crate::sys::write_sealed(fd) => Response::err(Errno::EPERM),
        libc::S_IFREG => Response {
            ret: 0,
            aux: Some([st.st_dev, st.st_ino, st.st_size.max(0).unsigned_abs(), 0]),
        },
        libc::S_IFCHR if st.st_rdev == libc::makedev(1, 5) => Response::ret(1),
        _ => Response::err(Errno::ENODEV),
    }
}

/// `FILEMAP_PLUG`: have margay plug the first `size` bytes of `fd`'s file.
pub fn plug(files: &mut Vec<PluggedFile>, fd: u64, size: u64) -> Response {
    let fd = match fd_of(fd) {
        Ok(fd) => fd,
        Err(r) => return r,
    };
    plug_fd(files, fd, size, link_name(fd))
}

/// Plug the first `size` bytes of the file this process has open as `fd`,
/// shown as `name` in /proc/self/maps.
fn plug_fd(files: &mut Vec<PluggedFile>, fd: i32, size: u64, name: Vec<u8>) -> Response {
    if size == 0 || !size.is_multiple_of(PAGE) {
        return Response::err(Errno::EINVAL);
    }
    let path = format!("/proc/{}/fd/{fd}", std::process::id());
    match crate::hotplug::request(crate::sys::margay_pid(), &path, size) {
        Ok(p) => {
            let ok = p.slot < HOTPLUG_SLOTS
                && p.gpa >= HOTPLUG_BASE
                && p.gpa
                    .checked_add(p.size)
                    .is_some_and(|e| e <= HOTPLUG_BASE + HOTPLUG_SPACE);
            if !ok {
                return Response::err(Errno::EIO);
            }
            let f = PluggedFile {
                slot: p.slot,
                gpa: p.gpa,
                size: p.size,
                host_fd: p.host_fd,
                name,
                id: file_id(fd),
            };
            remember(files, f);
            Response {
                ret: 0,
                aux: Some([u64::from(p.slot), p.gpa, p.size, u64::from(p.host_fd)]),
            }
        }
        Err((errno, msg)) => {
            eprintln!("margay: cannot map a file shared: {msg}");
            Response::err(Errno::try_from(errno).unwrap_or(Errno::ENODEV))
        }
    }
}

/// `FILEMAP_ATTACH`: the kernel maps dimm `slot` (`[gpa, gpa+size)`, held by
/// margay as `host_fd`) for `fd`'s file, plugged earlier; check that it is the
/// same file and remember it for the mirror.
pub fn attach(files: &mut Vec<PluggedFile>, fd: u64, args: [u64; 4]) -> Response {
    let fd = match fd_of(fd) {
        Ok(fd) => fd,
        Err(r) => return r,
    };
    attach_fd(files, fd, args, link_name(fd))
}

fn attach_fd(files: &mut Vec<PluggedFile>, fd: i32, args: [u64; 4], name: Vec<u8>) -> Response {
    let [slot, gpa, size, host_fd] = args;
    let (Ok(slot), Ok(host_fd)) = (u32::try_from(slot), u32::try_from(host_fd)) else {
        return Response::err(Errno::EINVAL);
    };
    let in_window = gpa >= HOTPLUG_BASE
        && gpa
            .checked_add(size)
            .is_some_and(|e| e <= HOTPLUG_BASE + HOTPLUG_SPACE);
    if slot >= HOTPLUG_SLOTS || !in_window || !size.is_multiple_of(PAGE) {
        return Response::err(Errno::EINVAL);
    }
    let f = PluggedFile {
        slot,
        gpa,
        size,
        host_fd,
        name,
        id: file_id(fd),
    };
    // The dimm's file must be the descriptor's.
    let same = f
        .open(false)
        .ok()
        .and_then(|h| crate::sys::describe_fd(std::os::fd::AsRawFd::as_raw_fd(&h.as_fd())).ok())
        .zip(crate::sys::describe_fd(fd).ok())
        .is_some_and(|((a, _), (b, _))| a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    if !same {
        return Response::err(Errno::EINVAL);
    }
    remember(files, f);
    Response::ret(0)
}

/// A SysV shared memory segment this proxy attached for its LWK process
/// (`FILEMAP_SHMAT`): Linux counts the attachment (shm_nattch, and a removed
/// segment lives until its last detach), and the file behind it, opened
/// through /proc/self/map_files, is what margay plugs.
#[derive(Debug)]
pub struct SysvAttach {
    /// Where this proxy attached it: the handle the kernel names it by.
    pub addr: usize,
    pub file: std::fs::File,
}

const SHM_RDONLY: u64 = 0o10000;

/// What /proc/self/maps shows for a segment: Linux's name of its file,
/// `/SYSV<key> (deleted)`.
fn sysv_name(file: &std::fs::File) -> Vec<u8> {
    std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(file)
    ))
    .map(|p| p.into_os_string().into_encoded_bytes())
    .unwrap_or_default()
}

/// `FILEMAP_SHMAT`: attach segment `shmid` here; `aux` = [dev, ino, size,
/// handle].
pub fn shmat(sysv: &mut Vec<SysvAttach>, shmid: u64, flags: u64) -> Response {
    let Ok(shmid) = i32::try_from(shmid) else {
        return Response::err(Errno::EINVAL);
    };
    let rdonly = flags & SHM_RDONLY != 0;
    let (addr, size) = match crate::sys::shm_attach(shmid, rdonly) {
        Ok(v) => v,
        Err(e) => return Response::err(errno_of(&e)),
    };
    let end = addr as u64 + size.div_ceil(PAGE) * PAGE;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(!rdonly)
        .open(format!("/proc/self/map_files/{addr:x}-{end:x}"));
    let file = match file {
        Ok(f) => f,
        Err(e) => {
            let _ = crate::sys::shm_detach(addr);
            eprintln!(
                "margay: cannot map SysV segment {shmid} on the LWK: opening its file through /proc/self/map_files: {e} (this needs CAP_CHECKPOINT_RESTORE or root)"
            );
            return Response::err(Errno::EACCES);
        }
    };
    let st = match crate::sys::describe_fd(std::os::fd::AsRawFd::as_raw_fd(&file)) {
        Ok((st, _)) => st,
        Err(e) => {
            let _ = crate::sys::shm_detach(addr);
            return Response::err(errno_of(&e));
        }
    };
    sysv.push(SysvAttach { addr, file });
    Response {
        ret: 0,
        aux: Some([st.st_dev, st.st_ino, size, addr as u64]),
    }
}

fn sysv_by_handle(sysv: &[SysvAttach], handle: u64) -> Result<&SysvAttach, Response> {
    sysv.iter()
        .find(|a| a.addr as u64 == handle)
        .ok_or(Response::err(Errno::EINVAL))
}

/// `FILEMAP_SHM_PLUG`: plug the segment of attachment `handle`.
pub fn shm_plug(
    files: &mut Vec<PluggedFile>,
    sysv: &[SysvAttach],
    handle: u64,
    size: u64,
) -> Response {
    match sysv_by_handle(sysv, handle) {
        Ok(a) => {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&a.file);
            plug_fd(files, fd, size, sysv_name(&a.file))
        }
        Err(r) => r,
    }
}

/// `FILEMAP_SHM_ATTACH`: the kernel maps a dimm plugged earlier for the
/// segment of attachment `handle`.
pub fn shm_attach(
    files: &mut Vec<PluggedFile>,
    sysv: &[SysvAttach],
    handle: u64,
    args: [u64; 4],
) -> Response {
    match sysv_by_handle(sysv, handle) {
        Ok(a) => {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&a.file);
            attach_fd(files, fd, args, sysv_name(&a.file))
        }
        Err(r) => r,
    }
}

/// `FILEMAP_SHMDT`: detach attachment `handle` (the LWK process detached it).
pub fn shmdt(sysv: &mut Vec<SysvAttach>, handle: u64) -> Response {
    let Some(i) = sysv.iter().position(|a| a.addr as u64 == handle) else {
        return Response::err(Errno::EINVAL);
    };
    let a = sysv.remove(i);
    match crate::sys::shm_detach(a.addr) {
        Ok(()) => Response::ret(0),
        Err(e) => Response::err(errno_of(&e)),
    }
}

/// Every attachment goes (the LWK process exec'd: Linux detaches them all).
pub fn shmdt_all(sysv: &mut Vec<SysvAttach>) {
    for a in sysv.drain(..) {
        let _ = crate::sys::shm_detach(a.addr);
    }
}

/// The name /proc shows for `fd`.
fn link_name(fd: i32) -> Vec<u8> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_default()
}

fn file_id(fd: i32) -> FileId {
    let p = format!("/proc/self/fd/{fd}");
    FileId::of(std::path::Path::new(OsStr::from_bytes(p.as_bytes()))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(slot: u32, gpa: u64, size: u64) -> PluggedFile {
        PluggedFile {
            slot,
            gpa,
            size,
            host_fd: 9,
            name: b"/dev/shm/x".to_vec(),
            id: FileId::default(),
        }
    }

    #[test]
    fn ranges_are_found_in_the_file_that_holds_them() {
        let files = vec![
            file(0, HOTPLUG_BASE, 0x4000),
            file(1, HOTPLUG_BASE + (2 << 20), 0x20_0000),
        ];
        assert_eq!(
            find(&files, HOTPLUG_BASE + 0x1000, 0x3000).map(|f| f.slot),
            Some(0)
        );
        assert_eq!(find(&files, HOTPLUG_BASE + 0x1000, 0x4000), None);
        assert_eq!(
            find(&files, HOTPLUG_BASE + (2 << 20), 0x20_0000).map(|f| f.slot),
            Some(1)
        );
        assert_eq!(find(&files, u64::MAX - 1, 2), None);
    }

    #[test]
    fn a_slot_is_remembered_once() {
        let mut files = vec![file(0, HOTPLUG_BASE, 0x1000)];
        remember(&mut files, file(0, HOTPLUG_BASE + (2 << 20), 0x2000));
        remember(&mut files, file(1, HOTPLUG_BASE, 0x1000));
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].gpa, HOTPLUG_BASE + (2 << 20));
    }

    #[test]
    fn descriptors_are_described_as_linux_mmap_judges_them() {
        let dir = std::env::temp_dir().join(format!("margay-files-{}", std::process::id()));
        std::fs::write(&dir, vec![7u8; 8192]).unwrap();
        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dir)
            .unwrap();
        let ro = std::fs::File::open(&dir).unwrap();
        let wo = std::fs::OpenOptions::new().write(true).open(&dir).unwrap();
        let raw = |f: &std::fs::File| std::os::fd::AsRawFd::as_raw_fd(f) as u64;
        let r = info(raw(&rw), true);
        assert_eq!(r.ret, 0);
        assert_eq!(r.aux.map(|a| a[2]), Some(8192));
        assert_eq!(info(raw(&ro), false).ret, 0);
        assert_eq!(info(raw(&ro), true).ret, Errno::EACCES.as_ret());
        assert_eq!(info(raw(&wo), false).ret, Errno::EACCES.as_ret());
        assert_eq!(info(u64::MAX, false).ret, Errno::EBADF.as_ret());
        let zero = std::fs::File::open("/dev/zero").unwrap();
        assert_eq!(info(raw(&zero), false).ret, 1);
        assert_eq!(info(raw(&zero), true).ret, Errno::EACCES.as_ret());
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(info(raw(&null), false).ret, Errno::ENODEV.as_ret());
        std::fs::remove_file(&dir).unwrap();
    }
}
