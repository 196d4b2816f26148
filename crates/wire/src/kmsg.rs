//! The kernel's log ring at `SHARED_PHYS + KMSG_OFF`, `KMSG_SIZE` bytes: the
//! kernel writes byte `n` of its log at ring position `n % KMSG_SIZE` and
//! publishes the total written in `Header::kmsg_head` (Release); the host
//! reads the last `min(head, KMSG_SIZE)` bytes back.

use crate::layout::{KMSG_OFF, KMSG_SIZE, SHARED_PHYS};

/// Guest-physical address where log byte number `head` goes.
pub const fn kmsg_phys(head: u64) -> u64 {
    SHARED_PHYS + KMSG_OFF + head % KMSG_SIZE
}

/// The ring's current contents, oldest first, as at most two ranges of ring
/// positions `(start, len)`: `[start, start+len)` then `[0, second len)`.
pub const fn kmsg_spans(head: u64, size: u64) -> [(u64, u64); 2] {
    if size == 0 {
        return [(0, 0), (0, 0)];
    }
    let n = if head < size { head } else { size };
    let start = (head - n) % size;
    let first = if size - start < n { size - start } else { n };
    [(start, first), (0, n - first)]
}
