//! Linux's `#[repr(C)]` structures as they cross the syscall boundary.
//!
//! Re-exported from `linux-raw-sys` where its definition is plain data
//! (integers only); wrapped where it has pointers, function pointers or
//! implicit padding (which must not reach user memory as uninitialised
//! bytes), with the size and every offset asserted against `linux-raw-sys`.
//! The signal frame (`sigcontext`, `ucontext`, `fpstate`), which
//! `linux-raw-sys` does not cover, is written after asm/sigcontext.h and
//! asm/ucontext.h and asserted against Linux's sizes.
#![allow(non_camel_case_types)]

use core::mem::{offset_of, size_of};
use linux_raw_sys::general as g;
use linux_raw_sys::system as s;

pub use g::{
    clone_args, itimerspec, itimerval, rlimit, stat, statfs, statx, timespec, timeval, timezone,
};
pub use s::new_utsname;

/// A signal set as the kernel sees it (`sigset_t` of rt_* calls: 64 signals).
pub type sigset_t = u64;
/// The two descriptors pipe() and pipe2() return.
pub type pipe_fds = [i32; 2];
/// A group id (setgroups' list).
pub type gid_t = u32;

/// struct tms (times).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct tms {
    pub tms_utime: i64,
    pub tms_stime: i64,
    pub tms_cutime: i64,
    pub tms_cstime: i64,
}

/// `struct kernel_sigaction` (rt_sigaction): handler and restorer as addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kernel_sigaction {
    pub sa_handler: u64,
    pub sa_flags: u64,
    pub sa_restorer: u64,
    pub sa_mask: sigset_t,
}

/// `stack_t` (sigaltstack, `uc_stack`), with its padding explicit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct stack_t {
    pub ss_sp: u64,
    pub ss_flags: i32,
    pub _pad: u32,
    pub ss_size: u64,
}

/// `struct robust_list_head` (set_robust_list), pointers as addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct robust_list_head {
    pub next: u64,
    pub futex_offset: i64,
    pub list_op_pending: u64,
}

/// `struct sysinfo`, with its padding explicit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sysinfo {
    pub uptime: i64,
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub sharedram: u64,
    pub bufferram: u64,
    pub totalswap: u64,
    pub freeswap: u64,
    pub procs: u16,
    pub pad: u16,
    pub _pad2: u32,
    pub totalhigh: u64,
    pub freehigh: u64,
    pub mem_unit: u32,
    pub _f: u32,
}

/// `siginfo_t`: the common head and the union as words. Margay fills the
/// two members it sends: a sender (`si_pid`, `si_uid`) or a fault address
/// (`si_addr`), both at the start of the union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct siginfo {
    pub si_signo: i32,
    pub si_errno: i32,
    pub si_code: i32,
    pub _pad: i32,
    pub fields: [u64; 14],
}

impl siginfo {
    /// A signal sent by process `pid` (kill, tgkill, the kernel for itself).
    pub fn from_sender(signo: i32, code: i32, pid: u32, uid: u32) -> Self {
        let mut fields = [0; 14];
        fields[0] = u64::from(pid) | (u64::from(uid) << 32);
        siginfo {
            si_signo: signo,
            si_code: code,
            fields,
            ..siginfo::default()
        }
    }

    /// A signal queued with a value (sigqueue: `si_pid`, `si_uid`, `si_value`).
    pub fn from_queue(signo: i32, code: i32, pid: u32, uid: u32, value: u64) -> Self {
        let mut i = Self::from_sender(signo, code, pid, uid);
        i.fields[1] = value;
        i
    }

    /// A POSIX timer's expiry (`si_tid`, `si_overrun`, `si_value`).
    pub fn from_timer(signo: i32, timer: i32, overrun: i32, value: u64) -> Self {
        let mut fields = [0; 14];
        fields[0] = u64::from(timer as u32) | (u64::from(overrun as u32) << 32);
        fields[1] = value;
        siginfo {
            si_signo: signo,
            si_code: g::SI_TIMER,
            fields,
            ..siginfo::default()
        }
    }

    /// `si_pid` and `si_uid` (or, for a timer, `si_tid` and `si_overrun`).
    pub fn word0(&self) -> (u32, u32) {
        (self.fields[0] as u32, (self.fields[0] >> 32) as u32)
    }

    /// A fault at `addr` (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    pub fn from_fault(signo: i32, code: i32, addr: u64) -> Self {
        let mut fields = [0; 14];
        fields[0] = addr;
        siginfo {
            si_signo: signo,
            si_code: code,
            fields,
            ..siginfo::default()
        }
    }
}

/// `struct sigevent` (timer_create): the value, the signal, how to notify
/// and (SIGEV_THREAD_ID) the thread; the union's other members are
/// pointers the kernel never reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct sigevent {
    pub sigev_value: u64,
    pub sigev_signo: i32,
    pub sigev_notify: i32,
    pub sigev_tid: i32,
    pub _pad: [i32; 11],
}

/// `struct signalfd_siginfo` (linux/signalfd.h, not in linux-raw-sys):
/// what a read from a signalfd returns, 128 bytes per signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct signalfd_siginfo {
    pub ssi_signo: u32,
    pub ssi_errno: i32,
    pub ssi_code: i32,
    pub ssi_pid: u32,
    pub ssi_uid: u32,
    pub ssi_fd: i32,
    pub ssi_tid: u32,
    pub ssi_band: u32,
    pub ssi_overrun: u32,
    pub ssi_trapno: u32,
    pub ssi_status: i32,
    pub ssi_int: i32,
    pub ssi_ptr: u64,
    pub ssi_utime: u64,
    pub ssi_stime: u64,
    pub ssi_addr: u64,
    pub ssi_addr_lsb: u16,
    pub _pad2: u16,
    pub ssi_syscall: i32,
    pub ssi_call_addr: u64,
    pub ssi_arch: u32,
    pub _pad: [u8; 28],
}

const _: () = assert!(size_of::<signalfd_siginfo>() == 128);
const _: () = assert!(offset_of!(signalfd_siginfo, ssi_ptr) == 48);
const _: () = assert!(offset_of!(signalfd_siginfo, ssi_addr) == 72);
const _: () = assert!(offset_of!(signalfd_siginfo, ssi_arch) == 96);

impl signalfd_siginfo {
    /// The record for a signal taken with `info`.
    pub fn of(info: &siginfo) -> Self {
        let (w0, w1) = info.word0();
        let timer = info.si_code == g::SI_TIMER;
        let fault = matches!(
            info.si_signo as u32,
            g::SIGILL | g::SIGFPE | g::SIGSEGV | g::SIGBUS
        );
        signalfd_siginfo {
            ssi_signo: info.si_signo as u32,
            ssi_errno: info.si_errno,
            ssi_code: info.si_code,
            ssi_pid: if timer || fault { 0 } else { w0 },
            ssi_uid: if timer || fault { 0 } else { w1 },
            ssi_tid: if timer { w0 } else { 0 },
            ssi_overrun: if timer { w1 } else { 0 },
            ssi_int: info.fields[1] as i32,
            ssi_ptr: if fault { 0 } else { info.fields[1] },
            ssi_addr: if fault { info.fields[0] } else { 0 },
            ..Self::default()
        }
    }
}

/// The fxsave image a signal frame carries (`struct _fpstate_64`).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct fpstate {
    pub cwd: u16,
    pub swd: u16,
    pub twd: u16,
    pub fop: u16,
    pub rip: u64,
    pub rdp: u64,
    pub mxcsr: u32,
    pub mxcsr_mask: u32,
    pub st_space: [u32; 32],
    pub xmm_space: [u32; 64],
    pub reserved2: [u32; 12],
    pub reserved3: [u32; 12],
}

/// MXCSR bits that may be set (the rest fault in fxrstor).
pub const MXCSR_VALID: u32 = 0xffff;

/// `struct sigcontext` (64-bit): the interrupted registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct sigcontext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u16,
    pub gs: u16,
    pub fs: u16,
    pub ss: u16,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    /// Address of the `fpstate` (0: none).
    pub fpstate: u64,
    pub reserved1: [u64; 8],
}

/// `struct ucontext` as a signal handler's third argument sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ucontext {
    pub uc_flags: u64,
    pub uc_link: u64,
    pub uc_stack: stack_t,
    pub uc_mcontext: sigcontext,
    pub uc_sigmask: sigset_t,
}

/// `struct rt_sigframe`: what a handler finds at its stack pointer (the
/// return address is the restorer, which calls rt_sigreturn).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rt_sigframe {
    pub pretcode: u64,
    pub uc: ucontext,
    pub info: siginfo,
}

macro_rules! same_layout {
    ($ours:ty, $theirs:ty, $($field:ident),*) => {
        const _: () = assert!(size_of::<$ours>() == size_of::<$theirs>());
        $(const _: () = assert!(offset_of!($ours, $field) == offset_of!($theirs, $field));)*
    };
}

same_layout!(
    kernel_sigaction,
    g::kernel_sigaction,
    sa_flags,
    sa_restorer,
    sa_mask
);
same_layout!(stack_t, g::stack_t, ss_sp, ss_flags, ss_size);
same_layout!(
    robust_list_head,
    g::robust_list_head,
    futex_offset,
    list_op_pending
);
same_layout!(
    sysinfo,
    s::sysinfo,
    uptime,
    loads,
    totalram,
    freeram,
    sharedram,
    bufferram,
    totalswap,
    freeswap,
    procs,
    pad,
    totalhigh,
    freehigh,
    mem_unit
);
const _: () = assert!(offset_of!(g::kernel_sigaction, sa_handler_kernel) == 0);
const _: () = assert!(size_of::<siginfo>() == size_of::<g::siginfo>());
const _: () = assert!(size_of::<sigset_t>() == size_of::<g::kernel_sigset_t>());

// Linux's sizes of what linux-raw-sys does not define, and of the structs
// whose sizes the proxy checks for offloaded calls.
const _: () = assert!(size_of::<fpstate>() == 512);
const _: () = assert!(size_of::<sigcontext>() == 256);
const _: () = assert!(size_of::<ucontext>() == 304);
const _: () = assert!(offset_of!(ucontext, uc_mcontext) == 40);
const _: () = assert!(offset_of!(ucontext, uc_sigmask) == 296);
const _: () = assert!(offset_of!(sigcontext, cs) == 144);
const _: () = assert!(offset_of!(sigcontext, fpstate) == 184);
const _: () = assert!(size_of::<rt_sigframe>() == 440);
const _: () = assert!(offset_of!(rt_sigframe, info) == 312);
const _: () = assert!(size_of::<stat>() == 144);
const _: () = assert!(size_of::<new_utsname>() == 390);
const _: () = assert!(size_of::<rlimit>() == 16);
const _: () = assert!(size_of::<sysinfo>() == 112);
const _: () = assert!(size_of::<statfs>() == 120);
const _: () = assert!(size_of::<statx>() == 256);
const _: () = assert!(size_of::<tms>() == 32);
const _: () = assert!(size_of::<timespec>() == 16);
const _: () = assert!(size_of::<timeval>() == 16);
const _: () = assert!(size_of::<itimerval>() == 32);
const _: () = assert!(size_of::<timezone>() == 8);
const _: () = assert!(size_of::<clone_args>() == 88);

same_layout!(
    sigevent,
    g::sigevent,
    sigev_value,
    sigev_signo,
    sigev_notify
);
const _: () = assert!(offset_of!(sigevent, sigev_tid) == offset_of!(g::sigevent, _sigev_un));
