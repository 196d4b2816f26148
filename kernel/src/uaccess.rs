//! Access to user memory, only through the address space's region map: every
//! byte is checked against a region with the needed protection, then copied
//! through the direct map. A bad pointer is always EFAULT, never a fault in
//! the kernel.

use crate::aspace::AddressSpace;
use alloc::vec::Vec;
use linux_abi::Errno;
use lwk_core::region::{PROT_READ, PROT_WRITE};

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
        let r = asp.regions().find(a).ok_or(Errno::EFAULT)?;
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

pub fn read_u64(asp: &AddressSpace, addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_from_user(asp, addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

pub fn write_u64(asp: &AddressSpace, addr: u64, v: u64) -> Result<(), Errno> {
    copy_to_user(asp, addr, &v.to_le_bytes())
}

pub fn write_u32(asp: &AddressSpace, addr: u64, v: u32) -> Result<(), Errno> {
    copy_to_user(asp, addr, &v.to_le_bytes())
}

/// Read a pair of u64 (timespec, timeval).
pub fn read_pair(asp: &AddressSpace, addr: u64) -> Result<(u64, u64), Errno> {
    let mut b = [0u8; 16];
    copy_from_user(asp, addr, &mut b)?;
    let (a, c) = b.split_at(8);
    Ok((
        u64::from_le_bytes(a.try_into().map_err(|_| Errno::EFAULT)?),
        u64::from_le_bytes(c.try_into().map_err(|_| Errno::EFAULT)?),
    ))
}

pub fn write_pair(asp: &AddressSpace, addr: u64, a: u64, b: u64) -> Result<(), Errno> {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&a.to_le_bytes());
    buf[8..].copy_from_slice(&b.to_le_bytes());
    copy_to_user(asp, addr, &buf)
}

/// Read a NUL-terminated string of at most `max` bytes (without the NUL).
pub fn read_cstring(asp: &AddressSpace, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut a = addr;
    loop {
        let r = asp.regions().find(a).ok_or(Errno::EFAULT)?;
        if r.prot & PROT_READ == 0 {
            return Err(Errno::EFAULT);
        }
        let n = ((r.end() - a) as usize).min(256);
        let mut buf = alloc::vec![0u8; n];
        asp.read_phys(r.phys + (a - r.start), &mut buf);
        if let Some(z) = buf.iter().position(|&b| b == 0) {
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
