//! Channel slots: which thread owns which slot, where a slot and its bits
//! (doorbell, interrupt request) live in the shared area, and whether the
//! proxy has answered. Below the scheduler, which hands a slot to each task.

use crate::arch::mem::{phys_atomic_u32, phys_atomic_u64, SpinLock};
use core::sync::atomic::{AtomicU64, Ordering};
use wire::{SlotState, CHANNEL_OFF, SHARED_PHYS, SLOT_SIZE, SLOT_STATE_OFF};

static SLOTS: SpinLock<[u64; wire::DOORBELL_WORDS]> = SpinLock::new([0; wire::DOORBELL_WORDS]);

/// A free slot for a new thread.
pub fn alloc() -> Option<usize> {
    let mut s = SLOTS.lock();
    for (w, word) in s.iter_mut().enumerate() {
        if *word != u64::MAX {
            let bit = (!*word).trailing_zeros() as usize;
            *word |= 1 << bit;
            return Some(w * 64 + bit);
        }
    }
    None
}

/// Give back the slot of a thread that has ended.
pub fn free(slot: usize) {
    SLOTS.lock()[slot / 64] &= !(1 << (slot % 64));
}

/// Physical address of slot `slot` (the one place that computes it).
pub fn slot_addr(slot: usize) -> u64 {
    SHARED_PHYS + CHANNEL_OFF + slot as u64 * SLOT_SIZE
}

/// The word and bit of `slot` in the per-slot bitmap at shared offset `area`.
pub fn slot_bit(area: u64, slot: usize) -> (&'static AtomicU64, u64) {
    (
        phys_atomic_u64(SHARED_PHYS + area + (slot / 64) as u64 * 8),
        1 << (slot % 64),
    )
}

/// Ask the proxy to interrupt the syscall running for `slot` (EINTR).
pub fn interrupt(slot: usize) {
    let (word, bit) = slot_bit(wire::INTERRUPT_OFF, slot);
    word.fetch_or(bit, Ordering::Release);
}

/// Whether the proxy has answered the request in `slot`.
pub fn done(slot: usize) -> bool {
    phys_atomic_u32(slot_addr(slot) + SLOT_STATE_OFF).load(Ordering::Acquire)
        == SlotState::Done as u32
}
