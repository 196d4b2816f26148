//! The proxy's reservation of the user address window `[USER_MIN, USER_MAX)`, and
//! the only code that maps inside it: mirrors of guest RAM pages at the addresses
//! the LWK application uses, and PROT_NONE reservation everywhere else.
//!
//! Because the whole window is reserved before anything else is mapped, no Rust
//! object of the proxy ever lives in it, which is what makes remapping it sound.

use std::io;

use thiserror::Error;
use wire::{MirrorEntry, USER_MAX, USER_MIN};

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
pub struct Window(());

fn fail_if(r: *mut libc::c_void) -> io::Result<()> {
    if r == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

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
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no
        // memory in use can be affected; the result is checked below.
        let r = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        fail_if(r).map_err(WindowError::Reserve)?;
        if r as usize != addr {
            // A kernel older than 4.17 treats the flag as a hint.
            // SAFETY: unmapping the mapping we just created (nothing else uses it).
            unsafe { libc::munmap(r, len) };
            return Err(WindowError::Reserve(io::Error::from_raw_os_error(
                libc::EEXIST,
            )));
        }
        Ok(Window(()))
    }

    /// Return `[vaddr, vaddr+len)` to the inaccessible reservation.
    pub fn release(&self, e: &MirrorEntry) -> Result<(), WindowError> {
        let (addr, len) = in_window(e.vaddr, e.len).ok_or(WindowError::OutOfRange(*e))?;
        // SAFETY: the range is inside the window this process reserved, where no
        // Rust object lives; MAP_FIXED replaces only our own mirror mappings.
        let r = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        fail_if(r).map_err(|err| WindowError::Map { entry: *e, err })
    }

    /// Map guest RAM `[file_off, file_off+len)` at `vaddr` with `prot` (PROT_EXEC is
    /// dropped: the proxy never runs application code). PROT_NONE regions stay
    /// reserved.
    pub fn mirror(&self, ram: &GuestMem, e: &MirrorEntry) -> Result<(), WindowError> {
        let prot = e.prot & (libc::PROT_READ | libc::PROT_WRITE) as u32;
        if prot == 0 {
            return self.release(e);
        }
        let (addr, len) = in_window(e.vaddr, e.len).ok_or(WindowError::OutOfRange(*e))?;
        let src = ram
            .host_addr(e.file_off, e.len)
            .map_err(|_| WindowError::OutOfRange(*e))?;
        let map_err = |err| WindowError::Map { entry: *e, err };
        // SAFETY: `src` is inside our shared RAM mapping (checked by host_addr); with
        // old_size 0 mremap duplicates those pages instead of moving them. The target
        // is inside the reserved window, where no Rust object lives.
        let r = unsafe {
            libc::mremap(
                src as *mut libc::c_void,
                0,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                addr as *mut libc::c_void,
            )
        };
        fail_if(r).map_err(map_err)?;
        if prot != (libc::PROT_READ | libc::PROT_WRITE) as u32 {
            // SAFETY: changes the protection of the mapping just created in the window.
            let p = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot as i32) };
            if p != 0 {
                let err = io::Error::last_os_error();
                let _ = self.release(e);
                return Err(map_err(err));
            }
        }
        Ok(())
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
