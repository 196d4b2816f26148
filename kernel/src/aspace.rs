//! A user address space (Kitten's aspace): non-overlapping regions, each backed
//! by physically contiguous memory and mapped up front with the largest pages
//! that fit. Every change is published to the proxy's mirror table.

use crate::arch::mem::{phys_atomic_u64, write_phys_obj};
use crate::arch::paging::PageTables;
use crate::mm;
use core::sync::atomic::Ordering;
use linux_abi::Errno;
use lwk_core::region::{Region, RegionKind, RegionMap};
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
        if len == 0 || !va.is_multiple_of(4096) || !len.is_multiple_of(4096) {
            return Err(Errno::EINVAL);
        }
        if !self.regions.is_free(va, len) {
            return Err(Errno::EEXIST);
        }
        let mut done = 0u64;
        while done < len {
            let remaining = len - done;
            let mut chunk = remaining;
            // Map up to the next 2 MiB boundary on its own, so that the rest
            // starts 2 MiB aligned in both va and phys (alloc_user aligns) and
            // gets large pages.
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
            let Some(phys) = phys else {
                self.unmap_quiet(va, done);
                self.publish();
                return Err(Errno::ENOMEM);
            };
            let r = Region {
                start: va + done,
                len: chunk,
                phys,
                prot,
                kind,
            };
            if self.regions.insert(r).is_err() || self.pt.map(r.start, phys, chunk, prot).is_err() {
                mm::free_user(phys, chunk);
                self.unmap_quiet(va, done);
                self.publish();
                return Err(Errno::ENOMEM);
            }
            done += chunk;
        }
        crate::arch::cpu::flush_tlb();
        self.publish();
        Ok(())
    }

    fn unmap_quiet(&mut self, va: u64, len: u64) {
        if len == 0 {
            return;
        }
        for r in self.regions.remove_range(va, len) {
            let _ = self.pt.unmap(r.start, r.len);
            mm::free_user(r.phys, r.len);
        }
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
        // No core may keep a translation to memory that is about to be reused.
        flush_everywhere();
        for r in &pieces {
            mm::free_user(r.phys, r.len);
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
        for r in regions {
            mm::free_user(r.phys, r.len);
        }
        self.regions = RegionMap::new();
        self.pt.destroy();
    }
}

/// Drop stale user translations on this core and on every other core this
/// address space may be live on (any core that runs one of its threads; the
/// kernel does not track which, so all of them) before returning.
fn flush_everywhere() {
    crate::arch::cpu::flush_tlb();
    crate::arch::smp::tlb_shootdown(u64::MAX);
}
