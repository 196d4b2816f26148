//! Standing instances (`margay boot`): the kernel boots with no program
//! (`FLAG_INSTANCE`) and runs a resident init task that serves the
//! instance's mailbox, which replaces the boot data. The host posts one
//! request at a time: spawn a program for an exec client (the client is the
//! new process's proxy), or kill a process whose exec client is gone.
//!
//! Spawn: the host writes the request (state `MAILBOX_POSTED`), the kernel
//! creates the process's region table, writes its address into `table` and
//! moves to `MAILBOX_LOADING` (the host hands the table to the client, which
//! starts serving it: the loader's open and pread calls go to the client),
//! then answers `ret` (the pid, or -errno with the reason in the data area)
//! with `MAILBOX_DONE`. The host sets `MAILBOX_IDLE` again once it has read
//! the answer.

use core::mem::{offset_of, size_of};

use crate::layout::{BOOTDATA_OFF, BOOTDATA_SIZE};

/// The margay-private system call the instance's init task loops on; the
/// kernel honours it only from init.
pub const INIT_SYSCALL: u64 = 0x4d47;

/// Where the mailbox and its data live in the shared area.
pub const MAILBOX_OFF: u64 = BOOTDATA_OFF;
pub const MAILBOX_DATA_OFF: u64 = BOOTDATA_OFF + 0x100;
pub const MAILBOX_DATA_SIZE: u64 = BOOTDATA_SIZE - 0x100;

/// Mailbox states.
pub const MAILBOX_IDLE: u32 = 0;
pub const MAILBOX_POSTED: u32 = 1;
pub const MAILBOX_LOADING: u32 = 2;
pub const MAILBOX_DONE: u32 = 3;

/// Mailbox operations.
/// Load the program in the data area (path, argv, envp as in the boot data)
/// into a new process whose proxy is `proxy_pid`.
pub const OP_SPAWN: u32 = 1;
/// Kill process `proxy_pid` and its descendants with SIGKILL (their proxy
/// is gone: the kernel answers their pending offloads itself with EINTR).
pub const OP_KILL: u32 = 2;

/// Spawn flags: make the kernel panic instead (tests of the panic path).
pub const SPAWN_INJECT_PANIC: u32 = 1;

/// The mailbox, at `SHARED_PHYS + MAILBOX_OFF`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Mailbox {
    /// A `MAILBOX_*` state, accessed atomically.
    pub state: u32,
    /// An `OP_*`.
    pub op: u32,
    pub flags: u32,
    pub proxy_pid: u32,
    pub argc: u32,
    pub envc: u32,
    /// Bytes of request data (or, in a failed answer, of the reason).
    pub data_len: u32,
    pub _pad: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Cores of the instance the process may run on (bit n for core n; 0:
    /// all, the least loaded first).
    pub cpus: u64,
    /// Guest-physical address of the new process's region table (kernel).
    pub table: u64,
    /// The new process's pid, or -errno (kernel).
    pub ret: i64,
}

pub const MAILBOX_STATE_OFF: u64 = offset_of!(Mailbox, state) as u64;

const _: () = assert!(size_of::<Mailbox>() == 72);
const _: () = assert!(MAILBOX_STATE_OFF == 0);
const _: () = assert!(size_of::<Mailbox>() as u64 <= MAILBOX_DATA_OFF - MAILBOX_OFF);
