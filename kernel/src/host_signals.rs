//! Signals Linux sends to the application: the host sets a bit in the shared
//! area (the initial process's word) or in a process's region table (set by
//! its proxy), then raises an NMI; the kernel takes them here and posts them.

use crate::arch::apic;
use crate::arch::mem::shared_area;
use core::sync::atomic::Ordering;

/// Take signals Linux sent to the application (the host sets them and
/// raises an NMI); the NMI handler only pokes this core with an IPI.
pub fn take() {
    // Until the initial process exists, leave them for later.
    let pid = crate::process::initial_pid();
    if pid == 0 {
        return;
    }
    let sigs = shared_area()
        .atomic_u64(wire::HOST_SIGNALS_OFF)
        .swap(0, Ordering::AcqRel);
    for sig in 1..=64u32 {
        if sigs & (1 << (sig - 1)) != 0 {
            crate::signal::post_to(pid, sig, crate::signal::SI_USER, 0);
        }
    }
    // Each process's own word (in its region table), set by its proxy, which
    // then sets the poke word: cleared first, so a later post pokes again.
    shared_area()
        .atomic_u64(wire::SIGNALS_POKE_OFF)
        .store(0, Ordering::Release);
    for (p, table) in crate::process::tables() {
        let sigs = table.take_signals();
        for sig in 1..=32u32 {
            if sigs & (1 << (sig - 1)) != 0 {
                crate::signal::post_to(p, sig, crate::signal::SI_USER, 0);
            }
        }
    }
}

/// NMI from the host: a signal may be waiting. Nothing here may take a lock
/// (the NMI can interrupt any kernel code); the self-IPI is taken as soon as
/// interrupts are enabled, i.e. in user mode or the idle loop.
pub fn on_nmi() {
    let word = shared_area().atomic_u64(wire::HOST_SIGNALS_OFF);
    let poke = shared_area().atomic_u64(wire::SIGNALS_POKE_OFF);
    if word.load(Ordering::Acquire) != 0 || poke.load(Ordering::Acquire) != 0 {
        apic::send_ipi(apic::id(), apic::RESCHED_VECTOR);
    }
}
