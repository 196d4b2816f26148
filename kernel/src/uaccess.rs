//! Access to user memory, only through the address space's region map: every
//! byte is checked against a region with the needed protection, then copied
//! through the direct map. A bad pointer is always EFAULT, never a fault in
//! the kernel.

use crate::arch::plain::{bytes_of, bytes_of_mut, zeroed, Plain};
use crate::aspace::AddressSpace;
use alloc::vec::Vec;
use core::marker::PhantomData;
use linux_abi::mman::{PROT_READ, PROT_WRITE};
use linux_abi::Errno;

/// Visit the physical pieces of `[addr, addr+len)`, each inside one region with `prot`.
fn pieces(
    asp: &AddressSpace,
    addr: u64,
    len: u64,
    prot: u32,
    mut f: impl FnMut(u64, u64, u64),
) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    if !asp.regions().check_range(addr, len, prot) {
        return Err(Errno::EFAULT);
    }
    let mut done = 0u64;
    while done < len {
        let a = addr + done;
        let r = asp
            .regions()
            .find(a)
            .filter(|r| r.kind.is_backed())
            .ok_or(Errno::EFAULT)?;
        let n = (r.end() - a).min(len - done);
        f(r.phys + (a - r.start), done, n);
        done += n;
    }
    Ok(())
}

pub fn copy_from_user(asp: &AddressSpace, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    pieces(asp, addr, buf.len() as u64, PROT_READ, |phys, off, n| {
        asp.read_phys(phys, &mut buf[off as usize..(off + n) as usize]);
    })
}

pub fn copy_to_user(asp: &AddressSpace, addr: u64, data: &[u8]) -> Result<(), Errno> {
    pieces(asp, addr, data.len() as u64, PROT_WRITE, |phys, off, n| {
        asp.write_phys(phys, &data[off as usize..(off + n) as usize]);
    })
}

/// Copy into user memory regardless of protection (loader, kernel-filled data).
pub fn fill_user(asp: &AddressSpace, addr: u64, data: &[u8]) -> Result<(), Errno> {
    pieces(asp, addr, data.len() as u64, 0, |phys, off, n| {
        asp.write_phys(phys, &data[off as usize..(off + n) as usize]);
    })
}

pub fn zero_user(asp: &AddressSpace, addr: u64, len: u64) -> Result<(), Errno> {
    pieces(asp, addr, len, 0, |phys, _, n| asp.zero_phys(phys, n))
}

/// Read a NUL-terminated string of at most `max` bytes (without the NUL).
pub fn read_cstring(asp: &AddressSpace, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut a = addr;
    loop {
        let r = asp.regions().find(a).ok_or(Errno::EFAULT)?;
        if r.prot & PROT_READ == 0 || !r.kind.is_backed() {
            return Err(Errno::EFAULT);
        }
        let n = ((r.end() - a) as usize).min(256);
        let mut buf = alloc::vec![0u8; n];
        asp.read_phys(r.phys + (a - r.start), &mut buf);
        let take = buf.iter().position(|&b| b == 0);
        // Strings may be long (execve's): grow fallibly.
        out.try_reserve(take.unwrap_or(n))
            .map_err(|_| Errno::ENOMEM)?;
        if let Some(z) = take {
            out.extend_from_slice(&buf[..z]);
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        a += n as u64;
    }
}

/// A user-space address of a `T`, as a syscall argument gives it. Every
/// access is checked against the address space's regions (EFAULT when any
/// byte is not mapped with the protection it needs); nothing ever holds a
/// reference into user memory.
pub struct UserPtr<T> {
    addr: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for UserPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for UserPtr<T> {}

impl<T> core::fmt::Debug for UserPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}", self.addr)
    }
}

impl<T> UserPtr<T> {
    pub const fn new(addr: u64) -> Self {
        UserPtr {
            addr,
            _t: PhantomData,
        }
    }

    pub const fn addr(self) -> u64 {
        self.addr
    }

    pub const fn is_null(self) -> bool {
        self.addr == 0
    }

    /// The same address as a pointer to a `U`.
    pub const fn cast<U>(self) -> UserPtr<U> {
        UserPtr::new(self.addr)
    }

    /// The `i`-th `T` from here (array indexing; wraps like the CPU would).
    pub const fn at(self, i: u64) -> Self {
        UserPtr::new(
            self.addr
                .wrapping_add(i.wrapping_mul(size_of::<T>() as u64)),
        )
    }

    /// The user's pointer, unless it is NULL.
    pub fn non_null(self) -> Option<Self> {
        (!self.is_null()).then_some(self)
    }
}

impl<T: Plain> UserPtr<T> {
    /// Read the `T` (readable memory) in `asp`.
    pub fn read_in(self, asp: &AddressSpace) -> Result<T, Errno> {
        let mut v = zeroed::<T>();
        copy_from_user(asp, self.addr, bytes_of_mut(&mut v))?;
        Ok(v)
    }

    /// Write `v` (writable memory) in `asp`.
    pub fn write_in(self, asp: &AddressSpace, v: &T) -> Result<(), Errno> {
        copy_to_user(asp, self.addr, bytes_of(v))
    }

    /// Read the `T` in the current process.
    pub fn read(self) -> Result<T, Errno> {
        crate::process::with(|p| self.read_in(&p.aspace))
    }

    /// Write `v` in the current process.
    pub fn write(self, v: &T) -> Result<(), Errno> {
        crate::process::with(|p| self.write_in(&p.aspace, v))
    }
}

impl UserPtr<u8> {
    /// Copy `data` to the bytes from here (writable memory) in the current process.
    pub fn write_bytes(self, data: &[u8]) -> Result<(), Errno> {
        crate::process::with(|p| copy_to_user(&p.aspace, self.addr, data))
    }

    /// Fill `buf` from the bytes from here (readable memory) in the current process.
    pub fn read_bytes(self, buf: &mut [u8]) -> Result<(), Errno> {
        crate::process::with(|p| copy_from_user(&p.aspace, self.addr, buf))
    }

    /// The NUL-terminated string from here, at most `max` bytes (ENAMETOOLONG).
    pub fn read_cstring(self, max: usize) -> Result<Vec<u8>, Errno> {
        crate::process::with(|p| read_cstring(&p.aspace, self.addr, max))
    }
}
