//! Futexes: wait queues keyed by the physical address of the futex word (so
//! private and shared futexes of the process agree), with WAIT/WAKE,
//! REQUEUE/CMP_REQUEUE, WAKE_OP and the BITSET variants, relative and
//! absolute timeouts.

use crate::arch::mem::SpinLock;
use crate::process;
use crate::sched::{self, TaskRef};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use linux_abi::{Errno, SysResult};

struct Waiter {
    task: TaskRef,
    bitset: u32,
}

static QUEUES: SpinLock<BTreeMap<u64, VecDeque<Waiter>>> = SpinLock::new(BTreeMap::new());

/// Physical address of a user futex word (4-byte aligned, writable memory).
fn key(uaddr: u64) -> Result<u64, Errno> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    process::with(|p| {
        if !p
            .aspace
            .regions()
            .check_range(uaddr, 4, lwk_core::region::PROT_READ)
        {
            return Err(Errno::EFAULT);
        }
        p.aspace.regions().translate(uaddr).ok_or(Errno::EFAULT)
    })
}

/// Apply `f` to the futex word at physical `k` (EFAULT if the memory is no
/// longer the process's: unmapped meanwhile).
fn with_word<R>(k: u64, f: impl FnOnce(&core::sync::atomic::AtomicU32) -> R) -> Result<R, Errno> {
    process::with(|p| p.aspace.with_atomic_u32(k, f).ok_or(Errno::EFAULT))
}

/// FUTEX_WAIT(_BITSET): sleep while `*uaddr == val`, until woken or the TSC
/// reaches `deadline`.
pub fn wait(uaddr: u64, val: u32, deadline: Option<u64>, bitset: u32) -> SysResult {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let k = key(uaddr)?;
    let me = sched::current().ok_or(Errno::EINVAL)?;
    {
        let mut q = QUEUES.lock();
        if with_word(k, |w| w.load(Ordering::SeqCst))? != val {
            return Err(Errno::EAGAIN);
        }
        me.futex_woken.store(false, Ordering::SeqCst);
        q.entry(k).or_default().push_back(Waiter {
            task: me.clone(),
            bitset,
        });
    }
    loop {
        if me.futex_woken.load(Ordering::Acquire) {
            return Ok(0);
        }
        let ended = match deadline {
            Some(d) => match sched::sleep_until(d, Some(&me.futex_woken)) {
                sched::Wakeup::Woken => continue,
                sched::Wakeup::Deadline => Err(Errno::ETIMEDOUT),
                sched::Wakeup::Signal => Err(Errno::EINTR),
            },
            None => {
                if crate::signal::interrupted() {
                    Err(Errno::EINTR)
                } else {
                    sched::block();
                    continue;
                }
            }
        };
        // Timed out or interrupted, unless a wake raced with us.
        let mut q = QUEUES.lock();
        if let Some(list) = q.get_mut(&k) {
            list.retain(|w| !Arc::ptr_eq(&w.task, &me));
            if list.is_empty() {
                q.remove(&k);
            }
        }
        drop(q);
        if me.futex_woken.load(Ordering::Acquire) {
            return Ok(0);
        }
        return ended;
    }
}

/// Dequeue and wake up to `n` waiters of key `k` matching `bitset`.
fn wake_key(q: &mut BTreeMap<u64, VecDeque<Waiter>>, k: u64, n: u64, bitset: u32) -> u64 {
    let mut woken = 0;
    if let Some(list) = q.get_mut(&k) {
        let mut i = 0;
        while i < list.len() && woken < n {
            if list[i].bitset & bitset != 0 {
                if let Some(w) = list.remove(i) {
                    w.task.futex_woken.store(true, Ordering::SeqCst);
                    sched::wake(&w.task);
                    woken += 1;
                }
            } else {
                i += 1;
            }
        }
        if list.is_empty() {
            q.remove(&k);
        }
    }
    woken
}

pub fn wake(uaddr: u64, n: u64, bitset: u32) -> SysResult {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let k = key(uaddr)?;
    Ok(wake_key(&mut QUEUES.lock(), k, n, bitset))
}

/// Wake for a thread's clear_child_tid; errors are ignored as Linux does.
pub fn wake_one_quiet(uaddr: u64) {
    let _ = wake(uaddr, 1, u32::MAX);
}

/// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE.
pub fn requeue(
    uaddr: u64,
    n_wake: u64,
    n_requeue: u64,
    uaddr2: u64,
    cmp: Option<u32>,
) -> SysResult {
    let k1 = key(uaddr)?;
    let k2 = key(uaddr2)?;
    let mut q = QUEUES.lock();
    if let Some(v) = cmp {
        if with_word(k1, |w| w.load(Ordering::SeqCst))? != v {
            return Err(Errno::EAGAIN);
        }
    }
    let woken = wake_key(&mut q, k1, n_wake, u32::MAX);
    let mut moved = 0;
    if k1 != k2 {
        let mut taken = VecDeque::new();
        if let Some(list) = q.get_mut(&k1) {
            while moved < n_requeue {
                match list.pop_front() {
                    Some(w) => {
                        taken.push_back(w);
                        moved += 1;
                    }
                    None => break,
                }
            }
            if list.is_empty() {
                q.remove(&k1);
            }
        }
        if !taken.is_empty() {
            q.entry(k2).or_default().extend(taken);
        }
    }
    Ok(woken + moved)
}

/// FUTEX_WAKE_OP: `*uaddr2 = op(*uaddr2, oparg)`, wake `n` on uaddr, and
/// `n2` on uaddr2 if the old value passes the comparison.
pub fn wake_op(uaddr: u64, n: u64, n2: u64, uaddr2: u64, encoded: u32) -> SysResult {
    let k1 = key(uaddr)?;
    let k2 = key(uaddr2)?;
    let op = (encoded >> 28) & 0x7;
    let shift_arg = (encoded >> 28) & 0x8 != 0;
    let cmp = (encoded >> 24) & 0xf;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    if shift_arg {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let mut q = QUEUES.lock();
    let old = with_word(k2, |word| {
        word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            Some(match op {
                0 => oparg,
                1 => v.wrapping_add(oparg),
                2 => v | oparg,
                3 => v & !oparg,
                4 => v ^ oparg,
                _ => v,
            })
        })
        .unwrap_or(0)
    })?;
    if op > 4 {
        return Err(Errno::ENOSYS);
    }
    let pass = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => (old as i32) < (cmparg as i32),
        3 => (old as i32) <= (cmparg as i32),
        4 => (old as i32) > (cmparg as i32),
        5 => (old as i32) >= (cmparg as i32),
        _ => return Err(Errno::ENOSYS),
    };
    let mut woken = wake_key(&mut q, k1, n, u32::MAX);
    if pass {
        woken += wake_key(&mut q, k2, n2, u32::MAX);
    }
    Ok(woken)
}
