//! Thin wrappers over the Linux calls std does not offer: memfds, clocks, identity,
//! signal masks and handlers, child set-up before exec, fixed mappings in a
//! reserved address range, credentials, and the syscalls the proxy forwards.
//!
//! `rustix` makes most of them safe calls; what it does not cover (signal
//! dispositions, masks and waits, `fork`, `waitid` with the child's pid, `fcntl`
//! on raw descriptor numbers, `_exit`, set*id, the forwarded syscall) calls `libc`
//! here. Together with `guest_mem` (guest RAM access) this is the only place
//! margay has `unsafe`.

use std::ffi::{CStr, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Pid, Signal};
use rustix::thread::CpuSet;
pub use rustix::time::ClockId;

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
    Ok(rustix::fs::memfd_create(
        name,
        rustix::fs::MemfdFlags::CLOEXEC,
    )?)
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

/// A clock's current value in nanoseconds.
pub fn clock_ns(clock: ClockId) -> u64 {
    let ts = rustix::time::clock_gettime(clock);
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
    use rustix::process::{getegid, geteuid, getgid, getuid};
    Ids {
        uid: getuid().as_raw(),
        gid: getgid().as_raw(),
        euid: geteuid().as_raw(),
        egid: getegid().as_raw(),
    }
}

/// Whether the calling user may execute `path` (access(2) with X_OK).
pub fn may_execute(path: &OsStr) -> bool {
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok()
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
    // SAFETY: the closure runs in the forked child before exec. It only makes
    // async-signal-safe calls (prctl and getppid, raw syscalls through rustix;
    // pthread_sigmask) on values captured by copy, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid().map_or(0, |p| p.as_raw_pid()) != parent {
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
/// slack of 50 µs would dominate the proxy's short idle naps). 0: the default.
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    Ok(rustix::thread::set_current_timer_slack(
        std::num::NonZeroU64::new(ns),
    )?)
}

/// A pid to signal or wait for: positive (not 0, -1 or a process group).
fn child_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .and_then(Pid::from_raw)
}

/// Send SIGKILL to `pid` (errors, e.g. an already-reaped child, are ignored).
/// Callers only pass pids of their own unreaped children, so the pid cannot
/// have been reused.
pub fn kill9(pid: u32) {
    if let Some(pid) = child_pid(pid) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Send SIGKILL to the process group led by `pid` (a child started in its own
/// group); errors are ignored.
pub fn kill9_group(pid: u32) {
    if let Some(pid) = child_pid(pid) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// Reap child `pid` (blocking unless `nohang`), ignoring its status and errors.
/// Only for children no `std::process::Child` owns or that are known unreaped.
pub fn reap(pid: u32, nohang: bool) {
    if let Some(pid) = child_pid(pid) {
        let flags = if nohang {
            rustix::process::WaitOptions::NOHANG
        } else {
            rustix::process::WaitOptions::empty()
        };
        let _ = rustix::process::waitpid(Some(pid), flags);
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

/// Where the proxy's own memory may lie: every canonical user address above
/// the reserved user window (below it, under `USER_MIN`, Linux maps nothing).
const PROXY_OWN: std::ops::Range<u64> = wire::USER_MAX..(1 << 56);

/// Whether `[addr, addr+len)` lies inside the reserved user window.
fn in_user_window(addr: u64, len: u64) -> bool {
    addr >= wire::USER_MIN
        && addr
            .checked_add(len)
            .is_some_and(|end| end <= wire::USER_MAX)
}

/// Refuse (`Err(errno)`) the arguments of `call` that could make Linux touch
/// memory outside the reserved user window: a pointer the table declares that
/// starts outside it (or, where its size follows from the arguments, ends
/// outside it); and, for what the table does not declare as an integer
/// (`Hex` words, calls without a signature), any value that is an address
/// in the proxy's own part of the address space.
fn check_forwarded(call: &linux_abi::Syscall, args: &[u64; 6]) -> Result<(), linux_abi::Errno> {
    use linux_abi::{Arg, Errno};
    let Some(sig) = call.args else {
        return match args.iter().any(|a| PROXY_OWN.contains(a)) {
            true => Err(Errno::EFAULT),
            false => Ok(()),
        };
    };
    let arg = |i: u8| args.get(usize::from(i)).copied().unwrap_or(0);
    // An int count, as Linux reads it (nothing for a count <= 0).
    let count = |i: u8| u64::try_from(arg(i) as i32).unwrap_or(0);
    for (&kind, &a) in sig.iter().zip(args.iter()) {
        let len = match kind {
            Arg::Int | Arg::Mode | Arg::Fd => continue,
            Arg::Hex if PROXY_OWN.contains(&a) => return Err(Errno::EFAULT),
            Arg::Hex => continue,
            _ if a == 0 => continue,
            Arg::Path => linux_abi::fs::PATH_MAX as u64,
            Arg::InBuf(i) | Arg::OutBuf(i) => arg(i),
            Arg::In(n) | Arg::Out(n) => u64::from(n),
            Arg::InArray(i, size) => count(i).saturating_mul(u64::from(size)),
            Arg::IovIn(i) | Arg::IovOut(i) => arg(i).saturating_mul(16),
            Arg::Ptr => 1,
        };
        if !in_user_window(a, len.max(1)) {
            return Err(Errno::EFAULT);
        }
    }
    Ok(())
}

/// Execute syscall `nr(args)` in Linux for the LWK application; returns the
/// result or `-errno`. Only calls the syscall table offloads or forwards run
/// (`-ENOSYS` otherwise); their pointers must lie in the reserved user window
/// (`-EFAULT` otherwise, see `check_forwarded`). The proxy checks the pointers
/// against the mirror first (`proxy::exec::check`); this is the last guard.
pub fn forward_syscall(nr: u64, args: &[u64; 6]) -> i64 {
    use linux_abi::{Attrs, Errno, Policy};
    let Some(call) = linux_abi::syscall(nr) else {
        return Errno::ENOSYS.as_ret();
    };
    if call.policy != Policy::Offload
        && !call.attrs.has(Attrs::FORWARDED)
        && !call.attrs.has(Attrs::HOST_SHARED)
    {
        return Errno::ENOSYS.as_ret();
    }
    if let Err(e) = check_forwarded(call, args) {
        return e.as_ret();
    }
    let Ok(nr) = libc::c_long::try_from(nr) else {
        return Errno::ENOSYS.as_ret();
    };
    // SAFETY: the table offloads and forwards only calls that neither map,
    // unmap nor remap memory (asserted in linux-abi's tests), so no Rust object
    // loses its memory. Every pointer the call declares, and every undeclared
    // word that could be one, was checked above to lie outside the proxy's own
    // memory, inside the user window, which the proxy reserved before anything
    // else was mapped (`Reservation`) and which holds only mirrors of guest RAM
    // and PROT_NONE pages, never a Rust object: there Linux either reaches guest
    // memory or fails with EFAULT. What this cannot see are pointers stored in
    // the memory they point to (iovec bases, msghdr, ioctl structures), which
    // `proxy::exec::check` validates against the mirror where the table
    // describes them (iovecs). syscall(2) passes the six words unchanged.
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

/// A change of this process's credentials (see `set_creds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creds {
    Uid(u32),
    Gid(u32),
    ReUid(u32, u32),
    ReGid(u32, u32),
    ResUid(u32, u32, u32),
    ResGid(u32, u32, u32),
    /// The supplementary groups, read out of application memory beforehand.
    Groups(Vec<libc::gid_t>),
}

/// Apply `creds` to every thread of the process, as glibc's set*id and
/// setgroups wrappers do (the raw calls change only the calling thread).
pub fn set_creds(creds: &Creds) -> io::Result<()> {
    // SAFETY: these wrappers take plain integers, except setgroups, whose list
    // is a live slice of exactly `len` gids.
    let r = unsafe {
        match *creds {
            Creds::Uid(u) => libc::setuid(u),
            Creds::Gid(g) => libc::setgid(g),
            Creds::ReUid(r, e) => libc::setreuid(r, e),
            Creds::ReGid(r, e) => libc::setregid(r, e),
            Creds::ResUid(r, e, s) => libc::setresuid(r, e, s),
            Creds::ResGid(r, e, s) => libc::setresgid(r, e, s),
            Creds::Groups(ref list) => libc::setgroups(list.len(), list.as_ptr()),
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Restrict thread `tid` (any process's) to host core `cpu`.
pub fn pin_thread(tid: u32, cpu: usize) -> io::Result<()> {
    let tid = child_pid(tid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(Some(tid), &set)?)
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
    MARGAY_PID.store(
        rustix::process::getppid().map_or(0, |p| p.as_raw_pid()),
        std::sync::atomic::Ordering::Release,
    );
}

/// In an exec client (`margay exec`): the instance's host process plays
/// margay's part (shared file mappings, forked proxies' lifetime).
pub fn set_margay_pid(pid: u32) {
    MARGAY_PID.store(
        i32::try_from(pid).unwrap_or(0),
        std::sync::atomic::Ordering::Release,
    );
}

/// margay's pid, as `remember_margay` saw it (0 outside a proxy).
pub fn margay_pid() -> u32 {
    MARGAY_PID
        .load(std::sync::atomic::Ordering::Acquire)
        .unsigned_abs()
}

/// What descriptor `fd` (a number of the application's) is: its `stat` and
/// its access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`).
pub fn describe_fd(fd: i32) -> io::Result<(libc::stat, i32)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `struct stat` into the buffer on success;
    // an fd number that is not open is EBADF, not undefined behaviour.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    let st = unsafe { st.assume_init() };
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st, fl & libc::O_ACCMODE))
}

/// The seals of descriptor `fd` (F_GET_SEALS); 0 for a file that takes none.
pub fn seals(fd: i32) -> u32 {
    // SAFETY: F_GET_SEALS takes no argument and only reads the file's seals
    // (EINVAL for a file that cannot be sealed, EBADF for a closed number).
    let r = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    u32::try_from(r).unwrap_or(0)
}

/// Whether the file open as `fd` is sealed against writing through shared
/// mappings (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE).
pub fn write_sealed(fd: i32) -> bool {
    seals(fd) & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) as u32 != 0
}

/// Attach SysV shared memory segment `shmid` (shmat) where Linux chooses,
/// read-only with `rdonly`: its address in this process and the segment's
/// size. Linux checks the caller's permissions and counts the attachment.
pub fn shm_attach(shmid: i32, rdonly: bool) -> io::Result<(usize, u64)> {
    let flags = if rdonly { libc::SHM_RDONLY } else { 0 };
    // SAFETY: a null address lets Linux place the segment in a free range,
    // so no existing mapping of this process is replaced.
    let p = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
    if p as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::uninit();
    // SAFETY: IPC_STAT writes a whole `struct shmid_ds` into the buffer on success.
    if unsafe { libc::shmctl(shmid, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
        let e = io::Error::last_os_error();
        let _ = shm_detach(p as usize);
        return Err(e);
    }
    // SAFETY: shmctl succeeded, so the buffer is initialised.
    let ds = unsafe { ds.assume_init() };
    Ok((p as usize, ds.shm_segsz as u64))
}

/// Detach the SysV segment this process attached at `addr` (shm_attach).
pub fn shm_detach(addr: usize) -> io::Result<()> {
    // SAFETY: shmdt only removes a SysV attachment starting at `addr`
    // (EINVAL when there is none); callers pass addresses shm_attach returned
    // and nothing else of this process lives in such a range.
    if unsafe { libc::shmdt(addr as *const libc::c_void) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
            // SIGKILL at ourselves ends the process at once, without running
            // destructors while worker threads hold locks.
            let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
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

/// An address range this process reserved for itself (inaccessible, nothing
/// committed) while nothing was mapped there, so no Rust object lives in it:
/// mappings inside it can be replaced at will. Only its owner maps there.
pub struct Reservation {
    addr: usize,
    len: usize,
}

impl Reservation {
    /// Reserve `[addr, addr+len)`. Fails if anything is already mapped there.
    pub fn reserve(addr: usize, len: usize) -> io::Result<Reservation> {
        use rustix::mm::{MapFlags, ProtFlags};
        if addr.checked_add(len).is_none() || len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no
        // memory in use can be affected.
        let r =
            unsafe { rustix::mm::mmap_anonymous(addr as *mut _, len, ProtFlags::empty(), flags) }?;
        if r as usize != addr {
            // A kernel older than 4.17 treats the flag as a hint.
            // SAFETY: unmapping the mapping just created (nothing else uses it).
            let _ = unsafe { rustix::mm::munmap(r, len) };
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        Ok(Reservation { addr, len })
    }

    /// `[addr, addr+len)` as a pointer, if it lies inside the reservation.
    fn inside(&self, addr: usize, len: usize) -> io::Result<*mut std::ffi::c_void> {
        let end = addr.checked_add(len);
        if len == 0 || addr < self.addr || end.is_none_or(|e| e > self.addr + self.len) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(addr as *mut _)
    }

    /// Return `[addr, addr+len)` (inside the reservation) to inaccessible.
    pub fn clear(&self, addr: usize, len: usize) -> io::Result<()> {
        use rustix::mm::{MapFlags, ProtFlags};
        let p = self.inside(addr, len)?;
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED;
        // SAFETY: the range is inside the reservation, where no Rust object
        // lives; MAP_FIXED replaces only mappings made there by this type.
        unsafe { rustix::mm::mmap_anonymous(p, len, ProtFlags::empty(), flags) }?;
        Ok(())
    }

    /// Map bytes `[off, off+len)` of `file` at `addr` (inside the
    /// reservation), shared, readable and, if `writable`, writable.
    pub fn map_file(
        &self,
        file: BorrowedFd<'_>,
        off: u64,
        addr: usize,
        len: usize,
        writable: bool,
    ) -> io::Result<()> {
        use rustix::mm::{MapFlags, ProtFlags};
        let dst = self.inside(addr, len)?;
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: MAP_FIXED replaces only pages inside the reservation, where
        // no Rust object lives (see `reserve`).
        unsafe {
            rustix::mm::mmap(
                dst,
                len,
                prot,
                MapFlags::SHARED | MapFlags::FIXED,
                file,
                off,
            )
        }?;
        Ok(())
    }

    /// Map guest RAM `[off, off+len)` of `ram` at `addr` (inside the
    /// reservation) too, readable and, if `writable`, writable.
    pub fn alias(
        &self,
        ram: &crate::guest_mem::GuestMem,
        off: u64,
        addr: usize,
        len: usize,
        writable: bool,
    ) -> io::Result<()> {
        use rustix::mm::{MprotectFlags, MremapFlags};
        let dst = self.inside(addr, len)?;
        let src = ram
            .host_addr(off, len as u64)
            .map_err(|_| io::Error::from_raw_os_error(libc::EFAULT))?;
        // SAFETY: `src` is inside the shared RAM mapping (checked by host_addr);
        // with old_size 0 mremap duplicates those pages instead of moving them,
        // so the source is unaffected. The target is inside the reservation,
        // where no Rust object lives.
        unsafe { rustix::mm::mremap_fixed(src as *mut _, 0, len, MremapFlags::MAYMOVE, dst) }?;
        if !writable {
            // SAFETY: changes the protection of the mapping just made inside the
            // reservation.
            let r = unsafe { rustix::mm::mprotect(dst, len, MprotectFlags::READ) };
            if let Err(e) = r {
                let _ = self.clear(addr, len);
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// This thread's Linux thread id (never 0).
pub fn thread_id() -> u64 {
    rustix::thread::gettid().as_raw_pid().unsigned_abs().into()
}

/// Send `sig` to thread `tid` of this process (tgkill); errors (a thread that
/// has ended) are ignored. The thread group is checked by the kernel, so a
/// stale id can only reach another thread of this process.
pub fn signal_thread(tid: u64, sig: i32) {
    let Ok(tid) = libc::pid_t::try_from(tid) else {
        return;
    };
    // SAFETY: tgkill takes integers only and touches no memory.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) };
}

/// The signal handlers margay installs, a closed list so that each is
/// reviewed here: both make only async-signal-safe calls.
#[derive(Clone, Copy, Debug)]
pub enum Handler {
    /// `proxy::signals::forward`: posts the signal to the LWK through
    /// `GuestMem`'s atomics (no allocation, no locks).
    ForwardToLwk,
    /// Does nothing: installed without SA_RESTART it cuts a blocking call short.
    Nothing,
}

extern "C" fn forward_to_lwk(sig: i32) {
    crate::proxy::signals::forward(sig);
}

extern "C" fn nothing(_sig: i32) {}

/// Install `handler` for `sig` (with SA_RESTART when `restart`).
pub fn set_handler(sig: i32, handler: Handler, restart: bool) -> io::Result<()> {
    let f: extern "C" fn(i32) = match handler {
        Handler::ForwardToLwk => forward_to_lwk,
        Handler::Nothing => nothing,
    };
    // SAFETY: a zeroed sigaction is a valid starting point (empty mask, no
    // flags); the handler is one of the async-signal-safe functions above.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = f as usize;
        sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_abi::syscalls_gen::*;

    /// `forward_syscall` refuses by itself what the table does not forward and
    /// pointers that could reach the proxy's own memory.
    #[test]
    fn forward_syscall_refuses_local_calls_and_pointers_outside_the_window() {
        let own = [0u8; 64];
        let own = own.as_ptr() as u64;
        let run = |nr: u32, args: [u64; 6]| forward_syscall(u64::from(nr), &args);
        for nr in [SYS_MMAP, SYS_MUNMAP, SYS_MREMAP, SYS_BRK, SYS_EXIT_GROUP] {
            assert_eq!(run(nr, [0; 6]), -38, "{nr}");
        }
        assert_eq!(forward_syscall(100_000, &[0; 6]), -38);
        // A declared buffer in the proxy's memory, or one running past the window.
        assert_eq!(run(SYS_UNAME, [own, 0, 0, 0, 0, 0]), -14);
        assert_eq!(run(SYS_READ, [0, wire::USER_MAX - 8, 16, 0, 0, 0]), -14);
        assert_eq!(run(SYS_OPEN, [own, 0, 0, 0, 0, 0]), -14);
        // An undeclared word (ioctl's argument, a call without a signature).
        assert_eq!(run(SYS_IOCTL, [0, 0x5401, own, 0, 0, 0]), -14);
        assert_eq!(run(SYS_GETSOCKOPT, [0, 1, 2, own, 0, 0]), -14);
        // Integers, NULL pointers and forwarded kill pass.
        assert!(run(SYS_GETPPID, [0; 6]) > 0);
        assert_eq!(
            run(SYS_KILL, [u64::from(std::process::id()), 0, 0, 0, 0, 0]),
            0
        );
        assert_eq!(run(SYS_UNAME, [0; 6]), -14);
    }
}
