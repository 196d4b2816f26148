//! Physical memory (Kitten's pmem/kmem): one buddy allocator over the
//! partition's usable RAM, serving kernel pages (page tables, heap) and the
//! physically contiguous regions of user address spaces.

use crate::arch::mem::{phys_slice_mut, zero_phys, KernelHeap, SpinLock};
use lwk_core::buddy::BuddyAllocator;
use lwk_core::pmem::PmemMap;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap::new();

static PMEM: SpinLock<Option<BuddyAllocator<'static>>> = SpinLock::new(None);

use lwk_core::PAGE_SIZE as PAGE;

/// Hand the free regions of the pmem map to the page allocator. Its metadata
/// is carved from the beginning of the first free region large enough.
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
    zero_phys(meta, meta_bytes);
    let links = phys_slice_mut::<u32>(meta, links_len);
    let orders = phys_slice_mut::<u8>(meta + (links_len * 4) as u64, orders_len);
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
    *PMEM.lock() = Some(buddy);
    crate::shared::set_total_bytes(free * PAGE);
    TOTAL_BYTES.store(free * PAGE, core::sync::atomic::Ordering::Relaxed);
    crate::shared::publish_free_bytes(free * PAGE);
    Ok(free)
}

fn with<R>(f: impl FnOnce(&mut BuddyAllocator<'static>) -> R) -> Option<R> {
    PMEM.lock().as_mut().map(f)
}

/// Pages for the kernel heap before the page allocator exists (the boot
/// memory map is parsed into a Vec); they are never freed.
static BOOT_PAGES: SpinLock<u64> = SpinLock::new(0);
const BOOT_PAGES_MAX: u64 = 16;

/// Allocate `pages` contiguous pages aligned to `align` pages; physical address.
pub fn alloc_kernel_pages_aligned(pages: u64, align: u64) -> Option<u64> {
    match with(|b| b.alloc(pages, align)) {
        Some(r) => r.map(|pfn| pfn * PAGE),
        None => {
            let mut used = BOOT_PAGES.lock();
            if align > 1 || *used + pages > BOOT_PAGES_MAX {
                return None;
            }
            let p = crate::arch::boot_arena_phys() + *used * PAGE;
            *used += pages;
            Some(p)
        }
    }
}

pub fn alloc_kernel_pages(pages: u64) -> Option<u64> {
    alloc_kernel_pages_aligned(pages, 1)
}

pub fn free_kernel_pages(phys: u64, pages: u64) {
    with(|b| b.free(phys / PAGE, pages));
}

/// Allocate zeroed, physically contiguous user memory of `len` bytes (page
/// multiple), 2 MiB aligned when at least 2 MiB so large pages fit.
pub fn alloc_user(len: u64) -> Option<u64> {
    let pages = len / PAGE;
    let align = if len >= 1 << 30 {
        1 << 18
    } else if len >= 2 << 20 {
        512
    } else {
        1
    };
    let phys = with(|b| b.alloc(pages, align).or_else(|| b.alloc(pages, 1))).flatten()? * PAGE;
    zero_phys(phys, len);
    publish_free();
    Some(phys)
}

pub fn free_user(phys: u64, len: u64) {
    free_kernel_pages(phys, len / PAGE);
    publish_free();
}

/// Usable partition memory (free when the page allocator started).
static TOTAL_BYTES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Bytes the page allocator can still hand out, and the usable total.
pub fn memory_summary() -> (u64, u64) {
    let free = with(|b| b.free_pages() * PAGE).unwrap_or(0);
    (
        free,
        TOTAL_BYTES.load(core::sync::atomic::Ordering::Relaxed),
    )
}

fn publish_free() {
    if let Some(free) = with(|b| b.free_pages()) {
        crate::shared::publish_free_bytes(free * PAGE);
    }
}
