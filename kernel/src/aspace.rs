//! A user address space (Kitten's aspace): non-overlapping regions, each backed
//! by physically contiguous memory and mapped up front with the largest pages
//! that fit. Every change is published to the proxy's mirror table.
//!
//! The address space owns the `Frames` behind its regions: user memory is
//! read and written only through them (bounds-checked), and goes back to the
//! page allocator when unmapped.

use crate::arch::mem::{shared_area, PhysRange, SpinLock};
use crate::arch::paging::PageTables;
use crate::mm::{self, Frames};
use crate::shm;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use linux_abi::Errno;
use lwk_core::region::{Region, RegionKind, RegionMap};
use lwk_core::shm::{Chunk, ObjectId};
use wire::{MirrorEntry, RegionTableHeader, MAX_REGIONS, REGIONS_OFF, REGION_GEN_OFF};

/// Where an address space publishes its regions for the proxy's mirror.
#[derive(Clone)]
pub enum RegionTable {
    /// The initial process's, in the shared area.
    Shared,
    /// A forked process's, in pages of its own (freed with the last user).
    Own(Arc<Frames>),
}

/// Region tables of ended processes that a channel slot still names in a
/// request the proxy has not taken (the dying process's Exit, or a request
/// its proxy, killed meanwhile, never took). A proxy serves the slots whose
/// table is its own, so a new process given the same table pages would have
/// its requests served by the old proxy, and the old Exit served by its own
/// (a child killed with SIGKILL reported exit 0 and the next child died of
/// SIGKILL). Such tables are reused only once no posted request names them.
static QUARANTINE: SpinLock<alloc::vec::Vec<Arc<Frames>>> = SpinLock::new(alloc::vec::Vec::new());

/// Whether a posted, not yet taken, channel request names table `phys`.
fn named_by_posted_slot(phys: u64) -> bool {
    use crate::ikc::slot;
    (0..wire::MAX_SLOTS).any(|s| {
        slot::state(s).load(Ordering::Acquire) == wire::SlotState::Posted as u32
            && slot::read(s).table == phys
    })
}

/// Give back quarantined tables no posted request names any more.
pub fn release_quarantined() {
    let mut q = QUARANTINE.lock();
    if !q.is_empty() {
        q.retain(|f| named_by_posted_slot(f.phys()));
    }
}

impl RegionTable {
    /// A fresh, zeroed table for a new process.
    pub fn new() -> Result<Self, Errno> {
        release_quarantined();
        mm::alloc_kernel_pages(wire::REGION_TABLE_BYTES.div_ceil(mm::PAGE))
            .map(|f| RegionTable::Own(Arc::new(f)))
            .ok_or(Errno::ENOMEM)
    }

    /// The memory holding the table, and the table's offset in it.
    fn mem(&self) -> (&PhysRange, u64) {
        match self {
            RegionTable::Shared => (shared_area(), REGIONS_OFF),
            RegionTable::Own(f) => (f, 0),
        }
    }

    /// Guest-physical address of the table (what the proxy is told).
    pub fn phys(&self) -> u64 {
        let (m, off) = self.mem();
        m.phys() + off
    }

    /// Take the signals the proxy posted for this process in its table.
    pub fn take_signals(&self) -> u32 {
        let (m, off) = self.mem();
        m.atomic_u32(off + wire::REGION_SIGNALS_OFF)
            .swap(0, Ordering::AcqRel)
    }
}

/// Most regions one address space may have (what its region table can
/// publish to the proxy's mirror): mapping more, or splitting a region
/// past it, fails with ENOMEM, as Linux does past vm.max_map_count. It
/// also bounds the kernel memory a process's region records take.
pub const REGION_LIMIT: usize = MAX_REGIONS;

/// ENOMEM (with one kmsg line) when `n` more regions would pass the limit.
fn room_for(regions: &RegionMap, n: usize) -> Result<(), Errno> {
    if regions.len() + n > REGION_LIMIT {
        crate::kprintln!("aspace: more than {REGION_LIMIT} regions; mapping refused (ENOMEM)");
        return Err(Errno::ENOMEM);
    }
    Ok(())
}

pub struct AddressSpace {
    regions: RegionMap,
    pt: PageTables,
    gen: u64,
    table: RegionTable,
    /// The memory behind the regions, by physical start; adjacent frames are
    /// joined, so every region lies inside one entry.
    frames: BTreeMap<u64, Frames>,
}

impl AddressSpace {
    /// Guest-physical address of the region table this address space
    /// publishes to.
    pub fn table(&self) -> u64 {
        self.table.phys()
    }

    /// The region table this address space publishes to.
    pub fn region_table(&self) -> RegionTable {
        self.table.clone()
    }

    /// An address space publishing to `table`.
    pub fn with_table(table: RegionTable) -> Result<Self, Errno> {
        let mut a = Self::new()?;
        a.table = table;
        Ok(a)
    }

    /// An address space with a region table of its own (fork).
    pub fn with_new_table() -> Result<Self, Errno> {
        Self::with_table(RegionTable::new()?)
    }

    pub fn new() -> Result<Self, Errno> {
        Ok(Self {
            regions: RegionMap::new(),
            pt: PageTables::new().map_err(|_| Errno::ENOMEM)?,
            gen: 0,
            table: RegionTable::Shared,
            frames: BTreeMap::new(),
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
        let frames = alloc_chunks(va, len)?;
        let chunks = describe(&frames);
        for f in frames {
            self.add_frames(f);
        }
        if let Err(e) = self.insert_chunks(va, &chunks, prot, kind) {
            for c in &chunks {
                let f = self.take_frames(c.phys, c.len);
                mm::free_user(f);
            }
            return Err(e);
        }
        crate::arch::cpu::flush_tlb();
        self.publish();
        Ok(())
    }

    /// Reserve `[va, va+len)` (free, page aligned) with PROT_NONE and no
    /// memory: `protect` gives memory to the pieces that become accessible.
    pub fn reserve(&mut self, va: u64, len: u64) -> Result<(), Errno> {
        self.reserve_as(va, len, 0, RegionKind::Reserved)
    }

    /// An unbacked region of `kind` (`Reserved` or `PastEof`) with `prot`.
    pub fn reserve_as(
        &mut self,
        va: u64,
        len: u64,
        prot: u32,
        kind: RegionKind,
    ) -> Result<(), Errno> {
        self.check_free(va, len)?;
        self.regions
            .insert(Region {
                start: va,
                len,
                phys: 0,
                prot,
                kind,
            })
            .map_err(|_| Errno::ENOMEM)?;
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
        shm::mapped(id, len)?;
        self.map_held(va, id, off, len, prot)
            .inspect_err(|_| shm::unmapped(id, len))
    }

    /// `map_object` for bytes the caller already counted as mapped (see
    /// `shm::hold_file`); on failure they stay counted, for the caller to
    /// give back.
    pub fn map_held(
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
        self.insert_chunks(va, &chunks, prot, RegionKind::Shared(id))?;
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

    /// Add regions (and page-table entries) for `chunks` laid out from `va`:
    /// memory this address space owns, or a shared object's. On failure
    /// nothing of them stays mapped; the memory stays where it was.
    fn insert_chunks(
        &mut self,
        va: u64,
        chunks: &[Chunk],
        prot: u32,
        kind: RegionKind,
    ) -> Result<(), Errno> {
        room_for(&self.regions, chunks.len())?;
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
            let pt = &mut self.pt;
            let mut mapped = true;
            walk(&self.frames, c.phys, c.len, |f, off, at, n| {
                mapped &= pt.map(r.start + at, f, off, n, prot).is_ok();
            });
            if !mapped {
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
        flush_everywhere();
        self.pt.release_pruned();
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

    /// Own `mem`, joined with the frames it continues or that continue it.
    fn add_frames(&mut self, mut mem: Frames) {
        let before = self
            .frames
            .range(..mem.phys())
            .next_back()
            .map(|(&k, f)| (k, k + f.len()));
        if let Some((k, end)) = before {
            if end == mem.phys() {
                if let Some(prev) = self.frames.remove(&k) {
                    mem = match prev.join(mem) {
                        Ok(j) => j,
                        Err((prev, m)) => {
                            self.frames.insert(k, prev);
                            m
                        }
                    };
                }
            }
        }
        let end = mem.phys() + mem.len();
        if let Some(next) = self.frames.remove(&end) {
            mem = match mem.join(next) {
                Ok(j) => j,
                Err((m, next)) => {
                    self.frames.insert(end, next);
                    m
                }
            };
        }
        self.frames.insert(mem.phys(), mem);
    }

    /// The frames this address space owns holding `[phys, phys+len)`, and
    /// the offset of `phys` in them. The range comes from its own region
    /// map, so it is always owned: anything else is a kernel bug.
    fn frames_at(&self, phys: u64, len: u64) -> (&Frames, u64) {
        match lookup(&self.frames, phys, len) {
            Some(x) => x,
            None => panic!("aspace: [{phys:#x}+{len:#x}) is not memory of this address space"),
        }
    }

    /// Take `[phys, phys+len)` out of the owned frames (to free it).
    fn take_frames(&mut self, phys: u64, len: u64) -> Frames {
        let (_, off) = self.frames_at(phys, len);
        let k = phys - off;
        let Some(mut f) = self.frames.remove(&k) else {
            panic!("aspace: frames at {k:#x} vanished");
        };
        if off > 0 {
            let (head, rest) = f.split_at(off);
            self.frames.insert(k, head);
            f = rest;
        }
        if f.len() > len {
            let (piece, tail) = f.split_at(len);
            self.frames.insert(phys + len, tail);
            f = piece;
        }
        f
    }

    /// Read user memory at physical `phys` (from this address space's regions).
    pub fn read_phys(&self, phys: u64, buf: &mut [u8]) {
        walk(&self.frames, phys, buf.len() as u64, |f, off, at, n| {
            f.read(off, &mut buf[at as usize..(at + n) as usize]);
        });
    }

    /// Write user memory at physical `phys` (from this address space's regions).
    pub fn write_phys(&self, phys: u64, data: &[u8]) {
        walk(&self.frames, phys, data.len() as u64, |f, off, at, n| {
            f.write(off, &data[at as usize..(at + n) as usize]);
        });
    }

    /// Zero `len` bytes of user memory at physical `phys`.
    pub fn zero_phys(&self, phys: u64, len: u64) {
        walk(&self.frames, phys, len, |f, off, _, n| f.zero(off, n));
    }

    /// Copy `len` bytes of `from`'s private memory at `src_phys` to this
    /// address space's at `dst_phys` (fork).
    pub fn copy_phys_from(&self, dst_phys: u64, from: &AddressSpace, src_phys: u64, len: u64) {
        let (d, doff) = self.frames_at(dst_phys, len);
        let (s, soff) = from.frames_at(src_phys, len);
        d.copy_from(doff, s, soff, len);
    }

    /// Run `f` on the user futex word at physical `phys` (4-byte aligned):
    /// None if it is not memory of this address space (unmapped meanwhile).
    pub fn with_atomic_u32<R>(
        &self,
        phys: u64,
        f: impl FnOnce(&core::sync::atomic::AtomicU32) -> R,
    ) -> Option<R> {
        if !phys.is_multiple_of(4) {
            return None;
        }
        if let Some((fr, off)) = lookup(&self.frames, phys, 4) {
            return Some(f(fr.atomic_u32(off)));
        }
        shm::with_frames(phys, 4, |fr, off| f(fr.atomic_u32(off)))
    }

    /// Give back the memory of a region piece that left this address space:
    /// private memory to the page allocator, a shared object's bytes to its
    /// count.
    fn release(&mut self, r: &Region) {
        if !r.kind.is_backed() {
            return;
        }
        match r.kind.shared_object() {
            Some(id) => shm::unmapped(id, r.len),
            None => {
                let f = self.take_frames(r.phys, r.len);
                mm::free_user(f);
            }
        }
    }

    /// munmap semantics: remove whatever is mapped in the range.
    pub fn unmap(&mut self, va: u64, len: u64) -> Result<(), Errno> {
        // A hole inside one region splits it in two.
        let splits = self
            .regions
            .find(va)
            .is_some_and(|r| r.start < va && r.end() > va.saturating_add(len));
        if splits {
            room_for(&self.regions, 1)?;
        }
        let pieces = self.regions.remove_range(va, len);
        if pieces.is_empty() {
            return Ok(());
        }
        for r in &pieces {
            self.pt.unmap(r.start, r.len).map_err(|_| Errno::ENOMEM)?;
        }
        // No core may keep a translation to memory that is about to be reused.
        flush_everywhere();
        self.pt.release_pruned();
        for r in &pieces {
            self.release(r);
        }
        self.publish();
        Ok(())
    }

    /// mprotect semantics: every page must be mapped (ENOMEM otherwise).
    pub fn protect(&mut self, va: u64, len: u64, prot: u32) -> Result<(), Errno> {
        // At most the two regions at the ends split.
        room_for(&self.regions, 2)?;
        let pieces = self
            .regions
            .protect_range(va, len, prot)
            .map_err(|_| Errno::ENOMEM)?;
        for r in &pieces {
            if !r.kind.is_backed() {
                if prot != 0 && r.kind == RegionKind::Reserved {
                    self.back_reserved(r)?;
                }
                continue;
            }
            self.pt
                .protect(r.start, r.len, prot)
                .map_err(|_| Errno::ENOMEM)?;
        }
        // A downgrade must hold on every core before mprotect returns.
        flush_everywhere();
        self.publish();
        Ok(())
    }

    /// A reserved piece became accessible (`r.prot`): fresh zeroed memory
    /// in its place; out of memory, it stays reserved (PROT_NONE).
    fn back_reserved(&mut self, r: &Region) -> Result<(), Errno> {
        self.regions.remove_range(r.start, r.len);
        if let Err(e) = self.map_anon(r.start, r.len, r.prot, RegionKind::Anon) {
            let _ = self.reserve(r.start, r.len);
            return Err(e);
        }
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
        let (mem, base) = self.table.mem();
        // Generation 0 while entries change: the proxy's seqlock read retries.
        mem.atomic_u64(base + REGION_GEN_OFF)
            .store(0, Ordering::Release);
        let mut count = 0u32;
        // Reservations are published (as inaccessible, for /proc/self/maps);
        // pages past the end of a file are not (accessible to nobody, yet
        // with the mapping's protection).
        for r in self
            .regions
            .iter()
            .filter(|r| r.kind.is_backed() || r.kind == RegionKind::Reserved)
        {
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
                kind: wire::RegionKind::from(r.kind).into(),
            };
            mem.write_obj(
                base + core::mem::size_of::<RegionTableHeader>() as u64
                    + u64::from(count) * core::mem::size_of::<MirrorEntry>() as u64,
                e,
            );
            count += 1;
        }
        self.gen += 1;
        // The count, then the new generation (the signals word beside them
        // belongs to the proxy and is left alone).
        mem.write_obj::<u32>(base + wire::REGION_COUNT_OFF, count);
        mem.atomic_u64(base + REGION_GEN_OFF)
            .store(self.gen, Ordering::Release);
    }

    /// Release the memory and page tables of an address space no core uses
    /// any more.
    pub fn destroy(mut self) {
        let regions: alloc::vec::Vec<Region> = self.regions.iter().copied().collect();
        for r in regions.iter().filter(|r| r.kind.shared_object().is_some()) {
            self.release(r);
        }
        self.regions = RegionMap::new();
        let frames = core::mem::take(&mut self.frames);
        for (_, f) in frames {
            mm::free_user(f);
        }
        self.pt.destroy();
        if let RegionTable::Own(t) = self.table {
            if named_by_posted_slot(t.phys()) {
                let mut q = QUARANTINE.lock();
                if q.try_reserve(1).is_ok() {
                    q.push(t);
                } else {
                    // No room to remember it: never reuse it rather than
                    // hand it to a new process.
                    core::mem::forget(t);
                }
            }
        }
    }
}

/// The frames of `frames` holding `[phys, phys+len)`, and the offset of
/// `phys` in them.
fn lookup(frames: &BTreeMap<u64, Frames>, phys: u64, len: u64) -> Option<(&Frames, u64)> {
    let (&k, f) = frames.range(..=phys).next_back()?;
    f.contains(phys, len).then_some((f, phys - k))
}

/// Run `f(frames, offset in them, offset in the range, length)` on each
/// piece of `[phys, phys+len)`: memory in `own` (an address space's frames)
/// or in a shared object. The range comes from an address space's region
/// map, so it is always such memory: anything else is a kernel bug.
fn walk(
    own: &BTreeMap<u64, Frames>,
    phys: u64,
    len: u64,
    mut f: impl FnMut(&Frames, u64, u64, u64),
) {
    let mut at = 0u64;
    while at < len {
        let p = phys + at;
        let step = |fr: &Frames, off: u64| (fr.len() - off).min(len - at);
        let n = match lookup(own, p, 1) {
            Some((fr, off)) => {
                let n = step(fr, off);
                f(fr, off, at, n);
                Some(n)
            }
            None => shm::with_frames(p, 1, |fr, off| {
                let n = step(fr, off);
                f(fr, off, at, n);
                n
            }),
        };
        match n {
            Some(n) => at += n,
            None => panic!("aspace: {p:#x} is not memory of an address space"),
        }
    }
}

/// Where chunks of memory lie (for the region map and shared objects).
fn describe(frames: &[Frames]) -> alloc::vec::Vec<Chunk> {
    frames
        .iter()
        .map(|f| Chunk {
            phys: f.phys(),
            len: f.len(),
        })
        .collect()
}

/// Zeroed physical memory for `[va, va+len)` in as few contiguous chunks as
/// the allocator gives, split so that whatever lies beyond the first 2 MiB
/// boundary starts 2 MiB aligned in both va and phys (large pages fit). On
/// failure, what was allocated goes back (dropped).
fn alloc_chunks(va: u64, len: u64) -> Result<alloc::vec::Vec<Frames>, Errno> {
    let mut chunks: alloc::vec::Vec<Frames> = alloc::vec::Vec::new();
    let mut done = 0u64;
    while done < len {
        let remaining = len - done;
        let mut chunk = remaining;
        let head = (va + done).wrapping_neg() & ((2 << 20) - 1);
        if head != 0 && remaining >= head + (2 << 20) {
            chunk = head;
        }
        let mem = loop {
            if let Some(f) = mm::alloc_user(chunk) {
                break Some(f);
            }
            if chunk <= 4096 {
                break None;
            }
            chunk = (chunk / 2).next_power_of_two().min(remaining) & !0xfff;
            if chunk == 0 {
                chunk = 4096;
            }
        };
        let Some(mem) = mem.filter(|_| chunks.try_reserve(1).is_ok()) else {
            for f in chunks {
                mm::free_user(f);
            }
            return Err(Errno::ENOMEM);
        };
        chunks.push(mem);
        done += chunk;
    }
    Ok(chunks)
}

/// Drop stale user translations on this core and on every other core this
/// address space may be live on (any core that runs one of its threads; the
/// kernel does not track which, so all of them) before returning.
fn flush_everywhere() {
    crate::arch::cpu::flush_tlb();
    crate::arch::smp::tlb_shootdown(u64::MAX);
}
