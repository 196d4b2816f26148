//! The Linux x86-64 ABI as Margay sees it: syscall numbers and names, where each
//! syscall runs, errno values, and the constants both the LWK and the proxy use.
#![no_std]
#![forbid(unsafe_code)]

pub mod errno;
pub mod syscalls_gen;
pub mod table;

pub use errno::{errno_name, to_raw, Errno, SysResult};
pub use table::{name, policy, signature, Arg, Policy};

/// Signal numbers Margay reports.
pub mod signal {
    pub const SIGHUP: u32 = 1;
    pub const SIGINT: u32 = 2;
    pub const SIGQUIT: u32 = 3;
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGABRT: u32 = 6;
    pub const SIGBUS: u32 = 7;
    pub const SIGFPE: u32 = 8;
    pub const SIGKILL: u32 = 9;
    pub const SIGSEGV: u32 = 11;
    pub const SIGPIPE: u32 = 13;
    pub const SIGALRM: u32 = 14;
    pub const SIGTERM: u32 = 15;
    pub const SIGCHLD: u32 = 17;

    /// What a shell prints when a process dies of this signal.
    pub const fn description(sig: u32) -> &'static str {
        match sig {
            SIGHUP => "Hangup",
            SIGINT => "Interrupt",
            SIGQUIT => "Quit",
            SIGILL => "Illegal instruction",
            SIGTRAP => "Trace/breakpoint trap",
            SIGABRT => "Aborted",
            SIGBUS => "Bus error",
            SIGFPE => "Floating point exception",
            SIGKILL => "Killed",
            SIGSEGV => "Segmentation fault",
            SIGPIPE => "Broken pipe",
            SIGALRM => "Alarm clock",
            SIGTERM => "Terminated",
            _ => "Killed by a signal",
        }
    }
}

/// mmap/mprotect constants.
pub mod mman {
    pub const PROT_READ: u32 = 1;
    pub const PROT_WRITE: u32 = 2;
    pub const PROT_EXEC: u32 = 4;
    pub const MAP_SHARED: u64 = 0x01;
    pub const MAP_PRIVATE: u64 = 0x02;
    pub const MAP_SHARED_VALIDATE: u64 = 0x03;
    pub const MAP_FIXED: u64 = 0x10;
    pub const MAP_ANONYMOUS: u64 = 0x20;
    pub const MAP_NORESERVE: u64 = 0x4000;
    pub const MAP_POPULATE: u64 = 0x8000;
    pub const MAP_FIXED_NOREPLACE: u64 = 0x100000;
    pub const MREMAP_MAYMOVE: u64 = 1;
    pub const MREMAP_FIXED: u64 = 2;
}

/// Clock ids.
pub mod clock {
    pub const CLOCK_REALTIME: u64 = 0;
    pub const CLOCK_MONOTONIC: u64 = 1;
    pub const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
    pub const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
    pub const CLOCK_MONOTONIC_RAW: u64 = 4;
    pub const CLOCK_REALTIME_COARSE: u64 = 5;
    pub const CLOCK_MONOTONIC_COARSE: u64 = 6;
    pub const CLOCK_BOOTTIME: u64 = 7;
    pub const TIMER_ABSTIME: u64 = 1;
}
