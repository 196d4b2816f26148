//! Address-space region map (Kitten aspace): owns the sorted set of virtual regions and their physical backing.
//!
//! A [`Region`] maps virtual `[start, start + len)` onto physical `[phys, phys + len)`
//! contiguously; all three are 4 KiB aligned. Regions never overlap. The map also offers
//! Linux-style `munmap`/`mprotect` splitting, top-down free-gap search for `mmap`, and
//! [`page_mappings`] to split a region into the largest hardware pages.

use alloc::vec::Vec;

use crate::PAGE_SIZE;

/// Page protections: Linux's PROT_* bits.
pub use linux_abi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};

const PAGE_MASK: u64 = PAGE_SIZE - 1;
const SIZE_2M: u64 = 2 << 20;
const SIZE_1G: u64 = 1 << 30;

/// What a region is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Loaded from the executable.
    Image,
    /// The brk heap.
    Heap,
    /// The initial process stack.
    Stack,
    /// Anonymous mmap.
    Anon,
    /// A mapping of a partition-wide shared object (`MAP_SHARED`): its physical memory
    /// belongs to the object, is never copied on fork and is freed only when the last
    /// mapping of it goes.
    Shared(crate::shm::ObjectId),
    /// Address space reserved with PROT_NONE and no memory behind it (glibc
    /// reserves 64 MiB per thread arena this way and makes pieces
    /// accessible with mprotect): memory is taken only when a piece becomes
    /// accessible. Its `phys` means nothing.
    Reserved,
    /// Pages of a shared file mapping past the end of the file: no memory,
    /// and an access raises SIGBUS (as on Linux). Its `phys` means nothing.
    PastEof,
}

/// The kind the proxy sees in the mirror region table: the one conversion
/// between the kernel's region kinds and the wire contract's.
impl From<RegionKind> for wire::RegionKind {
    fn from(k: RegionKind) -> wire::RegionKind {
        match k {
            RegionKind::Image => wire::RegionKind::Image,
            RegionKind::Heap => wire::RegionKind::Heap,
            RegionKind::Stack => wire::RegionKind::Stack,
            RegionKind::Anon => wire::RegionKind::Anon,
            RegionKind::Shared(_) => wire::RegionKind::Shared,
            // Never published (nothing to mirror); anonymous if it were.
            RegionKind::Reserved | RegionKind::PastEof => wire::RegionKind::Anon,
        }
    }
}

impl RegionKind {
    /// The shared object behind a region of this kind.
    pub fn shared_object(self) -> Option<crate::shm::ObjectId> {
        match self {
            RegionKind::Shared(id) => Some(id),
            _ => None,
        }
    }

    /// Whether memory backs regions of this kind (all but `Reserved` and
    /// `PastEof`).
    pub fn is_backed(self) -> bool {
        !matches!(self, RegionKind::Reserved | RegionKind::PastEof)
    }
}

/// Virtual `[start, start + len)` backed by physical `[phys, phys + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub phys: u64,
    pub prot: u32,
    pub kind: RegionKind,
}

impl Region {
    /// One past the last virtual address (never overflows for a region accepted by a map).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end()
    }

    /// The sub-region `[s, e)` (must lie inside `self`), with the matching phys.
    fn slice(&self, s: u64, e: u64) -> Region {
        Region {
            start: s,
            len: e - s,
            phys: self.phys + (s - self.start),
            ..*self
        }
    }
}

/// Errors from [`RegionMap`] operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The new region overlaps an existing one.
    Overlap,
    /// An address or length is not 4 KiB aligned.
    Unaligned,
    /// Zero length.
    Empty,
    /// Part of the range is not mapped.
    NotMapped,
    /// The range wraps around the address space.
    OutOfRange,
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RegionError::Overlap => "region overlaps an existing region",
            RegionError::Unaligned => "address or length not page aligned",
            RegionError::Empty => "empty region",
            RegionError::NotMapped => "range not fully mapped",
            RegionError::OutOfRange => "range wraps the address space",
        })
    }
}

/// Sorted, non-overlapping set of regions.
#[derive(Default, Debug, Clone)]
pub struct RegionMap {
    regions: Vec<Region>,
}

/// `start + len` rounded up to a page, saturating at the top page boundary.
fn page_end(start: u64, len: u64) -> u64 {
    crate::align_up(start.saturating_add(len), PAGE_SIZE).unwrap_or(!PAGE_MASK)
}

impl RegionMap {
    /// Empty map.
    pub fn new() -> Self {
        Self {
            regions: Vec::new(),
        }
    }

    /// Index of the first region whose end is above `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        self.regions.partition_point(|r| r.end() <= addr)
    }

    /// Add a region; rejects overlap, misalignment, zero length and wrap-around.
    pub fn insert(&mut self, r: Region) -> Result<(), RegionError> {
        if r.len == 0 {
            return Err(RegionError::Empty);
        }
        if (r.start | r.len | r.phys) & PAGE_MASK != 0 {
            return Err(RegionError::Unaligned);
        }
        let (Some(_), Some(_)) = (r.start.checked_add(r.len), r.phys.checked_add(r.len)) else {
            return Err(RegionError::OutOfRange);
        };
        let i = self.first_ending_after(r.start);
        if let Some(next) = self.regions.get(i) {
            if next.start < r.end() {
                return Err(RegionError::Overlap);
            }
        }
        self.regions.insert(i, r);
        Ok(())
    }

    /// The region containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Region> {
        self.regions
            .get(self.first_ending_after(addr))
            .filter(|r| r.contains(addr))
    }

    /// Physical address of virtual `addr`.
    pub fn translate(&self, addr: u64) -> Option<u64> {
        self.find(addr)
            .filter(|r| r.kind.is_backed())
            .map(|r| r.phys + (addr - r.start))
    }

    /// True when every byte of `[addr, addr + len)` lies in regions that all have every
    /// bit of `prot`. `len == 0` is always true; a wrapping range is false.
    pub fn check_range(&self, addr: u64, len: u64, prot: u32) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let mut cur = addr;
        let mut i = self.first_ending_after(addr);
        while cur < end {
            match self.regions.get(i) {
                Some(r) if r.start <= cur && r.prot & prot == prot => {
                    cur = r.end();
                    i += 1;
                }
                _ => return false,
            }
        }
        true
    }

    /// Remove `[start, start + len)` from whatever regions overlap it, splitting them, and
    /// return the removed pieces (ascending, with their phys ranges). Holes are fine
    /// (munmap semantics). `len` is rounded up to a page; an unaligned `start` removes
    /// nothing (the caller reports EINVAL).
    pub fn remove_range(&mut self, start: u64, len: u64) -> Vec<Region> {
        let mut removed = Vec::new();
        if start & PAGE_MASK != 0 || len == 0 {
            return removed;
        }
        let end = page_end(start, len);
        let i = self.first_ending_after(start);
        let mut j = i;
        let mut kept = Vec::new();
        while let Some(r) = self.regions.get(j) {
            if r.start >= end {
                break;
            }
            let s = r.start.max(start);
            let e = r.end().min(end);
            if r.start < s {
                kept.push(r.slice(r.start, s));
            }
            removed.push(r.slice(s, e));
            if e < r.end() {
                kept.push(r.slice(e, r.end()));
            }
            j += 1;
        }
        self.regions.splice(i..j, kept);
        removed
    }

    /// Change the protection of `[start, start + len)` (`len` rounded up to a page). Every
    /// page must be mapped, else `NotMapped` and nothing changes. Splits regions at the
    /// range ends and merges neighbours that end up physically contiguous with the same
    /// prot and kind. Returns the affected pieces with their new prot.
    pub fn protect_range(
        &mut self,
        start: u64,
        len: u64,
        prot: u32,
    ) -> Result<Vec<Region>, RegionError> {
        if start & PAGE_MASK != 0 {
            return Err(RegionError::Unaligned);
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let Some(end) = start
            .checked_add(len)
            .and_then(|e| crate::align_up(e, PAGE_SIZE))
        else {
            return Err(RegionError::OutOfRange);
        };
        if !self.check_range(start, end - start, 0) {
            return Err(RegionError::NotMapped);
        }
        let i = self.first_ending_after(start);
        let mut j = i;
        let mut pieces = Vec::new();
        let mut changed = Vec::new();
        while let Some(r) = self.regions.get(j) {
            if r.start >= end {
                break;
            }
            let s = r.start.max(start);
            let e = r.end().min(end);
            if r.start < s {
                pieces.push(r.slice(r.start, s));
            }
            let mut mid = r.slice(s, e);
            mid.prot = prot;
            pieces.push(mid);
            changed.push(mid);
            if e < r.end() {
                pieces.push(r.slice(e, r.end()));
            }
            j += 1;
        }
        // Merge within the new pieces and with the untouched neighbours on either side.
        let lo = i.saturating_sub(1);
        let hi = (j + 1).min(self.regions.len());
        let mut merged: Vec<Region> = Vec::with_capacity(pieces.len() + 2);
        let before = self.regions[lo..i].iter().copied();
        let after = self.regions[j..hi].iter().copied();
        for r in before.chain(pieces).chain(after) {
            match merged.last_mut() {
                Some(m)
                    if m.end() == r.start
                        && m.phys.checked_add(m.len) == Some(r.phys)
                        && m.prot == r.prot
                        && m.kind == r.kind =>
                {
                    m.len += r.len;
                }
                _ => merged.push(r),
            }
        }
        self.regions.splice(lo..hi, merged);
        Ok(changed)
    }

    /// The highest address `a`, a multiple of `align` (a power of two; values below 4 KiB
    /// mean 4 KiB), such that `[a, a + len)` is free and inside `[lo, hi)`. `len` is
    /// rounded up to a page. `None` if there is no such gap or on bad arguments.
    pub fn find_free_top_down(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        let len = crate::align_up(len, PAGE_SIZE)?;
        let align = align.max(PAGE_SIZE);
        let fit = |gl: u64, gh: u64| -> Option<u64> {
            if gh < gl || gh - gl < len {
                return None;
            }
            let a = crate::align_down(gh - len, align);
            (a >= gl).then_some(a)
        };
        let mut top = hi;
        for r in self.regions.iter().rev() {
            if r.start >= top {
                continue;
            }
            if let Some(a) = fit(r.end().max(lo), top) {
                return Some(a);
            }
            top = r.start;
            if top <= lo {
                return None;
            }
        }
        fit(lo, top)
    }

    /// Whether no region overlaps `[start, start + len)`. `len == 0` is true; a wrapping
    /// range is false.
    pub fn is_free(&self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        self.regions
            .get(self.first_ending_after(start))
            .is_none_or(|r| r.start >= end)
    }

    /// Regions in ascending address order.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter()
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether the map has no regions.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

/// Hardware page sizes on x86-64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => PAGE_SIZE,
            PageSize::Size2M => SIZE_2M,
            PageSize::Size1G => SIZE_1G,
        }
    }
}

/// Iterator returned by [`page_mappings`].
#[derive(Clone, Debug)]
pub struct PageMappings {
    vaddr: u64,
    phys: u64,
    remaining: u64,
}

impl Iterator for PageMappings {
    type Item = (u64, u64, PageSize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining < PAGE_SIZE {
            return None;
        }
        let both = self.vaddr | self.phys;
        let size = if both & (SIZE_1G - 1) == 0 && self.remaining >= SIZE_1G {
            PageSize::Size1G
        } else if both & (SIZE_2M - 1) == 0 && self.remaining >= SIZE_2M {
            PageSize::Size2M
        } else {
            PageSize::Size4K
        };
        let item = (self.vaddr, self.phys, size);
        let b = size.bytes();
        // Cannot overflow past the checks in `page_mappings`, but never panic.
        self.vaddr = self.vaddr.wrapping_add(b);
        self.phys = self.phys.wrapping_add(b);
        self.remaining -= b;
        Some(item)
    }
}

/// Split `[vaddr, vaddr + len)` → `[phys, phys + len)` into the largest pages that fit: a
/// 2 MiB (1 GiB) page only where vaddr and phys are both 2 MiB (1 GiB) aligned and at
/// least that much remains. Yields nothing if `vaddr`/`phys` are not 4 KiB aligned or the
/// range wraps; a trailing partial page (`len` not a page multiple) is not yielded.
pub fn page_mappings(vaddr: u64, phys: u64, len: u64) -> PageMappings {
    let ok = (vaddr | phys) & PAGE_MASK == 0
        && vaddr.checked_add(len).is_some()
        && phys.checked_add(len).is_some();
    PageMappings {
        vaddr,
        phys,
        remaining: if ok { len } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const RW: u32 = PROT_READ | PROT_WRITE;
    const RX: u32 = PROT_READ | PROT_EXEC;

    fn reg(start: u64, len: u64, phys: u64, prot: u32, kind: RegionKind) -> Region {
        Region {
            start,
            len,
            phys,
            prot,
            kind,
        }
    }

    fn anon(start: u64, len: u64, phys: u64) -> Region {
        reg(start, len, phys, RW, RegionKind::Anon)
    }

    fn all(m: &RegionMap) -> Vec<Region> {
        m.iter().copied().collect()
    }

    #[test]
    fn shared_regions_keep_their_object_and_never_merge_across_objects() {
        let mut m = RegionMap::new();
        m.insert(reg(0x1000, 0x2000, 0x10000, RW, RegionKind::Shared(1)))
            .unwrap();
        m.insert(reg(0x3000, 0x1000, 0x12000, RW, RegionKind::Shared(2)))
            .unwrap();
        // Same prot everywhere and contiguous phys, but two objects: no merge.
        m.protect_range(0x1000, 0x3000, PROT_READ).unwrap();
        assert_eq!(m.len(), 2);
        let gone = m.remove_range(0x2000, 0x2000);
        assert_eq!(
            gone.iter()
                .map(|r| r.kind.shared_object())
                .collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
        assert_eq!(
            all(&m),
            [reg(
                0x1000,
                0x1000,
                0x10000,
                PROT_READ,
                RegionKind::Shared(1)
            )]
        );
        assert_eq!(RegionKind::Anon.shared_object(), None);
    }

    #[test]
    fn region_basics() {
        let r = anon(0x1000, 0x2000, 0x50000);
        assert_eq!(r.end(), 0x3000);
        assert!(r.contains(0x1000) && r.contains(0x2fff));
        assert!(!r.contains(0xfff) && !r.contains(0x3000));
    }

    #[test]
    fn insert_validation_and_order() {
        let mut m = RegionMap::new();
        assert!(m.is_empty());
        assert_eq!(m.insert(anon(0x1000, 0, 0)), Err(RegionError::Empty));
        assert_eq!(
            m.insert(anon(0x1001, 0x1000, 0)),
            Err(RegionError::Unaligned)
        );
        assert_eq!(
            m.insert(anon(0x1000, 0x1800, 0)),
            Err(RegionError::Unaligned)
        );
        assert_eq!(
            m.insert(anon(0x1000, 0x1000, 0x10)),
            Err(RegionError::Unaligned)
        );
        assert_eq!(
            m.insert(anon(!0xfffu64, 0x1000, 0)),
            Err(RegionError::OutOfRange)
        );
        assert_eq!(
            m.insert(anon(0x1000, 0x1000, !0xfffu64)),
            Err(RegionError::OutOfRange)
        );
        m.insert(anon(0x5000, 0x2000, 0)).unwrap();
        m.insert(anon(0x1000, 0x1000, 0)).unwrap();
        m.insert(anon(0x9000, 0x1000, 0)).unwrap();
        m.insert(anon(0x7000, 0x2000, 0)).unwrap(); // exactly adjacent on both sides
        assert_eq!(m.insert(anon(0x6000, 0x1000, 0)), Err(RegionError::Overlap));
        assert_eq!(m.insert(anon(0x0, 0x2000, 0)), Err(RegionError::Overlap));
        assert_eq!(m.insert(anon(0x0, 0x10000, 0)), Err(RegionError::Overlap));
        assert_eq!(
            m.insert(anon(0x8000, 0x800000, 0)),
            Err(RegionError::Overlap)
        );
        let starts: Vec<u64> = m.iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![0x1000, 0x5000, 0x7000, 0x9000]);
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn find_translate_check() {
        let mut m = RegionMap::new();
        m.insert(reg(0x400000, 0x2000, 0x100000, RX, RegionKind::Image))
            .unwrap();
        m.insert(reg(0x402000, 0x1000, 0x900000, RW, RegionKind::Image))
            .unwrap();
        m.insert(anon(0x500000, 0x1000, 0x200000)).unwrap();
        assert_eq!(m.find(0x3fffff), None);
        assert_eq!(m.find(0x401fff).unwrap().start, 0x400000);
        assert_eq!(m.translate(0x401234), Some(0x101234));
        assert_eq!(m.translate(0x402008), Some(0x900008));
        assert_eq!(m.translate(0x403000), None);
        assert!(m.check_range(0x400000, 0x3000, PROT_READ));
        assert!(!m.check_range(0x400000, 0x3000, PROT_WRITE));
        assert!(m.check_range(0x402000, 0x1000, PROT_WRITE));
        assert!(m.check_range(0x401ff0, 0x20, PROT_READ));
        assert!(!m.check_range(0x402ff0, 0x20, PROT_READ)); // runs into a hole
        assert!(!m.check_range(0x3ffff0, 0x20, PROT_READ));
        assert!(m.check_range(0x12345, 0, PROT_WRITE));
        assert!(!m.check_range(0x400000, u64::MAX, 0));
        assert!(m.check_range(0x500fff, 1, RW));
        assert!(!m.check_range(0x500fff, 2, RW));
    }

    #[test]
    fn remove_middle_splits() {
        let mut m = RegionMap::new();
        m.insert(anon(0x10000, 0x10000, 0x800000)).unwrap();
        let got = m.remove_range(0x14000, 0x2000);
        assert_eq!(got, vec![anon(0x14000, 0x2000, 0x804000)]);
        assert_eq!(
            all(&m),
            vec![
                anon(0x10000, 0x4000, 0x800000),
                anon(0x16000, 0xa000, 0x806000)
            ]
        );
        assert!(m.is_free(0x14000, 0x2000));
        assert!(!m.is_free(0x13000, 0x2000));
        assert_eq!(m.translate(0x17000), Some(0x807000));
    }

    #[test]
    fn remove_across_regions_with_holes() {
        let mut m = RegionMap::new();
        m.insert(anon(0x1000, 0x3000, 0xa000)).unwrap(); // [1000,4000)
        m.insert(anon(0x5000, 0x1000, 0x20000)).unwrap(); // [5000,6000)
        m.insert(anon(0x8000, 0x4000, 0x30000)).unwrap(); // [8000,c000)
        m.insert(anon(0x20000, 0x1000, 0x40000)).unwrap();
        let got = m.remove_range(0x2000, 0x7001); // rounds up to [2000, a000)
        assert_eq!(
            got,
            vec![
                anon(0x2000, 0x2000, 0xb000),
                anon(0x5000, 0x1000, 0x20000),
                anon(0x8000, 0x2000, 0x30000),
            ]
        );
        assert_eq!(
            all(&m),
            vec![
                anon(0x1000, 0x1000, 0xa000),
                anon(0xa000, 0x2000, 0x32000),
                anon(0x20000, 0x1000, 0x40000),
            ]
        );
        // Nothing mapped: nothing removed.
        assert!(m.remove_range(0x40000, 0x1000).is_empty());
        // Unaligned start: nothing removed.
        assert!(m.remove_range(0x1001, 0x1000).is_empty());
        // Huge length removes everything above.
        assert_eq!(m.remove_range(0x2000, u64::MAX).len(), 2);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn protect_splits_and_merges() {
        let mut m = RegionMap::new();
        m.insert(anon(0x10000, 0x8000, 0x100000)).unwrap();
        let got = m.protect_range(0x12000, 0x2000, PROT_READ).unwrap();
        assert_eq!(
            got,
            vec![reg(0x12000, 0x2000, 0x102000, PROT_READ, RegionKind::Anon)]
        );
        assert_eq!(m.len(), 3);
        assert!(!m.check_range(0x12000, 1, PROT_WRITE));
        assert!(m.check_range(0x14000, 0x4000, RW));
        // Back to RW: merges into the original region again.
        m.protect_range(0x12000, 0x2000, RW).unwrap();
        assert_eq!(all(&m), vec![anon(0x10000, 0x8000, 0x100000)]);
        // Unmapped page inside: error, no change.
        m.insert(anon(0x19000, 0x1000, 0x200000)).unwrap();
        assert_eq!(
            m.protect_range(0x17000, 0x3000, PROT_READ),
            Err(RegionError::NotMapped)
        );
        assert_eq!(m.len(), 2);
        assert!(m.check_range(0x17000, 0x1000, RW));
        assert_eq!(
            m.protect_range(0x17001, 0x1000, PROT_READ),
            Err(RegionError::Unaligned)
        );
        assert_eq!(
            m.protect_range(0x17000, u64::MAX, PROT_READ),
            Err(RegionError::OutOfRange)
        );
        assert_eq!(m.protect_range(0x0, 0, PROT_READ), Ok(vec![]));
        // Across two physically discontiguous regions: both change, no merge.
        m.insert(anon(0x18000, 0x1000, 0x50000)).unwrap();
        let got = m.protect_range(0x17000, 0x2001, PROT_READ).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|r| r.prot == PROT_READ));
        assert_eq!(got[0].phys, 0x107000);
        assert_eq!(got[1].phys, 0x50000);
        assert_eq!(got[2].phys, 0x200000);
        assert_eq!(m.len(), 4);
        assert!(m.check_range(0x17000, 0x3000, PROT_READ));
        assert!(!m.check_range(0x17000, 0x3000, PROT_WRITE));
        assert!(m.check_range(0x10000, 0x7000, RW));
        // Different kinds never merge.
        let mut m = RegionMap::new();
        m.insert(reg(0x1000, 0x1000, 0x1000, PROT_READ, RegionKind::Heap))
            .unwrap();
        m.insert(reg(0x2000, 0x1000, 0x2000, RW, RegionKind::Anon))
            .unwrap();
        m.protect_range(0x2000, 0x1000, PROT_READ).unwrap();
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn find_free_top_down_gaps() {
        let mut m = RegionMap::new();
        assert_eq!(
            m.find_free_top_down(0x2000, 0x1000, 0x1000, 0x100000),
            Some(0xfe000)
        );
        m.insert(anon(0xf0000, 0x10000, 0)).unwrap(); // [f0000, 100000)
        m.insert(anon(0xe0000, 0xc000, 0)).unwrap(); // [e0000, ec000)
        assert_eq!(
            m.find_free_top_down(0x2000, 0x1000, 0x1000, 0x100000),
            Some(0xee000)
        );
        assert_eq!(
            m.find_free_top_down(0x4000, 0x1000, 0x1000, 0x100000),
            Some(0xec000)
        );
        assert_eq!(
            m.find_free_top_down(0x5000, 0x1000, 0x1000, 0x100000),
            Some(0xdb000)
        );
        assert_eq!(
            m.find_free_top_down(0x1000, 0x10000, 0x1000, 0x100000),
            Some(0xd0000)
        );
        // hi inside a region; lo limits.
        assert_eq!(
            m.find_free_top_down(0x1000, 0x1000, 0xec000, 0xf8000),
            Some(0xef000)
        );
        assert_eq!(
            m.find_free_top_down(0x5000, 0x1000, 0xdc000, 0x100000),
            None
        );
        assert_eq!(
            m.find_free_top_down(0x5000, 0x1000, 0xdb000, 0x100000),
            Some(0xdb000)
        );
        // Region above hi is ignored.
        assert_eq!(
            m.find_free_top_down(0x1000, 0x1000, 0x0, 0xe0000),
            Some(0xdf000)
        );
        // Bad args.
        assert_eq!(m.find_free_top_down(0, 0x1000, 0, 0x100000), None);
        assert_eq!(m.find_free_top_down(0x1000, 0x3000, 0, 0x100000), None);
        assert_eq!(m.find_free_top_down(0x1000, 0x1000, 0x5000, 0x5000), None);
        assert_eq!(m.find_free_top_down(u64::MAX, 0x1000, 0, u64::MAX), None);
        // Result really is free.
        let a = m
            .find_free_top_down(0x3000, 0x2000, 0x1000, 0x100000)
            .unwrap();
        assert!(m.is_free(a, 0x3000));
        assert_eq!(a % 0x2000, 0);
    }

    #[test]
    fn is_free_edges() {
        let mut m = RegionMap::new();
        m.insert(anon(0x4000, 0x1000, 0)).unwrap();
        assert!(m.is_free(0x3000, 0x1000));
        assert!(m.is_free(0x5000, 0x1000));
        assert!(!m.is_free(0x3000, 0x1001));
        assert!(!m.is_free(0x4fff, 1));
        assert!(m.is_free(0x4000, 0));
        assert!(!m.is_free(1, u64::MAX));
    }

    #[test]
    fn page_splitting() {
        use PageSize::*;
        let v: Vec<_> = page_mappings(0x1000, 0x5000, 0x3000).collect();
        assert_eq!(
            v,
            vec![
                (0x1000, 0x5000, Size4K),
                (0x2000, 0x6000, Size4K),
                (0x3000, 0x7000, Size4K)
            ]
        );
        // 4K up to the 2 MiB boundary, then 2M pages, then 4K tail.
        let v: Vec<_> = page_mappings(0x1ff000, 0x3ff000, 0x402000).collect();
        assert_eq!(
            v,
            vec![
                (0x1ff000, 0x3ff000, Size4K),
                (0x200000, 0x400000, Size2M),
                (0x400000, 0x600000, Size2M),
                (0x600000, 0x800000, Size4K)
            ]
        );
        // vaddr aligned but phys not: no large pages.
        assert!(page_mappings(0x200000, 0x201000, 0x400000).all(|(_, _, s)| s == Size4K));
        assert_eq!(page_mappings(0x200000, 0x201000, 0x400000).count(), 1024);
        // 1 GiB page in the middle.
        let v: Vec<_> = page_mappings(0x3fe00000, 0x7fe00000, 0x40400000).collect();
        assert_eq!(
            v,
            vec![
                (0x3fe00000, 0x7fe00000, Size2M),
                (0x40000000, 0x80000000, Size1G),
                (0x80000000, 0xc0000000, Size2M)
            ]
        );
        let total: u64 = page_mappings(0x3fe00000, 0x7fe00000, 0x40400000)
            .map(|(_, _, s)| s.bytes())
            .sum();
        assert_eq!(total, 0x40400000);
        // Bad input yields nothing.
        assert_eq!(page_mappings(0x1001, 0x2000, 0x1000).count(), 0);
        assert_eq!(page_mappings(!0xfffu64, 0, 0x2000).count(), 0);
        assert_eq!(page_mappings(0x1000, 0x2000, 0).count(), 0);
    }
}
