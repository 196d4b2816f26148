//! Physical memory policy above `arch`'s page allocator: how user regions
//! are placed (large alignment for large pages), zeroing, and publishing
//! free memory to the host. Memory comes as `Frames`, which go back to the
//! allocator when dropped.

use crate::arch::frames;
pub use crate::arch::frames::Frames;
use crate::arch::mem::KernelHeap;
use core::sync::atomic::{AtomicU64, Ordering};
use lwk_core::pmem::PmemMap;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap::new();

pub use lwk_core::PAGE_SIZE as PAGE;

/// Usable partition memory (free when the page allocator started).
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);

/// Hand the free regions of the pmem map to the page allocator; returns the
/// number of free pages.
pub fn init(map: &PmemMap) -> Result<u64, &'static str> {
    let free = frames::init(map)?;
    crate::shared::set_total_bytes(free * PAGE);
    TOTAL_BYTES.store(free * PAGE, Ordering::Relaxed);
    crate::shared::publish_free_bytes(free * PAGE);
    Ok(free)
}

/// Zeroed kernel pages (region tables).
pub fn alloc_kernel_pages(pages: u64) -> Option<Frames> {
    let f = Frames::alloc(pages, 1)?;
    f.zero(0, f.len());
    Some(f)
}

/// Allocate zeroed, physically contiguous user memory of `len` bytes (page
/// multiple), 2 MiB aligned when at least 2 MiB so large pages fit.
pub fn alloc_user(len: u64) -> Option<Frames> {
    let pages = len / PAGE;
    let align = if len >= 1 << 30 {
        1 << 18
    } else if len >= 2 << 20 {
        512
    } else {
        1
    };
    let f = Frames::alloc(pages, align).or_else(|| Frames::alloc(pages, 1))?;
    f.zero(0, len);
    publish_free();
    Some(f)
}

/// Give user memory back.
pub fn free_user(f: Frames) {
    drop(f);
    publish_free();
}

/// Bytes the page allocator can still hand out, and the usable total.
pub fn memory_summary() -> (u64, u64) {
    crate::aspace::release_quarantined();
    (
        frames::free_pages().unwrap_or(0) * PAGE,
        TOTAL_BYTES.load(Ordering::Relaxed),
    )
}

/// One kmsg line on memory at the partition's end: the kernel heap's
/// high-water mark and what the page allocator holds free.
pub fn report_usage() {
    let (heap, peak) = crate::arch::mem::heap_usage();
    let (free, total) = memory_summary();
    crate::kprintln!(
        "mm: kernel heap {} KiB, high-water {} KiB; {} of {} KiB free ({} KiB kept for the kernel)",
        heap / 1024,
        peak / 1024,
        free / 1024,
        total / 1024,
        frames::reserve_pages() * PAGE / 1024
    );
}

fn publish_free() {
    if let Some(free) = frames::free_pages() {
        crate::shared::publish_free_bytes(free * PAGE);
    }
}
