//! The mirror region table: which guest-physical memory backs which user
//! virtual range of an LWK process, so its proxy can map the same memory at
//! the same addresses. The initial process's table is at `SHARED_PHYS +
//! REGIONS_OFF`; a forked process's is a kernel page range of
//! `REGION_TABLE_BYTES`, named in each slot's `table`.

use core::mem::{offset_of, size_of};

use crate::layout::{SHARED_PHYS, SHARED_SIZE, USER_MAX, USER_MIN};

/// Header of a region table, followed by `count` `MirrorEntry`s. The kernel
/// bumps `gen` after every change; the proxy re-mirrors when it sees a new
/// generation before serving a request.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct RegionTableHeader {
    pub gen: u64,
    pub count: u32,
    /// Signals 1-32 Linux sent to this process's proxy (bit n-1 for signal
    /// n), set by the proxy, taken by the kernel. (The initial process also
    /// gets the `HOST_SIGNALS` word, which margay watches and raises NMIs for.)
    pub signals: u32,
}
pub const REGION_GEN_OFF: u64 = offset_of!(RegionTableHeader, gen) as u64;
pub const REGION_COUNT_OFF: u64 = offset_of!(RegionTableHeader, count) as u64;
pub const REGION_SIGNALS_OFF: u64 = offset_of!(RegionTableHeader, signals) as u64;
const _: () = assert!(size_of::<RegionTableHeader>() == 16);
const _: () = assert!(REGION_GEN_OFF == 0 && REGION_COUNT_OFF == 8 && REGION_SIGNALS_OFF == 12);

/// What a region holds, for /proc/self/maps: `MirrorEntry::kind`. The kernel's
/// region kinds convert into it (`From<lwk_core::region::RegionKind>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RegionKind {
    /// Anonymous mmap.
    Anon = 0,
    /// Loaded from the executable.
    Image = 1,
    /// The brk heap.
    Heap = 2,
    /// The initial process stack.
    Stack = 3,
    /// A mapping of a partition-wide shared object (`MAP_SHARED|MAP_ANONYMOUS`).
    Shared = 4,
}

impl TryFrom<u32> for RegionKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            0 => RegionKind::Anon,
            1 => RegionKind::Image,
            2 => RegionKind::Heap,
            3 => RegionKind::Stack,
            4 => RegionKind::Shared,
            other => return Err(other),
        })
    }
}

impl From<RegionKind> for u32 {
    fn from(k: RegionKind) -> u32 {
        k as u32
    }
}

/// Region kinds in `MirrorEntry::kind`, as raw values (`RegionKind as u32`).
pub const REGION_ANON: u32 = RegionKind::Anon as u32;
pub const REGION_IMAGE: u32 = RegionKind::Image as u32;
pub const REGION_HEAP: u32 = RegionKind::Heap as u32;
pub const REGION_STACK: u32 = RegionKind::Stack as u32;
pub const REGION_SHARED: u32 = RegionKind::Shared as u32;

/// One user region of the LWK process: virtual `[vaddr, vaddr+len)` is the
/// memory file's `[file_off, file_off+len)`, with Linux `PROT_*` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MirrorEntry {
    pub vaddr: u64,
    pub len: u64,
    pub file_off: u64,
    pub prot: u32,
    /// A `RegionKind`, for /proc/self/maps.
    pub kind: u32,
}
const _: () = assert!(size_of::<MirrorEntry>() == 32);
const _: () = assert!(offset_of!(MirrorEntry, file_off) == 16);
const _: () = assert!(offset_of!(MirrorEntry, kind) == 28);

/// Capacity of the region table.
pub const MAX_REGIONS: usize = 1024;
/// Bytes of a region table (header and entries); tables of forked processes
/// are kernel pages of this size, page aligned.
pub const REGION_TABLE_BYTES: u64 =
    (size_of::<RegionTableHeader>() + MAX_REGIONS * size_of::<MirrorEntry>()) as u64;

/// Offset of entry `index` from the start of a region table.
pub const fn region_entry_off(index: usize) -> u64 {
    (size_of::<RegionTableHeader>() + index * size_of::<MirrorEntry>()) as u64
}

/// Why a mirror entry is rejected by the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorError {
    Unaligned,
    OutsideUserWindow,
    OutsideMemory,
    IntoSharedArea,
    BadProt,
}

impl MirrorEntry {
    /// The entry's kind, or the raw value if it names none.
    pub fn region_kind(&self) -> Result<RegionKind, u32> {
        RegionKind::try_from(self.kind)
    }

    /// Check an entry read from guest memory against the partition size.
    pub fn validate(&self, mem_size: u64) -> Result<(), MirrorError> {
        let page = 4096;
        if !self.vaddr.is_multiple_of(page)
            || !self.len.is_multiple_of(page)
            || !self.file_off.is_multiple_of(page)
            || self.len == 0
        {
            return Err(MirrorError::Unaligned);
        }
        let end = self
            .vaddr
            .checked_add(self.len)
            .ok_or(MirrorError::OutsideUserWindow)?;
        if self.vaddr < USER_MIN || end > USER_MAX {
            return Err(MirrorError::OutsideUserWindow);
        }
        // An inaccessible region is never mapped or read by the proxy: what
        // backs it is not looked at (address space reserved with PROT_NONE
        // has nothing behind it).
        if self.prot == 0 {
            return Ok(());
        }
        let fend = self
            .file_off
            .checked_add(self.len)
            .ok_or(MirrorError::OutsideMemory)?;
        if fend > mem_size {
            return Err(MirrorError::OutsideMemory);
        }
        if self.file_off < SHARED_PHYS + SHARED_SIZE && fend > SHARED_PHYS {
            return Err(MirrorError::IntoSharedArea);
        }
        if self.prot & !7 != 0 {
            return Err(MirrorError::BadProt);
        }
        Ok(())
    }
}
