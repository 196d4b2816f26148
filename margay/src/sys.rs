//! Thin wrappers over the Linux calls std does not offer: memfds, clocks, identity,
//! signal masks, child set-up before exec, and the raw syscall the proxy forwards.
//!
//! Together with `guest_mem` (guest RAM access) and `proxy::window` (the proxy's
//! fixed mappings) this is where margay's `unsafe` lives.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The signals a terminal or a supervisor sends, which margay handles itself.
pub const TERMINAL_SIGNALS: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
/// Job-control signals margay passes to the application (which stops, and
/// then has its proxy stop margay, so the shell sees the job stopped).
pub const JOB_SIGNALS: [i32; 4] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU, libc::SIGCONT];

fn handled_signals() -> libc::sigset_t {
    let mut all = TERMINAL_SIGNALS.to_vec();
    all.extend(JOB_SIGNALS);
    sigset(&all)
}

/// Create an anonymous memory file (no path in any file system), close-on-exec.
pub fn memfd_create(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, so it is open and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Make `dst` refer to `src`'s open file description (dup3), with close-on-exec
/// set as asked. `dst` stays open under the same number, owned by its owner.
pub fn dup3(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, cloexec: bool) -> io::Result<()> {
    if src.as_raw_fd() == dst.as_raw_fd() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: both descriptors are open for the duration of the call (borrowed);
    // dup3 atomically replaces what `dst` refers to and leaves it open.
    let r = unsafe { libc::dup3(src.as_raw_fd(), dst.as_raw_fd(), flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A clock's current value in nanoseconds (0 if the clock cannot be read).
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Real and effective user and group ids of this process.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
}

pub fn ids() -> Ids {
    // SAFETY: these calls take no arguments, cannot fail and touch no memory of ours.
    unsafe {
        Ids {
            uid: libc::getuid(),
            gid: libc::getgid(),
            euid: libc::geteuid(),
            egid: libc::getegid(),
        }
    }
}

/// Whether the calling user may execute `path` (access(2) with X_OK).
pub fn may_execute(path: &OsStr) -> bool {
    let Ok(c) = CString::new(path.as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the whole set; sigaddset only adds valid signal
    // numbers (our constants) to the initialized set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &s in signals {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// Block `TERMINAL_SIGNALS` and `JOB_SIGNALS` in the calling thread (and the
/// threads it starts later), so that only `wait_terminal_signal` receives them.
pub fn block_terminal_signals() -> io::Result<()> {
    let set = handled_signals();
    // SAFETY: `set` is an initialized sigset; the old mask is not requested.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Wait up to `timeout` for one of the (blocked) `TERMINAL_SIGNALS` or
/// `JOB_SIGNALS` and return its number (None: none came).
pub fn wait_terminal_signal(timeout: std::time::Duration) -> io::Result<Option<i32>> {
    let set = handled_signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are initialized; no siginfo is asked for.
    let r = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r))
}

/// Ignore `signals` in this process (the disposition survives exec of nothing: the
/// proxy never execs).
pub fn ignore_signals(signals: &[i32]) -> io::Result<()> {
    for &s in signals {
        // SAFETY: SIG_IGN is a valid disposition for these catchable signals and no
        // handler code is involved.
        if unsafe { libc::signal(s, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Make a child started by `cmd` die with margay (SIGKILL on parent death, also if
/// margay died between fork and the prctl) and start with no blocked signals.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = i32::try_from(std::process::id()).unwrap_or(0);
    let empty = sigset(&[]);
    // SAFETY: the closure runs in the forked child before exec. It only calls
    // async-signal-safe functions (prctl, getppid, pthread_sigmask) on values
    // captured by copy, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // margay is already gone: the death signal will never come.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            let r = libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            Ok(())
        });
    }
}

/// Let this thread's timed sleeps end within `ns` of their deadline (the default
/// slack of 50 µs would dominate the proxy's short idle naps).
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    let ns = libc::c_ulong::try_from(ns).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send SIGKILL to `pid` (errors, e.g. an already-reaped child, are ignored).
pub fn kill9(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill touches no memory; callers only pass pids of their own
            // unreaped children, so the pid cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Reap child `pid` (blocking unless `nohang`), ignoring its status and errors.
/// Only for children no `std::process::Child` owns or that are known unreaped.
pub fn reap(pid: u32, nohang: bool) {
    if let Ok(pid) = i32::try_from(pid) {
        let flags = if nohang { libc::WNOHANG } else { 0 };
        // SAFETY: waitpid with a NULL status pointer writes no memory; the caller
        // guarantees the pid is an unreaped child of ours.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), flags) };
    }
}

/// Block until some child of this process has exited and return its pid, without
/// reaping it (so its pid stays valid until `std::process::Child::wait`).
pub fn wait_any_child_exit() -> io::Result<u32> {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child
        // unreaped, so ownership of the pid stays with its `Child`.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid succeeded, so it filled in `info` (it was zeroed before).
        let pid = unsafe { info.assume_init().si_pid() };
        if let Ok(pid) = u32::try_from(pid) {
            if pid != 0 {
                return Ok(pid);
            }
        }
    }
}

/// Execute Linux syscall `nr` with `args`; returns the result or `-errno`.
///
/// # Safety
/// The syscall may read or write any memory its arguments point to and change the
/// process's state. The caller must have checked that every pointer the call uses
/// refers to memory no Rust object owns (the proxy: mirrored guest regions), and that
/// the call cannot unmap or remap the process's own memory.
pub unsafe fn raw_syscall(nr: u64, args: &[u64; 6]) -> i64 {
    let Ok(nr) = libc::c_long::try_from(nr) else {
        return -i64::from(libc::ENOSYS);
    };
    // SAFETY: the caller upholds this function's contract (see above); syscall(2)
    // passes the six register-sized arguments through unchanged.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if r == -1 {
        -i64::from(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        r
    }
}

/// Let the program `cmd` starts inherit `fd` (which stays close-on-exec in margay,
/// so no other child gets it) under the same number.
pub fn inherit_fd(cmd: &mut Command, fd: std::os::fd::RawFd) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // fcntl, which is async-signal-safe, on a captured integer.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The host cores this process may run on (sched_getaffinity), in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is a writable cpu_set_t of the size passed; the call fills it.
    let r = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialized, then filled in by the successful call.
    let set = unsafe { set.assume_init() };
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET only reads `set` at bit `c`, and c < CPU_SETSIZE.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restrict thread `tid` (any process's) to host core `cpu`.
pub fn pin_thread(tid: u32, cpu: usize) -> io::Result<()> {
    let tid = libc::pid_t::try_from(tid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    if tid <= 0 || cpu >= usize::try_from(libc::CPU_SETSIZE).unwrap_or(0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is zero-initialized (an empty set); CPU_SET writes bit `cpu`,
    // which is below CPU_SETSIZE; sched_setaffinity only reads the set.
    let r = unsafe {
        let mut set = set.assume_init();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Close every descriptor marked close-on-exec, as execve does.
pub fn close_cloexec_fds() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        // SAFETY: F_GETFD only reads the descriptor flags (EBADF for the
        // directory's own, now closed, descriptor); close affects only
        // descriptors marked close-on-exec, which execve would close too.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::close(fd);
            }
        }
    }
}

/// fork(2): the child's pid in the parent, 0 in the child, -errno on failure.
pub fn fork() -> i64 {
    // SAFETY: the caller (the proxy's Fork request) holds the locks the child
    // needs and starts fresh threads in the child; fork itself has no memory
    // preconditions.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        -i64::from(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EAGAIN),
        )
    } else {
        i64::from(pid)
    }
}

/// Take `sig` with its default action, here and now: the disposition is
/// reset, the signal unblocked in this thread and raised at it (the process
/// ends, or stops until SIGCONT and this returns).
pub fn raise_default(sig: i32) {
    let set = sigset(&[sig]);
    // SAFETY: resetting a disposition, unblocking an initialized set in this
    // thread and raising a signal at it; no handler code runs.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// margay's pid, as the initial proxy (its child) saw it at start.
static MARGAY_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// In the initial proxy: remember margay (the parent), which every forked
/// proxy outlives only briefly (see `exit_after_margay`).
pub fn remember_margay() {
    // SAFETY: getppid has no preconditions.
    MARGAY_PID.store(
        unsafe { libc::getppid() },
        std::sync::atomic::Ordering::Release,
    );
}

/// In a forked proxy's main thread: wait until margay is gone, then die.
/// An orphaned LWK process (its parent ended) keeps its proxy, as a Linux
/// orphan keeps running; the partition, and so every proxy, ends with margay.
pub fn exit_after_margay() -> ! {
    let margay = MARGAY_PID.load(std::sync::atomic::Ordering::Acquire);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        // Gone, or a zombie its parent has not reaped yet.
        let gone = margay <= 1
            || std::fs::read_to_string(format!("/proc/{margay}/stat")).map_or(true, |st| {
                st.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
                    .is_none_or(|state| state == 'Z' || state == 'X')
            });
        if gone {
            // SAFETY: raising SIGKILL at ourselves ends the process at once,
            // without running destructors while worker threads hold locks.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}

/// End this process as its LWK process ended: with `status`, or by `signal`
/// (default disposition, unblocked) so the parent's wait sees the same.
pub fn exit_like(status: u64, signal: u64) -> ! {
    if (1..=64).contains(&signal) {
        raise_default(signal as i32);
    }
    // SAFETY: _exit ends the process without running Rust destructors, as a
    // dying LWK process's proxy must (other threads may hold locks).
    unsafe { libc::_exit((status & 0xff) as i32) }
}
