//! A user address space (Kitten's aspace): non-overlapping regions, each backed
//! by physically contiguous memory and mapped up front with the largest pages
//! that fit. Every change is published to the proxy's mirror table.

use crate::arch::mem::{phys_atomic_u64, write_phys_obj};
use crate::arch::paging::PageTables;
use crate::mm;
use crate::shm;
use core::sync::atomic::Ordering;
use linux_abi::Errno;
use lwk_core::region::{Region, RegionKind, RegionMap};
use lwk_core::shm::{Chunk, ObjectId};
use wire::{MirrorEntry, RegionTableHeader, MAX_REGIONS, REGIONS_OFF, REGION_GEN_OFF, SHARED_PHYS};

pub struct AddressSpace {
    regions: RegionMap,
    pt: PageTables,
    gen: u64,
    /// Guest-physical address of the region table the proxy mirrors.
    table: u64,
}

impl AddressSpace {
    /// The region table this address space publishes to.
    pub fn table(&self) -> u64 {
        self.table
    }

    /// An address space publishing to the region table at `table`.
    pub fn with_table(table: u64) -> Result<Self, Errno> {
        let mut a = Self::new()?;
        a.table = table;
        Ok(a)
    }

    pub fn new() -> Result<Self, Errno> {
        Ok(Self {
            regions: RegionMap::new(),
            pt: PageTables::new().map_err(|_| Errno::ENOMEM)?,
            gen: 0,
            table: SHARED_PHYS + REGIONS_OFF,
        })
    }

    pub fn regions(&self) -> &RegionMap {
        &self.regions
    }

    /// Physical address of the page-table root.
    pub fn root(&self) -> u64 {
        self.pt.root()
    }

    /// Load these page tables on this core.
    pub fn activate(&self) {
        crate::arch::activate_page_tables(self.pt.root());
    }

    /// Map fresh zeroed memory at `[va, va+len)` (free, page aligned). Uses
    /// one contiguous physical block when possible, else several.
    pub fn map_anon(
        &mut self,
        va: u64,
        len: u64,
        prot: u32,
        kind: RegionKind,
    ) -> Result<(), Errno> {
        self.check_free(va, len)?;
        let chunks = alloc_chunks(va, len)?;
        if let Err(e) = self.insert_chunks(va, &chunks, prot, kind) {
            for c in &chunks {
                mm::free_user(c.phys, c.len);
            }
            return Err(e);
        }
        crate::arch::cpu::flush_tlb();
        self.publish();
        Ok(())
    }

    /// Map a new shared object of `len` zeroed bytes at `[va, va+len)`
    /// (`MAP_SHARED|MAP_ANONYMOUS`): forks share it instead of copying it.
    pub fn map_shared_anon(&mut self, va: u64, len: u64, prot: u32) -> Result<(), Errno> {
        self.check_free(va, len)?;
        let id = shm::create(alloc_chunks(va, len)?)?;
        if let Err(e) = self.map_object(va, id, 0, len, prot) {
            shm::discard(id);
            return Err(e);
        }
        Ok(())
    }

    /// Map bytes `[off, off+len)` of shared object `id` at `[va, va+len)`
    /// (free, page aligned). ENOMEM when the object is not that large.
    pub fn map_object(
        &mut self,
        va: u64,
        id: ObjectId,
        off: u64,
        len: u64,
        prot: u32,
    ) -> Result<(), Errno> {
        self.check_free(va, len)?;
        let Some(pieces) = shm::pieces(id, off, len) else {
            crate::kprintln!(
                "aspace: mapping {len:#x} bytes at offset {off:#x} of a shared object past its end"
            );
            return Err(Errno::ENOMEM);
        };
        let chunks: alloc::vec::Vec<Chunk> = pieces
            .iter()
            .map(|&(_, phys, len)| Chunk { phys, len })
            .collect();
        shm::mapped(id, len)?;
        if let Err(e) = self.insert_chunks(va, &chunks, prot, RegionKind::Shared(id)) {
            shm::unmapped(id, len);
            return Err(e);
        }
        crate::arch::cpu::flush_tlb();
        self.publish();
        Ok(())
    }

    /// Map region `r` of another address space (a fork's parent) onto the
    /// same physical memory: only for regions of shared objects.
    pub fn share_region(&mut self, r: &Region) -> Result<(), Errno> {
        let id = r.kind.shared_object().ok_or(Errno::EINVAL)?;
        self.check_free(r.start, r.len)?;
        shm::mapped(id, r.len)?;
        let chunk = [Chunk {
            phys: r.phys,
            len: r.len,
        }];
        if let Err(e) = self.insert_chunks(r.start, &chunk, r.prot, r.kind) {
            shm::unmapped(id, r.len);
            return Err(e);
        }
        self.publish();
        Ok(())
    }

    fn check_free(&self, va: u64, len: u64) -> Result<(), Errno> {
        if len == 0 || !va.is_multiple_of(4096) || !len.is_multiple_of(4096) {
            return Err(Errno::EINVAL);
        }
        if !self.regions.is_free(va, len) {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    /// Add regions (and page-table entries) for `chunks` laid out from `va`.
    /// On failure nothing of them stays mapped; the memory stays the caller's.
    fn insert_chunks(
        &mut self,
        va: u64,
        chunks: &[Chunk],
        prot: u32,
        kind: RegionKind,
    ) -> Result<(), Errno> {
        let mut done = 0u64;
        for c in chunks {
            let r = Region {
                start: va + done,
                len: c.len,
                phys: c.phys,
                prot,
                kind,
            };
            if self.regions.insert(r).is_err() {
                self.forget(va, done);
                return Err(Errno::ENOMEM);
            }
            if self.pt.map(r.start, r.phys, r.len, prot).is_err() {
                self.forget(va, done + c.len);
                return Err(Errno::ENOMEM);
            }
            done += c.len;
        }
        Ok(())
    }

    /// Drop the regions and page-table entries of `[va, va+len)` without
    /// releasing their memory (undoing a half-done `insert_chunks`).
    fn forget(&mut self, va: u64, len: u64) {
        if len == 0 {
            return;
        }
        for r in self.regions.remove_range(va, len) {
            let _ = self.pt.unmap(r.start, r.len);
        }
        crate::arch::cpu::flush_tlb();
    }

    /// The pieces of mapped regions that overlap `[va, va+len)`, clipped to it.
    pub fn pieces(&self, va: u64, len: u64) -> alloc::vec::Vec<Region> {
        let end = va.saturating_add(len);
        self.regions
            .iter()
            .filter(|r| r.start < end && r.end() > va)
            .map(|r| {
                let s = r.start.max(va);
                let e = r.end().min(end);
                Region {
                    start: s,
                    len: e - s,
                    phys: r.phys + (s - r.start),
                    ..*r
                }
            })
            .collect()
    }

    /// munmap semantics: remove whatever is mapped in the range.
    pub fn unmap(&mut self, va: u64, len: u64) -> Result<(), Errno> {
        let pieces = self.regions.remove_range(va, len);
        if pieces.is_empty() {
            return Ok(());
        }
        for r in &pieces {
            self.pt.unmap(r.start, r.len).map_err(|_| Errno::ENOMEM)?;
        }
        crate::arch::cpu::flush_tlb();
        // No core may keep a translation to memory that is about to be reused.
        crate::sched::tlb_shootdown();
        for r in &pieces {
            release(r);
        }
        self.publish();
        Ok(())
    }

    /// mprotect semantics: every page must be mapped (ENOMEM otherwise).
    pub fn protect(&mut self, va: u64, len: u64, prot: u32) -> Result<(), Errno> {
        let pieces = self
            .regions
            .protect_range(va, len, prot)
            .map_err(|_| Errno::ENOMEM)?;
        for r in &pieces {
            self.pt
                .protect(r.start, r.len, prot)
                .map_err(|_| Errno::ENOMEM)?;
        }
        crate::arch::cpu::flush_tlb();
        self.publish();
        Ok(())
    }

    pub fn find_free(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        self.regions.find_free_top_down(len, align, lo, hi)
    }

    pub fn is_free(&self, va: u64, len: u64) -> bool {
        self.regions.is_free(va, len)
    }

    /// Write the region table for the proxy's mirror and bump its generation.
    pub fn publish(&mut self) {
        let base = self.table;
        // Generation 0 while entries change: the proxy's seqlock read retries.
        phys_atomic_u64(base + REGION_GEN_OFF).store(0, Ordering::Release);
        let mut count = 0u32;
        for r in self.regions.iter() {
            if count as usize == MAX_REGIONS {
                crate::kprintln!(
                    "aspace: more than {MAX_REGIONS} regions; the proxy mirrors only the first"
                );
                break;
            }
            let e = MirrorEntry {
                vaddr: r.start,
                len: r.len,
                file_off: r.phys,
                prot: r.prot,
                kind: match r.kind {
                    RegionKind::Anon => wire::REGION_ANON,
                    RegionKind::Image => wire::REGION_IMAGE,
                    RegionKind::Heap => wire::REGION_HEAP,
                    RegionKind::Stack => wire::REGION_STACK,
                    RegionKind::Shared(_) => wire::REGION_SHARED,
                },
            };
            write_phys_obj(
                base + core::mem::size_of::<RegionTableHeader>() as u64
                    + u64::from(count) * core::mem::size_of::<MirrorEntry>() as u64,
                e,
            );
            count += 1;
        }
        self.gen += 1;
        // The count, then the new generation (the signals word beside them
        // belongs to the proxy and is left alone).
        write_phys_obj::<u32>(base + wire::REGION_COUNT_OFF, count);
        phys_atomic_u64(base + REGION_GEN_OFF).store(self.gen, Ordering::Release);
    }

    /// Release the memory and page tables of an address space no core uses
    /// any more.
    pub fn destroy(mut self) {
        let regions: alloc::vec::Vec<Region> = self.regions.iter().copied().collect();
        for r in &regions {
            release(r);
        }
        self.regions = RegionMap::new();
        self.pt.destroy();
    }
}

/// Give back the memory of a region piece that left an address space: private
/// memory to the page allocator, a shared object's bytes to its count.
fn release(r: &Region) {
    match r.kind.shared_object() {
        Some(id) => shm::unmapped(id, r.len),
        None => mm::free_user(r.phys, r.len),
    }
}

/// Zeroed physical memory for `[va, va+len)` in as few contiguous chunks as
/// the allocator gives, split so that whatever lies beyond the first 2 MiB
/// boundary starts 2 MiB aligned in both va and phys (large pages fit).
fn alloc_chunks(va: u64, len: u64) -> Result<alloc::vec::Vec<Chunk>, Errno> {
    let mut chunks: alloc::vec::Vec<Chunk> = alloc::vec::Vec::new();
    let mut done = 0u64;
    while done < len {
        let remaining = len - done;
        let mut chunk = remaining;
        let head = (va + done).wrapping_neg() & ((2 << 20) - 1);
        if head != 0 && remaining >= head + (2 << 20) {
            chunk = head;
        }
        let phys = loop {
            if let Some(p) = mm::alloc_user(chunk) {
                break Some(p);
            }
            if chunk <= 4096 {
                break None;
            }
            chunk = (chunk / 2).next_power_of_two().min(remaining) & !0xfff;
            if chunk == 0 {
                chunk = 4096;
            }
        };
        let pushed = phys.is_some() && chunks.try_reserve(1).is_ok();
        let Some(phys) = phys.filter(|_| pushed) else {
            if let Some(p) = phys {
                mm::free_user(p, chunk);
            }
            for c in &chunks {
                mm::free_user(c.phys, c.len);
            }
            return Err(Errno::ENOMEM);
        };
        chunks.push(Chunk { phys, len: chunk });
        done += chunk;
    }
    Ok(chunks)
}
