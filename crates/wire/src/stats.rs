//! Counters the kernel writes for `--stats` and `margay bench` at `SHARED_PHYS +
//! STATS_OFF`: a `StatsHeader`, `STATS_NR` per-syscall `SyscallStat`s and
//! `MAX_CPUS` per-core `CpuStat`s.

use core::mem::{offset_of, size_of};

/// The stats header at `SHARED_PHYS + STATS_OFF`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct StatsHeader {
    /// Non-zero once the kernel has written final counts.
    pub valid: u32,
    pub _pad: u32,
    /// Exceptions and interrupts taken per LWK core 0 (timer, others), for noise accounting.
    pub timer_irqs: u64,
    pub other_irqs: u64,
    pub context_switches: u64,
    /// Kernel boot to application entry, in TSC cycles.
    pub boot_cycles: u64,
    /// LWK cores that ran (entries of the per-CPU table at `CPU_STATS_OFF`).
    pub ncpus: u64,
    pub _rest: [u64; 2],
}
const _: () = assert!(size_of::<StatsHeader>() == 64);
const _: () = assert!(offset_of!(StatsHeader, boot_cycles) == 32);
const _: () = assert!(offset_of!(StatsHeader, ncpus) == 40);

/// Per-syscall counters at `SHARED_PHYS + STATS_OFF + STATS_ENTRIES_OFF`, indexed by number.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct SyscallStat {
    pub local: u64,
    pub offloaded: u64,
    pub unsupported: u64,
    /// TSC cycles spent waiting for the proxy on this call.
    pub offload_cycles: u64,
}
const _: () = assert!(size_of::<SyscallStat>() == 32);

/// Per-core counters at `SHARED_PHYS + STATS_OFF + CPU_STATS_OFF`, `MAX_CPUS` entries.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct CpuStat {
    /// One-shot LAPIC timer interrupts (sleeps, time slices, offload polls).
    pub timer_irqs: u64,
    /// Reschedule and TLB shootdown IPIs received.
    pub ipis: u64,
    pub context_switches: u64,
    pub online: u64,
}
const _: () = assert!(size_of::<CpuStat>() == 32);

/// Syscall numbers below this have counters.
pub const STATS_NR: usize = 512;
/// Offset of the counters inside the stats area (after the 64-byte stats header).
pub const STATS_ENTRIES_OFF: u64 = size_of::<StatsHeader>() as u64;
/// Offset of the per-core counters inside the stats area.
pub const CPU_STATS_OFF: u64 = STATS_ENTRIES_OFF + (STATS_NR * size_of::<SyscallStat>()) as u64;
