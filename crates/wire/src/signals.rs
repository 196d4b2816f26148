//! Linux signals for the LWK: words in which the host posts the signals Linux
//! sent (bit n-1 for signal n) and the kernel takes them. The initial process
//! has `HOST_SIGNALS_OFF` (64 signals, watched by margay, which raises an NMI);
//! every process has its region table's `signals` word (signals 1-32), which a
//! forked process's proxy sets and then pokes `SIGNALS_POKE_OFF`.

use crate::layout::SHARED_PHYS;
pub use crate::layout::{HOST_SIGNALS_OFF, SIGNALS_POKE_OFF};

/// Guest-physical address of the host-signals word (u64).
pub const HOST_SIGNALS_PHYS: u64 = SHARED_PHYS + HOST_SIGNALS_OFF;
/// Guest-physical address of the signals poke word (u64).
pub const SIGNALS_POKE_PHYS: u64 = SHARED_PHYS + SIGNALS_POKE_OFF;

/// The bit of signal `sig` (1..=64) in a signal word, 0 for anything else.
pub const fn signal_bit(sig: u32) -> u64 {
    if sig >= 1 && sig <= 64 {
        1 << (sig - 1)
    } else {
        0
    }
}

/// The signals whose bits are set in `word`, lowest first.
pub fn signals_in(word: u64) -> impl Iterator<Item = u32> {
    (1..=64u32).filter(move |&s| word & signal_bit(s) != 0)
}
