//! Physical memory (Kitten's pmem/kmem): one buddy allocator over the
//! partition's usable RAM, serving kernel pages (page tables, heap) and the
//! physically contiguous regions of user address spaces.

use crate::arch::mem::{phys_slice_mut, zero_phys, KernelHeap, SpinLock};
use lwk_core::buddy::BuddyAllocator;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap::new();

static PMEM: SpinLock<Option<BuddyAllocator<'static>>> = SpinLock::new(None);

const PAGE: u64 = 4096;

/// Usable RAM summary, for the boot log.
pub struct PmemInfo {
    pub start: u64,
    pub end: u64,
    pub free_pages: u64,
}

/// Hand `[start, end)` (page aligned, inside the direct map) to the page
/// allocator. Its metadata is carved from the beginning of the range.
pub fn init(start: u64, end: u64) -> PmemInfo {
    let npages = ((end - start) / PAGE) as usize;
    let links_len = BuddyAllocator::links_len(npages);
    let orders_len = BuddyAllocator::orders_len(npages);
    let meta_bytes = (links_len * 4 + orders_len) as u64;
    let meta_pages = meta_bytes.div_ceil(PAGE);
    zero_phys(start, meta_pages * PAGE);
    let links = phys_slice_mut::<u32>(start, links_len);
    let orders = phys_slice_mut::<u8>(start + (links_len * 4) as u64, orders_len);
    let base_pfn = start / PAGE;
    let mut buddy = match BuddyAllocator::new(base_pfn, npages, links, orders) {
        Ok(b) => b,
        Err(e) => panic!("page allocator: {e:?}"),
    };
    buddy.add_free_range(base_pfn + meta_pages, npages as u64 - meta_pages);
    let free_pages = buddy.free_pages();
    *PMEM.lock() = Some(buddy);
    PmemInfo {
        start,
        end,
        free_pages,
    }
}

fn with<R>(f: impl FnOnce(&mut BuddyAllocator<'static>) -> R) -> Option<R> {
    PMEM.lock().as_mut().map(f)
}

/// Allocate `pages` contiguous pages aligned to `align` pages; physical address.
pub fn alloc_kernel_pages_aligned(pages: u64, align: u64) -> Option<u64> {
    with(|b| b.alloc(pages, align))
        .flatten()
        .map(|pfn| pfn * PAGE)
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
    Some(phys)
}

pub fn free_user(phys: u64, len: u64) {
    free_kernel_pages(phys, len / PAGE);
}
