//! The channel as the proxy sees it: the doorbell bitmap that says which slots
//! have a request posted, taking a posted slot (Posted -> Taken), and publishing
//! the answer (ret, aux, then Done with Release).
//!
//! The kernel fills slot `i`, stores state = Posted (Release), then ORs bit `i`
//! into the doorbell (Release). The proxy clears the bits it saw (AcqRel, which
//! synchronizes with the kernel's OR, so the slot's contents are visible) and
//! then claims each slot with a CAS, skipping any whose state is not Posted.

use std::mem::offset_of;
use std::sync::atomic::Ordering;

use wire::{slot_phys, Slot, SlotState, DOORBELL_OFF, DOORBELL_WORDS, MAX_SLOTS};

use super::Response;
use crate::guest_mem::GuestMem;

fn word_off(word: usize) -> u64 {
    wire::bitmap_word_phys(DOORBELL_OFF, word)
}

/// Slot indices named by the set bits of doorbell word `word` (in order), skipping
/// any that would be out of range.
pub fn slots_in_word(word: usize, bits: u64) -> impl Iterator<Item = usize> {
    let mut rest = bits;
    std::iter::from_fn(move || {
        while rest != 0 {
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let slot = word.checked_mul(64)?.checked_add(bit)?;
            if slot < MAX_SLOTS {
                return Some(slot);
            }
        }
        None
    })
}

/// Clear every doorbell bit that is set and append the slots they name to `out`.
/// Bits the kernel sets meanwhile stay set for the next pass.
#[cfg(test)]
pub fn take(ram: &GuestMem, out: &mut Vec<usize>) {
    for word in 0..DOORBELL_WORDS {
        let off = word_off(word);
        let seen = match ram.load_u64(off, Ordering::Acquire) {
            Ok(0) | Err(_) => continue,
            Ok(v) => v,
        };
        let Ok(prev) = ram.fetch_and_u64(off, !seen, Ordering::AcqRel) else {
            continue;
        };
        out.extend(slots_in_word(word, prev & seen));
    }
}

/// Like `take`, but only for the slots of the process whose region table is
/// at `table` (each proxy serves its own LWK process); other bits stay set.
pub fn take_own(ram: &GuestMem, table: u64, out: &mut Vec<usize>) {
    for word in 0..DOORBELL_WORDS {
        let off = word_off(word);
        let seen = match ram.load_u64(off, Ordering::Acquire) {
            Ok(0) | Err(_) => continue,
            Ok(v) => v,
        };
        // Take this process's posted slots, and drop stale bits (a slot that
        // is not Posted cannot be served by anyone: the kernel rings only
        // after posting); other processes' posted slots stay for their proxies.
        let mut mine = 0u64;
        for slot in slots_in_word(word, seen) {
            let base = slot_phys(slot);
            let posted = ram.load_u32(base + wire::SLOT_STATE_OFF, Ordering::Acquire)
                == Ok(SlotState::Posted as u32);
            let owner = ram.load_u64(base + wire::SLOT_TABLE_OFF, Ordering::Acquire);
            if !posted || owner == Ok(table) {
                mine |= 1 << (slot % 64);
            }
        }
        if mine == 0 {
            continue;
        }
        let Ok(prev) = ram.fetch_and_u64(off, !mine, Ordering::AcqRel) else {
            continue;
        };
        out.extend(slots_in_word(word, prev & mine));
    }
}

/// What `claim` found in a slot.
#[derive(Debug)]
pub enum Claim {
    /// The slot held a posted request, now Taken: serve it and `complete` it.
    Taken(Slot),
    /// Taken, but its contents could not be read: `complete` it with an error.
    Unreadable,
    /// Not posted (stale doorbell bit, garbage state, bad index): ignore it.
    NotPosted,
}

/// Move slot `index` from Posted to Taken and copy it out.
pub fn claim(ram: &GuestMem, index: usize) -> Claim {
    if index >= MAX_SLOTS {
        return Claim::NotPosted;
    }
    let off = slot_phys(index);
    match ram.compare_exchange_u32(
        off + wire::SLOT_STATE_OFF,
        SlotState::Posted as u32,
        SlotState::Taken as u32,
    ) {
        Ok(Ok(_)) => {}
        _ => return Claim::NotPosted,
    }
    match ram.read_obj::<Slot>(off) {
        Ok(s) => Claim::Taken(s),
        Err(_) => Claim::Unreadable,
    }
}

/// Publish the answer to the request in slot `index`: ret and aux, then Done.
pub fn complete(ram: &GuestMem, index: usize, resp: &Response) {
    if index >= MAX_SLOTS {
        return;
    }
    let off = slot_phys(index);
    // Out-of-range writes are refused by GuestMem; there is nobody to tell.
    let _ = ram.write_obj(off + offset_of!(Slot, ret) as u64, &resp.ret);
    if let Some(aux) = resp.aux {
        let _ = ram.write_obj(off + offset_of!(Slot, aux) as u64, &aux);
    }
    let _ = ram.store_u32(
        off + wire::SLOT_STATE_OFF,
        SlotState::Done as u32,
        Ordering::Release,
    );
}

/// Test helpers that play the kernel's part.
#[cfg(test)]
pub(crate) mod kernel {
    use super::*;
    use wire::RequestKind;

    /// Fill slot `index` with a request and ring its doorbell bit, as the kernel does.
    pub fn post(ram: &GuestMem, index: usize, kind: u32, nr: u64, args: [u64; 6]) {
        let slot = Slot {
            kind,
            nr,
            args,
            tid: index as u64,
            table: wire::SHARED_PHYS + wire::REGIONS_OFF,
            ..Slot::default()
        };
        ram.write_obj(slot_phys(index), &slot).unwrap();
        ram.store_u32(
            slot_phys(index) + wire::SLOT_STATE_OFF,
            SlotState::Posted as u32,
            Ordering::Release,
        )
        .unwrap();
        ring(ram, index);
    }

    pub fn post_syscall(ram: &GuestMem, index: usize, nr: u32, args: [u64; 6]) {
        post(ram, index, RequestKind::Syscall as u32, u64::from(nr), args);
    }

    pub fn ring(ram: &GuestMem, index: usize) {
        let (word, bit) = wire::slot_bit(DOORBELL_OFF, index);
        ram.fetch_or_u64(word, bit, Ordering::Release).unwrap();
    }

    pub fn state(ram: &GuestMem, index: usize) -> u32 {
        ram.load_u32(slot_phys(index) + wire::SLOT_STATE_OFF, Ordering::Acquire)
            .unwrap()
    }

    pub fn set_state(ram: &GuestMem, index: usize, state: u32) {
        ram.store_u32(
            slot_phys(index) + wire::SLOT_STATE_OFF,
            state,
            Ordering::Release,
        )
        .unwrap();
    }

    pub fn slot(ram: &GuestMem, index: usize) -> Slot {
        ram.read_obj(slot_phys(index)).unwrap()
    }

    pub fn doorbell(ram: &GuestMem) -> [u64; DOORBELL_WORDS] {
        std::array::from_fn(|w| ram.load_u64(word_off(w), Ordering::Acquire).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::kernel::*;
    use super::*;
    use wire::MIN_MEM;

    #[test]
    fn bits_name_slots_in_order() {
        assert_eq!(slots_in_word(0, 0).count(), 0);
        assert_eq!(slots_in_word(0, 1).collect::<Vec<_>>(), [0]);
        assert_eq!(
            slots_in_word(0, (1 << 63) | 0b1010).collect::<Vec<_>>(),
            [1, 3, 63]
        );
        assert_eq!(
            slots_in_word(DOORBELL_WORDS - 1, 1 << 63).collect::<Vec<_>>(),
            [MAX_SLOTS - 1]
        );
        assert_eq!(slots_in_word(2, u64::MAX).count(), 64);
        assert_eq!(slots_in_word(2, u64::MAX).next(), Some(128));
        // Words beyond the bitmap name no slot, however they were reached.
        assert_eq!(slots_in_word(DOORBELL_WORDS, u64::MAX).count(), 0);
        assert_eq!(slots_in_word(usize::MAX, u64::MAX).count(), 0);
    }

    #[test]
    fn taking_the_doorbell_clears_exactly_the_bits_seen() {
        let ram = GuestMem::anonymous(MIN_MEM as usize);
        for i in [0, 5, 64, 200, MAX_SLOTS - 1] {
            ring(&ram, i);
        }
        let mut got = Vec::new();
        take(&ram, &mut got);
        assert_eq!(got, [0, 5, 64, 200, MAX_SLOTS - 1]);
        assert_eq!(doorbell(&ram), [0; DOORBELL_WORDS]);
        got.clear();
        take(&ram, &mut got);
        assert!(got.is_empty());
        ring(&ram, 7);
        take(&ram, &mut got);
        assert_eq!(got, [7]);
    }

    #[test]
    fn only_posted_slots_are_claimed() {
        let ram = GuestMem::anonymous(MIN_MEM as usize);
        post_syscall(&ram, 3, 39, [1, 2, 3, 4, 5, 6]);
        let Claim::Taken(s) = claim(&ram, 3) else {
            panic!("posted slot not taken");
        };
        assert_eq!(
            (s.kind, s.nr, s.args, s.tid),
            (1, 39, [1, 2, 3, 4, 5, 6], 3)
        );
        assert_eq!(state(&ram, 3), SlotState::Taken as u32);
        // Taken already: a second (stale) doorbell bit does nothing.
        assert!(matches!(claim(&ram, 3), Claim::NotPosted));
        // Free, Done and garbage states are left alone.
        for (i, st) in [(4, 0), (5, 3), (6, 7), (7, u32::MAX)] {
            set_state(&ram, i, st);
            assert!(matches!(claim(&ram, i), Claim::NotPosted));
            assert_eq!(state(&ram, i), st);
        }
        assert!(matches!(claim(&ram, MAX_SLOTS), Claim::NotPosted));
        assert!(matches!(claim(&ram, usize::MAX), Claim::NotPosted));

        complete(
            &ram,
            3,
            &Response {
                ret: -5,
                aux: Some([9, 8, 7, 6]),
            },
        );
        let s = slot(&ram, 3);
        assert_eq!((s.state, s.ret, s.aux), (3, -5, [9, 8, 7, 6]));
        complete(&ram, MAX_SLOTS, &Response { ret: 1, aux: None });
    }
}
