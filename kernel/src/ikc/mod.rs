//! Inter-kernel channel, LWK side: post a request into the current thread's
//! slot in shared memory and poll for the proxy's answer (`slot` has the
//! slots themselves, below the scheduler).

pub mod slot;

use crate::arch::cpu::rdtsc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
pub use slot::interrupt;
use slot::{done as slot_done, slot_bit};
use wire::{RequestKind, Slot, SlotState, DOORBELL_OFF};

/// The answer to a request, and the TSC cycles spent waiting for it.
pub struct Reply {
    pub ret: i64,
    pub aux: [u64; 4],
    pub cycles: u64,
}

/// A standing instance's init loads a spawned program through that
/// process's proxy: while it does, its requests name the new process's
/// region table (`TARGET_TABLE`) instead of its own.
static TARGET_TID: AtomicU32 = AtomicU32::new(0);
static TARGET_TABLE: AtomicU64 = AtomicU64::new(0);

/// Run `f` with the current thread's requests addressed to the proxy of the
/// region table at `table` (one thread at a time: init).
pub fn on_behalf_of<R>(table: u64, f: impl FnOnce() -> R) -> R {
    TARGET_TABLE.store(table, Ordering::Release);
    TARGET_TID.store(crate::sched::current_tid(), Ordering::Release);
    let r = f();
    TARGET_TID.store(0, Ordering::Release);
    r
}

/// The region table the current thread's requests name.
fn request_table() -> u64 {
    let tid = crate::sched::current_tid();
    if tid != 0 && TARGET_TID.load(Ordering::Acquire) == tid {
        TARGET_TABLE.load(Ordering::Acquire)
    } else {
        crate::sched::current_table()
    }
}

/// Ring the doorbell for `slot`: tell the proxy a request is posted there.
fn ring(slot: usize) {
    let (word, bit) = slot_bit(DOORBELL_OFF, slot);
    word.fetch_or(bit, Ordering::Release);
}

/// Fill the current thread's slot with a request, post it and ring the
/// doorbell; returns the slot's index.
fn post(kind: RequestKind, nr: u64, args: [u64; 6], aux: [u64; 4]) -> usize {
    let slot_index = crate::sched::current_slot();
    let prev = slot::read(slot_index);
    let slot = Slot {
        state: SlotState::Free as u32,
        kind: kind as u32,
        seq: prev.seq.wrapping_add(1),
        nr,
        args,
        ret: 0,
        aux,
        tid: u64::from(crate::sched::current_tid()),
        table: request_table(),
    };
    slot::write(slot_index, slot);
    slot::state(slot_index).store(SlotState::Posted as u32, Ordering::Release);
    ring(slot_index);
    slot_index
}

/// Send one request on the current thread's slot and wait for the reply:
/// spinning while this core has nothing else to run, blocking otherwise.
pub fn call(kind: RequestKind, nr: u64, args: [u64; 6], aux: [u64; 4]) -> Reply {
    let t0 = rdtsc();
    let slot_index = post(kind, nr, args, aux);
    let state = slot::state(slot_index);
    // No `pause` here: under TCG it leaves the translated-code loop on
    // every iteration, which more than doubles the round trip.
    let me = crate::sched::current();
    if let Some(t) = &me {
        t.in_offload.store(true, Ordering::Release);
    }
    let mut interrupted = false;
    let mut polls = 0u32;
    // A request of a process whose proxy is gone is answered here (EINTR).
    let answered = || {
        if crate::process::current_orphaned() {
            slot::abandon(slot_index, linux_abi::Errno::EINTR.as_ret());
        }
        slot_done(slot_index)
    };
    while state.load(Ordering::Acquire) != SlotState::Done as u32 {
        if crate::sched::others_runnable() {
            crate::sched::wait_offload(slot_index, answered);
            break;
        }
        // Now and then, look for signals (from Linux, or from other threads).
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) && answered() {
            break;
        }
        if !interrupted && polls.is_multiple_of(1024) {
            crate::sched::poll_while_spinning();
            if me.is_some() && crate::sched::interrupted() {
                interrupt(slot_index);
                interrupted = true;
            }
        }
    }
    if let Some(t) = &me {
        t.in_offload.store(false, Ordering::Release);
    }
    // Answered: withdraw an interrupt request, or the proxy would go on
    // interrupting whatever this slot runs next.
    let (word, bit) = slot_bit(wire::INTERRUPT_OFF, slot_index);
    word.fetch_and(!bit, Ordering::AcqRel);
    let t1 = rdtsc();
    let done = slot::read(slot_index);
    state.store(SlotState::Free as u32, Ordering::Release);
    Reply {
        ret: done.ret,
        aux: done.aux,
        cycles: t1.wrapping_sub(t0),
    }
}

/// Post a request whose answer is collected later with `reap` (the
/// process's `Stop`, answered only once Linux continues the proxy): the
/// thread may block meanwhile, and must not use its slot until `reap`.
pub fn post_nowait(kind: RequestKind, args: [u64; 6]) -> usize {
    post(kind, 0, args, [0; 4])
}

/// Wait for the answer to a `post_nowait` request and free the slot.
pub fn reap(slot: usize) -> i64 {
    let me = crate::sched::current();
    if let Some(t) = &me {
        // No stop may be taken in place while the slot is in flight.
        t.in_offload.store(true, Ordering::Release);
    }
    while !slot_done(slot) {
        if me.is_some() {
            crate::sched::wait_offload(slot, || slot_done(slot));
        } else {
            core::hint::spin_loop();
        }
    }
    if let Some(t) = &me {
        t.in_offload.store(false, Ordering::Release);
    }
    let (word, bit) = slot_bit(wire::INTERRUPT_OFF, slot);
    word.fetch_and(!bit, Ordering::AcqRel);
    let done = slot::read(slot);
    slot::state(slot).store(SlotState::Free as u32, Ordering::Release);
    done.ret
}

/// Post a request that gets no answer (the process's `Exit`): the slot is
/// left to the proxy, which ends.
pub fn post_only(kind: RequestKind, args: [u64; 6]) {
    post(kind, 0, args, [0; 4]);
}

/// Offload syscall `nr(args)` to the proxy.
pub fn syscall(nr: u64, args: [u64; 6]) -> Reply {
    call(RequestKind::Syscall, nr, args, [0; 4])
}
