//! Where things live: the guest-physical map (kernel image, shared area), the
//! offsets of every area inside the shared area, the user address window, and
//! QEMU's ports. The assertions at the end check that the areas do not overlap.

use core::mem::size_of;

use crate::channel::Slot;
use crate::header::Header;
use crate::regions::{MirrorEntry, RegionTableHeader, MAX_REGIONS};
use crate::stats::{CpuStat, StatsHeader, SyscallStat, CPU_STATS_OFF, STATS_ENTRIES_OFF, STATS_NR};

/// Guest-physical load address of the kernel image.
pub const KERNEL_PHYS: u64 = 0x10_0000;
/// Guest-physical base of the shared area; the kernel image must end below it.
pub const SHARED_PHYS: u64 = 0x100_0000;
/// Size of the shared area.
pub const SHARED_SIZE: u64 = 0x40_0000;
/// Smallest partition memory `margay run` accepts.
pub const MIN_MEM: u64 = 64 << 20;
/// Largest partition memory: guest RAM must stay below the 32-bit PCI hole so
/// that a guest-physical address equals its offset in the memory file.
pub const MAX_MEM: u64 = 3 << 30;
/// Most LWK cores a partition can have.
pub const MAX_CPUS: usize = 32;

/// Offsets inside the shared area.
pub const HEADER_OFF: u64 = 0;
/// The doorbell bitmap (`MAX_SLOTS` bits, in u64 words): the kernel sets bit
/// `i` after posting a request in slot `i`; the proxy clears it when it takes
/// the request.
pub const DOORBELL_OFF: u64 = 0x800;
/// The interrupt bitmap (`MAX_SLOTS` bits): the kernel sets bit `i` to ask
/// the proxy to interrupt the syscall it is running for slot `i` (a signal
/// arrived for that LWK thread); the proxy makes it return EINTR and clears
/// the bit.
pub const INTERRUPT_OFF: u64 = 0x840;
/// Signals sent from Linux to the application (to its proxy, or to margay
/// from the terminal): bit n-1 for signal n, set by the host, taken by the
/// kernel (the host then raises an NMI so a busy core notices).
pub const HOST_SIGNALS_OFF: u64 = 0x880;
/// Non-zero when a forked process's proxy has posted signals into its
/// process's region-table `signals` word: margay raises an NMI for it as for
/// `HOST_SIGNALS`, and the kernel clears it before taking those words.
pub const SIGNALS_POKE_OFF: u64 = 0x888;
/// The initial process's mirror region table (see `regions`).
pub const REGIONS_OFF: u64 = 0x1000;
/// Syscall and per-core counters (see `stats`).
pub const STATS_OFF: u64 = 0x10000;
/// The kernel's log ring (see `kmsg`).
pub const KMSG_OFF: u64 = 0x20000;
pub const KMSG_SIZE: u64 = 0x20000;
/// Channel slots: one per LWK thread that talks to the proxy.
pub const CHANNEL_OFF: u64 = 0x40000;
pub const MAX_SLOTS: usize = 512;
/// The program to run (see `bootdata`), up to the end of the shared area.
pub const BOOTDATA_OFF: u64 = 0x50000;
pub const BOOTDATA_SIZE: u64 = SHARED_SIZE - BOOTDATA_OFF;

/// Port of QEMU's `isa-debug-exit` device; QEMU exits with `(value << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Value the kernel writes when it is done (status in the header).
pub const DEBUG_EXIT_DONE: u32 = 0x10;
/// Value the kernel writes after a panic.
pub const DEBUG_EXIT_PANIC: u32 = 0x11;
/// Port of QEMU's debug console, where the kernel echoes its log.
pub const DEBUGCON_PORT: u16 = 0xe9;

/// The user address window. The proxy reserves all of it at start-up, so the
/// application's regions never collide with the proxy's own memory.
pub const USER_MIN: u64 = 0x1_0000;
pub const USER_MAX: u64 = 0x4000_0000_0000;
/// Where a static-PIE executable is loaded.
pub const PIE_BASE: u64 = 0x1000_0000_0000;
/// Where the program interpreter (ld.so) of a dynamically linked program is loaded.
pub const INTERP_BASE: u64 = 0x1800_0000_0000;
/// Anonymous mmap regions are placed top-down below this address.
pub const MMAP_TOP: u64 = 0x3f00_0000_0000;
/// Top of the initial user stack.
pub const STACK_TOP: u64 = 0x3fff_fff0_0000;
/// Size of the initial user stack (mapped up front, like Linux's RLIMIT_STACK default).
pub const STACK_SIZE: u64 = 8 << 20;

/// The smallest partition (`--mem`) that can load a program whose loadable
/// segments cover `image_bytes` (page-rounded) and give it its stack and a
/// first heap step: the kernel and shared area, the page allocator's metadata
/// (9 bytes per page), a few MiB for page tables and the kernel heap.
pub const fn min_mem_for(image_bytes: u64, mem: u64) -> u64 {
    let metadata = (mem / 4096) * 9;
    SHARED_PHYS + SHARED_SIZE + metadata + image_bytes + STACK_SIZE + (4 << 20)
}

// Every area fits before the next one, in the order of the map above.
const _: () = assert!(KERNEL_PHYS < SHARED_PHYS);
const _: () = assert!(SHARED_PHYS + SHARED_SIZE <= MIN_MEM);
const _: () = assert!(HEADER_OFF + size_of::<Header>() as u64 <= DOORBELL_OFF);
const _: () = assert!(DOORBELL_OFF + (MAX_SLOTS / 8) as u64 <= INTERRUPT_OFF);
const _: () = assert!(INTERRUPT_OFF + (MAX_SLOTS / 8) as u64 <= HOST_SIGNALS_OFF);
const _: () = assert!(HOST_SIGNALS_OFF + 8 <= SIGNALS_POKE_OFF);
const _: () = assert!(SIGNALS_POKE_OFF + 8 <= REGIONS_OFF);
const _: () = assert!(
    REGIONS_OFF + (size_of::<RegionTableHeader>() + MAX_REGIONS * size_of::<MirrorEntry>()) as u64
        <= STATS_OFF
);
const _: () = assert!(size_of::<StatsHeader>() as u64 == STATS_ENTRIES_OFF);
const _: () = assert!(
    STATS_OFF + STATS_ENTRIES_OFF + (STATS_NR * size_of::<SyscallStat>()) as u64
        <= STATS_OFF + CPU_STATS_OFF
);
const _: () =
    assert!(STATS_OFF + CPU_STATS_OFF + (MAX_CPUS * size_of::<CpuStat>()) as u64 <= KMSG_OFF);
const _: () = assert!(KMSG_OFF + KMSG_SIZE <= CHANNEL_OFF);
const _: () = assert!(CHANNEL_OFF + (MAX_SLOTS * size_of::<Slot>()) as u64 <= BOOTDATA_OFF);
const _: () = assert!(BOOTDATA_OFF < SHARED_SIZE);
const _: () = assert!(USER_MIN < PIE_BASE && PIE_BASE < INTERP_BASE && INTERP_BASE < MMAP_TOP);
const _: () = assert!(MMAP_TOP < STACK_TOP - STACK_SIZE && STACK_TOP <= USER_MAX);
