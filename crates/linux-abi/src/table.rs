//! The one declarative x86-64 syscall table: for every number, its name, where it
//! runs (`Local` in the LWK, `Offload` to the proxy, or `Unsupported` with the
//! reason) and the argument kinds that `--trace` prints and the proxy validates.
//!
//! The kernel dispatches from `policy`, the proxy refuses anything whose policy is
//! not `Offload`, and `--stats`/`--trace` take their names from here.

use crate::syscalls_gen::SYSCALL_NAMES;

/// Where a syscall is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Handled inside the LWK.
    Local,
    /// Forwarded to the proxy process on Linux, which executes it on the
    /// application's mirrored memory.
    Offload,
    /// Refused with ENOSYS (and one kmsg line); the reason says why.
    Unsupported(&'static str),
}

/// What one syscall argument is, for printing and pointer validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A signed integer.
    Int,
    /// Flags or other bit sets, printed in hex.
    Hex,
    /// A file mode, printed in octal.
    Mode,
    /// A file descriptor (or AT_FDCWD).
    Fd,
    /// A NUL-terminated path the kernel reads.
    Path,
    /// A buffer the kernel reads, whose length is the argument at this index.
    InBuf(u8),
    /// A buffer the kernel writes, whose length is the argument at this index.
    OutBuf(u8),
    /// A fixed-size object the kernel writes (e.g. `struct stat`); may be NULL where the call allows.
    Out(u16),
    /// A fixed-size object the kernel reads; may be NULL where the call allows.
    In(u16),
    /// An iovec array the kernel reads data from; count at this index.
    IovIn(u8),
    /// An iovec array the kernel writes data into; count at this index.
    IovOut(u8),
    /// Any other pointer: printed, not validated beyond being non-kernel.
    Ptr,
}

use Arg::*;

/// The number of the highest syscall Margay knows by name.
pub const MAX_SYSCALL: u32 = 511;

/// Name of a syscall number (`None` for unassigned numbers).
pub fn name(nr: u64) -> Option<&'static str> {
    let nr = u32::try_from(nr).ok()?;
    SYSCALL_NAMES
        .binary_search_by_key(&nr, |&(n, _)| n)
        .ok()
        .map(|i| SYSCALL_NAMES[i].1)
}

/// Where syscall `nr` runs.
pub fn policy(nr: u64) -> Policy {
    let Some(n) = name(nr) else {
        return Policy::Unsupported("unknown syscall number");
    };
    match n {
        // Memory: region-based, pre-mapped, contiguous.
        "brk" | "mmap" | "munmap" | "mprotect" | "madvise" | "mremap" | "msync" | "mlock"
        | "mlock2" | "munlock" | "mlockall" | "munlockall" | "mincore" => Policy::Local,
        // Task and thread bookkeeping.
        "arch_prctl" | "set_tid_address" | "set_robust_list" | "get_robust_list" | "exit"
        | "exit_group" | "getpid" | "gettid" | "sched_yield" | "sched_getaffinity"
        | "sched_setaffinity" | "getcpu" | "futex" | "prctl" | "clone" | "clone3" | "sysinfo" => {
            Policy::Local
        }
        // Time from the calibrated TSC.
        "clock_gettime" | "clock_getres" | "gettimeofday" | "time" | "nanosleep"
        | "clock_nanosleep" => Policy::Local,
        // Signal bookkeeping (delivery of handlers is not implemented yet).
        "rt_sigaction" | "rt_sigprocmask" | "sigaltstack" | "kill" | "tgkill" | "tkill"
        | "rt_sigreturn" | "rt_sigsuspend" | "rt_sigpending" | "rt_sigtimedwait" | "pause"
        | "alarm" | "setitimer" | "getitimer" => Policy::Local,
        "rseq" => {
            Policy::Unsupported("restartable sequences are not implemented (glibc falls back)")
        }
        "execve" | "fork" | "vfork" => Policy::Local,
        "execveat" => Policy::Unsupported("execveat is not implemented yet"),
        "rt_sigqueueinfo" | "rt_tgsigqueueinfo" | "timer_create" | "timer_settime"
        | "timer_gettime" | "timer_getoverrun" | "timer_delete" | "signalfd" | "signalfd4" => {
            Policy::Unsupported("POSIX timers, queued signals and signalfd are not implemented yet")
        }
        "shmat"
        | "shmdt"
        | "remap_file_pages"
        | "pkey_mprotect"
        | "pkey_alloc"
        | "pkey_free"
        | "mbind"
        | "set_mempolicy"
        | "get_mempolicy"
        | "migrate_pages"
        | "move_pages"
        | "memfd_secret"
        | "userfaultfd"
        | "membarrier"
        | "process_madvise"
        | "set_mempolicy_home_node" => {
            Policy::Unsupported("would change the proxy's memory, not the LWK's")
        }
        "ptrace" | "process_vm_readv" | "process_vm_writev" | "modify_ldt" | "iopl" | "ioperm"
        | "personality" | "seccomp" | "unshare" | "setns" | "set_thread_area"
        | "get_thread_area" | "io_uring_setup" | "io_uring_enter" | "io_uring_register"
        | "vhangup" | "reboot" | "kexec_load" | "kexec_file_load" | "init_module"
        | "finit_module" | "delete_module" | "swapon" | "swapoff" | "uselib" | "create_module"
        | "get_kernel_syms" | "query_module" | "nfsservctl" | "afs_syscall" | "tuxcall"
        | "security" | "vserver" | "epoll_ctl_old" | "epoll_wait_old" | "getpmsg" | "putpmsg"
        | "_sysctl" | "lookup_dcookie" | "kcmp" | "bpf" | "perf_event_open" => {
            Policy::Unsupported("not supported on the LWK")
        }
        _ => Policy::Offload,
    }
}

/// Argument kinds of syscall `nr`, in order (as many as the call takes).
/// Calls not listed here print as three hex arguments and are not validated.
pub fn signature(nr: u64) -> Option<&'static [Arg]> {
    let n = name(nr)?;
    let sig: &'static [Arg] = match n {
        "read" => &[Fd, OutBuf(2), Int],
        "write" => &[Fd, InBuf(2), Int],
        "open" | "creat" => &[Path, Hex, Mode],
        "close" | "fsync" | "fdatasync" | "fchdir" | "dup" | "syncfs" => &[Fd],
        "stat" | "lstat" => &[Path, Out(144)],
        "fstat" => &[Fd, Out(144)],
        "lseek" => &[Fd, Int, Int],
        "ioctl" => &[Fd, Hex, Hex],
        "pread64" => &[Fd, OutBuf(2), Int, Int],
        "pwrite64" => &[Fd, InBuf(2), Int, Int],
        "readv" => &[Fd, IovOut(2), Int],
        "writev" => &[Fd, IovIn(2), Int],
        "preadv" | "preadv2" => &[Fd, IovOut(2), Int, Int],
        "pwritev" | "pwritev2" => &[Fd, IovIn(2), Int, Int],
        "access" => &[Path, Int],
        "pipe" => &[Out(8)],
        "pipe2" => &[Out(8), Hex],
        "dup2" => &[Fd, Fd],
        "dup3" => &[Fd, Fd, Hex],
        "getppid" | "getuid" | "geteuid" | "getgid" | "getegid" | "getpgrp" | "setsid" | "sync"
        | "getpid" | "gettid" | "sched_yield" | "pause" | "vfork" | "fork" | "munlockall"
        | "inotify_init" => &[],
        "sendfile" => &[Fd, Fd, Ptr, Int],
        "socket" => &[Int, Int, Int],
        "connect" | "bind" => &[Fd, InBuf(2), Int],
        "accept" | "getsockname" | "getpeername" => &[Fd, Ptr, Ptr],
        "accept4" => &[Fd, Ptr, Ptr, Hex],
        "sendto" => &[Fd, InBuf(2), Int, Hex, Ptr, Int],
        "recvfrom" => &[Fd, OutBuf(2), Int, Hex, Ptr, Ptr],
        "listen" | "shutdown" => &[Fd, Int],
        "uname" => &[Out(390)],
        "fcntl" => &[Fd, Int, Hex],
        "flock" => &[Fd, Int],
        "truncate" => &[Path, Int],
        "ftruncate" => &[Fd, Int],
        "getdents" | "getdents64" => &[Fd, OutBuf(2), Int],
        "getcwd" => &[OutBuf(1), Int],
        "chdir" | "rmdir" | "unlink" | "chroot" => &[Path],
        "rename" | "link" | "symlink" => &[Path, Path],
        "mkdir" | "chmod" => &[Path, Mode],
        "readlink" => &[Path, OutBuf(2), Int],
        "fchmod" => &[Fd, Mode],
        "chown" | "lchown" => &[Path, Int, Int],
        "fchown" => &[Fd, Int, Int],
        "umask" => &[Mode],
        "getrlimit" | "setrlimit" => &[Int, Out(16)],
        "getrusage" => &[Int, Out(144)],
        "sysinfo" => &[Out(112)],
        "times" => &[Out(32)],
        "statfs" => &[Path, Out(120)],
        "fstatfs" => &[Fd, Out(120)],
        "setuid" | "setgid" | "getpgid" | "getsid" | "exit" | "exit_group" => &[Int],
        "setpgid" => &[Int, Int],
        "getgroups" => &[Int, Ptr],
        "openat" => &[Fd, Path, Hex, Mode],
        "mkdirat" => &[Fd, Path, Mode],
        "unlinkat" => &[Fd, Path, Hex],
        "renameat" => &[Fd, Path, Fd, Path],
        "renameat2" => &[Fd, Path, Fd, Path, Hex],
        "newfstatat" => &[Fd, Path, Out(144), Hex],
        "readlinkat" => &[Fd, Path, OutBuf(3), Int],
        "faccessat" => &[Fd, Path, Int],
        "faccessat2" => &[Fd, Path, Int, Hex],
        "fchmodat" => &[Fd, Path, Mode],
        "fchownat" => &[Fd, Path, Int, Int, Hex],
        "symlinkat" => &[Path, Fd, Path],
        "linkat" => &[Fd, Path, Fd, Path, Hex],
        "utimensat" => &[Fd, Path, Ptr, Hex],
        "statx" => &[Fd, Path, Hex, Hex, Out(256)],
        "prlimit64" => &[Int, Int, Ptr, Ptr],
        "getrandom" => &[OutBuf(1), Int, Hex],
        "wait4" => &[Int, Ptr, Hex, Ptr],
        "kill" | "tkill" => &[Int, Int],
        "tgkill" => &[Int, Int, Int],
        "fadvise64" => &[Fd, Int, Int, Int],
        "poll" => &[Ptr, Int, Int],
        "select" => &[Int, Ptr, Ptr, Ptr, Ptr],
        "brk" => &[Hex],
        "mmap" => &[Hex, Int, Hex, Hex, Fd, Hex],
        "munmap" => &[Hex, Int],
        "mprotect" => &[Hex, Int, Hex],
        "madvise" => &[Hex, Int, Int],
        "mremap" => &[Hex, Int, Int, Hex, Hex],
        "arch_prctl" => &[Hex, Hex],
        "set_tid_address" => &[Ptr],
        "set_robust_list" => &[Ptr, Int],
        "clock_gettime" | "clock_getres" => &[Int, Ptr],
        "gettimeofday" => &[Ptr, Ptr],
        "time" => &[Ptr],
        "nanosleep" => &[Ptr, Ptr],
        "clock_nanosleep" => &[Int, Hex, Ptr, Ptr],
        "rt_sigaction" => &[Int, Ptr, Ptr, Int],
        "rt_sigprocmask" => &[Int, Ptr, Ptr, Int],
        "sigaltstack" => &[Ptr, Ptr],
        "futex" => &[Ptr, Int, Int, Ptr, Ptr, Int],
        "sched_getaffinity" | "sched_setaffinity" => &[Int, Int, Ptr],
        "getcpu" => &[Ptr, Ptr, Ptr],
        "rseq" => &[Ptr, Int, Hex, Hex],
        "prctl" => &[Int, Hex, Hex, Hex, Hex],
        "execve" => &[Path, Ptr, Ptr],
        _ => return None,
    };
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls_gen::*;

    #[test]
    fn names_and_numbers_agree() {
        assert_eq!(name(0), Some("read"));
        assert_eq!(name(u64::from(SYS_EXIT_GROUP)), Some("exit_group"));
        assert_eq!(name(1000), None);
        assert_eq!(name(u64::MAX), None);
        assert!(SYSCALL_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn policies_of_core_calls() {
        assert_eq!(policy(u64::from(SYS_WRITE)), Policy::Offload);
        assert_eq!(policy(u64::from(SYS_OPENAT)), Policy::Offload);
        assert_eq!(policy(u64::from(SYS_BRK)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_MMAP)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_CLOCK_GETTIME)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_CLONE)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_FORK)), Policy::Local);
        assert!(matches!(
            policy(u64::from(SYS_EXECVEAT)),
            Policy::Unsupported(_)
        ));
        assert!(matches!(policy(1000), Policy::Unsupported(_)));
    }

    #[test]
    fn nothing_that_changes_the_proxy_memory_is_offloaded() {
        for n in [
            SYS_MMAP,
            SYS_MUNMAP,
            SYS_MPROTECT,
            SYS_BRK,
            SYS_MREMAP,
            SYS_CLONE,
            SYS_FORK,
            SYS_EXECVE,
            SYS_EXIT,
            SYS_EXIT_GROUP,
            SYS_ARCH_PRCTL,
            SYS_RT_SIGRETURN,
            SYS_RT_SIGACTION,
            SYS_SHMAT,
            SYS_PTRACE,
            SYS_PRCTL,
            SYS_ALARM,
            SYS_SETITIMER,
        ] {
            assert_ne!(
                policy(u64::from(n)),
                Policy::Offload,
                "{:?}",
                name(u64::from(n))
            );
        }
    }

    #[test]
    fn buffer_lengths_point_at_real_arguments() {
        for &(n, _) in SYSCALL_NAMES {
            if let Some(sig) = signature(u64::from(n)) {
                assert!(sig.len() <= 6);
                for a in sig {
                    if let InBuf(i) | OutBuf(i) | IovIn(i) | IovOut(i) = *a {
                        assert!(usize::from(i) < sig.len(), "{:?}", name(u64::from(n)));
                    }
                }
            }
        }
        assert_eq!(
            signature(u64::from(SYS_PREAD64)),
            Some(&[Fd, OutBuf(2), Int, Int][..])
        );
    }
}
