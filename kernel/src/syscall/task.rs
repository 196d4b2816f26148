//! Task bookkeeping: exit, identity, TLS base, tid address, robust list,
//! affinity and futexes (one task per process for now).

use crate::arch::trap::SyscallFrame;
use crate::futex;
use crate::process;
use crate::sched;
use crate::uaccess;
use core::sync::atomic::Ordering;
use linux_abi::{Errno, SysResult};

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const ARCH_SET_CPUID: u64 = 0x1012;
const CANONICAL_USER_END: u64 = 0x8000_0000_0000;

pub fn exit_group(nr: u64, status: u64) -> SysResult {
    if super::tracing() {
        super::trace(nr, [status, 0, 0, 0, 0, 0], 0, wire::TRACE_LOCAL);
    }
    process::exit(status)
}

/// exit: end this thread; the last thread's exit ends the process.
pub fn exit_thread(nr: u64, status: u64) -> SysResult {
    if sched::thread_count() <= 1 {
        return exit_group(nr, status);
    }
    if super::tracing() {
        super::trace(nr, [status, 0, 0, 0, 0, 0], 0, wire::TRACE_LOCAL);
    }
    if let Some(me) = sched::current() {
        release_robust_futexes(me.tid, me.robust_list.load(Ordering::Acquire));
        let ctid = me.clear_child_tid.load(Ordering::Acquire);
        if ctid != 0 {
            let _ = process::with(|p| uaccess::write_u32(&p.aspace, ctid, 0));
            futex::wake_one_quiet(ctid);
        }
    }
    sched::exit_current()
}

const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// A dying thread's robust futexes: mark each one it still owns
/// FUTEX_OWNER_DIED and wake a waiter, as Linux does (`struct
/// robust_list_head`: next, futex_offset, list_op_pending).
fn release_robust_futexes(tid: u32, head: u64) {
    if head == 0 {
        return;
    }
    let read = |a: u64| process::with(|p| uaccess::read_u64(&p.aspace, a)).ok();
    let (Some(mut entry), Some(offset), Some(pending)) =
        (read(head), read(head + 8), read(head + 16))
    else {
        return;
    };
    let release = |entry: u64| {
        let word_at = entry.wrapping_add(offset);
        let done = process::with(|p| {
            let mut b = [0u8; 4];
            uaccess::copy_from_user(&p.aspace, word_at, &mut b).ok()?;
            let w = u32::from_le_bytes(b);
            if w & FUTEX_TID_MASK != tid {
                return None;
            }
            let new = (w & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
            uaccess::write_u32(&p.aspace, word_at, new).ok()?;
            Some(w & FUTEX_WAITERS != 0)
        });
        if done == Some(true) {
            futex::wake_one_quiet(word_at);
        }
    };
    // Linux bounds the walk (ROBUST_LIST_LIMIT) against corrupted lists.
    for _ in 0..2048 {
        if entry == head || entry == 0 {
            break;
        }
        let next = read(entry);
        if entry != pending {
            release(entry);
        }
        match next {
            Some(n) => entry = n,
            None => break,
        }
    }
    if pending != 0 {
        release(pending);
    }
}

pub fn getpid() -> SysResult {
    Ok(u64::from(process::with(|p| p.pid)))
}

pub fn gettid() -> SysResult {
    Ok(u64::from(sched::current_tid()))
}

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// Create a thread (clone with CLONE_VM|CLONE_THREAD...). New processes
/// (fork-like clones) are not supported yet and fail loudly.
fn clone_thread(
    frame: &SyscallFrame,
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
) -> SysResult {
    let thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    if flags & CLONE_THREAD == 0 {
        // A new process (fork, vfork, posix_spawn's CLONE_VM|CLONE_VFORK):
        // always a copy of the address space.
        return fork(frame, flags, stack, ptid, ctid);
    }
    if flags & thread != thread {
        crate::kprintln!("clone: flags {flags:#x} are neither a thread's nor a process's");
        return Err(Errno::EINVAL);
    }
    let known = thread
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID
        | CLONE_DETACHED
        | CLONE_CHILD_SETTID
        | 0xff; // exit signal, ignored for threads
    if flags & !known != 0 || flags & (CLONE_VFORK | CLONE_PIDFD) != 0 {
        crate::kprintln!("clone: unsupported flags {:#x}", flags & !known);
        return Err(Errno::EINVAL);
    }
    let mut child = *frame;
    child.rax = 0;
    if stack != 0 {
        child.rsp = stack;
    }
    let me = sched::current().ok_or(Errno::EINVAL)?;
    let fs = (flags & CLONE_SETTLS != 0).then_some(tls);
    if let Some(f) = fs {
        if f >= CANONICAL_USER_END {
            return Err(Errno::EPERM);
        }
    }
    // Everything that can fail with EFAULT is checked before the thread exists.
    process::with(|p| {
        if flags & CLONE_PARENT_SETTID != 0 && !p.aspace.regions().check_range(ptid, 4, 2) {
            return Err(Errno::EFAULT);
        }
        if flags & CLONE_CHILD_SETTID != 0 && !p.aspace.regions().check_range(ctid, 4, 2) {
            return Err(Errno::EFAULT);
        }
        Ok(())
    })?;
    let affinity = me.affinity.load(Ordering::Relaxed);
    let t = sched::spawn_thread_prepared(&child, fs, affinity, None, |t| {
        if flags & CLONE_CHILD_CLEARTID != 0 {
            t.clear_child_tid.store(ctid, Ordering::Release);
        }
    })
    .ok_or(Errno::EAGAIN)?;
    let tid = u64::from(t.tid);
    process::with(|p| {
        if flags & CLONE_PARENT_SETTID != 0 {
            let _ = uaccess::write_u32(&p.aspace, ptid, t.tid);
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            let _ = uaccess::write_u32(&p.aspace, ctid, t.tid);
        }
    });
    sched::start_thread(t);
    Ok(tid)
}

/// Copy every private region of `from` into `to` (fresh, contiguous memory)
/// and map its shared ones onto the same memory.
fn copy_regions(
    from: &crate::aspace::AddressSpace,
    to: &mut crate::aspace::AddressSpace,
) -> Result<(), Errno> {
    let regions: alloc::vec::Vec<lwk_core::region::Region> =
        from.regions().iter().copied().collect();
    for r in &regions {
        if r.kind.shared_object().is_some() {
            // Shared objects are mapped, not copied: parent and child see the same bytes.
            to.share_region(r)?;
        } else {
            to.map_anon(r.start, r.len, r.prot, r.kind)?;
        }
    }
    for r in regions.iter().filter(|r| r.kind.shared_object().is_none()) {
        let mut va = r.start;
        while va < r.end() {
            let dst = to.regions().find(va).copied().ok_or(Errno::ENOMEM)?;
            let n = (r.end() - va).min(dst.end() - va);
            to.copy_phys_from(
                dst.phys + (va - dst.start),
                from,
                r.phys + (va - r.start),
                n,
            );
            va += n;
        }
    }
    Ok(())
}

/// fork: a new LWK process with a copy of this one's memory and a new
/// proxy forked from this one's (so descriptors, cwd and the Linux process
/// tree match), running the calling thread from the same point with rax 0.
fn fork(frame: &SyscallFrame, flags: u64, stack: u64, ptid: u64, ctid: u64) -> SysResult {
    let mut child_asp = crate::aspace::AddressSpace::with_new_table()?;
    let table = child_asp.table();
    if let Err(e) = process::with(|p| copy_regions(&p.aspace, &mut child_asp)) {
        crate::kprintln!("fork: copying the address space failed: {}", e.name());
        child_asp.destroy();
        return Err(e);
    }
    let r = crate::ikc::call(wire::RequestKind::Fork, 0, [table, 0, 0, 0, 0, 0], [0; 4]).ret;
    if r <= 0 {
        crate::kprintln!(
            "fork: the proxy could not fork ({})",
            linux_abi::errno_name(-r as i32)
        );
        child_asp.destroy();
        return Err(if r == Errno::EAGAIN.as_ret() {
            Errno::EAGAIN
        } else {
            Errno::ENOMEM
        });
    }
    let pid = r as u32;
    let cr3 = child_asp.root();
    let child = process::with(|p| process::Process {
        aspace: child_asp,
        brk_start: p.brk_start,
        brk: p.brk,
        heap_end: p.heap_end,
        pid,
        sigactions: p.sigactions,
        altstack: p.altstack,
        name: p.name,
        start_ns: crate::time::monotonic_ns(),
        exe: p.exe.clone(),
    });
    let centry = process::register(child);
    let me = sched::current().ok_or(Errno::EINVAL)?;
    let mut cf = *frame;
    cf.rax = 0;
    if stack != 0 {
        cf.rsp = stack;
    }
    let affinity = me.affinity.load(Ordering::Relaxed);
    let np = sched::NewProcess { pid, cr3, table };
    let t = sched::spawn_thread_prepared(&cf, None, affinity, Some(np), |t| {
        t.sigmask
            .store(me.sigmask.load(Ordering::Relaxed), Ordering::Relaxed);
        if flags & CLONE_CHILD_CLEARTID != 0 {
            t.clear_child_tid.store(ctid, Ordering::Release);
        }
    })
    .ok_or(Errno::EAGAIN)?;
    if flags & CLONE_CHILD_SETTID != 0 {
        let c = centry.inner.lock();
        let _ = uaccess::write_u32(&c.aspace, ctid, pid);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = process::with(|p| uaccess::write_u32(&p.aspace, ptid, pid));
    }
    sched::start_thread(t);
    Ok(u64::from(pid))
}

pub fn fork_syscall(frame: &SyscallFrame) -> SysResult {
    const SIGCHLD: u64 = 17;
    fork(frame, SIGCHLD, 0, 0, 0)
}

pub fn clone(frame: &SyscallFrame) -> SysResult {
    let a = frame.args();
    // x86-64 order: flags, stack, parent_tid, child_tid, tls.
    clone_thread(frame, a[0], a[1], a[2], a[3], a[4])
}

pub fn clone3(frame: &SyscallFrame) -> SysResult {
    let a = frame.args();
    let (ptr, size) = (a[0], a[1]);
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 88];
    let n = (size as usize).min(88);
    process::with(|p| uaccess::copy_from_user(&p.aspace, ptr, &mut b[..n]))?;
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (flags, _pidfd, child_tid, parent_tid, _exit_signal, stack, stack_size, tls) =
        (w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
    if n > 64 && (w(8) != 0 || w(9) != 0) {
        return Err(Errno::EINVAL); // set_tid
    }
    let top = if stack != 0 {
        stack.checked_add(stack_size).ok_or(Errno::EINVAL)?
    } else {
        0
    };
    clone_thread(frame, flags, top, parent_tid, child_tid, tls)
}

pub fn arch_prctl(code: u64, addr: u64) -> SysResult {
    use crate::arch::cpu::{rdmsr, MSR_FS_BASE, MSR_KERNEL_GS_BASE};
    match code {
        ARCH_SET_FS | ARCH_SET_GS => {
            if addr >= CANONICAL_USER_END {
                return Err(Errno::EPERM);
            }
            crate::arch::set_user_segment_base(code == ARCH_SET_FS, addr);
            Ok(0)
        }
        ARCH_GET_FS | ARCH_GET_GS => {
            let v = rdmsr(if code == ARCH_GET_FS {
                MSR_FS_BASE
            } else {
                MSR_KERNEL_GS_BASE
            });
            process::with(|p| uaccess::write_u64(&p.aspace, addr, v))?;
            Ok(0)
        }
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

pub fn set_tid_address(ptr: u64) -> SysResult {
    let me = sched::current().ok_or(Errno::EINVAL)?;
    me.clear_child_tid.store(ptr, Ordering::Release);
    Ok(u64::from(me.tid))
}

pub fn set_robust_list(head: u64, len: u64) -> SysResult {
    if len != 24 {
        return Err(Errno::EINVAL);
    }
    let me = sched::current().ok_or(Errno::EINVAL)?;
    me.robust_list.store(head, Ordering::Release);
    Ok(0)
}

fn task_of(tid: u64) -> Result<sched::TaskRef, Errno> {
    if tid == 0 {
        return sched::current().ok_or(Errno::ESRCH);
    }
    let tid = u32::try_from(tid).map_err(|_| Errno::ESRCH)?;
    sched::find(tid).ok_or(Errno::ESRCH)
}

pub fn get_robust_list(tid: u64, head_ptr: u64, len_ptr: u64) -> SysResult {
    let t = task_of(tid)?;
    process::with(|p| {
        uaccess::write_u64(&p.aspace, head_ptr, t.robust_list.load(Ordering::Acquire))?;
        uaccess::write_u64(&p.aspace, len_ptr, 24)?;
        Ok(0)
    })
}

pub fn sched_getaffinity(tid: u64, len: u64, mask: u64) -> SysResult {
    let t = task_of(tid)?;
    // Linux copies nr_cpu_ids bits, rounded up to whole longs.
    let bytes = sched::ncpus().div_ceil(64) * 8;
    if (len as usize) < bytes || !len.is_multiple_of(8) && (len as usize) < 8 {
        return Err(Errno::EINVAL);
    }
    let m = t.affinity.load(Ordering::Acquire) & sched::online_mask();
    let mut buf = alloc::vec![0u8; bytes];
    buf[..8].copy_from_slice(&m.to_le_bytes());
    process::with(|p| uaccess::copy_to_user(&p.aspace, mask, &buf))?;
    Ok(bytes as u64)
}

pub fn sched_setaffinity(tid: u64, len: u64, mask: u64) -> SysResult {
    let t = task_of(tid)?;
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 8];
    let n = (len as usize).min(8);
    process::with(|p| uaccess::copy_from_user(&p.aspace, mask, &mut b[..n]))?;
    let m = u64::from_le_bytes(b) & sched::online_mask();
    if m == 0 {
        return Err(Errno::EINVAL);
    }
    t.affinity.store(m, Ordering::Release);
    if m & (1 << t.cpu()) == 0 {
        let target = m.trailing_zeros() as usize;
        match sched::current() {
            Some(me) if alloc::sync::Arc::ptr_eq(&me, &t) => sched::migrate_current(target),
            _ => sched::request_migration(&t, target),
        }
    }
    Ok(0)
}

pub fn getcpu(cpu: u64, node: u64) -> SysResult {
    let here = crate::arch::gdt::this_cpu() as u32;
    process::with(|p| {
        if cpu != 0 {
            uaccess::write_u32(&p.aspace, cpu, here)?;
        }
        if node != 0 {
            uaccess::write_u32(&p.aspace, node, 0)?;
        }
        Ok(0)
    })
}

pub fn sched_yield() -> SysResult {
    sched::yield_now();
    Ok(0)
}

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// Absolute TSC deadline for a futex timeout (relative for FUTEX_WAIT,
/// absolute on the chosen clock for FUTEX_WAIT_BITSET).
fn futex_deadline(ts: u64, absolute: bool, realtime: bool) -> Result<Option<u64>, Errno> {
    if ts == 0 {
        return Ok(None);
    }
    let (s, ns) = process::with(|p| uaccess::read_pair(&p.aspace, ts))?;
    if (s as i64) < 0 || ns >= 1_000_000_000 {
        return Err(Errno::EINVAL);
    }
    let t = s.saturating_mul(1_000_000_000).saturating_add(ns);
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

pub fn futex(a: [u64; 6]) -> SysResult {
    let (uaddr, op, val, timeout, uaddr2, val3) = (a[0], a[1], a[2], a[3], a[4], a[5]);
    let cmd = op & 0x7f & !FUTEX_CLOCK_REALTIME;
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    match cmd {
        FUTEX_WAIT => futex::wait(
            uaddr,
            val as u32,
            futex_deadline(timeout, false, realtime)?,
            u32::MAX,
        ),
        FUTEX_WAIT_BITSET => futex::wait(
            uaddr,
            val as u32,
            futex_deadline(timeout, true, realtime)?,
            val3 as u32,
        ),
        FUTEX_WAKE => futex::wake(uaddr, val, u32::MAX),
        FUTEX_WAKE_BITSET => futex::wake(uaddr, val, val3 as u32),
        // For the requeue ops the 4th argument is a count, not a timeout.
        FUTEX_REQUEUE => futex::requeue(uaddr, val, timeout, uaddr2, None),
        FUTEX_CMP_REQUEUE => futex::requeue(uaddr, val, timeout, uaddr2, Some(val3 as u32)),
        FUTEX_WAKE_OP => futex::wake_op(uaddr, val, timeout, uaddr2, val3 as u32),
        _ => {
            crate::kprintln!("futex: operation {cmd} is not supported");
            Err(Errno::ENOSYS)
        }
    }
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;

pub fn prctl(option: u64, arg: u64) -> SysResult {
    process::with(|p| match option {
        PR_SET_NAME => {
            let s = uaccess::read_cstring(&p.aspace, arg, 4096)?;
            let mut n = [0u8; 16];
            let l = s.len().min(15);
            n[..l].copy_from_slice(&s[..l]);
            p.name = n;
            Ok(0)
        }
        PR_GET_NAME => {
            uaccess::copy_to_user(&p.aspace, arg, &p.name)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE | PR_SET_PDEATHSIG => Ok(0),
        _ => {
            crate::kprintln!("prctl option {option} is not supported on the LWK");
            Err(Errno::EINVAL)
        }
    })
}

/// sysinfo describes the LWK partition: its memory and its threads.
pub fn sysinfo(info: u64) -> SysResult {
    let (free, total) = crate::mm::memory_summary();
    let uptime = crate::time::monotonic_ns() / 1_000_000_000;
    let mut b = [0u8; 112];
    let put = |b: &mut [u8], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, uptime);
    put(&mut b, 32, total); // totalram
    put(&mut b, 40, free); // freeram
    let procs = u16::try_from(sched::thread_count()).unwrap_or(u16::MAX);
    b[80..82].copy_from_slice(&procs.to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    process::with(|p| uaccess::copy_to_user(&p.aspace, info, &b))?;
    Ok(0)
}
