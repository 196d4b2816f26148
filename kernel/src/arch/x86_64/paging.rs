//! x86-64 4-level page tables of an address space: map physically contiguous
//! regions with the largest pages that fit, unmap and change protection
//! (splitting large pages where a range ends inside one).

use super::frames::Frames;
use super::frames::{alloc_raw, free_raw, Pool};
use super::mem::{phys_slice_mut, SpinLock};
use alloc::collections::BTreeSet;

/// Roots of the page tables that exist (what `activate_page_tables` accepts).
static LIVE_ROOTS: SpinLock<BTreeSet<u64>> = SpinLock::new(BTreeSet::new());

/// Whether `pml4` is the root of live `PageTables`.
pub fn is_live_root(pml4: u64) -> bool {
    LIVE_ROOTS.lock().contains(&pml4)
}
use lwk_core::region::{page_mappings, PageSize, PROT_EXEC, PROT_WRITE};

const P: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Out of memory for page-table pages.
#[derive(Debug)]
pub struct NoMemory;

fn leaf_flags(prot: u32) -> u64 {
    let mut f = US;
    if prot != 0 {
        f |= P;
    }
    if prot & PROT_WRITE != 0 {
        f |= RW;
    }
    if prot & PROT_EXEC == 0 {
        f |= NX;
    }
    f
}

fn table(phys: u64) -> &'static mut [u64] {
    // SAFETY: `phys` is a page-table page: the boot PML4, or a page from
    // `alloc_raw` that belongs to one `PageTables` (which has `&mut self`
    // whenever it walks it) until `destroy` frees it.
    unsafe { phys_slice_mut::<u64>(phys, 512) }
}

fn new_table() -> Result<u64, NoMemory> {
    let p = alloc_raw(1, 1, Pool::Bounded).ok_or(NoMemory)?;
    table(p).fill(0);
    Ok(p)
}

/// The page tables of one user address space. The upper half (direct map and
/// kernel) is shared with the boot tables.
pub struct PageTables {
    pml4: u64,
    /// Table pages emptied by `unmap`, unlinked but not yet freed: another
    /// core may still cache them until the caller's TLB shootdown, after
    /// which `release_pruned` gives them back.
    pruned: alloc::vec::Vec<u64>,
}

impl PageTables {
    pub fn new() -> Result<Self, NoMemory> {
        let pml4 = new_table()?;
        let boot = table(super::boot::boot_pml4_phys());
        table(pml4)[256..].copy_from_slice(&boot[256..]);
        LIVE_ROOTS.lock().insert(pml4);
        Ok(Self {
            pml4,
            pruned: alloc::vec::Vec::new(),
        })
    }

    pub fn root(&self) -> u64 {
        self.pml4
    }

    /// Walk to the entry of `level` (3 = PDPT entry, 2 = PD entry, 1 = PT
    /// entry) for `va`, creating tables; splits large pages on the way.
    fn entry(&mut self, va: u64, level: u32) -> Result<&'static mut u64, NoMemory> {
        let mut t = self.pml4;
        for l in (level + 1..=4).rev() {
            let idx = ((va >> (12 + 9 * (l - 1))) & 511) as usize;
            let e = &mut table(t)[idx];
            if *e & P == 0 && *e & ADDR == 0 {
                let nt = new_table()?;
                *e = nt | P | RW | US;
            } else if *e & PS != 0 {
                // Split a large page (l = 3: 1 GiB in a PDPT entry, l = 2: 2 MiB in a PD entry).
                let child = l - 1;
                let nt = new_table()?;
                let step = 1u64 << (12 + 9 * (child - 1));
                let base = *e & ADDR & !(PS << 5); // clear PAT bit position for large pages
                let flags = *e & !ADDR & !PS;
                for (i, ce) in table(nt).iter_mut().enumerate() {
                    *ce = (base + i as u64 * step) | flags | if child > 1 { PS } else { 0 };
                }
                *e = nt | P | RW | US;
            }
            t = *e & ADDR;
        }
        let idx = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        Ok(&mut table(t)[idx])
    }

    /// Map `[va, va+len)` to bytes `[off, off+len)` of `mem` (memory the
    /// address space owns or shares) with `prot` (PROT_NONE keeps the
    /// translation but not present).
    pub fn map(
        &mut self,
        va: u64,
        mem: &Frames,
        off: u64,
        len: u64,
        prot: u32,
    ) -> Result<(), NoMemory> {
        let pa = mem.phys() + off;
        assert!(mem.contains(pa, len), "mapping beyond the frames given");
        let flags = leaf_flags(prot);
        for (v, p, size) in page_mappings(va, pa, len) {
            match size {
                PageSize::Size4K => *self.entry(v, 1)? = p | flags,
                PageSize::Size2M => *self.entry(v, 2)? = p | flags | PS,
                PageSize::Size1G => *self.entry(v, 3)? = p | flags | PS,
            }
        }
        Ok(())
    }

    /// Apply `f` to the leaf entries covering `[va, va+len)`, splitting large
    /// pages the range only partly covers. Absent tables are skipped.
    fn for_leaves(&mut self, va: u64, len: u64, f: &dyn Fn(&mut u64)) -> Result<(), NoMemory> {
        let end = va + len;
        let mut v = va;
        while v < end {
            let mut t = self.pml4;
            let mut level = 4u32;
            loop {
                let shift = 12 + 9 * (level - 1);
                let idx = ((v >> shift) & 511) as usize;
                let size = 1u64 << shift;
                let e = &mut table(t)[idx];
                let present_or_kept = *e & (P | ADDR) != 0;
                if !present_or_kept {
                    v = (v & !(size - 1)) + size;
                    break;
                }
                if level == 1 || *e & PS != 0 {
                    if level > 1 && (!v.is_multiple_of(size) || end - v < size) {
                        // Partly covered large page: split it and retry this address.
                        self.entry(v, level - 1)?;
                        break;
                    }
                    f(e);
                    v += size;
                    break;
                }
                t = *e & ADDR;
                level -= 1;
            }
        }
        Ok(())
    }

    /// Remove the translations of `[va, va+len)`; page-table pages left
    /// empty are unlinked (freed by `release_pruned` after a shootdown), so
    /// a program that maps and unmaps all over its address space does not
    /// pile up page tables.
    pub fn unmap(&mut self, va: u64, len: u64) -> Result<(), NoMemory> {
        self.for_leaves(va, len, &|e| *e = 0)?;
        let end = va.saturating_add(len).min(1 << 47);
        if va < end {
            prune(self.pml4, 4, 0, va, end, &mut self.pruned);
        }
        Ok(())
    }

    /// Free the table pages `unmap` unlinked; call once no core can hold a
    /// cached translation through them (after the TLB shootdown).
    pub fn release_pruned(&mut self) {
        for t in self.pruned.drain(..) {
            free_raw(t, 1);
        }
    }

    pub fn protect(&mut self, va: u64, len: u64, prot: u32) -> Result<(), NoMemory> {
        let flags = leaf_flags(prot);
        self.for_leaves(va, len, &|e| *e = (*e & (ADDR | PS)) | flags)
    }

    /// Free every page-table page of the user half (the upper half is shared
    /// with the boot tables and stays).
    pub fn destroy(mut self) {
        self.release_pruned();
        LIVE_ROOTS.lock().remove(&self.pml4);
        fn free_level(t: u64, level: u32) {
            if level > 1 {
                for &e in table(t).iter() {
                    if e & P != 0 && e & PS == 0 {
                        free_level(e & ADDR, level - 1);
                    }
                }
            }
            free_raw(t, 1);
        }
        for i in 0..256 {
            let e = table(self.pml4)[i];
            if e & P != 0 {
                free_level(e & ADDR, 3);
            }
        }
        free_raw(self.pml4, 1);
    }
}

/// Unlink the tables below `t` (a table of `level`, covering from `base`)
/// that `[lo, hi)` leaves with no entry, onto `out`. Tables the range only
/// partly covers are kept unless every entry is zero.
fn prune(t: u64, level: u32, base: u64, lo: u64, hi: u64, out: &mut alloc::vec::Vec<u64>) {
    if level == 1 {
        return;
    }
    let span = 1u64 << (12 + 9 * (level - 1));
    let first = (lo.max(base) - base) / span;
    let last = (hi - 1 - base) / span;
    for i in first..=last.min(511) {
        let e = table(t)[i as usize];
        if e & P == 0 || e & PS != 0 {
            continue;
        }
        let child = e & ADDR;
        let cbase = base + i * span;
        prune(
            child,
            level - 1,
            cbase,
            lo.max(cbase),
            hi.min(cbase + span),
            out,
        );
        if table(child).iter().all(|&c| c == 0) && out.try_reserve(1).is_ok() {
            table(t)[i as usize] = 0;
            out.push(child);
        }
    }
}
