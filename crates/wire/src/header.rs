//! The boot header at `SHARED_PHYS + HEADER_OFF`: the boot parameters the host
//! writes before the kernel starts (`BootParams`, checked by the kernel at
//! start-up: magic and version), then what the kernel reports back (state,
//! exit status, fault, registers, memory figures).

use core::mem::{offset_of, size_of};

/// "MARGAY01", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MARGAY01");
/// Bumped whenever any layout in this crate changes.
pub const VERSION: u32 = 5;

/// Header flags set by the host.
pub const FLAG_STATS: u32 = 1 << 0;
pub const FLAG_TRACE: u32 = 1 << 1;
/// Echo kmsg to the debug console as it is written.
pub const FLAG_KMSG_ECHO: u32 = 1 << 2;
/// A standing instance: no program in the boot data; the kernel runs its
/// init task, which serves the mailbox (see `instance`).
pub const FLAG_INSTANCE: u32 = 1 << 3;
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
    "r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rbp", "rdi", "rsi", "rdx", "rcx", "rbx",
    "rax", "rip", "cs", "rflags", "rsp", "ss", "cr2", "cr3", "error", "vector",
];

/// The host-written first part of the header: what the host tells the kernel
/// at boot. The kernel reads it once (`Header::boot`) and keeps the copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BootParams {
    /// `MAGIC`.
    pub magic: u64,
    /// `VERSION` of the crate the host was built with.
    pub version: u32,
    pub ncpus: u32,
    pub mem_size: u64,
    /// `FLAG_*` bits.
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
}

/// Why the kernel refuses the boot parameters it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// No `MAGIC`: the host wrote no header (or wrote it elsewhere).
    BadMagic,
    /// The host and the kernel were built from different contracts.
    VersionMismatch { host: u32, kernel: u32 },
}

impl BootParams {
    /// The handshake: check that the host wrote this header with the same
    /// contract version the kernel was built with.
    pub fn check(&self) -> Result<(), HandshakeError> {
        if self.magic != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        if self.version != VERSION {
            return Err(HandshakeError::VersionMismatch {
                host: self.version,
                kernel: VERSION,
            });
        }
        Ok(())
    }
}

/// The boot header, at `SHARED_PHYS + HEADER_OFF`. `boot` is written by the
/// host before the kernel boots; the rest by the kernel.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Header {
    pub boot: BootParams,
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

/// Offsets of the header fields that are accessed atomically.
pub const HEADER_STATE_OFF: u64 = offset_of!(Header, state) as u64;
pub const HEADER_KMSG_HEAD_OFF: u64 = offset_of!(Header, kmsg_head) as u64;
pub const HEADER_FREE_BYTES_OFF: u64 = offset_of!(Header, free_bytes) as u64;

// The layout is part of the contract (`VERSION`): pinned here.
const _: () = assert!(size_of::<BootParams>() == 72);
const _: () = assert!(offset_of!(BootParams, mem_size) == 16);
const _: () = assert!(offset_of!(BootParams, host_start_ns) == 64);
const _: () = assert!(size_of::<Header>() == 336);
const _: () = assert!(offset_of!(Header, boot) == 0);
const _: () = assert!(HEADER_STATE_OFF == 72);
const _: () = assert!(HEADER_KMSG_HEAD_OFF == 112);
const _: () = assert!(offset_of!(Header, regs) == 120);
const _: () = assert!(offset_of!(Header, cpus_online) == 316);
const _: () = assert!(HEADER_FREE_BYTES_OFF == 320);
