//! exit, exit_group, getpid, gettid, set_tid_address: a thread's identity
//! and its end (the last thread's exit ends the process).

use super::futex::release_robust_futexes;
use crate::futex;
use crate::process;
use crate::sched;
use crate::uaccess::UserPtr;
use core::sync::atomic::Ordering;
use linux_abi::syscalls_gen::{SYS_EXIT, SYS_EXIT_GROUP};
use linux_abi::{Errno, SysResult};

pub fn exit_group(status: i32) -> SysResult {
    if super::tracing() {
        super::trace(
            u64::from(SYS_EXIT_GROUP),
            [status as u64, 0, 0, 0, 0, 0],
            0,
            wire::TRACE_LOCAL,
        );
    }
    process::exit(status as u64)
}

/// exit: end this thread; the last thread's exit ends the process.
pub fn exit(status: i32) -> SysResult {
    if sched::leave_unless_last() {
        return exit_group(status);
    }
    if super::tracing() {
        super::trace(
            u64::from(SYS_EXIT),
            [status as u64, 0, 0, 0, 0, 0],
            0,
            wire::TRACE_LOCAL,
        );
    }
    if let Some(me) = sched::current() {
        release_robust_futexes(me.tid, me.robust_list.load(Ordering::Acquire));
        let ctid = UserPtr::<u32>::new(me.clear_child_tid.load(Ordering::Acquire));
        if !ctid.is_null() {
            let _ = ctid.write(&0);
            futex::wake_one_quiet(ctid.addr());
        }
    }
    sched::exit_current()
}

pub fn getpid() -> SysResult {
    Ok(u64::from(process::with(|p| p.pid)))
}

pub fn gettid() -> SysResult {
    Ok(u64::from(sched::current_tid()))
}

pub fn set_tid_address(ptr: UserPtr<u32>) -> SysResult {
    let me = sched::current().ok_or(Errno::EINVAL)?;
    me.clear_child_tid.store(ptr.addr(), Ordering::Release);
    Ok(u64::from(me.tid))
}
