//! The inter-kernel channel: one request/response `Slot` per LWK thread that
//! talks to the proxy, at `SHARED_PHYS + CHANNEL_OFF`, plus two per-slot
//! bitmaps: the doorbell (`DOORBELL_OFF`, "slot i has a request posted") and
//! the interrupt bitmap (`INTERRUPT_OFF`, "interrupt slot i's syscall").
//! `slot_phys` and `slot_bit` are the one place that computes where a slot
//! and its bits are.

use core::mem::{offset_of, size_of};

use crate::layout::{CHANNEL_OFF, MAX_SLOTS, SHARED_PHYS};

/// State of a channel slot. Only the kernel moves Free->Posted and Done->Free;
/// only the proxy moves Posted->Taken->Done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SlotState {
    Free = 0,
    Posted = 1,
    Taken = 2,
    Done = 3,
}

impl TryFrom<u32> for SlotState {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            0 => SlotState::Free,
            1 => SlotState::Posted,
            2 => SlotState::Taken,
            3 => SlotState::Done,
            other => return Err(other),
        })
    }
}

/// What a posted slot asks of the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RequestKind {
    /// Execute syscall `nr(args)` on the mirrored memory; result in `ret`.
    Syscall = 1,
    /// Sample the host clocks: `aux[0]` = CLOCK_REALTIME ns, `aux[1]` = CLOCK_MONOTONIC ns.
    Clock = 2,
    /// Print a `--trace` line for a completed syscall `nr(args)`; `aux[0]` = result,
    /// `aux[1]` = `TRACE_*` flags.
    Trace = 3,
    /// The process executed a new program (execve): close the descriptors
    /// marked close-on-exec and make `/proc/self/exe` name the program whose
    /// NUL-terminated path is at user address `args[0]`.
    Exec = 4,
    /// The process forks: the proxy forks too and returns the child proxy's
    /// pid (the child process's pid); the child proxy serves the process whose
    /// region table is at guest-physical `args[0]`.
    Fork = 5,
    /// The process ended: the proxy exits with status `args[0]`, or dies of
    /// signal `args[1]` when non-zero, so Linux reports it to the parent. No
    /// answer follows.
    Exit = 6,
    /// The process stopped on signal `args[0]` (SIGSTOP, SIGTSTP, SIGTTIN,
    /// SIGTTOU with the default action): a forked process's proxy stops
    /// itself with that signal, so Linux reports it to the parent, and answers
    /// once continued; the initial process's proxy stops margay (SIGSTOP) and
    /// answers at once. The kernel does not wait for the answer while stopped.
    Stop = 7,
    /// A shared mapping of descriptor `args[1]`; `args[0]` says which step
    /// (`FILEMAP_*`).
    FileMap = 8,
}

/// `FileMap` steps.
/// What the descriptor is: `ret` 0 for a file the kernel may map shared,
/// with `aux` = [st_dev, st_ino, st_size, 0]; 1 for `/dev/zero`; or -errno
/// (EACCES when `args[2]` (want write) is set and the descriptor is not open
/// for reading and writing, or it is not open for reading; ENODEV for what
/// cannot be mapped shared).
pub const FILEMAP_INFO: u64 = 0;
/// Plug the file's first `args[2]` bytes (whole pages) into guest memory:
/// `aux` = [slot, guest-physical address, size, 0].
pub const FILEMAP_PLUG: u64 = 1;
/// The kernel maps the dimm `aux`-described by `args[2..5]` (slot,
/// guest-physical address, size), plugged earlier for the same file: the
/// proxy keeps the descriptor to mirror it.
pub const FILEMAP_ATTACH: u64 = 2;
/// SysV shared memory: attach segment `args[1]` (the "descriptor" slot holds
/// the shmid) in the proxy, read-only when `args[2]` has SHM_RDONLY, so that
/// Linux counts the LWK process's attachment and the segment has a file the
/// proxy can name: `aux` = [st_dev, st_ino, segment size, handle], where the
/// handle (the proxy's attach address) names the attachment in the steps
/// below.
pub const FILEMAP_SHMAT: u64 = 3;
/// Plug the segment of attachment `args[1]` (handle), its first `args[2]`
/// bytes (whole pages): `aux` as `FILEMAP_PLUG`.
pub const FILEMAP_SHM_PLUG: u64 = 4;
/// The kernel maps the dimm `args[2..6]` (slot, gpa, size, host fd), plugged
/// earlier for the segment of attachment `args[1]` (handle): as
/// `FILEMAP_ATTACH`.
pub const FILEMAP_SHM_ATTACH: u64 = 5;
/// Detach attachment `args[1]` (handle) in the proxy (shmdt).
pub const FILEMAP_SHMDT: u64 = 6;

impl TryFrom<u32> for RequestKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => RequestKind::Syscall,
            2 => RequestKind::Clock,
            3 => RequestKind::Trace,
            4 => RequestKind::Exec,
            5 => RequestKind::Fork,
            6 => RequestKind::Exit,
            7 => RequestKind::Stop,
            8 => RequestKind::FileMap,
            other => return Err(other),
        })
    }
}

/// Trace flags (`aux[1]` of a `Trace` request).
pub const TRACE_LOCAL: u64 = 1;
pub const TRACE_UNSUPPORTED: u64 = 2;

/// One request/response slot of an inter-kernel channel, at `slot_phys(index)`.
/// Each LWK thread owns one slot, so requests of different threads are served
/// in parallel.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct Slot {
    /// A `SlotState`, accessed atomically.
    pub state: u32,
    /// A `RequestKind`.
    pub kind: u32,
    /// Incremented by the kernel for every request on this slot.
    pub seq: u64,
    pub nr: u64,
    pub args: [u64; 6],
    pub ret: i64,
    pub aux: [u64; 4],
    /// The LWK thread id that posted the request (for traces).
    pub tid: u64,
    /// Guest-physical address of the posting process's region table: each
    /// proxy serves only the slots of its own LWK process.
    pub table: u64,
}

/// Words in the doorbell (and interrupt) bitmap.
pub const DOORBELL_WORDS: usize = MAX_SLOTS / 64;
pub const SLOT_SIZE: u64 = size_of::<Slot>() as u64;
/// Offsets of the slot fields that are accessed atomically.
pub const SLOT_STATE_OFF: u64 = offset_of!(Slot, state) as u64;
pub const SLOT_TABLE_OFF: u64 = offset_of!(Slot, table) as u64;

const _: () = assert!(size_of::<Slot>() == 128);
const _: () = assert!(SLOT_STATE_OFF == 0);
const _: () = assert!(offset_of!(Slot, seq) == 8);
const _: () = assert!(offset_of!(Slot, args) == 24);
const _: () = assert!(offset_of!(Slot, ret) == 72);
const _: () = assert!(offset_of!(Slot, aux) == 80);
const _: () = assert!(SLOT_TABLE_OFF == 120);
const _: () = assert!(MAX_SLOTS.is_multiple_of(64));

/// Offset of slot `index` inside the shared area (`index` < `MAX_SLOTS`).
pub const fn slot_off(index: usize) -> u64 {
    CHANNEL_OFF + index as u64 * SLOT_SIZE
}

/// Guest-physical address of slot `index` (`index` < `MAX_SLOTS`).
pub const fn slot_phys(index: usize) -> u64 {
    SHARED_PHYS + slot_off(index)
}

/// Guest-physical address of doorbell-style bitmap word `word` of the bitmap
/// at shared-area offset `area` (`DOORBELL_OFF` or `INTERRUPT_OFF`).
pub const fn bitmap_word_phys(area: u64, word: usize) -> u64 {
    SHARED_PHYS + area + word as u64 * 8
}

/// The word (guest-physical address) and bit mask of slot `index` in the
/// per-slot bitmap at shared-area offset `area`.
pub const fn slot_bit(area: u64, index: usize) -> (u64, u64) {
    (bitmap_word_phys(area, index / 64), 1 << (index % 64))
}
