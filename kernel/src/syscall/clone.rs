//! clone, clone3, fork, vfork: a new thread of this process, or a new LWK
//! process with a copy of this one's memory and a proxy forked from this
//! one's.

use crate::arch::plain::{bytes_of_mut, zeroed};
use crate::arch::trap::SyscallFrame;
use crate::process;
use crate::sched;
use crate::uaccess::UserPtr;
use core::sync::atomic::Ordering;
use linux_abi::clone::*;
use linux_abi::mman::PROT_WRITE;
use linux_abi::signal::SIGCHLD;
use linux_abi::uapi::clone_args;
use linux_abi::CANONICAL_USER_END;
use linux_abi::{Errno, SysResult};

/// Create a thread (clone with CLONE_VM|CLONE_THREAD...). New processes
/// (fork-like clones) are not supported yet and fail loudly.
fn clone_thread(
    frame: &SyscallFrame,
    flags: u64,
    stack: u64,
    ptid: UserPtr<u32>,
    ctid: UserPtr<u32>,
    tls: u64,
) -> SysResult {
    let thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    if flags & CLONE_THREAD == 0 {
        // A new process (fork, vfork, posix_spawn's CLONE_VM|CLONE_VFORK):
        // always a copy of the address space.
        return fork_process(frame, flags, stack, ptid, ctid);
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
        | CSIGNAL; // exit signal, ignored for threads
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
        let writable =
            |ptr: UserPtr<u32>| p.aspace.regions().check_range(ptr.addr(), 4, PROT_WRITE);
        if flags & CLONE_PARENT_SETTID != 0 && !writable(ptid) {
            return Err(Errno::EFAULT);
        }
        if flags & CLONE_CHILD_SETTID != 0 && !writable(ctid) {
            return Err(Errno::EFAULT);
        }
        Ok(())
    })?;
    let affinity = me.affinity.load(Ordering::Relaxed);
    let res = sched::reserve_thread().ok_or(Errno::EAGAIN)?;
    let t = sched::spawn_thread_prepared(res, &child, fs, affinity, None, |t| {
        if flags & CLONE_CHILD_CLEARTID != 0 {
            t.clear_child_tid.store(ctid.addr(), Ordering::Release);
        }
    })
    .ok_or(Errno::EAGAIN)?;
    let tid = u64::from(t.tid);
    process::with(|p| {
        if flags & CLONE_PARENT_SETTID != 0 {
            let _ = ptid.write_in(&p.aspace, &t.tid);
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            let _ = ctid.write_in(&p.aspace, &t.tid);
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
        } else if !r.kind.is_backed() {
            to.reserve_as(r.start, r.len, r.prot, r.kind)?;
        } else {
            to.map_anon(r.start, r.len, r.prot, r.kind)?;
        }
    }
    for r in regions
        .iter()
        .filter(|r| r.kind.shared_object().is_none() && r.kind.is_backed())
    {
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
fn fork_process(
    frame: &SyscallFrame,
    flags: u64,
    stack: u64,
    ptid: UserPtr<u32>,
    ctid: UserPtr<u32>,
) -> SysResult {
    // Everything that can run out is taken before the proxy forks (which
    // cannot be taken back): the thread's stack and slot, then the memory.
    let me = sched::current().ok_or(Errno::EINVAL)?;
    let res = sched::reserve_thread().ok_or(Errno::EAGAIN)?;
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
            Errno::from_ret(r).map_or("?", Errno::name)
        );
        child_asp.destroy();
        return Err(match Errno::from_ret(r) {
            Some(Errno::EAGAIN) => Errno::EAGAIN,
            _ => Errno::ENOMEM,
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
        exe: p.exe.clone(),
        sysv: p.sysv.clone(),
    });
    let centry = process::register(child);
    super::signalfd::on_fork(&process::current_entry(), &centry);
    let mut cf = *frame;
    cf.rax = 0;
    if stack != 0 {
        cf.rsp = stack;
    }
    let affinity = me.affinity.load(Ordering::Relaxed);
    let np = sched::NewProcess { pid, cr3, table };
    let t = sched::spawn_thread_prepared(res, &cf, None, affinity, Some(np), |t| {
        t.sigmask
            .store(me.sigmask.load(Ordering::Relaxed), Ordering::Relaxed);
        if flags & CLONE_CHILD_CLEARTID != 0 {
            t.clear_child_tid.store(ctid.addr(), Ordering::Release);
        }
    })
    .ok_or(Errno::EAGAIN)?;
    if flags & CLONE_CHILD_SETTID != 0 {
        let c = centry.inner.lock();
        let _ = ctid.write_in(&c.aspace, &pid);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = ptid.write(&pid);
    }
    sched::start_thread(t);
    Ok(u64::from(pid))
}

pub fn fork(frame: &SyscallFrame) -> SysResult {
    fork_process(
        frame,
        u64::from(SIGCHLD),
        0,
        UserPtr::new(0),
        UserPtr::new(0),
    )
}

pub fn vfork(frame: &SyscallFrame) -> SysResult {
    fork(frame)
}

/// clone(flags, stack, parent_tid, child_tid, tls) (x86-64 order).
pub fn clone(
    frame: &SyscallFrame,
    flags: u64,
    stack: u64,
    ptid: UserPtr<u32>,
    ctid: UserPtr<u32>,
    tls: u64,
) -> SysResult {
    clone_thread(frame, flags, stack, ptid, ctid, tls)
}

pub fn clone3(frame: &SyscallFrame, args: UserPtr<clone_args>, size: usize) -> SysResult {
    // Linux takes any size from CLONE_ARGS_SIZE_VER0 (64) to a page; fields
    // past what the caller passed are zero, fields past ours must be.
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut a = zeroed::<clone_args>();
    let n = size.min(size_of::<clone_args>());
    args.cast::<u8>()
        .read_bytes(&mut bytes_of_mut(&mut a)[..n])?;
    if a.set_tid != 0 || a.set_tid_size != 0 {
        return Err(Errno::EINVAL);
    }
    let top = if a.stack != 0 {
        a.stack.checked_add(a.stack_size).ok_or(Errno::EINVAL)?
    } else {
        0
    };
    clone_thread(
        frame,
        a.flags,
        top,
        UserPtr::new(a.parent_tid),
        UserPtr::new(a.child_tid),
        a.tls,
    )
}
