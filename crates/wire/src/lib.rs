//! The shared-memory contract between the Margay kernel and the host: where the
//! shared area lives in guest-physical memory, and the layout of every structure
//! in it (boot header, channel slots, mirror region table, stats, kmsg ring, boot
//! data). Both sides access these only through the offsets defined here; every
//! struct has its size pinned by a compile-time assertion, and the host validates
//! every value it reads back.
#![no_std]
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

/// "MARGAY01", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MARGAY01");
/// Bumped whenever any layout in this crate changes.
pub const VERSION: u32 = 3;

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
pub const REGIONS_OFF: u64 = 0x1000;
pub const STATS_OFF: u64 = 0x10000;
pub const KMSG_OFF: u64 = 0x20000;
pub const KMSG_SIZE: u64 = 0x20000;
/// Channel slots: one per LWK thread that talks to the proxy.
pub const CHANNEL_OFF: u64 = 0x40000;
pub const MAX_SLOTS: usize = 512;
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

/// Header flags set by the host.
pub const FLAG_STATS: u32 = 1 << 0;
pub const FLAG_TRACE: u32 = 1 << 1;
/// Echo kmsg to the debug console as it is written.
pub const FLAG_KMSG_ECHO: u32 = 1 << 2;
/// Test hooks: make the kernel take a page fault in kernel mode, or panic,
/// right after boot (exercises the host's panic report).
pub const FLAG_INJECT_FAULT: u32 = 1 << 8;
pub const FLAG_INJECT_PANIC: u32 = 1 << 9;

/// Life-cycle of the LWK instance, written by the kernel into `Header::state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Booting = 0,
    Running = 1,
    Exited = 2,
    Killed = 3,
    Panicked = 4,
}

impl TryFrom<u32> for State {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            0 => State::Booting,
            1 => State::Running,
            2 => State::Exited,
            3 => State::Killed,
            4 => State::Panicked,
            other => return Err(other),
        })
    }
}

/// Names of `Header::regs`, in order.
pub const REG_NAMES: [&str; 24] = [
    "rip", "rsp", "rflags", "cs", "ss", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8",
    "r9", "r10", "r11", "r12", "r13", "r14", "r15", "cr2", "cr3", "error", "vector",
];

/// The boot header, at `SHARED_PHYS + HEADER_OFF`. The first part is written by
/// the host before the kernel boots; the rest by the kernel.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Header {
    pub magic: u64,
    pub version: u32,
    pub ncpus: u32,
    pub mem_size: u64,
    pub flags: u32,
    pub proxy_pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub argc: u32,
    pub envc: u32,
    /// Bytes used in the boot data: executable path, argv strings, envp strings, each NUL-terminated.
    pub bootdata_len: u32,
    pub _pad0: u32,
    /// CLOCK_REALTIME (ns) when `margay run` started, for the start-up metric.
    pub host_start_ns: u64,
    // ---- written by the kernel ----
    /// A `State`.
    pub state: u32,
    /// Exit status (low 8 bits) once `state` is `Exited`.
    pub exit_code: u32,
    /// Signal number once `state` is `Killed`.
    pub signal: u32,
    pub _pad1: u32,
    pub tsc_hz: u64,
    /// CLOCK_REALTIME (ns) when the application's first instruction was entered.
    pub user_entry_ns: u64,
    /// Faulting address for a `Killed` application or a kernel panic.
    pub fault_addr: u64,
    /// Total bytes ever written into the kmsg ring.
    pub kmsg_head: u64,
    /// Registers at a panic or fatal fault, named by `REG_NAMES`.
    pub regs: [u64; 24],
    /// Non-zero when `regs` holds valid values.
    pub regs_valid: u32,
    /// LWK cores online (kept current by the kernel, for /proc and /sys views).
    pub cpus_online: u32,
    /// Bytes of partition memory the kernel can still hand out (kept current).
    pub free_bytes: u64,
    /// Bytes of partition memory usable by the kernel and applications.
    pub total_bytes: u64,
}
const _: () = assert!(size_of::<Header>().is_multiple_of(8));

/// Offsets of the header fields that are accessed atomically.
pub const HEADER_STATE_OFF: u64 = offset_of!(Header, state) as u64;
pub const HEADER_KMSG_HEAD_OFF: u64 = offset_of!(Header, kmsg_head) as u64;
pub const HEADER_FREE_BYTES_OFF: u64 = offset_of!(Header, free_bytes) as u64;

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
}

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
            other => return Err(other),
        })
    }
}

/// Trace flags.
pub const TRACE_LOCAL: u64 = 1;
pub const TRACE_UNSUPPORTED: u64 = 2;

/// One request/response slot of an inter-kernel channel, at
/// `SHARED_PHYS + CHANNEL_OFF + index * SLOT_SIZE`. Each LWK thread owns one
/// slot, so requests of different threads are served in parallel.
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
const _: () = assert!(size_of::<Slot>() == 128);
const _: () = assert!((MAX_SLOTS * size_of::<Slot>()) as u64 <= BOOTDATA_OFF - CHANNEL_OFF);
const _: () = assert!(DOORBELL_OFF + (MAX_SLOTS / 8) as u64 <= INTERRUPT_OFF);
const _: () = assert!(INTERRUPT_OFF + (MAX_SLOTS / 8) as u64 <= HOST_SIGNALS_OFF);
const _: () = assert!(HOST_SIGNALS_OFF + 8 <= SIGNALS_POKE_OFF);
const _: () = assert!(SIGNALS_POKE_OFF + 8 <= REGIONS_OFF);
const _: () = assert!(size_of::<Header>() as u64 <= DOORBELL_OFF);
/// Words in the doorbell bitmap.
pub const DOORBELL_WORDS: usize = MAX_SLOTS / 64;
pub const SLOT_STATE_OFF: u64 = offset_of!(Slot, state) as u64;
pub const SLOT_SIZE: u64 = size_of::<Slot>() as u64;

/// Header of the mirror region table at `SHARED_PHYS + REGIONS_OFF`, followed by
/// `count` `MirrorEntry`s. The kernel bumps `gen` after every change; the proxy
/// re-mirrors when it sees a new generation before serving a request.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct RegionTableHeader {
    pub gen: u64,
    pub count: u32,
    /// Signals 1-32 Linux sent to this process's proxy (bit n-1 for signal
    /// n), set by the proxy, taken by the kernel. (The initial process also
    /// gets the `HOST_SIGNALS` word, which margay watches and raises NMIs for.)
    pub signals: u32,
}
pub const REGION_COUNT_OFF: u64 = offset_of!(RegionTableHeader, count) as u64;
pub const REGION_SIGNALS_OFF: u64 = offset_of!(RegionTableHeader, signals) as u64;
const _: () = assert!(size_of::<RegionTableHeader>() == 16);
pub const REGION_GEN_OFF: u64 = offset_of!(RegionTableHeader, gen) as u64;

/// One user region of the LWK process: virtual `[vaddr, vaddr+len)` is the
/// memory file's `[file_off, file_off+len)`, with Linux `PROT_*` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MirrorEntry {
    pub vaddr: u64,
    pub len: u64,
    pub file_off: u64,
    pub prot: u32,
    /// A `REGION_*` kind, for /proc/self/maps.
    pub kind: u32,
}

/// Region kinds in `MirrorEntry::kind`.
pub const REGION_ANON: u32 = 0;
pub const REGION_IMAGE: u32 = 1;
pub const REGION_HEAP: u32 = 2;
pub const REGION_STACK: u32 = 3;
/// A mapping of a partition-wide shared object (`MAP_SHARED|MAP_ANONYMOUS`).
pub const REGION_SHARED: u32 = 4;
const _: () = assert!(size_of::<MirrorEntry>() == 32);
/// Capacity of the region table.
pub const MAX_REGIONS: usize = 1024;
/// Bytes of a region table (header and entries); tables of forked processes
/// are kernel pages of this size, page aligned.
pub const REGION_TABLE_BYTES: u64 =
    (size_of::<RegionTableHeader>() + MAX_REGIONS * size_of::<MirrorEntry>()) as u64;
const _: () = assert!(
    (size_of::<RegionTableHeader>() + MAX_REGIONS * size_of::<MirrorEntry>()) as u64
        <= STATS_OFF - REGIONS_OFF
);

/// Why a mirror entry is rejected by the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorError {
    Unaligned,
    OutsideUserWindow,
    OutsideMemory,
    IntoSharedArea,
    BadProt,
}

impl MirrorEntry {
    /// Check an entry read from guest memory against the partition size.
    pub fn validate(&self, mem_size: u64) -> Result<(), MirrorError> {
        let page = 4096;
        if !self.vaddr.is_multiple_of(page)
            || !self.len.is_multiple_of(page)
            || !self.file_off.is_multiple_of(page)
            || self.len == 0
        {
            return Err(MirrorError::Unaligned);
        }
        let end = self
            .vaddr
            .checked_add(self.len)
            .ok_or(MirrorError::OutsideUserWindow)?;
        if self.vaddr < USER_MIN || end > USER_MAX {
            return Err(MirrorError::OutsideUserWindow);
        }
        let fend = self
            .file_off
            .checked_add(self.len)
            .ok_or(MirrorError::OutsideMemory)?;
        if fend > mem_size {
            return Err(MirrorError::OutsideMemory);
        }
        if self.file_off < SHARED_PHYS + SHARED_SIZE && fend > SHARED_PHYS {
            return Err(MirrorError::IntoSharedArea);
        }
        if self.prot & !7 != 0 {
            return Err(MirrorError::BadProt);
        }
        Ok(())
    }
}

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
/// Syscall numbers below this have counters.
pub const STATS_NR: usize = 512;
/// Offset of the counters inside the stats area (after a 64-byte stats header).
pub const STATS_ENTRIES_OFF: u64 = 64;
const _: () = assert!(
    STATS_ENTRIES_OFF + (STATS_NR * size_of::<SyscallStat>()) as u64 <= KMSG_OFF - STATS_OFF
);

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
pub const CPU_STATS_OFF: u64 = STATS_ENTRIES_OFF + (STATS_NR * size_of::<SyscallStat>()) as u64;
const _: () =
    assert!(CPU_STATS_OFF + (MAX_CPUS * size_of::<CpuStat>()) as u64 <= KMSG_OFF - STATS_OFF);
const _: () = assert!(size_of::<StatsHeader>() as u64 == STATS_ENTRIES_OFF);

/// The smallest partition (`--mem`) that can load a program whose loadable
/// segments cover `image_bytes` (page-rounded) and give it its stack and a
/// first heap step: the kernel and shared area, the page allocator's metadata
/// (9 bytes per page), a few MiB for page tables and the kernel heap.
pub const fn min_mem_for(image_bytes: u64, mem: u64) -> u64 {
    let metadata = (mem / 4096) * 9;
    SHARED_PHYS + SHARED_SIZE + metadata + image_bytes + STACK_SIZE + (4 << 20)
}

/// Encode the boot data (`path`, argv, envp, each NUL-terminated). Returns the
/// number of bytes written, or `None` if it does not fit in `out` or a string
/// contains a NUL.
pub fn encode_bootdata<'a>(
    out: &mut [u8],
    path: &[u8],
    argv: impl IntoIterator<Item = &'a [u8]>,
    envp: impl IntoIterator<Item = &'a [u8]>,
) -> Option<usize> {
    let mut pos = 0usize;
    let mut put = |s: &[u8]| -> Option<()> {
        if s.contains(&0) {
            return None;
        }
        let end = pos.checked_add(s.len())?.checked_add(1)?;
        let dst = out.get_mut(pos..end)?;
        dst[..s.len()].copy_from_slice(s);
        dst[s.len()] = 0;
        pos = end;
        Some(())
    };
    put(path)?;
    for a in argv {
        put(a)?;
    }
    for e in envp {
        put(e)?;
    }
    Some(pos)
}

/// Split boot data back into NUL-terminated strings (without the NULs).
/// Returns `None` unless exactly `count` strings are present.
pub fn split_bootdata(data: &[u8], count: usize) -> Option<impl Iterator<Item = &[u8]>> {
    fn is_nul(b: &u8) -> bool {
        *b == 0
    }
    if data.iter().filter(|&&b| b == 0).count() != count || (count > 0 && data.last() != Some(&0)) {
        return None;
    }
    let body = if count == 0 {
        data
    } else {
        &data[..data.len() - 1]
    };
    Some(body.split(is_nul as fn(&u8) -> bool).take(count))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn layout_fits_in_the_shared_area() {
        assert_eq!(SLOT_STATE_OFF, 0);
        assert_eq!(REGION_GEN_OFF, 0);
        assert_eq!(HEADER_STATE_OFF % 4, 0);
        assert_eq!(HEADER_KMSG_HEAD_OFF % 8, 0);
    }

    #[test]
    fn minimum_memory_grows_with_the_image() {
        let small = min_mem_for(1 << 20, 512 << 20);
        assert!(small < MIN_MEM);
        assert!(min_mem_for(200 << 20, 128 << 20) > 128 << 20);
        assert!(min_mem_for(200 << 20, 512 << 20) < 512 << 20);
    }

    #[test]
    fn enums_round_trip_and_reject_garbage() {
        for s in [
            State::Booting,
            State::Running,
            State::Exited,
            State::Killed,
            State::Panicked,
        ] {
            assert_eq!(State::try_from(s as u32), Ok(s));
        }
        assert_eq!(State::try_from(99), Err(99));
        assert_eq!(SlotState::try_from(2), Ok(SlotState::Taken));
        assert!(SlotState::try_from(7).is_err());
        assert_eq!(RequestKind::try_from(3), Ok(RequestKind::Trace));
        assert!(RequestKind::try_from(0).is_err());
    }

    #[test]
    fn mirror_entries_are_validated() {
        let mem = 256 << 20;
        let ok = MirrorEntry {
            vaddr: 0x40_0000,
            len: 0x1000,
            file_off: 0x200_0000,
            prot: 5,
            kind: 0,
        };
        assert_eq!(ok.validate(mem), Ok(()));
        assert_eq!(
            MirrorEntry {
                vaddr: 0x40_0001,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::Unaligned)
        );
        assert_eq!(
            MirrorEntry { len: 0, ..ok }.validate(mem),
            Err(MirrorError::Unaligned)
        );
        assert_eq!(
            MirrorEntry { vaddr: 0, ..ok }.validate(mem),
            Err(MirrorError::OutsideUserWindow)
        );
        assert_eq!(
            MirrorEntry {
                vaddr: USER_MAX - 0x1000,
                len: 0x2000,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideUserWindow)
        );
        assert_eq!(
            MirrorEntry {
                vaddr: u64::MAX - 0xfff,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideUserWindow)
        );
        assert_eq!(
            MirrorEntry {
                file_off: mem,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideMemory)
        );
        assert_eq!(
            MirrorEntry {
                file_off: u64::MAX - 0xfff,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideMemory)
        );
        assert_eq!(
            MirrorEntry {
                file_off: SHARED_PHYS,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::IntoSharedArea)
        );
        assert_eq!(
            MirrorEntry { prot: 8, ..ok }.validate(mem),
            Err(MirrorError::BadProt)
        );
    }

    #[test]
    fn bootdata_round_trip() {
        let mut buf = [0u8; 64];
        let argv: [&[u8]; 2] = [b"prog", b"arg one"];
        let envp: [&[u8]; 1] = [b"A=b"];
        let n = encode_bootdata(&mut buf, b"/bin/prog", argv, envp).unwrap();
        let parts: Vec<&[u8]> = split_bootdata(&buf[..n], 4).unwrap().collect();
        assert_eq!(parts, [&b"/bin/prog"[..], b"prog", b"arg one", b"A=b"]);
        assert!(split_bootdata(&buf[..n], 3).is_none());
        assert!(split_bootdata(&buf[..n - 1], 4).is_none());
        assert!(encode_bootdata(&mut buf[..8], b"/bin/prog", [], []).is_none());
        assert!(encode_bootdata(&mut buf, b"a\0b", [], []).is_none());
    }
}
