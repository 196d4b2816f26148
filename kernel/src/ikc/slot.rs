//! Channel slots: which thread owns which slot, where a slot and its bits
//! (doorbell, interrupt request) live in the shared area, and whether the
//! proxy has answered. Below the scheduler, which hands a slot to each task.

use crate::arch::mem::{shared_area, SpinLock};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use wire::{Slot, SlotState, SLOT_STATE_OFF};

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

/// Offset of slot `slot` in the shared area (wire's layout).
pub fn slot_addr(slot: usize) -> u64 {
    assert!(slot < wire::MAX_SLOTS, "no channel slot {slot}");
    wire::slot_off(slot)
}

/// Read the whole of slot `slot`.
pub fn read(slot: usize) -> Slot {
    shared_area().read_obj(slot_addr(slot))
}

/// Write the whole of slot `slot` (its state word last, separately).
pub fn write(slot: usize, s: Slot) {
    shared_area().write_obj(slot_addr(slot), s);
}

/// The state word of slot `slot` (a `SlotState`).
pub fn state(slot: usize) -> &'static AtomicU32 {
    shared_area().atomic_u32(slot_addr(slot) + SLOT_STATE_OFF)
}

/// The word and bit of `slot` in the per-slot bitmap at shared offset `area`.
pub fn slot_bit(area: u64, slot: usize) -> (&'static AtomicU64, u64) {
    let (phys, bit) = wire::slot_bit(area, slot);
    (shared_area().atomic_u64(phys - wire::SHARED_PHYS), bit)
}

/// Ask the proxy to interrupt the syscall running for `slot` (EINTR).
pub fn interrupt(slot: usize) {
    let (word, bit) = slot_bit(wire::INTERRUPT_OFF, slot);
    word.fetch_or(bit, Ordering::Release);
}

/// Whether the proxy has answered the request in `slot`.
pub fn done(slot: usize) -> bool {
    state(slot).load(Ordering::Acquire) == SlotState::Done as u32
}

/// Answer the request in `slot` with `ret` on behalf of a proxy that is
/// gone (a standing instance's exec client was killed), if it is still
/// unanswered.
pub fn abandon(slot: usize, ret: i64) {
    let st = state(slot).load(Ordering::Acquire);
    if st != SlotState::Posted as u32 && st != SlotState::Taken as u32 {
        return;
    }
    let mut s = read(slot);
    s.ret = ret;
    s.state = st;
    write(slot, s);
    state(slot).store(SlotState::Done as u32, Ordering::Release);
}
