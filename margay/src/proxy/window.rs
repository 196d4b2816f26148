//! The proxy's reservation of the user address window `[USER_MIN, USER_MAX)`, and
//! the only code that maps inside it: mirrors of guest RAM pages at the addresses
//! the LWK application uses, and PROT_NONE reservation everywhere else.
//!
//! Because the whole window is reserved before anything else is mapped, no Rust
//! object of the proxy ever lives in it, which is what makes remapping it sound.

use std::io;

use thiserror::Error;
use wire::{MirrorEntry, USER_MAX, USER_MIN};

use std::os::fd::AsFd as _;

use super::files::{self, PluggedFile};
use crate::guest_mem::GuestMem;

#[derive(Debug, Error)]
pub enum WindowError {
    #[error("cannot reserve the user address window [{USER_MIN:#x}, {USER_MAX:#x}): {0} (is something already mapped there, or is address-space size limited with ulimit -v?)")]
    Reserve(io::Error),
    #[error("cannot mirror region {entry:x?}: {err}")]
    Map { entry: MirrorEntry, err: io::Error },
    #[error("region {0:x?} is outside the user window or guest RAM")]
    OutOfRange(MirrorEntry),
}

/// Proof that the user window is reserved by this process.
pub struct Window(crate::sys::Reservation);

fn in_window(vaddr: u64, len: u64) -> Option<(usize, usize)> {
    let end = vaddr.checked_add(len)?;
    if vaddr < USER_MIN || end > USER_MAX || len == 0 {
        return None;
    }
    Some((usize::try_from(vaddr).ok()?, usize::try_from(len).ok()?))
}

impl Window {
    /// Reserve the window (inaccessible, no memory committed). Fails if anything is
    /// already mapped there.
    pub fn reserve() -> Result<Window, WindowError> {
        let (addr, len) = in_window(USER_MIN, USER_MAX - USER_MIN)
            .ok_or_else(|| WindowError::Reserve(io::Error::from_raw_os_error(libc::EINVAL)))?;
        crate::sys::Reservation::reserve(addr, len)
            .map(Window)
            .map_err(WindowError::Reserve)
    }

    /// Return `[vaddr, vaddr+len)` to the inaccessible reservation.
    pub fn release(&self, e: &MirrorEntry) -> Result<(), WindowError> {
        let (addr, len) = in_window(e.vaddr, e.len).ok_or(WindowError::OutOfRange(*e))?;
        self.0
            .clear(addr, len)
            .map_err(|err| WindowError::Map { entry: *e, err })
    }

    /// Map guest RAM `[file_off, file_off+len)` at `vaddr` with `prot` (PROT_EXEC is
    /// dropped: the proxy never runs application code). PROT_NONE regions stay
    /// reserved.
    /// Regions in the dimm of a plugged file (`files`) map the file itself.
    pub fn mirror(
        &self,
        ram: &GuestMem,
        e: &MirrorEntry,
        files: &[PluggedFile],
    ) -> Result<(), WindowError> {
        let prot = e.prot & (libc::PROT_READ | libc::PROT_WRITE) as u32;
        if prot == 0 {
            return self.release(e);
        }
        let (addr, len) = in_window(e.vaddr, e.len).ok_or(WindowError::OutOfRange(*e))?;
        let writable = prot & libc::PROT_WRITE as u32 != 0;
        if e.file_off >= ram.size() {
            let f = files::find(files, e.file_off, e.len).ok_or(WindowError::OutOfRange(*e))?;
            let file = f
                .open(writable)
                .map_err(|err| WindowError::Map { entry: *e, err })?;
            return self
                .0
                .map_file(file.as_fd(), e.file_off - f.gpa, addr, len, writable)
                .map_err(|err| WindowError::Map { entry: *e, err });
        }
        if ram.host_addr(e.file_off, e.len).is_err() {
            return Err(WindowError::OutOfRange(*e));
        }
        self.0
            .alias(ram, e.file_off, addr, len, writable)
            .map_err(|err| WindowError::Map { entry: *e, err })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_window_ranges_are_accepted() {
        assert!(in_window(USER_MIN, 0x1000).is_some());
        assert!(in_window(USER_MIN - 0x1000, 0x1000).is_none());
        assert!(in_window(USER_MAX - 0x1000, 0x1000).is_some());
        assert!(in_window(USER_MAX - 0x1000, 0x2000).is_none());
        assert!(in_window(u64::MAX - 0xfff, 0x1000).is_none());
        assert!(in_window(USER_MIN, 0).is_none());
    }
}
