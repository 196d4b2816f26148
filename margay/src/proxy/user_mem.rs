//! Application memory as the proxy sees it: user virtual addresses translated
//! through the mirror table into bounds-checked guest RAM accesses, and the
//! validation of an offloaded call's pointer arguments before Linux sees them.

use linux_abi::mman::{PROT_READ, PROT_WRITE};
use linux_abi::{Arg, Errno};
use wire::{USER_MAX, USER_MIN};

use super::mirror::Mirror;
use crate::guest_mem::GuestMem;
use crate::trace::UserRead;

pub use linux_abi::fs::{PATH_MAX, UIO_MAXIOV as IOV_MAX};
const IOVEC_SIZE: u64 = 16;

/// The application's memory: its mirror table over guest RAM.
pub struct UserMem<'a> {
    pub mirror: &'a Mirror,
    pub ram: &'a GuestMem,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CStrError {
    /// A byte before the NUL is not mirrored readable.
    Fault,
    /// No NUL within the limit.
    TooLong,
}

impl UserMem<'_> {
    /// Copy `[addr, addr+len)` out of application memory (prot `need` everywhere).
    pub fn read(&self, addr: u64, len: usize, need: u32) -> Option<Vec<u8>> {
        let pieces = self.mirror.translate(addr, len as u64, need)?;
        let mut out = Vec::with_capacity(len);
        for (off, n) in pieces {
            out.extend(self.ram.read_bytes(off, usize::try_from(n).ok()?).ok()?);
        }
        Some(out)
    }

    /// Copy `data` into writable application memory at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<()> {
        let pieces = self.mirror.translate(addr, data.len() as u64, PROT_WRITE)?;
        let mut rest = data;
        for (off, n) in pieces {
            let (now, later) = rest.split_at(usize::try_from(n).ok()?);
            self.ram.write_bytes(off, now).ok()?;
            rest = later;
        }
        Some(())
    }

    /// The NUL-terminated string at `addr` (without the NUL), at most `max` bytes
    /// before the NUL.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, CStrError> {
        let mut out = Vec::new();
        let mut cur = addr;
        loop {
            let e = self.mirror.find(cur).ok_or(CStrError::Fault)?;
            if e.prot & PROT_READ == 0 {
                return Err(CStrError::Fault);
            }
            // Read up to the end of the region, the page, or the limit.
            let region_left = e.vaddr + e.len - cur;
            let page_left = 4096 - (cur % 4096);
            let want = region_left.min(page_left).min((max + 1 - out.len()) as u64);
            let off = e.file_off + (cur - e.vaddr);
            let chunk = self
                .ram
                .read_bytes(off, usize::try_from(want).map_err(|_| CStrError::Fault)?)
                .map_err(|_| CStrError::Fault)?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            if out.len() > max {
                return Err(CStrError::TooLong);
            }
            cur = cur.checked_add(want).ok_or(CStrError::Fault)?;
        }
    }

    /// Check the pointer arguments of a call with signature `sig` against the
    /// mirror. NULL pointers pass (Linux decides what they mean).
    pub fn validate(&self, sig: &[Arg], args: &[u64; 6]) -> Result<(), Errno> {
        let arg = |i: u8| args.get(usize::from(i)).copied().unwrap_or(0);
        for (&kind, &a) in sig.iter().zip(args.iter()) {
            if a == 0 {
                continue;
            }
            match kind {
                Arg::Int | Arg::Hex | Arg::Mode | Arg::Fd => {}
                Arg::Path => match self.read_cstr(a, PATH_MAX - 1) {
                    Ok(_) => {}
                    Err(CStrError::Fault) => return Err(Errno::EFAULT),
                    Err(CStrError::TooLong) => return Err(Errno::ENAMETOOLONG),
                },
                Arg::InBuf(i) => self.need(a, arg(i), PROT_READ)?,
                Arg::OutBuf(i) => self.need(a, arg(i), PROT_WRITE)?,
                Arg::In(n) => self.need(a, u64::from(n), PROT_READ)?,
                Arg::Out(n) => self.need(a, u64::from(n), PROT_WRITE)?,
                // The count is an int; Linux reads nothing for a count <= 0.
                Arg::InArray(i, size) => {
                    if let Ok(n @ 1..) = u64::try_from(arg(i) as i32) {
                        self.need(a, n.saturating_mul(u64::from(size)), PROT_READ)?;
                    }
                }
                Arg::IovIn(i) => self.iovecs(a, arg(i), PROT_READ)?,
                Arg::IovOut(i) => self.iovecs(a, arg(i), PROT_WRITE)?,
                // Unknown size: it must at least point into the user window, where
                // everything unmirrored is reserved PROT_NONE (so Linux returns
                // EFAULT) and none of the proxy's own memory lives.
                Arg::Ptr => {
                    if !(USER_MIN..USER_MAX).contains(&a) {
                        return Err(Errno::EFAULT);
                    }
                }
            }
        }
        Ok(())
    }

    fn need(&self, addr: u64, len: u64, prot: u32) -> Result<(), Errno> {
        if self.mirror.covers(addr, len, prot) {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }

    fn iovecs(&self, addr: u64, count: u64, prot: u32) -> Result<(), Errno> {
        if count > IOV_MAX {
            return Err(Errno::EINVAL);
        }
        let len = usize::try_from(count * IOVEC_SIZE).map_err(|_| Errno::EINVAL)?;
        let raw = self.read(addr, len, PROT_READ).ok_or(Errno::EFAULT)?;
        for iov in raw.chunks_exact(16) {
            let mut base = [0u8; 8];
            let mut n = [0u8; 8];
            base.copy_from_slice(&iov[..8]);
            n.copy_from_slice(&iov[8..]);
            let (base, n) = (u64::from_le_bytes(base), u64::from_le_bytes(n));
            if n != 0 {
                self.need(base, n, prot)?;
            }
        }
        Ok(())
    }
}

impl UserRead for UserMem<'_> {
    fn read_cstr(&self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
        match UserMem::read_cstr(self, addr, max) {
            Ok(s) => Some((s, false)),
            Err(CStrError::TooLong) => {
                let s = self.read(addr, max, PROT_READ)?;
                Some((s, true))
            }
            Err(CStrError::Fault) => None,
        }
    }

    fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.read(addr, len, PROT_READ)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mirror::tests::{entry, MEM};
    use super::*;
    use linux_abi::syscalls_gen::*;

    /// RAM with regions: 0x40_0000 (2 pages, read-only), 0x40_2000 (2 pages, rw),
    /// 0x50_0000 (1 page, rw, not adjacent).
    fn setup() -> (GuestMem, Mirror) {
        let ram = GuestMem::anonymous(MEM as usize);
        let m = Mirror::new(
            vec![
                entry(0x40_0000, 0x2000, 0x200_0000, PROT_READ),
                entry(0x40_2000, 0x2000, 0x210_0000, PROT_READ | PROT_WRITE),
                entry(0x50_0000, 0x1000, 0x300_0000, PROT_READ | PROT_WRITE),
            ],
            MEM,
        )
        .unwrap();
        (ram, m)
    }

    fn sig(nr: u32) -> &'static [Arg] {
        linux_abi::signature(u64::from(nr)).unwrap()
    }

    #[test]
    fn strings_across_regions_and_limits() {
        let (ram, mirror) = setup();
        let u = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        // "/etc/" at the end of the first region, "passwd\0" at the start of the next.
        ram.write_bytes(0x200_2000 - 5, b"/etc/").unwrap();
        ram.write_bytes(0x210_0000, b"passwd\0").unwrap();
        assert_eq!(u.read_cstr(0x40_2000 - 5, 100).unwrap(), b"/etc/passwd");
        assert_eq!(u.read_cstr(0x40_2000 - 5, 11).unwrap(), b"/etc/passwd");
        assert_eq!(u.read_cstr(0x40_2000 - 5, 10), Err(CStrError::TooLong));
        // A string running off the end of a region into a gap.
        ram.write_bytes(0x300_0ff0, &[b'a'; 16]).unwrap();
        assert_eq!(u.read_cstr(0x50_0ff0, 100), Err(CStrError::Fault));
        assert_eq!(u.read_cstr(0x9000_0000, 100), Err(CStrError::Fault));
        // Write through the mirror, refused into read-only memory.
        assert!(u.write(0x40_3ffe, b"xy").is_some());
        assert_eq!(ram.read_bytes(0x210_1ffe, 2).unwrap(), b"xy");
        assert!(u.write(0x40_1fff, b"xy").is_none());
        assert!(u.write(0x40_3fff, b"xy").is_none());
    }

    #[test]
    fn buffers_are_checked_against_the_mirror() {
        let (ram, mirror) = setup();
        let u = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        // write(1, buf, len): buffer must be readable.
        assert_eq!(
            u.validate(sig(SYS_WRITE), &[1, 0x40_0000, 0x4000, 0, 0, 0]),
            Ok(())
        );
        assert_eq!(
            u.validate(sig(SYS_WRITE), &[1, 0x40_0000, 0x4001, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        // read(0, buf, len): buffer must be writable.
        assert_eq!(
            u.validate(sig(SYS_READ), &[0, 0x40_0000, 16, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            u.validate(sig(SYS_READ), &[0, 0x40_2000, 16, 0, 0, 0]),
            Ok(())
        );
        // Zero length and NULL pass through to Linux.
        assert_eq!(
            u.validate(sig(SYS_READ), &[0, 0xdead_0000, 0, 0, 0, 0]),
            Ok(())
        );
        assert_eq!(u.validate(sig(SYS_READ), &[0, 0, 16, 0, 0, 0]), Ok(()));
        // Kernel or proxy addresses, and overflowing lengths.
        assert_eq!(
            u.validate(sig(SYS_READ), &[0, 0x7fff_0000_0000, 16, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            u.validate(sig(SYS_WRITE), &[1, 0x40_0000, u64::MAX, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        // fstat(fd, statbuf): 144 writable bytes.
        assert_eq!(
            u.validate(sig(SYS_FSTAT), &[3, 0x40_3f80, 0, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            u.validate(sig(SYS_FSTAT), &[3, 0x40_3000, 0, 0, 0, 0]),
            Ok(())
        );
        // Untyped pointers must lie in the user window.
        assert_eq!(
            u.validate(sig(SYS_WAIT4), &[0, 0x5555_0000_0000, 0, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            u.validate(sig(SYS_WAIT4), &[0, 0x40_0000, 0, 0, 0, 0]),
            Ok(())
        );
    }

    #[test]
    fn paths_must_be_terminated_in_readable_memory() {
        let (ram, mirror) = setup();
        let u = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        ram.write_bytes(0x200_0000, b"/tmp/x\0").unwrap();
        let s = sig(SYS_OPENAT);
        assert_eq!(
            u.validate(s, &[u64::MAX - 99, 0x40_0000, 0, 0, 0, 0]),
            Ok(())
        );
        assert_eq!(
            u.validate(s, &[3, 0x41_0000, 0, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        // 5000 non-NUL bytes: too long for a path.
        ram.write_bytes(0x210_0000, &[b'a'; 0x2000]).unwrap();
        assert_eq!(
            u.validate(s, &[3, 0x40_2000, 0, 0, 0, 0]),
            Err(Errno::ENAMETOOLONG)
        );
        // A path running into the end of the mirror.
        assert_eq!(
            u.validate(s, &[3, 0x40_3ff0, 0, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn iovecs_and_their_buffers_are_checked() {
        let (ram, mirror) = setup();
        let u = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        let put_iov = |i: u64, base: u64, len: u64| {
            ram.write_obj(0x210_0000 + 16 * i, &[base, len]).unwrap();
        };
        put_iov(0, 0x40_0000, 0x100); // read-only data
        put_iov(1, 0x50_0000, 0x1000); // rw data
        put_iov(2, 0xdead_0000, 0); // empty: ignored
        let wv = sig(SYS_WRITEV);
        let rv = sig(SYS_READV);
        assert_eq!(u.validate(wv, &[1, 0x40_2000, 3, 0, 0, 0]), Ok(()));
        // readv would write into the read-only buffer.
        assert_eq!(
            u.validate(rv, &[0, 0x40_2000, 3, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        assert_eq!(u.validate(rv, &[0, 0x40_2010, 2, 0, 0, 0]), Ok(()));
        put_iov(3, 0x50_0800, 0x1000); // runs past its region
        assert_eq!(
            u.validate(wv, &[1, 0x40_2000, 4, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        // The iovec array itself must be readable and not too long.
        assert_eq!(
            u.validate(wv, &[1, 0x40_3ff0, 2, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            u.validate(wv, &[1, 0x40_2000, 1025, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            u.validate(wv, &[1, 0x40_2000, u64::MAX, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
    }
}
