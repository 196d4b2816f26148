//! Physical page buddy allocator (Kitten-style pmem/kmem backing): owns free-page bookkeeping for one pfn range.
//!
//! Blocks of order `k` always start at an *absolute* pfn that is a multiple of `2^k`, so
//! order-9 blocks are 2 MiB aligned and order-18 blocks 1 GiB aligned in physical memory.
//! The caller supplies the metadata storage (`links`, `orders`), so the allocator itself
//! never allocates. Free lists are doubly linked through `links` (`links[2*i]` = next,
//! `links[2*i+1]` = prev, indices relative to `base_pfn`, [`NONE`] = end of list) and
//! `orders[i]` is the order of the free block whose head is page `i`, or [`NOT_HEAD`].

use core::fmt;

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Largest block order: 2^18 pages = 1 GiB.
pub const MAX_ORDER: u32 = 18;
/// "No page" marker in the `links` array.
pub const NONE: u32 = u32::MAX;
/// Marker in the `orders` array: the page is not the head of a free block.
pub const NOT_HEAD: u8 = 0xFF;

const NORDERS: usize = MAX_ORDER as usize + 1;

/// Errors from [`BuddyAllocator::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuddyError {
    /// `links` is shorter than [`BuddyAllocator::links_len`].
    LinksTooSmall,
    /// `orders` is shorter than [`BuddyAllocator::orders_len`].
    OrdersTooSmall,
    /// `npages` does not fit the u32 link indices (must be < `u32::MAX`).
    TooManyPages,
    /// `base_pfn + npages` overflows, or the range does not fit the physical address space.
    RangeOverflow,
}

impl fmt::Display for BuddyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            BuddyError::LinksTooSmall => "buddy links array too small",
            BuddyError::OrdersTooSmall => "buddy orders array too small",
            BuddyError::TooManyPages => "too many pages for one buddy allocator",
            BuddyError::RangeOverflow => "buddy pfn range overflows",
        };
        f.write_str(s)
    }
}

/// Buddy allocator over pfns `[base_pfn, base_pfn + npages)`.
pub struct BuddyAllocator<'a> {
    base_pfn: u64,
    npages: usize,
    links: &'a mut [u32],
    orders: &'a mut [u8],
    heads: [u32; NORDERS],
    free: u64,
}

/// Smallest order `k` with `2^k >= n` (n >= 1).
fn order_for(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

impl<'a> BuddyAllocator<'a> {
    /// Number of `u32` link entries the caller must supply for `npages` pages.
    pub const fn links_len(npages: usize) -> usize {
        npages.saturating_mul(2)
    }

    /// Number of `u8` order entries the caller must supply for `npages` pages.
    pub const fn orders_len(npages: usize) -> usize {
        npages
    }

    /// Manage pfns `[base_pfn, base_pfn + npages)`. Initially nothing is free.
    pub fn new(
        base_pfn: u64,
        npages: usize,
        links: &'a mut [u32],
        orders: &'a mut [u8],
    ) -> Result<Self, BuddyError> {
        if npages as u64 >= u64::from(NONE) {
            return Err(BuddyError::TooManyPages);
        }
        match base_pfn.checked_add(npages as u64) {
            Some(end) if end <= (u64::MAX >> PAGE_SHIFT) => {}
            _ => return Err(BuddyError::RangeOverflow),
        }
        if links.len() < Self::links_len(npages) {
            return Err(BuddyError::LinksTooSmall);
        }
        if orders.len() < Self::orders_len(npages) {
            return Err(BuddyError::OrdersTooSmall);
        }
        for o in orders[..npages].iter_mut() {
            *o = NOT_HEAD;
        }
        for l in links[..npages * 2].iter_mut() {
            *l = NONE;
        }
        Ok(Self {
            base_pfn,
            npages,
            links,
            orders,
            heads: [NONE; NORDERS],
            free: 0,
        })
    }

    /// First managed pfn.
    pub fn base_pfn(&self) -> u64 {
        self.base_pfn
    }

    /// One past the last managed pfn.
    pub fn end_pfn(&self) -> u64 {
        self.base_pfn + self.npages as u64
    }

    /// Number of free pages.
    pub fn free_pages(&self) -> u64 {
        self.free
    }

    /// Number of managed pages (free or not).
    pub fn total_pages(&self) -> u64 {
        self.npages as u64
    }

    /// Whether page `pfn` is currently free (false outside the managed range).
    pub fn is_free(&self, pfn: u64) -> bool {
        self.free_block_containing(pfn).is_some()
    }

    /// Number of free blocks of each order (diagnostics).
    pub fn free_blocks_per_order(&self) -> [u32; NORDERS] {
        let mut out = [0u32; NORDERS];
        for (k, slot) in out.iter_mut().enumerate() {
            let mut i = self.heads[k];
            while i != NONE {
                *slot += 1;
                i = self.links[2 * i as usize];
            }
        }
        out
    }

    /// Make `[pfn, pfn + npages)` free, clipped to the managed range, coalescing with
    /// neighbours. Pages that are already free are left alone.
    pub fn add_free_range(&mut self, pfn: u64, npages: u64) {
        self.release(pfn, npages);
    }

    /// Free a range previously allocated (or any part of one), coalescing. Pages that are
    /// already free or outside the managed range are ignored.
    pub fn free(&mut self, pfn: u64, npages: u64) {
        self.release(pfn, npages);
    }

    /// Allocate exactly `npages` physically contiguous pages whose first pfn is a multiple
    /// of `align_pages` (a power of two, >= 1). `None` when it cannot be satisfied (or on
    /// bad arguments).
    pub fn alloc(&mut self, npages: u64, align_pages: u64) -> Option<u64> {
        if npages == 0 || align_pages == 0 || !align_pages.is_power_of_two() {
            return None;
        }
        if npages > self.free {
            return None;
        }
        let k = order_for(npages);
        let a = align_pages.trailing_zeros();
        if k > MAX_ORDER || a > MAX_ORDER {
            return self.alloc_scan(npages, align_pages);
        }
        self.alloc_buddy(npages, align_pages, k, a)
            .or_else(|| self.alloc_scan(npages, align_pages))
    }

    /// Buddy fast path: one free block that covers the request with the right alignment.
    fn alloc_buddy(&mut self, npages: u64, align_pages: u64, k: u32, a: u32) -> Option<u64> {
        let need = k.max(a);
        // Fast path: the smallest free block of an order that satisfies size and alignment.
        for j in need..=MAX_ORDER {
            let head = self.heads[j as usize];
            if head != NONE {
                let pfn = self.base_pfn + u64::from(head);
                self.take_range(pfn, npages);
                return Some(pfn);
            }
        }
        // Fallback: a smaller block that happens to be aligned enough.
        for j in k..need {
            let mut i = self.heads[j as usize];
            while i != NONE {
                let pfn = self.base_pfn + u64::from(i);
                if pfn & (align_pages - 1) == 0 {
                    self.take_range(pfn, npages);
                    return Some(pfn);
                }
                i = self.links[2 * i as usize];
            }
        }
        None
    }

    /// Slow path: linear scan for an aligned run of free pages, which may span several free
    /// blocks (requests larger than the largest block, non-power-of-two runs that no single
    /// block covers).
    fn alloc_scan(&mut self, npages: u64, align_pages: u64) -> Option<u64> {
        let end = self.end_pfn();
        let mut start = crate::align_up(self.base_pfn, align_pages)?;
        'outer: loop {
            let stop = start.checked_add(npages)?;
            if stop > end {
                return None;
            }
            let mut q = start;
            while q < stop {
                match self.free_block_containing(q) {
                    Some((h, k)) => q = h + (1u64 << k),
                    None => {
                        // The next free page after a non-free one heads a free block.
                        let from = (q + 1 - self.base_pfn) as usize;
                        let off = self.orders[from..self.npages]
                            .iter()
                            .position(|&o| o != NOT_HEAD)?;
                        start = crate::align_up(q + 1 + off as u64, align_pages)?;
                        continue 'outer;
                    }
                }
            }
            self.take_range(start, npages);
            return Some(start);
        }
    }

    /// Remove `[pfn, pfn + n)`, which must be entirely free, from the free pool; the parts of
    /// the covering free blocks outside the range go back to the pool.
    fn take_range(&mut self, pfn: u64, n: u64) {
        let end = pfn + n;
        let mut q = pfn;
        while q < end {
            let Some((h, k)) = self.free_block_containing(q) else {
                debug_assert!(false, "take_range over a non-free page");
                q += 1;
                continue;
            };
            let bend = h + (1u64 << k);
            self.unlink((h - self.base_pfn) as u32, k);
            self.free -= 1u64 << k;
            if h < pfn {
                self.release(h, pfn - h);
            }
            if bend > end {
                self.release(end, bend - end);
            }
            q = bend;
        }
    }

    /// If `pfn` lies in a free block, that block's head pfn and order.
    fn free_block_containing(&self, pfn: u64) -> Option<(u64, u32)> {
        if pfn < self.base_pfn || pfn >= self.end_pfn() {
            return None;
        }
        for k in 0..=MAX_ORDER {
            let h = pfn & !((1u64 << k) - 1);
            if h < self.base_pfn {
                break;
            }
            if u32::from(self.orders[(h - self.base_pfn) as usize]) == k {
                return Some((h, k));
            }
        }
        None
    }

    /// Free every not-yet-free page of `[pfn, pfn + n)` (clipped), as maximal aligned blocks.
    fn release(&mut self, pfn: u64, n: u64) {
        let mut p = pfn.max(self.base_pfn);
        let end = pfn.saturating_add(n).min(self.end_pfn());
        while p < end {
            if let Some((h, k)) = self.free_block_containing(p) {
                p = h + (1u64 << k);
                continue;
            }
            // Largest order allowed by alignment and remaining length.
            let mut k = p.trailing_zeros().min(MAX_ORDER);
            while p + (1u64 << k) > end {
                k -= 1;
            }
            // Stop short of the first free block head inside the candidate block.
            let i0 = (p - self.base_pfn) as usize;
            let len = 1usize << k;
            if let Some(off) = self.orders[i0 + 1..i0 + len]
                .iter()
                .position(|&o| o != NOT_HEAD)
            {
                let limit = (off + 1) as u64;
                while (1u64 << k) > limit {
                    k -= 1;
                }
            }
            self.free += 1u64 << k;
            self.insert_block(p, k);
            p += 1u64 << k;
        }
    }

    /// Insert the (not free, aligned, in-range) block `pfn` of order `k`, merging buddies.
    fn insert_block(&mut self, mut pfn: u64, mut k: u32) {
        while k < MAX_ORDER {
            let buddy = pfn ^ (1u64 << k);
            if buddy < self.base_pfn || buddy + (1u64 << k) > self.end_pfn() {
                break;
            }
            let bi = (buddy - self.base_pfn) as usize;
            if u32::from(self.orders[bi]) != k {
                break;
            }
            self.unlink(bi as u32, k);
            pfn = pfn.min(buddy);
            k += 1;
        }
        self.push((pfn - self.base_pfn) as u32, k);
    }

    fn push(&mut self, i: u32, k: u32) {
        let old = self.heads[k as usize];
        self.links[2 * i as usize] = old;
        self.links[2 * i as usize + 1] = NONE;
        if old != NONE {
            self.links[2 * old as usize + 1] = i;
        }
        self.heads[k as usize] = i;
        self.orders[i as usize] = k as u8;
    }

    fn unlink(&mut self, i: u32, k: u32) {
        let next = self.links[2 * i as usize];
        let prev = self.links[2 * i as usize + 1];
        if prev != NONE {
            self.links[2 * prev as usize] = next;
        } else {
            self.heads[k as usize] = next;
        }
        if next != NONE {
            self.links[2 * next as usize + 1] = prev;
        }
        self.orders[i as usize] = NOT_HEAD;
        self.links[2 * i as usize] = NONE;
        self.links[2 * i as usize + 1] = NONE;
    }

    /// Check internal consistency (tests): lists match `orders`, blocks are aligned, in
    /// range, disjoint, and sum to the free count.
    #[cfg(test)]
    fn check(&self) {
        let mut seen = std::vec![false; self.npages];
        let mut sum = 0u64;
        for k in 0..NORDERS {
            let mut prev = NONE;
            let mut i = self.heads[k];
            while i != NONE {
                assert_eq!(self.orders[i as usize] as usize, k);
                assert_eq!(self.links[2 * i as usize + 1], prev);
                let pfn = self.base_pfn + u64::from(i);
                assert_eq!(pfn % (1u64 << k), 0, "misaligned block");
                let n = 1usize << k;
                assert!(i as usize + n <= self.npages);
                for s in &mut seen[i as usize..i as usize + n] {
                    assert!(!*s, "overlapping free blocks");
                    *s = true;
                }
                sum += n as u64;
                prev = i;
                i = self.links[2 * i as usize];
            }
        }
        let heads = self.orders[..self.npages]
            .iter()
            .filter(|&&o| o != NOT_HEAD)
            .count();
        let listed: u32 = self.free_blocks_per_order().iter().sum();
        assert_eq!(heads, listed as usize);
        assert_eq!(sum, self.free);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    struct Meta {
        links: Vec<u32>,
        orders: Vec<u8>,
    }

    fn meta(n: usize) -> Meta {
        Meta {
            links: vec![0; BuddyAllocator::links_len(n)],
            orders: vec![0; BuddyAllocator::orders_len(n)],
        }
    }

    fn xorshift(s: &mut u64) -> u64 {
        let mut x = *s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        x
    }

    #[test]
    fn new_validates() {
        let mut m = meta(16);
        assert!(matches!(
            BuddyAllocator::new(0, 17, &mut m.links, &mut m.orders),
            Err(BuddyError::LinksTooSmall)
        ));
        let mut links = vec![0; 64];
        assert!(matches!(
            BuddyAllocator::new(0, 17, &mut links, &mut m.orders),
            Err(BuddyError::OrdersTooSmall)
        ));
        assert!(matches!(
            BuddyAllocator::new(u64::MAX - 3, 16, &mut m.links, &mut m.orders),
            Err(BuddyError::RangeOverflow)
        ));
        let b = BuddyAllocator::new(100, 16, &mut m.links, &mut m.orders).unwrap();
        assert_eq!(b.free_pages(), 0);
        assert_eq!(b.total_pages(), 16);
    }

    #[test]
    fn initially_nothing_free() {
        let mut m = meta(64);
        let mut b = BuddyAllocator::new(0, 64, &mut m.links, &mut m.orders).unwrap();
        assert_eq!(b.alloc(1, 1), None);
        b.add_free_range(0, 64);
        assert_eq!(b.free_pages(), 64);
        b.check();
        assert_eq!(b.free_blocks_per_order()[6], 1);
    }

    #[test]
    fn add_free_range_clips_and_is_idempotent() {
        let mut m = meta(100);
        let mut b = BuddyAllocator::new(1000, 100, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(900, 150); // [1000, 1050)
        assert_eq!(b.free_pages(), 50);
        b.add_free_range(1040, 1000); // overlaps already-free pages
        assert_eq!(b.free_pages(), 100);
        b.add_free_range(0, u64::MAX);
        assert_eq!(b.free_pages(), 100);
        b.add_free_range(5000, 10);
        assert_eq!(b.free_pages(), 100);
        b.check();
    }

    #[test]
    fn alloc_free_many_sizes() {
        let n = 4096;
        let mut m = meta(n);
        let mut b = BuddyAllocator::new(0x10000, n, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(0x10000, n as u64);
        for size in 1..=300u64 {
            let p = b.alloc(size, 1).unwrap();
            assert!(p >= 0x10000 && p + size <= 0x10000 + n as u64);
            assert_eq!(b.free_pages(), n as u64 - size, "size {size}");
            for q in p..p + size {
                assert!(!b.is_free(q));
            }
            b.check();
            b.free(p, size);
            assert_eq!(b.free_pages(), n as u64);
            b.check();
        }
        // Fully coalesced again: one order-12 block.
        assert_eq!(b.free_blocks_per_order()[12], 1);
    }

    #[test]
    fn exact_pages_taken_tail_returned() {
        let mut m = meta(16);
        let mut b = BuddyAllocator::new(0, 16, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(0, 16);
        let a = b.alloc(3, 1).unwrap();
        assert_eq!(b.free_pages(), 13);
        assert_eq!(a, 0);
        // No single free block holds 13 pages, but the free run [3, 16) does.
        assert_eq!(b.alloc(13, 1), Some(3));
        assert_eq!(b.free_pages(), 0);
        assert_eq!(b.alloc(1, 1), None);
        b.free(3, 13);
        b.check();
        // The 4th page of the rounded-up block is usable.
        let mut got = Vec::new();
        while let Some(p) = b.alloc(1, 1) {
            got.push(p);
        }
        assert_eq!(got.len(), 13);
        assert!(!got.iter().any(|&p| p >= a && p < a + 3));
        b.check();
    }

    #[test]
    fn alignment() {
        let n = 4096;
        let mut m = meta(n);
        // Start at an unaligned pfn.
        let mut b = BuddyAllocator::new(0x1003, n, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(0x1003, n as u64);
        let p = b.alloc(1, 512).unwrap();
        assert_eq!(p % 512, 0);
        assert_eq!((p << PAGE_SHIFT) % (2 << 20), 0, "2 MiB aligned");
        assert_eq!(b.free_pages(), n as u64 - 1);
        let q = b.alloc(512, 512).unwrap();
        assert_eq!(q % 512, 0);
        for al in [1u64, 2, 4, 8, 16, 32, 64, 128, 256] {
            let r = b.alloc(5, al).unwrap();
            assert_eq!(r % al, 0);
        }
        b.check();
        assert_eq!(b.alloc(1, 3), None);
        assert_eq!(b.alloc(1, 0), None);
        assert_eq!(b.alloc(0, 1), None);
    }

    #[test]
    fn aligned_fallback_uses_smaller_aligned_block() {
        let mut m = meta(1024);
        let mut b = BuddyAllocator::new(0, 1024, &mut m.links, &mut m.orders).unwrap();
        // Only a single page at 512 and a block at [8, 16) are free.
        b.add_free_range(512, 1);
        b.add_free_range(8, 8);
        assert_eq!(b.alloc(1, 512), Some(512));
        assert_eq!(b.alloc(1, 512), None);
        assert_eq!(b.alloc(2, 8), Some(8));
        b.check();
    }

    #[test]
    fn exhaustion_then_free() {
        let mut m = meta(100);
        let mut b = BuddyAllocator::new(7, 100, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(7, 100);
        let mut v = Vec::new();
        while let Some(p) = b.alloc(1, 1) {
            v.push(p);
        }
        assert_eq!(v.len(), 100);
        assert_eq!(b.free_pages(), 0);
        assert_eq!(b.alloc(1, 1), None);
        b.free(v[42], 1);
        assert_eq!(b.alloc(1, 1), Some(v[42]));
        for &p in &v {
            b.free(p, 1);
        }
        assert_eq!(b.free_pages(), 100);
        b.check();
        // The whole range can be allocated again (100 pages, starting at pfn 7: contiguous).
        assert_eq!(b.alloc(100, 1), Some(7));
        assert_eq!(b.free_pages(), 0);
        b.free(7, 100);
        assert_eq!(b.free_pages(), 100);
        b.check();
    }

    #[test]
    fn double_free_and_foreign_free_ignored() {
        let mut m = meta(64);
        let mut b = BuddyAllocator::new(64, 64, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(64, 64);
        let p = b.alloc(8, 1).unwrap();
        b.free(p, 8);
        b.free(p, 8);
        b.free(p + 2, 3);
        b.free(0, 64); // outside
        b.free(120, 100); // partially outside, already free
        assert_eq!(b.free_pages(), 64);
        b.check();
        assert_eq!(b.free_blocks_per_order()[6], 1);
    }

    #[test]
    fn partial_free() {
        let mut m = meta(64);
        let mut b = BuddyAllocator::new(0, 64, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(0, 64);
        let p = b.alloc(20, 1).unwrap();
        b.free(p + 5, 10);
        assert_eq!(b.free_pages(), 54);
        for q in p..p + 20 {
            assert_eq!(b.is_free(q), (p + 5..p + 15).contains(&q));
        }
        b.free(p, 5);
        b.free(p + 15, 5);
        assert_eq!(b.free_pages(), 64);
        b.check();
        assert_eq!(b.alloc(64, 64), Some(0));
    }

    #[test]
    fn gigabyte_blocks_and_larger() {
        let n = 3usize << 18; // 3 GiB of pages
        let mut m = meta(n);
        let base = 1u64 << 18;
        let mut b = BuddyAllocator::new(base - 5, n, &mut m.links, &mut m.orders).unwrap();
        b.add_free_range(0, u64::MAX);
        b.check();
        assert_eq!(b.free_pages(), n as u64);
        let g = b.alloc(1 << 18, 1 << 18).unwrap();
        assert_eq!(g % (1 << 18), 0);
        // Larger than one max-order block: scan path.
        let big = b.alloc((1 << 18) + 3, 1).unwrap();
        assert!(big + (1 << 18) + 3 <= b.end_pfn());
        assert!(big >= g + (1 << 18) || big + (1 << 18) + 3 <= g);
        b.check();
        assert_eq!(b.free_pages(), n as u64 - (2 << 18) - 3);
        b.free(g, 1 << 18);
        b.free(big, (1 << 18) + 3);
        assert_eq!(b.free_pages(), n as u64);
        b.check();
        assert_eq!(b.alloc(n as u64, 1), Some(base - 5));
        assert_eq!(b.alloc(1, 1), None);
    }

    #[test]
    fn random_stress() {
        let n = 2000usize;
        let base = 0x12345u64;
        let mut m = meta(n);
        let mut b = BuddyAllocator::new(base, n, &mut m.links, &mut m.orders).unwrap();
        // Free in two pieces with a hole, unaligned ends.
        b.add_free_range(base + 3, 900);
        b.add_free_range(base + 1000, 997);
        let total = 900 + 997;
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut fails = 0;
        for step in 0..20000 {
            let r = xorshift(&mut s);
            if live.is_empty() || !r.is_multiple_of(3) {
                let size = 1 + (xorshift(&mut s) % 40);
                let align = 1u64 << (xorshift(&mut s) % 7);
                match b.alloc(size, align) {
                    Some(p) => {
                        assert_eq!(p % align, 0);
                        assert!(p >= base && p + size <= base + n as u64);
                        for &(q, qn) in &live {
                            assert!(p + size <= q || q + qn <= p, "overlap");
                        }
                        for x in p..p + size {
                            assert!(!(base..base + 3).contains(&x));
                            assert!(!(base + 903..base + 1000).contains(&x));
                        }
                        live.push((p, size));
                    }
                    None => fails += 1,
                }
            } else {
                let i = (xorshift(&mut s) as usize) % live.len();
                let (p, sz) = live.swap_remove(i);
                if sz > 2 && r.is_multiple_of(2) {
                    // Free a middle part only; keep both ends live.
                    let a = 1 + xorshift(&mut s) % (sz - 2);
                    let c = 1 + xorshift(&mut s) % (sz - a - 1);
                    b.free(p + a, c);
                    live.push((p, a));
                    if sz - a - c > 0 {
                        live.push((p + a + c, sz - a - c));
                    }
                } else {
                    b.free(p, sz);
                }
            }
            let used: u64 = live.iter().map(|&(_, n)| n).sum();
            assert_eq!(b.free_pages(), total - used, "step {step}");
            if step % 500 == 0 {
                b.check();
            }
        }
        assert!(fails > 0 || live.len() > 10);
        for (p, sz) in live.drain(..) {
            b.free(p, sz);
        }
        b.check();
        assert_eq!(b.free_pages(), total);
        assert_eq!(b.alloc(900, 1), Some(base + 3));
        assert_eq!(b.alloc(997, 1), Some(base + 1000));
        assert_eq!(b.free_pages(), 0);
    }
}
