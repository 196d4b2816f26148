//! signalfd, signalfd4: signals read from a descriptor. Signals are the
//! LWK's, descriptors the proxy's, so a signalfd is both:
//!
//! - **A placeholder descriptor in the proxy**: signalfd4(-1, ...) offloads
//!   `eventfd2(0, flags)`; its number is the signalfd's, so fork, exec
//!   (close-on-exec), dup into an epoll set, fstat and close work as for any
//!   descriptor, and the proxy's poll/epoll can watch it.
//! - **A record in the process** (`signal::SigQueue::signalfds`: fd and
//!   mask) that the offload path consults first (`intercept`): `read` of a
//!   signalfd is served here (signalfd_siginfo records taken off the
//!   process's pending signals; EAGAIN when nonblocking; a blocking read
//!   waits like rt_sigtimedwait); `close` forgets the record.
//! - **Readiness for poll, ppoll, select, pselect6 and epoll_wait**: before
//!   such a call goes to the proxy, each placeholder is made readable
//!   (eventfd count 1) when a signal of its mask is pending, and drained
//!   otherwise. While the call waits in the proxy, the thread waits for
//!   the signalfds' other signals as rt_sigtimedwait does (`Task::sigwait`):
//!   one of them interrupts the call, which is then issued again with
//!   fresh placeholders (its timeout starts over).
//!
//! The placeholder's 8-byte counter is written and read through user memory
//! below the caller's stack pointer (below the red zone, where a signal
//! frame would go), which the proxy mirrors.

use crate::arch::trap::SyscallFrame;
use crate::process;
use crate::uaccess::UserPtr;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use linux_abi::signal::{SFD_CLOEXEC, SFD_NONBLOCK, SIGKILL, SIGSTOP};
use linux_abi::syscalls_gen::*;
use linux_abi::uapi::{signalfd_siginfo, sigset_t};
use linux_abi::{Errno, SysResult};

/// One signalfd of a process.
#[derive(Clone, Copy, Debug)]
pub struct Signalfd {
    pub fd: i32,
    pub mask: u64,
}

const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));
const O_NONBLOCK: u64 = SFD_NONBLOCK as u64;
const F_GETFL: u64 = 3;
const F_GETFD: u64 = 1;
const POLLIN: u16 = 1;
const RECORD: usize = size_of::<signalfd_siginfo>();

pub fn signalfd(fd: i32, mask: UserPtr<sigset_t>, size: usize) -> SysResult {
    signalfd4(fd, mask, size, 0)
}

pub fn signalfd4(fd: i32, mask: UserPtr<sigset_t>, size: usize, flags: u32) -> SysResult {
    if size != size_of::<sigset_t>() || flags & !(SFD_NONBLOCK | SFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let mask = mask.read()? & !UNBLOCKABLE;
    let e = process::current_entry();
    if fd != -1 {
        let mut list = e.sigq.signalfds.lock();
        let Some(s) = list.iter_mut().find(|s| s.fd == fd) else {
            drop(list);
            // Not a descriptor at all: EBADF; another kind of file: EINVAL.
            super::offload_result(u64::from(SYS_FCNTL), [fd as u64, F_GETFD, 0, 0, 0, 0])?;
            return Err(Errno::EINVAL);
        };
        s.mask = mask;
        drop(list);
        return Ok(fd as u64);
    }
    e.sigq
        .signalfds
        .lock()
        .try_reserve(1)
        .map_err(|_| Errno::ENOMEM)?;
    let r = super::offload_result(u64::from(SYS_EVENTFD2), [0, u64::from(flags), 0, 0, 0, 0])?;
    let fd = r as i32;
    {
        let mut list = e.sigq.signalfds.lock();
        // A stale record under the same number (closed some other way) goes.
        list.retain(|s| s.fd != fd);
        list.push(Signalfd { fd, mask });
    }
    ANY_SIGNALFD.store(true, core::sync::atomic::Ordering::Relaxed);
    Ok(r)
}

/// The signalfds of the current process (empty for nearly every program).
/// Set once any process made a signalfd: until then, offloaded calls skip
/// the per-process lookup (a global lock and two under TCG-costly atomics
/// on every call).
static ANY_SIGNALFD: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn signalfds() -> Vec<Signalfd> {
    if !ANY_SIGNALFD.load(core::sync::atomic::Ordering::Relaxed) {
        return Vec::new();
    }
    let e = process::current_entry();
    let list = e.sigq.signalfds.lock();
    if list.is_empty() {
        return Vec::new();
    }
    list.clone()
}

/// An offloaded call that involves a signalfd: its result, or None to
/// offload it as usual.
pub fn intercept(frame: &SyscallFrame, nr: u64, args: [u64; 6]) -> Option<SysResult> {
    let fds = signalfds();
    if fds.is_empty() {
        return None;
    }
    let nr32 = u32::try_from(nr).ok()?;
    let this = |fd: u64| fds.iter().copied().find(|s| s.fd == fd as i32);
    match nr32 {
        SYS_READ => this(args[0]).map(|s| read(s, UserPtr::new(args[1]), args[2])),
        SYS_CLOSE => {
            this(args[0])?;
            let r = super::offload_result(nr, args);
            if r.is_ok() {
                let e = process::current_entry();
                e.sigq.signalfds.lock().retain(|s| s.fd != args[0] as i32);
            }
            Some(r)
        }
        SYS_POLL | SYS_PPOLL | SYS_SELECT | SYS_PSELECT6 | SYS_EPOLL_WAIT | SYS_EPOLL_PWAIT
        | SYS_EPOLL_PWAIT2 => Some(wait_call(frame, &fds, nr, args)),
        _ => None,
    }
}

/// read: signalfd_siginfo records of pending signals of the mask.
fn read(s: Signalfd, buf: UserPtr<u8>, count: u64) -> SysResult {
    let room = usize::try_from(count).unwrap_or(usize::MAX) / RECORD;
    if room == 0 {
        return Err(Errno::EINVAL);
    }
    let t = crate::sched::current().ok_or(Errno::EINVAL)?;
    loop {
        let mut n = 0;
        while n < room {
            let Some(info) = crate::signal::take_from(s.mask) else {
                break;
            };
            let rec = signalfd_siginfo::of(&info);
            UserPtr::<signalfd_siginfo>::new(buf.addr() + (n * RECORD) as u64).write(&rec)?;
            n += 1;
        }
        if n > 0 {
            return Ok((n * RECORD) as u64);
        }
        let fl = super::offload_result(u64::from(SYS_FCNTL), [s.fd as u64, F_GETFL, 0, 0, 0, 0])?;
        if fl & O_NONBLOCK != 0 {
            return Err(Errno::EAGAIN);
        }
        t.sigwait.store(s.mask, Ordering::Release);
        let r = loop {
            if crate::signal::take_peek(s.mask).is_some() {
                break Ok(());
            }
            if crate::signal::interrupted() {
                break Err(Errno::EINTR);
            }
            crate::sched::block();
        };
        t.sigwait.store(0, Ordering::Release);
        r?;
    }
}

/// Where the placeholder's counter goes through user memory: below the
/// caller's red zone.
fn scratch(frame: &SyscallFrame) -> u64 {
    (frame.rsp.wrapping_sub(128 + 64)) & !15
}

/// Make each placeholder readable exactly when a signal of its mask is
/// pending.
fn sync(frame: &SyscallFrame, fds: &[Signalfd]) {
    let at = scratch(frame);
    let pending = crate::signal::pending();
    for s in fds {
        let want = pending & s.mask != 0;
        // Is it readable now? (poll with a zero timeout)
        let pfd: u64 = (s.fd as u32 as u64) | (u64::from(POLLIN) << 32);
        if UserPtr::<u64>::new(at).write(&pfd).is_err() {
            return;
        }
        let readable = super::offload(u64::from(SYS_POLL), [at, 1, 0, 0, 0, 0]) == 1;
        if want && !readable {
            if UserPtr::<u64>::new(at).write(&1).is_ok() {
                super::offload(u64::from(SYS_WRITE), [s.fd as u64, at, 8, 0, 0, 0]);
            }
        } else if !want && readable {
            super::offload(u64::from(SYS_READ), [s.fd as u64, at, 8, 0, 0, 0]);
        }
    }
}

/// poll, select or epoll_wait in the proxy with fresh placeholders, issued
/// again when a watched signal that was not pending interrupted it.
fn wait_call(frame: &SyscallFrame, fds: &[Signalfd], nr: u64, args: [u64; 6]) -> SysResult {
    let t = crate::sched::current().ok_or(Errno::EINVAL)?;
    let mask = fds.iter().fold(0, |m, s| m | s.mask);
    loop {
        let before = crate::signal::pending();
        sync(frame, fds);
        t.sigwait.store(mask & !before, Ordering::Release);
        let r = super::offload_result(nr, args);
        t.sigwait.store(0, Ordering::Release);
        let new = crate::signal::pending() & mask & !before;
        if r != Err(Errno::EINTR) || new == 0 || crate::signal::next_deliverable().is_some() {
            return r;
        }
    }
}

/// execve: the proxy closed the close-on-exec descriptors; forget their
/// records.
pub fn on_exec() {
    let e = process::current_entry();
    let fds: Vec<i32> = e.sigq.signalfds.lock().iter().map(|s| s.fd).collect();
    for fd in fds {
        let r = super::offload(u64::from(SYS_FCNTL), [fd as u64, F_GETFD, 0, 0, 0, 0]);
        if Errno::from_ret(r as i64).is_some() {
            e.sigq.signalfds.lock().retain(|s| s.fd != fd);
        }
    }
}

/// fork: the child's proxy inherited the placeholders; so does its record.
pub fn on_fork(parent: &process::Entry, child: &process::Entry) {
    let list = parent.sigq.signalfds.lock().clone();
    *child.sigq.signalfds.lock() = list;
}
