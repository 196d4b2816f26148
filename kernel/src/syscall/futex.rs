//! futex, set_robust_list, get_robust_list: the calls on top of the
//! kernel's futex wait queues (crate::futex), and the robust-futex release
//! of a dying thread.

use crate::futex;
use crate::process;
use crate::sched;
use crate::uaccess::UserPtr;
use core::sync::atomic::Ordering;
use linux_abi::futex::*;
use linux_abi::uapi::{robust_list_head, timespec};
use linux_abi::{Errno, SysResult};

/// A dying thread's robust futexes: mark each one it still owns
/// FUTEX_OWNER_DIED and wake a waiter, as Linux does.
pub(super) fn release_robust_futexes(tid: u32, head: u64) {
    let head_ptr = UserPtr::<robust_list_head>::new(head);
    if head_ptr.is_null() {
        return;
    }
    let Ok(h) = head_ptr.read() else {
        return;
    };
    let (mut entry, offset, pending) = (h.next, h.futex_offset as u64, h.list_op_pending);
    let release = |entry: u64| {
        let word = UserPtr::<u32>::new(entry.wrapping_add(offset));
        let done = process::with(|p| {
            let w = word.read_in(&p.aspace).ok()?;
            if w & FUTEX_TID_MASK != tid {
                return None;
            }
            let new = (w & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
            word.write_in(&p.aspace, &new).ok()?;
            Some(w & FUTEX_WAITERS != 0)
        });
        if done == Some(true) {
            futex::wake_one_quiet(word.addr());
        }
    };
    // Linux bounds the walk (ROBUST_LIST_LIMIT) against corrupted lists.
    for _ in 0..ROBUST_LIST_LIMIT {
        if entry == head || entry == 0 {
            break;
        }
        // Each entry starts with its `next` pointer.
        let next = UserPtr::<u64>::new(entry).read();
        if entry != pending {
            release(entry);
        }
        match next {
            Ok(n) => entry = n,
            Err(_) => break,
        }
    }
    if pending != 0 {
        release(pending);
    }
}

pub fn set_robust_list(head: UserPtr<robust_list_head>, len: usize) -> SysResult {
    if len != size_of::<robust_list_head>() {
        return Err(Errno::EINVAL);
    }
    let me = sched::current().ok_or(Errno::EINVAL)?;
    me.robust_list.store(head.addr(), Ordering::Release);
    Ok(0)
}

pub fn get_robust_list(tid: i32, head_ptr: UserPtr<u64>, len_ptr: UserPtr<u64>) -> SysResult {
    let t = super::cpu::task_of(tid)?;
    process::with(|p| {
        head_ptr.write_in(&p.aspace, &t.robust_list.load(Ordering::Acquire))?;
        len_ptr.write_in(&p.aspace, &(size_of::<robust_list_head>() as u64))?;
        Ok(0)
    })
}

/// Absolute TSC deadline for a futex timeout (relative for FUTEX_WAIT,
/// absolute on the chosen clock for FUTEX_WAIT_BITSET).
fn futex_deadline(
    ts: UserPtr<timespec>,
    absolute: bool,
    realtime: bool,
) -> Result<Option<u64>, Errno> {
    if ts.is_null() {
        return Ok(None);
    }
    let t = super::clock::timespec_ns(&ts.read()?)?;
    let rel = if absolute {
        let now = if realtime {
            crate::time::realtime_ns()
        } else {
            crate::time::monotonic_ns()
        };
        t.saturating_sub(now)
    } else {
        t
    };
    Ok(Some(crate::time::deadline_after_ns(rel)))
}

/// Whether `uaddr` lies in a mapping of a plugged file.
fn shared_with_linux(uaddr: u64) -> bool {
    process::with(|p| {
        p.aspace
            .regions()
            .find(uaddr)
            .and_then(|r| r.kind.shared_object())
            .is_some_and(crate::shm::is_plugged)
    })
}

/// futex(uaddr, op, val, timeout or val2, uaddr2, val3).
pub fn futex(uaddr: u64, op: u32, val: u32, timeout: u64, uaddr2: u64, val3: u32) -> SysResult {
    if shared_with_linux(uaddr) {
        // Linux processes (and other partitions) wait and wake on these
        // pages too: Linux's futex, on the proxy's mirror of the same page.
        // (The arguments an operation ignores may be garbage: passed as 0.)
        let cmd = op & 0x7f & !FUTEX_CLOCK_REALTIME;
        let uses_uaddr2 = matches!(cmd, FUTEX_REQUEUE | FUTEX_CMP_REQUEUE | FUTEX_WAKE_OP);
        let uaddr2 = if uses_uaddr2 { uaddr2 } else { 0 };
        let timeout = if matches!(cmd, FUTEX_WAKE | FUTEX_WAKE_BITSET) {
            0
        } else {
            timeout
        };
        return super::offload_result(
            u64::from(linux_abi::syscalls_gen::SYS_FUTEX),
            [
                uaddr,
                u64::from(op),
                u64::from(val),
                timeout,
                uaddr2,
                u64::from(val3),
            ],
        );
    }
    let cmd = op & 0x7f & !FUTEX_CLOCK_REALTIME;
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    // For the requeue and wake ops the 4th argument is a count, not a timeout.
    let count = timeout;
    let timeout = UserPtr::<timespec>::new(timeout);
    match cmd {
        FUTEX_WAIT => futex::wait(
            uaddr,
            val,
            futex_deadline(timeout, false, realtime)?,
            u32::MAX,
        ),
        FUTEX_WAIT_BITSET => {
            futex::wait(uaddr, val, futex_deadline(timeout, true, realtime)?, val3)
        }
        FUTEX_WAKE => futex::wake(uaddr, u64::from(val), u32::MAX),
        FUTEX_WAKE_BITSET => futex::wake(uaddr, u64::from(val), val3),
        FUTEX_REQUEUE => futex::requeue(uaddr, u64::from(val), count, uaddr2, None),
        FUTEX_CMP_REQUEUE => futex::requeue(uaddr, u64::from(val), count, uaddr2, Some(val3)),
        FUTEX_WAKE_OP => futex::wake_op(uaddr, u64::from(val), count, uaddr2, val3),
        _ => {
            crate::kprintln!("futex: operation {cmd} is not supported");
            Err(Errno::ENOSYS)
        }
    }
}
