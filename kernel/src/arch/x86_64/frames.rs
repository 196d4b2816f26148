//! The page allocator (Kitten's pmem): one buddy allocator over the
//! partition's usable RAM. What it hands out to the rest of the kernel is
//! `Frames`: an owned, bounds-checked window that goes back to the allocator
//! when dropped, so safe code can reach only physical memory it was given.
//! Page tables and the kernel heap, inside `arch`, take raw pages.

use super::mem::{phys_slice_mut, PhysRange, SpinLock};
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::sync::atomic::{AtomicU64, Ordering};
use lwk_core::buddy::BuddyAllocator;
use lwk_core::pmem::PmemMap;

const PAGE: u64 = 4096;

static PMEM: SpinLock<Option<BuddyAllocator<'static>>> = SpinLock::new(None);

/// Pages for the kernel heap before the page allocator exists (the boot
/// memory map is parsed into a Vec); they are never freed.
static BOOT_PAGES: SpinLock<u64> = SpinLock::new(0);
const BOOT_PAGES_MAX: u64 = 16;

/// Pages kept back for the kernel's own small objects (heap size classes:
/// task and process records, tree nodes, locks' tables): everything a
/// program can make the kernel allocate in bulk (user memory, page tables,
/// kernel stacks, large buffers) stops short of them, so running out of
/// memory fails that call (ENOMEM, EAGAIN) instead of the kernel's
/// bookkeeping. Set by `init`: 1/32 of the partition, 2..32 MiB.
static RESERVE: AtomicU64 = AtomicU64::new(0);
const RESERVE_MIN: u64 = (2 << 20) / PAGE;
const RESERVE_MAX: u64 = (32 << 20) / PAGE;

/// Who asks for pages: the kernel heap's small objects may dig into the
/// reserve; everything else must leave it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Pool {
    Reserve,
    Bounded,
}

/// Hand the free regions of the pmem map to the page allocator. Its metadata
/// is carved from the beginning of the first free region large enough.
/// Returns the number of free pages.
pub fn init(map: &PmemMap) -> Result<u64, &'static str> {
    let (lo, hi) = map.free_span().ok_or("no usable memory in the partition")?;
    let npages = ((hi - lo) / PAGE) as usize;
    let links_len = BuddyAllocator::links_len(npages);
    let orders_len = BuddyAllocator::orders_len(npages);
    let meta_bytes = ((links_len * 4 + orders_len) as u64).div_ceil(PAGE) * PAGE;
    let meta = map
        .free()
        .find(|r| r.end - r.start >= meta_bytes)
        .map(|r| r.start)
        .ok_or("no room for the page allocator's metadata")?;
    PhysRange::new(meta, meta_bytes).zero(0, meta_bytes);
    // SAFETY: [meta, meta + meta_bytes) is free RAM that is never handed
    // out (the free ranges below start after it), zeroed just above, and
    // 4-byte aligned (page aligned); the allocator owns it from now on.
    let (links, orders) = unsafe {
        (
            phys_slice_mut::<u32>(meta, links_len),
            phys_slice_mut::<u8>(meta + (links_len * 4) as u64, orders_len),
        )
    };
    let mut buddy = BuddyAllocator::new(lo / PAGE, npages, links, orders)
        .map_err(|_| "page allocator setup failed")?;
    for r in map.free() {
        let start = if r.start == meta {
            meta + meta_bytes
        } else {
            r.start
        };
        if r.end > start {
            buddy.add_free_range(start / PAGE, (r.end - start) / PAGE);
        }
    }
    let free = buddy.free_pages();
    RESERVE.store(
        (free / 32).clamp(RESERVE_MIN, RESERVE_MAX),
        Ordering::Relaxed,
    );
    *PMEM.lock() = Some(buddy);
    Ok(free)
}

fn with<R>(f: impl FnOnce(&mut BuddyAllocator<'static>) -> R) -> Option<R> {
    PMEM.lock().as_mut().map(f)
}

/// Pages the allocator can still hand out (None before `init`).
pub fn free_pages() -> Option<u64> {
    with(|b| b.free_pages())
}

/// Pages kept back for the kernel heap's small objects.
pub fn reserve_pages() -> u64 {
    RESERVE.load(Ordering::Relaxed)
}

/// `pages` from the buddy allocator, leaving the reserve unless `pool`
/// may take it (None when there is no room, or before `init`).
fn alloc_pfn(pages: u64, align: u64, pool: Pool) -> Option<Option<u64>> {
    let reserve = match pool {
        Pool::Reserve => 0,
        Pool::Bounded => RESERVE.load(Ordering::Relaxed),
    };
    with(|b| {
        if b.free_pages() < pages.saturating_add(reserve) {
            return None;
        }
        b.alloc(pages, align)
    })
}

/// `pages` contiguous pages aligned to `align` pages, for `arch`'s own use
/// (page tables, heap) from `pool`; physical address. Before `init`, a few
/// boot pages.
pub(super) fn alloc_raw(pages: u64, align: u64, pool: Pool) -> Option<u64> {
    match alloc_pfn(pages, align, pool) {
        Some(r) => r.map(|pfn| pfn * PAGE),
        None => {
            let mut used = BOOT_PAGES.lock();
            if align > 1 || *used + pages > BOOT_PAGES_MAX {
                return None;
            }
            let p = super::boot_arena_phys() + *used * PAGE;
            *used += pages;
            Some(p)
        }
    }
}

/// Give back pages from `alloc_raw`.
pub(super) fn free_raw(phys: u64, pages: u64) {
    with(|b| b.free(phys / PAGE, pages));
}

/// Physically contiguous pages owned by their holder; freed on drop.
pub struct Frames(PhysRange);

impl Frames {
    /// `pages` contiguous pages aligned to `align` pages (contents
    /// undefined); never from the kernel's reserve.
    pub fn alloc(pages: u64, align: u64) -> Option<Frames> {
        if pages == 0 {
            return None;
        }
        let pfn = alloc_pfn(pages, align, Pool::Bounded).flatten()?;
        Some(Frames(PhysRange::new(pfn * PAGE, pages * PAGE)))
    }

    /// The memory of a host file plugged at guest-physical `[gpa, gpa+len)`
    /// (inside the hot-plug window, page aligned): not the page allocator's,
    /// so dropping it frees nothing. `None` for any other range.
    pub fn plugged(gpa: u64, len: u64) -> Option<Frames> {
        let end = gpa.checked_add(len)?;
        let ok = gpa >= wire::HOTPLUG_BASE
            && end <= wire::HOTPLUG_BASE + wire::HOTPLUG_SPACE
            && len > 0
            && (gpa | len).is_multiple_of(PAGE);
        ok.then(|| Frames(PhysRange::new(gpa, len)))
    }

    /// Split at byte offset `at` (a page multiple inside the frames): the
    /// first `at` bytes and the rest, each owned on its own.
    pub fn split_at(self, at: u64) -> (Frames, Frames) {
        assert!(at.is_multiple_of(PAGE) && at > 0 && at < self.len());
        let me = ManuallyDrop::new(self);
        let (start, len) = (me.phys(), me.len());
        (
            Frames(PhysRange::new(start, at)),
            Frames(PhysRange::new(start + at, len - at)),
        )
    }
}

impl Frames {
    /// Join `next` to these frames when it starts where they end.
    pub fn join(self, next: Frames) -> Result<Frames, (Frames, Frames)> {
        if self.phys() + self.len() != next.phys() {
            return Err((self, next));
        }
        let (a, b) = (ManuallyDrop::new(self), ManuallyDrop::new(next));
        Ok(Frames(PhysRange::new(a.phys(), a.len() + b.len())))
    }
}

impl Deref for Frames {
    type Target = PhysRange;
    fn deref(&self) -> &PhysRange {
        &self.0
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        // Plugged files' memory is the host's (see `plugged`).
        if self.0.phys() < wire::HOTPLUG_BASE {
            free_raw(self.0.phys(), self.0.len() / PAGE);
        }
    }
}
