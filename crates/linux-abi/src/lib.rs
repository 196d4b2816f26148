//! The Linux x86-64 ABI as Margay sees it: the one syscall table (numbers,
//! names, where each call runs, argument kinds), errno values, constants and
//! `#[repr(C)]` structures, taken from `linux-raw-sys` (Linux's UAPI headers)
//! where it has them.
#![no_std]
#![forbid(unsafe_code)]

pub mod errno;
mod syscalls;
pub mod syscalls_gen;
pub mod table;
pub mod uapi;

pub use errno::{errno_name, to_raw, Errno, SysResult, UnknownErrno};
pub use table::{
    attrs, name, policy, restarts, signature, syscall, Arg, Attrs, Policy, Syscall, SYSCALLS,
};

/// The page size of x86-64 Linux, in bytes.
pub const PAGE_SIZE: u64 = 4096;

/// Where user addresses end on x86-64: the end of the canonical lower half.
pub const CANONICAL_USER_END: u64 = 0x8000_0000_0000;

/// Signal numbers, sigaction flags and siginfo codes.
pub mod signal {
    pub use g::{
        SIGABRT, SIGALRM, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGKILL,
        SIGPIPE, SIGPROF, SIGQUIT, SIGRTMIN, SIGSEGV, SIGSTOP, SIGSYS, SIGTERM, SIGTRAP, SIGTSTP,
        SIGTTIN, SIGTTOU, SIGURG, SIGVTALRM, SIGWINCH, SIGXCPU, SIGXFSZ, SI_TKILL,
    };
    use linux_raw_sys::general as g;

    /// The highest signal number.
    pub const NSIG: u32 = g::_NSIG;
    /// sigaction flags (`sa_flags` is an unsigned long).
    pub const SA_RESTORER: u64 = g::SA_RESTORER as u64;
    pub const SA_ONSTACK: u64 = g::SA_ONSTACK as u64;
    pub const SA_RESTART: u64 = g::SA_RESTART as u64;
    pub const SA_NODEFER: u64 = g::SA_NODEFER as u64;
    pub const SA_RESETHAND: u64 = g::SA_RESETHAND as u64;
    /// Handlers (`sa_handler` values).
    pub const SIG_DFL: u64 = 0;
    pub const SIG_IGN: u64 = 1;
    /// rt_sigprocmask's `how`.
    pub const SIG_BLOCK: u32 = g::SIG_BLOCK;
    pub const SIG_UNBLOCK: u32 = g::SIG_UNBLOCK;
    pub const SIG_SETMASK: u32 = g::SIG_SETMASK;
    /// sigaltstack flags.
    pub const SS_ONSTACK: u32 = g::SS_ONSTACK;
    pub const SS_DISABLE: u32 = g::SS_DISABLE;
    pub const SS_AUTODISARM: u32 = g::SS_AUTODISARM;
    pub const MINSIGSTKSZ: u64 = g::MINSIGSTKSZ as u64;
    /// `si_code` values (signed in siginfo).
    pub const SI_USER: i32 = g::SI_USER as i32;
    pub const SI_KERNEL: i32 = g::SI_KERNEL as i32;
    pub const SI_QUEUE: i32 = g::SI_QUEUE;
    pub const SI_TIMER: i32 = g::SI_TIMER;
    /// sigevent notification kinds (`sigev_notify`).
    pub const SIGEV_SIGNAL: i32 = g::SIGEV_SIGNAL as i32;
    pub const SIGEV_NONE: i32 = g::SIGEV_NONE as i32;
    pub const SIGEV_THREAD: i32 = g::SIGEV_THREAD as i32;
    pub const SIGEV_THREAD_ID: i32 = g::SIGEV_THREAD_ID as i32;
    /// signalfd4 flags.
    pub const SFD_NONBLOCK: u32 = g::O_NONBLOCK;
    pub const SFD_CLOEXEC: u32 = g::O_CLOEXEC;
    pub const SEGV_MAPERR: i32 = g::SEGV_MAPERR as i32;
    pub const SEGV_ACCERR: i32 = g::SEGV_ACCERR as i32;
    pub const FPE_INTDIV: i32 = g::FPE_INTDIV as i32;
    pub const FPE_FLTINV: i32 = g::FPE_FLTINV as i32;
    pub const ILL_ILLOPN: i32 = g::ILL_ILLOPN as i32;
    pub const TRAP_TRACE: i32 = g::TRAP_TRACE as i32;
    pub const BUS_ADRALN: i32 = g::BUS_ADRALN as i32;
    pub const BUS_ADRERR: i32 = g::BUS_ADRERR as i32;
    /// `uc_flags` (asm/ucontext.h, not in linux-raw-sys).
    pub const UC_SIGCONTEXT_SS: u64 = 0x2;
    pub const UC_STRICT_RESTORE_SS: u64 = 0x4;

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

/// mmap/mprotect/madvise/mremap constants (flags are unsigned longs).
pub mod mman {
    pub use g::{PROT_EXEC, PROT_READ, PROT_WRITE};
    use linux_raw_sys::general as g;
    pub const PROT_GROWSDOWN: u64 = g::PROT_GROWSDOWN as u64;
    pub const PROT_GROWSUP: u64 = g::PROT_GROWSUP as u64;
    pub const MAP_SHARED: u64 = g::MAP_SHARED as u64;
    pub const MAP_PRIVATE: u64 = g::MAP_PRIVATE as u64;
    pub const MAP_SHARED_VALIDATE: u64 = g::MAP_SHARED_VALIDATE as u64;
    pub const MAP_TYPE: u64 = g::MAP_TYPE as u64;
    pub const MAP_FIXED: u64 = g::MAP_FIXED as u64;
    pub const MAP_ANONYMOUS: u64 = g::MAP_ANONYMOUS as u64;
    pub const MAP_NORESERVE: u64 = g::MAP_NORESERVE as u64;
    pub const MAP_POPULATE: u64 = g::MAP_POPULATE as u64;
    pub const MAP_FIXED_NOREPLACE: u64 = g::MAP_FIXED_NOREPLACE as u64;
    pub const MREMAP_MAYMOVE: u64 = g::MREMAP_MAYMOVE as u64;
    pub const MREMAP_FIXED: u64 = g::MREMAP_FIXED as u64;
    pub const MREMAP_DONTUNMAP: u64 = g::MREMAP_DONTUNMAP as u64;
    pub const MADV_DONTNEED: u32 = g::MADV_DONTNEED;
    pub const MADV_REMOVE: u32 = g::MADV_REMOVE;
}

/// Clock ids (`clockid_t` is an int) and clock_nanosleep flags.
pub mod clock {
    pub use g::{
        CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_RAW,
        CLOCK_PROCESS_CPUTIME_ID, CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_TAI,
        CLOCK_THREAD_CPUTIME_ID, ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL, TIMER_ABSTIME,
    };
    use linux_raw_sys::general as g;
}

/// clone flags (an unsigned long) and the exit-signal mask.
pub mod clone {
    use linux_raw_sys::general as g;
    pub const CSIGNAL: u64 = g::CSIGNAL as u64;
    pub const CLONE_VM: u64 = g::CLONE_VM as u64;
    pub const CLONE_FS: u64 = g::CLONE_FS as u64;
    pub const CLONE_FILES: u64 = g::CLONE_FILES as u64;
    pub const CLONE_SIGHAND: u64 = g::CLONE_SIGHAND as u64;
    pub const CLONE_PIDFD: u64 = g::CLONE_PIDFD as u64;
    pub const CLONE_VFORK: u64 = g::CLONE_VFORK as u64;
    pub const CLONE_THREAD: u64 = g::CLONE_THREAD as u64;
    pub const CLONE_SYSVSEM: u64 = g::CLONE_SYSVSEM as u64;
    pub const CLONE_SETTLS: u64 = g::CLONE_SETTLS as u64;
    pub const CLONE_PARENT_SETTID: u64 = g::CLONE_PARENT_SETTID as u64;
    pub const CLONE_CHILD_CLEARTID: u64 = g::CLONE_CHILD_CLEARTID as u64;
    pub const CLONE_DETACHED: u64 = g::CLONE_DETACHED as u64;
    pub const CLONE_CHILD_SETTID: u64 = g::CLONE_CHILD_SETTID as u64;
}

/// futex operations and robust-list bits.
pub mod futex {
    pub use linux_raw_sys::general::{
        FUTEX_CLOCK_REALTIME, FUTEX_CMP_REQUEUE, FUTEX_OWNER_DIED, FUTEX_PRIVATE_FLAG,
        FUTEX_REQUEUE, FUTEX_TID_MASK, FUTEX_WAIT, FUTEX_WAITERS, FUTEX_WAIT_BITSET, FUTEX_WAKE,
        FUTEX_WAKE_BITSET, FUTEX_WAKE_OP, ROBUST_LIST_LIMIT,
    };
}

/// prctl and arch_prctl options.
pub mod prctl {
    pub use linux_raw_sys::prctl::{
        PR_GET_DUMPABLE, PR_GET_NAME, PR_SET_DUMPABLE, PR_SET_NAME, PR_SET_PDEATHSIG,
    };
    // asm/prctl.h (linux-raw-sys has only ARCH_SET_FS).
    pub const ARCH_SET_GS: u32 = 0x1001;
    pub const ARCH_SET_FS: u32 = linux_raw_sys::general::ARCH_SET_FS;
    pub const ARCH_GET_FS: u32 = 0x1003;
    pub const ARCH_GET_GS: u32 = 0x1004;
    pub const ARCH_GET_CPUID: u32 = 0x1011;
    pub const ARCH_SET_CPUID: u32 = 0x1012;
}

/// Files: the `*at` calls' directory, access modes.
pub mod fs {
    pub use linux_raw_sys::general::{AT_FDCWD, X_OK};
    /// Longest path, including the NUL.
    pub const PATH_MAX: usize = linux_raw_sys::general::PATH_MAX as usize;
    /// Most iovec entries a call takes.
    pub const UIO_MAXIOV: u64 = linux_raw_sys::general::UIO_MAXIOV as u64;
}

/// Credentials.
pub mod creds {
    /// Most supplementary groups setgroups takes.
    pub const NGROUPS_MAX: usize = linux_raw_sys::general::NGROUPS_MAX as usize;
}

/// Sockets.
pub mod net {
    pub use linux_raw_sys::net::MSG_NOSIGNAL;
}
