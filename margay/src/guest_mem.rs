//! The host's only window onto guest RAM: a shared mapping of the memory file,
//! accessed through bounds-checked volatile copies of plain values and byte ranges,
//! and atomics at checked, aligned offsets. No reference to guest memory ever
//! escapes this module (vm-memory's `GuestMemory` is the model). Code that must
//! reach guest RAM from a signal handler or a long-lived thread keeps an
//! `Arc<GuestMem>` and an offset, never a host address. The atomic methods do
//! not allocate, so they are async-signal-safe.

use std::ffi::c_void;
use std::mem::{align_of, size_of, MaybeUninit};
use std::os::fd::BorrowedFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rustix::mm;
use thiserror::Error;

const PROT_RW: mm::ProtFlags = mm::ProtFlags::READ.union(mm::ProtFlags::WRITE);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GuestMemError {
    #[error("guest memory access [{off:#x}, +{len:#x}) is outside the {size:#x}-byte RAM")]
    OutOfRange { off: u64, len: u64, size: u64 },
    #[error("guest memory offset {off:#x} is not aligned to {align} bytes")]
    Unaligned { off: u64, align: usize },
    #[error("cannot map guest RAM: {0}")]
    Map(String),
}

/// Types that may be copied out of guest memory: every bit pattern of
/// `size_of::<Self>()` bytes is a valid value.
///
/// # Safety
/// Implement only for integers and `#[repr(C)]` structs/arrays made of them.
pub unsafe trait Pod: Copy {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: an integer type, or a #[repr(C)] struct of integer fields and arrays
        // of integers (see crates/wire), for which every bit pattern is valid.
        unsafe impl Pod for $t {}
    )*};
}
pod!(
    u8,
    u16,
    u32,
    u64,
    i64,
    wire::Header,
    wire::Slot,
    wire::RegionTableHeader,
    wire::MirrorEntry,
    wire::StatsHeader,
    wire::SyscallStat,
    wire::CpuStat,
    wire::Mailbox,
);
// SAFETY: an array of Pod values is itself Pod (no padding between elements).
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// A `MAP_SHARED` mapping of the whole guest RAM file.
pub struct GuestMem {
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is plain shared memory that lives as long as the value; all
// accesses are volatile or atomic copies, so sharing it between threads is no
// different from sharing it with the guest.
unsafe impl Send for GuestMem {}
// SAFETY: as above; no method hands out references into the mapping.
unsafe impl Sync for GuestMem {}

impl GuestMem {
    /// Map `size` bytes of `fd` (the RAM memfd) read-write and shared.
    pub fn map_shared(fd: BorrowedFd<'_>, size: u64) -> Result<Self, GuestMemError> {
        let len = usize::try_from(size).map_err(|e| GuestMemError::Map(e.to_string()))?;
        Self::check_len(len)?;
        // SAFETY: a fresh mapping at an address the kernel chooses; it overlaps no
        // existing Rust object. `fd` is open for the duration of the call.
        let p = unsafe { mm::mmap(ptr::null_mut(), len, PROT_RW, mm::MapFlags::SHARED, fd, 0) };
        Self::mapped(p, len)
    }

    /// Private anonymous memory with the same interface (for tests).
    #[cfg(test)]
    pub fn anonymous(size: usize) -> Self {
        Self::check_len(size).expect("mmap");
        // SAFETY: as in `map_shared`, without a file.
        let p =
            unsafe { mm::mmap_anonymous(ptr::null_mut(), size, PROT_RW, mm::MapFlags::PRIVATE) };
        Self::mapped(p, size).expect("mmap")
    }

    fn check_len(len: usize) -> Result<(), GuestMemError> {
        if len == 0 {
            return Err(GuestMemError::Map("empty mapping".into()));
        }
        Ok(())
    }

    fn mapped(p: rustix::io::Result<*mut c_void>, len: usize) -> Result<Self, GuestMemError> {
        let p = p.map_err(|e| GuestMemError::Map(std::io::Error::from(e).to_string()))?;
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| GuestMemError::Map("mmap returned NULL".into()))?;
        Ok(GuestMem { base, size: len })
    }

    /// Size of guest RAM in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// Check that `[off, off+len)` lies inside RAM; returns `off` as an index.
    fn check(&self, off: u64, len: u64) -> Result<usize, GuestMemError> {
        let err = || GuestMemError::OutOfRange {
            off,
            len,
            size: self.size as u64,
        };
        let end = off.checked_add(len).ok_or_else(err)?;
        if end > self.size as u64 {
            return Err(err());
        }
        usize::try_from(off).map_err(|_| err())
    }

    fn at(&self, idx: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(idx)
    }

    /// Host address of `[off, off+len)` for handing to the kernel (mremap source).
    /// Never dereferenced by Rust code.
    pub fn host_addr(&self, off: u64, len: u64) -> Result<usize, GuestMemError> {
        let idx = self.check(off, len)?;
        Ok(self.at(idx) as usize)
    }

    /// Copy a plain value out of guest memory.
    pub fn read_obj<T: Pod>(&self, off: u64) -> Result<T, GuestMemError> {
        let idx = self.check(off, size_of::<T>() as u64)?;
        let p = self.at(idx);
        if (p as usize).is_multiple_of(align_of::<T>()) {
            // SAFETY: `check` put the whole value inside the live mapping, `p` is
            // aligned for T, and T: Pod accepts whatever bytes the guest wrote.
            return Ok(unsafe { ptr::read_volatile(p.cast::<T>()) });
        }
        let mut v = MaybeUninit::<T>::uninit();
        // SAFETY: `v` provides size_of::<T>() writable bytes, all of which are
        // initialized by the copy; T: Pod makes any bytes a valid T.
        unsafe {
            let dst = std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), size_of::<T>());
            self.copy_out(idx, dst);
            Ok(v.assume_init())
        }
    }

    /// Copy a plain value into guest memory.
    pub fn write_obj<T: Pod>(&self, off: u64, val: &T) -> Result<(), GuestMemError> {
        let idx = self.check(off, size_of::<T>() as u64)?;
        let p = self.at(idx);
        if (p as usize).is_multiple_of(align_of::<T>()) {
            // SAFETY: `check` put the whole value inside the live mapping and `p` is
            // aligned for T; the mapping is writable and owned by no Rust object.
            unsafe { ptr::write_volatile(p.cast::<T>(), *val) };
            return Ok(());
        }
        // SAFETY: `val` is a valid T, so its size_of::<T>() bytes are readable; T: Pod
        // structs in this crate have no padding (their sizes are asserted in wire).
        let src =
            unsafe { std::slice::from_raw_parts((val as *const T).cast::<u8>(), size_of::<T>()) };
        self.copy_in(idx, src);
        Ok(())
    }

    /// Fill `buf` from guest memory at `off`.
    pub fn read_into(&self, off: u64, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let idx = self.check(off, buf.len() as u64)?;
        self.copy_out(idx, buf);
        Ok(())
    }

    /// Copy `len` bytes out of guest memory.
    pub fn read_bytes(&self, off: u64, len: usize) -> Result<Vec<u8>, GuestMemError> {
        self.check(off, len as u64)?;
        let mut v = vec![0; len];
        self.read_into(off, &mut v)?;
        Ok(v)
    }

    /// Copy `data` into guest memory at `off`.
    pub fn write_bytes(&self, off: u64, data: &[u8]) -> Result<(), GuestMemError> {
        let idx = self.check(off, data.len() as u64)?;
        self.copy_in(idx, data);
        Ok(())
    }

    /// `idx..idx+dst.len()` must have been checked.
    fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        let src = self.at(idx);
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: the caller checked that the whole range is inside the mapping.
            *b = unsafe { ptr::read_volatile(src.wrapping_add(i)) };
        }
    }

    /// `idx..idx+src.len()` must have been checked.
    fn copy_in(&self, idx: usize, src: &[u8]) {
        let dst = self.at(idx);
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: the caller checked that the whole range is inside the mapping.
            unsafe { ptr::write_volatile(dst.wrapping_add(i), b) };
        }
    }

    fn atomic_u32(&self, off: u64) -> Result<&AtomicU32, GuestMemError> {
        let idx = self.check(off, 4)?;
        let p = self.at(idx);
        if !(p as usize).is_multiple_of(4) {
            return Err(GuestMemError::Unaligned { off, align: 4 });
        }
        // SAFETY: in bounds (checked), aligned (checked), and the mapping lives as
        // long as `self`. Guest RAM is shared with another agent, which is exactly
        // what atomics allow; the reference never leaves this module.
        Ok(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) })
    }

    fn atomic_u64(&self, off: u64) -> Result<&AtomicU64, GuestMemError> {
        let idx = self.check(off, 8)?;
        let p = self.at(idx);
        if !(p as usize).is_multiple_of(8) {
            return Err(GuestMemError::Unaligned { off, align: 8 });
        }
        // SAFETY: as in `atomic_u32`, with 8-byte bounds and alignment checked.
        Ok(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) })
    }

    pub fn load_u32(&self, off: u64, order: Ordering) -> Result<u32, GuestMemError> {
        Ok(self.atomic_u32(off)?.load(order))
    }

    pub fn store_u32(&self, off: u64, v: u32, order: Ordering) -> Result<(), GuestMemError> {
        self.atomic_u32(off)?.store(v, order);
        Ok(())
    }

    /// Compare-and-swap; `Ok(Ok(prev))` on success, `Ok(Err(actual))` on mismatch.
    pub fn compare_exchange_u32(
        &self,
        off: u64,
        current: u32,
        new: u32,
    ) -> Result<Result<u32, u32>, GuestMemError> {
        Ok(self.atomic_u32(off)?.compare_exchange(
            current,
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ))
    }

    pub fn load_u64(&self, off: u64, order: Ordering) -> Result<u64, GuestMemError> {
        Ok(self.atomic_u64(off)?.load(order))
    }

    /// Atomically OR `v` into the u32 at `off`; returns the previous value.
    pub fn fetch_or_u32(&self, off: u64, v: u32, order: Ordering) -> Result<u32, GuestMemError> {
        Ok(self.atomic_u32(off)?.fetch_or(v, order))
    }

    /// Atomically OR `v` into the u64 at `off`; returns the previous value.
    pub fn fetch_or_u64(&self, off: u64, v: u64, order: Ordering) -> Result<u64, GuestMemError> {
        Ok(self.atomic_u64(off)?.fetch_or(v, order))
    }

    /// Atomically AND `v` into the u64 at `off`; returns the previous value.
    pub fn fetch_and_u64(&self, off: u64, v: u64, order: Ordering) -> Result<u64, GuestMemError> {
        Ok(self.atomic_u64(off)?.fetch_and(v, order))
    }

    pub fn store_u64(&self, off: u64, v: u64, order: Ordering) -> Result<(), GuestMemError> {
        self.atomic_u64(off)?.store(v, order);
        Ok(())
    }
}

impl Drop for GuestMem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value created; no references into
        // it exist (none ever leave this module).
        let _ = unsafe { mm::munmap(self.base.as_ptr().cast(), self.size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_bytes_round_trip() {
        let m = GuestMem::anonymous(8192);
        m.write_obj(16, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(m.read_obj::<u64>(16).unwrap(), 0x1122_3344_5566_7788);
        // Unaligned objects go through the byte path.
        m.write_obj(3, &0xdead_beefu32).unwrap();
        assert_eq!(m.read_obj::<u32>(3).unwrap(), 0xdead_beef);
        m.write_bytes(100, b"hello").unwrap();
        assert_eq!(m.read_bytes(100, 5).unwrap(), b"hello");
        let e = wire::MirrorEntry {
            vaddr: 1,
            len: 2,
            file_off: 3,
            prot: 4,
            kind: 0,
        };
        m.write_obj(256, &e).unwrap();
        assert_eq!(m.read_obj::<wire::MirrorEntry>(256).unwrap(), e);
    }

    #[test]
    fn out_of_range_and_overflowing_accesses_are_refused() {
        let m = GuestMem::anonymous(4096);
        assert!(m.read_obj::<u64>(4088).is_ok());
        assert!(matches!(
            m.read_obj::<u64>(4089),
            Err(GuestMemError::OutOfRange { .. })
        ));
        assert!(m.read_obj::<u8>(4096).is_err());
        assert!(m.read_obj::<u64>(u64::MAX - 3).is_err());
        assert!(m.read_bytes(u64::MAX, 2).is_err());
        assert!(m.write_bytes(4000, &[0; 97]).is_err());
        assert!(m.write_bytes(4000, &[0; 96]).is_ok());
        assert!(m.read_bytes(0, 4097).is_err());
        assert!(m.read_obj::<wire::Slot>(4096 - 64).is_err());
        assert!(m.host_addr(4095, 2).is_err());
        assert!(m.load_u64(u64::MAX - 7, Ordering::Relaxed).is_err());
        // Nothing was written by the refused writes.
        assert_eq!(m.read_bytes(4000, 96).unwrap(), vec![0; 96]);
    }

    #[test]
    fn atomics_need_alignment() {
        let m = GuestMem::anonymous(4096);
        m.store_u32(8, 5, Ordering::Release).unwrap();
        assert_eq!(m.load_u32(8, Ordering::Acquire).unwrap(), 5);
        assert_eq!(m.compare_exchange_u32(8, 5, 6).unwrap(), Ok(5));
        assert_eq!(m.compare_exchange_u32(8, 5, 7).unwrap(), Err(6));
        assert_eq!(
            m.load_u32(6, Ordering::Acquire),
            Err(GuestMemError::Unaligned { off: 6, align: 4 })
        );
        assert!(m.store_u64(12, 1, Ordering::Release).is_err());
        m.store_u64(16, u64::MAX, Ordering::Release).unwrap();
        assert_eq!(m.load_u64(16, Ordering::Acquire).unwrap(), u64::MAX);
        assert!(m.load_u32(4094, Ordering::Acquire).is_err());
        m.store_u64(24, 0b1110, Ordering::Release).unwrap();
        assert_eq!(m.fetch_or_u64(24, 1, Ordering::AcqRel).unwrap(), 0b1110);
        assert_eq!(
            m.fetch_and_u64(24, !0b0110, Ordering::AcqRel).unwrap(),
            0b1111
        );
        assert_eq!(m.load_u64(24, Ordering::Acquire).unwrap(), 0b1001);
        assert!(m.fetch_and_u64(20, 0, Ordering::AcqRel).is_err());
    }
}
