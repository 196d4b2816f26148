//! Signal delivery on return to user mode, Linux style: a signal that is
//! pending and not blocked either takes its default action (terminate, core,
//! ignore, stop) or runs its handler on a Linux-compatible `rt_sigframe`
//! (siginfo, ucontext with sigcontext and the fxsave image), from which
//! `rt_sigreturn` restores the interrupted context exactly.
//!
//! Pending signals are bit masks (the thread's `Task::pending`, the
//! process's `Entry::pending`), read without locks on every return to user
//! mode; their siginfo lives in the process's `SigQueue`, changed together
//! with the bits under its lock. A standard signal is pending at most once
//! per target (a second one merges into the first); real-time signals queue
//! every instance, each with its own siginfo, taken in order. A POSIX
//! timer's signal is queued once: further expiries while it is pending
//! count as overruns (`alarm::PosixTimer`).

use crate::alarm::PosixTimer;
use crate::arch::mem::SpinLock;
use crate::arch::trap::{self, FpuArea, UserRegs};
use crate::process::{self, SigAction};
use crate::sched::{self, TaskRef};
use crate::uaccess::UserPtr;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};
use linux_abi::signal::*;
use linux_abi::uapi::{fpstate, rt_sigframe, sigcontext, siginfo, stack_t, ucontext, MXCSR_VALID};
use linux_abi::{Errno, SysResult, CANONICAL_USER_END};

// The si_code values the rest of the kernel posts with (trap.rs, sched.rs).
pub use linux_abi::signal::{
    BUS_ADRALN, BUS_ADRERR, FPE_FLTINV, FPE_INTDIV, ILL_ILLOPN, SEGV_ACCERR, SEGV_MAPERR,
    SI_KERNEL, SI_USER, TRAP_TRACE,
};

/// Queued signals a process may hold (Linux bounds them with
/// RLIMIT_SIGPENDING); past it, a real-time signal sent with a value fails
/// with EAGAIN and others stay pending without details.
const QUEUE_MAX: usize = 1024;

/// One pending signal's details.
struct Queued {
    /// The thread it was sent to, or 0 for the whole process.
    tid: u32,
    info: siginfo,
    /// The POSIX timer whose expiry this is (its overruns are read when the
    /// signal is taken).
    timer: Option<Arc<PosixTimer>>,
}

/// A process's queued siginfo (see the module comment), and the signals
/// its signalfds watch.
pub struct SigQueue {
    items: SpinLock<Vec<Queued>>,
    /// The process's signalfds (`syscall::signalfd`).
    pub signalfds: SpinLock<Vec<crate::syscall::signalfd::Signalfd>>,
}

impl SigQueue {
    pub const fn new() -> Self {
        SigQueue {
            items: SpinLock::new(Vec::new()),
            signalfds: SpinLock::new(Vec::new()),
        }
    }

    /// Forget the signals queued by `timer` (it is being deleted); their
    /// pending bits go where no other instance remains.
    pub fn remove_timer(&self, e: &process::Entry, timer: &Arc<PosixTimer>) {
        let mut q = self.items.lock();
        let mut gone: Vec<(u32, u32)> = Vec::new();
        q.retain(|x| {
            let mine = x.timer.as_ref().is_some_and(|t| Arc::ptr_eq(t, timer));
            if mine {
                gone.push((x.tid, x.info.si_signo as u32));
            }
            !mine
        });
        for (tid, sig) in gone {
            if q.iter()
                .any(|x| x.tid == tid && x.info.si_signo as u32 == sig)
            {
                continue;
            }
            if tid == 0 {
                e.pending.fetch_and(!bit(sig), Ordering::AcqRel);
            } else if let Some(t) = sched::find(tid) {
                t.pending.fetch_and(!bit(sig), Ordering::AcqRel);
            }
        }
    }
}

/// What became of a posted signal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Posted {
    /// Pending with its own siginfo.
    Queued,
    /// Merged into an instance already pending (standard signals), or
    /// pending without details (the queue was full).
    Merged,
    /// Discarded: the process ignores it.
    Discarded,
}

const fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);
const STOP_MASK: u64 = bit(SIGSTOP) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU);

/// What a signal does when its disposition is SIG_DFL.
enum Default {
    Terminate,
    Core,
    Ignore,
    Stop,
}

fn default_action(sig: u32) -> Default {
    match sig {
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => Default::Core,
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH => Default::Ignore,
        SIGSTOP..=SIGTTOU => Default::Stop,
        _ => Default::Terminate,
    }
}

/// The siginfo of a signal posted with a code and a value: a fault address
/// for fault signals, else the sender's pid.
fn info_of(sig: u32, code: i32, value: u64) -> siginfo {
    if is_fault(sig) {
        siginfo::from_fault(sig as i32, code, value)
    } else {
        siginfo::from_sender(sig as i32, code, value as u32, 0)
    }
}

/// Queue `info` for thread `tid` (0: the process) whose pending set is
/// `pending`; `strict`: a full queue is EAGAIN rather than a bare bit.
fn enqueue(
    e: &process::Entry,
    tid: u32,
    pending: &AtomicU64,
    info: siginfo,
    timer: Option<Arc<PosixTimer>>,
    strict: bool,
) -> Result<Posted, Errno> {
    let sig = info.si_signo as u32;
    let b = bit(sig);
    let mut q = e.sigq.items.lock();
    if sig < SIGRTMIN {
        if pending.load(Ordering::Acquire) & b != 0 {
            return Ok(Posted::Merged);
        }
        // Details left behind by a bit cleared elsewhere (SIGCONT
        // discarding stop signals) are stale.
        q.retain(|x| !(x.tid == tid && x.info.si_signo as u32 == sig));
    }
    if q.len() >= QUEUE_MAX / 2 {
        // Signals queued for threads that have ended go.
        q.retain(|x| x.tid == 0 || sched::find(x.tid).is_some());
    }
    let queued = q.len() < QUEUE_MAX && q.try_reserve(1).is_ok();
    if !queued && strict {
        return Err(Errno::EAGAIN);
    }
    if queued {
        q.push(Queued { tid, info, timer });
    }
    pending.fetch_or(b, Ordering::AcqRel);
    Ok(if queued {
        Posted::Queued
    } else {
        Posted::Merged
    })
}

/// Whether thread `t` can take `sig` now or waits for it: only such a
/// thread is woken (a blocked signal must not cut a call short).
fn accepts(t: &sched::Task, sig: u32) -> bool {
    t.sigmask.load(Ordering::Acquire) & bit(sig) == 0
        || t.sigwait.load(Ordering::Acquire) & bit(sig) != 0
}

/// Make `sig` pending for the current process; wake a thread that can take it.
pub fn post_process(sig: u32, code: i32, value: u64) {
    let pid = sched::current_pid().unwrap_or_else(process::initial_pid);
    post_to(pid, sig, code, value);
}

/// Make `sig` pending for process `pid`.
pub fn post_to(pid: u32, sig: u32, code: i32, value: u64) {
    if !(1..=NSIG).contains(&sig) {
        return;
    }
    let _ = post_info(pid, None, info_of(sig, code, value), None, false);
}

/// Make the signal `info` describes pending for process `pid`, or for its
/// thread `thread`, with its siginfo (sigqueue, POSIX timers).
pub fn post_info(
    pid: u32,
    thread: Option<&TaskRef>,
    info: siginfo,
    timer: Option<Arc<PosixTimer>>,
    strict: bool,
) -> Result<Posted, Errno> {
    let sig = u32::try_from(info.si_signo).map_err(|_| Errno::EINVAL)?;
    if !(1..=NSIG).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    let Some(e) = process::entry(pid) else {
        return Err(Errno::ESRCH);
    };
    // SIGCONT continues the process whatever its disposition, and discards
    // pending stop signals; a stop signal discards a pending SIGCONT.
    if sig == SIGCONT {
        continue_process(pid, &e);
    } else if bit(sig) & STOP_MASK != 0 {
        e.pending.fetch_and(!bit(SIGCONT), Ordering::AcqRel);
        for t in sched::tasks_of(pid) {
            t.pending.fetch_and(!bit(SIGCONT), Ordering::AcqRel);
        }
    }
    // Linux discards a signal the process ignores (unless some thread blocks
    // it, which keeps it pending): it must not cut a blocked call short.
    let ignored_now = {
        let p = e.inner.lock();
        let a = p.sigactions[sig as usize];
        a.handler == SIG_IGN
            || (a.handler == SIG_DFL && matches!(default_action(sig), Default::Ignore))
    };
    // (Checked only for an ignored signal: it keeps the thread list out of
    // the common path.)
    let blocked = || match thread {
        Some(t) => t.sigmask.load(Ordering::Acquire) & bit(sig) != 0,
        None => {
            let ts = sched::tasks_of(pid);
            !ts.is_empty()
                && ts
                    .iter()
                    .all(|t| t.sigmask.load(Ordering::Acquire) & bit(sig) != 0)
        }
    };
    if ignored_now && sig != SIGKILL && sig != SIGSTOP && !blocked() {
        return Ok(Posted::Discarded);
    }
    let posted = match thread {
        Some(t) => enqueue(&e, t.tid, &t.pending, info, timer, strict)?,
        None => enqueue(&e, 0, &e.pending, info, timer, strict)?,
    };
    if sig == SIGKILL && e.stopped.load(Ordering::Acquire) {
        // Every stopped thread wakes to die.
        for t in sched::tasks_of(pid) {
            sched::wake(&t);
        }
    }
    match thread {
        Some(t) if accepts(t, sig) => sched::kick_task_for_signal(t),
        Some(_) => {}
        None => sched::kick_for_signal(pid, |t| accepts(t, sig)),
    }
    Ok(posted)
}

/// SIGCONT: a stopped process runs again (its threads wake where they
/// stopped); pending stop signals are discarded.
fn continue_process(pid: u32, e: &process::Entry) {
    e.pending.fetch_and(!STOP_MASK, Ordering::AcqRel);
    let threads = sched::tasks_of(pid);
    for t in &threads {
        t.pending.fetch_and(!STOP_MASK, Ordering::AcqRel);
    }
    if e.stopped.swap(false, Ordering::AcqRel) {
        for t in &threads {
            sched::wake(t);
        }
    }
}

fn default_stop(sig: u32) -> bool {
    bit(sig) & STOP_MASK != 0 && process::with(|p| p.sigactions[sig as usize].handler) == SIG_DFL
}

/// Block the current thread while its process is stopped (until SIGCONT,
/// or SIGKILL, which it then takes).
fn wait_while_stopped(t: &TaskRef) {
    let Some(e) = process::entry(t.pid) else {
        return;
    };
    while e.stopped.load(Ordering::Acquire)
        && (t.pending.load(Ordering::Acquire) | e.pending.load(Ordering::Acquire)) & bit(SIGKILL)
            == 0
        && !process::must_exit(t)
    {
        sched::block();
    }
}

/// A stop signal's default action: every thread of the process stops (those
/// running in user mode are poked; those blocked in the kernel stay there,
/// and those waiting for the proxy are held by the proxy, which stops too);
/// the proxy makes Linux see the process stopped. Returns after SIGCONT.
fn stop_process(t: &TaskRef, sig: u32) {
    let Some(e) = process::entry(t.pid) else {
        return;
    };
    if !e.stopped.swap(true, Ordering::AcqRel) {
        for o in sched::tasks_of(t.pid) {
            if !alloc::sync::Arc::ptr_eq(&o, t) && !o.in_offload.load(Ordering::Acquire) {
                sched::kick_task_for_signal(&o);
            }
        }
        // The proxy answers once Linux continues it: the slot is collected
        // after this thread wakes, so it does not poll while stopped.
        let slot =
            crate::ikc::post_nowait(wire::RequestKind::Stop, [u64::from(sig), 0, 0, 0, 0, 0]);
        wait_while_stopped(t);
        crate::ikc::reap(slot);
        return;
    }
    wait_while_stopped(t);
}

/// Take pending default-action stop signals of the current thread and stop
/// in place (a thread blocked in the kernel stops inside its call, which
/// then goes on); also wait while another thread has stopped the process.
fn stop_in_place(t: &TaskRef) {
    loop {
        let d = deliverable(t) & STOP_MASK;
        let Some(sig) = (SIGSTOP..=SIGTTOU).find(|&s| d & bit(s) != 0 && default_stop(s)) else {
            break;
        };
        take_signal(t, sig);
        stop_process(t, sig);
    }
    wait_while_stopped(t);
}

/// Whether the current thread must go through `deliver` before user mode:
/// a signal to take, or its process is stopped.
pub fn attention(t: &TaskRef) -> bool {
    // On every return from a system call: one look at the process (a global
    // lock), not one per question.
    let mine = t.pending.load(Ordering::Acquire);
    let blocked = t.sigmask.load(Ordering::Acquire) & !UNBLOCKABLE;
    match process::entry(t.pid) {
        Some(e) => {
            (mine | e.pending.load(Ordering::Acquire)) & !blocked != 0
                || e.stopped.load(Ordering::Acquire)
                || {
                    let r = e.reaper.load(Ordering::Acquire);
                    r != 0 && r != t.tid
                }
        }
        None => mine & !blocked != 0,
    }
}

/// Signals pending for the whole process of `t`.
fn process_pending(t: &TaskRef) -> u64 {
    process::entry(t.pid).map_or(0, |e| e.pending.load(Ordering::Acquire))
}

/// Take `sig` off `t`'s own pending set, or else off its process's: its
/// siginfo (a bare one when none was queued).
fn take_signal(t: &TaskRef, sig: u32) -> siginfo {
    let b = bit(sig);
    let bare = siginfo {
        si_signo: sig as i32,
        si_code: SI_KERNEL,
        ..siginfo::default()
    };
    let Some(e) = process::entry(t.pid) else {
        t.pending.fetch_and(!b, Ordering::AcqRel);
        return bare;
    };
    let mut q = e.sigq.items.lock();
    let (tid, pending) = if t.pending.load(Ordering::Acquire) & b != 0 {
        (t.tid, &t.pending)
    } else {
        (0, &e.pending)
    };
    let mine = |x: &Queued| x.tid == tid && x.info.si_signo as u32 == sig;
    let item = q.iter().position(mine).map(|i| q.remove(i));
    if !q.iter().any(mine) {
        pending.fetch_and(!b, Ordering::AcqRel);
    }
    drop(q);
    match item {
        Some(Queued {
            mut info,
            timer: Some(tm),
            ..
        }) => {
            let overrun = tm.taken();
            info.fields[0] = (info.fields[0] & 0xffff_ffff) | (u64::from(overrun as u32) << 32);
            info
        }
        Some(x) => x.info,
        None => bare,
    }
}

/// Make `sig` pending for one thread.
pub fn post_thread(t: &TaskRef, sig: u32, code: i32, value: u64) {
    if !(1..=NSIG).contains(&sig) {
        return;
    }
    if matches!(default_action(sig), Default::Ignore) && ignored(sig) {
        return;
    }
    if sig == SIGCONT {
        if let Some(e) = process::entry(t.pid) {
            continue_process(t.pid, &e);
        }
    }
    let Some(e) = process::entry(t.pid) else {
        return;
    };
    let _ = enqueue(
        &e,
        t.tid,
        &t.pending,
        info_of(sig, code, value),
        None,
        false,
    );
    if accepts(t, sig) {
        sched::kick_task_for_signal(t);
    }
}

/// Signals the current thread could take now.
pub fn deliverable(t: &TaskRef) -> u64 {
    let pending = t.pending.load(Ordering::Acquire) | process_pending(t);
    pending & !(t.sigmask.load(Ordering::Acquire) & !UNBLOCKABLE)
}

/// Whether a blocking call of the current thread should stop with EINTR.
pub fn interrupted() -> bool {
    sched::current().is_some_and(|t| {
        // Outside a call to the proxy, a stop happens right here and the
        // blocking call goes on after SIGCONT, as on Linux. (A call to the
        // proxy is interrupted instead, and restarted after the stop.)
        if process::must_exit(&t) {
            return true;
        }
        if !t.in_offload.load(Ordering::Acquire) {
            stop_in_place(&t);
        }
        // A signal the thread waits for (rt_sigtimedwait, a signalfd read)
        // ends its sleep though blocked.
        let waited = t.sigwait.load(Ordering::Acquire);
        if waited != 0 && (t.pending.load(Ordering::Acquire) | process_pending(&t)) & waited != 0 {
            return true;
        }
        let d = deliverable(&t);
        // Ignored signals never interrupt.
        (1..=NSIG).any(|s| d & bit(s) != 0 && !ignored(s))
    })
}

fn ignored(sig: u32) -> bool {
    let a = process::with(|p| p.sigactions[sig as usize]);
    a.handler == SIG_IGN || (a.handler == SIG_DFL && matches!(default_action(sig), Default::Ignore))
}

/// Whether a syscall interrupted for `sig` is restarted: its handler asks
/// for it (SA_RESTART), or no handler runs (a stop).
pub fn restarts(sig: u32) -> bool {
    default_stop(sig) || process::with(|p| p.sigactions[sig as usize].flags & SA_RESTART != 0)
}

/// The lowest deliverable signal, taken off the pending sets, with its siginfo.
fn take(t: &TaskRef) -> Option<(u32, siginfo)> {
    let d = deliverable(t);
    if d == 0 {
        return None;
    }
    let sig = d.trailing_zeros() + 1;
    Some((sig, take_signal(t, sig)))
}

/// Pending signals of the current thread within `want` (blocked or not).
pub fn take_peek(want: u64) -> Option<u32> {
    let t = sched::current()?;
    let p = (t.pending.load(Ordering::Acquire) | process_pending(&t)) & want;
    (p != 0).then(|| p.trailing_zeros() + 1)
}

/// Take one pending signal within `want` (rt_sigtimedwait, signalfd).
pub fn take_from(want: u64) -> Option<siginfo> {
    let t = sched::current()?;
    let sig = take_peek(want)?;
    Some(take_signal(&t, sig))
}

/// The next signal that would be delivered (for SA_RESTART decisions).
pub fn next_deliverable() -> Option<u32> {
    let t = sched::current()?;
    let d = deliverable(&t);
    (1..=NSIG).find(|&s| d & bit(s) != 0 && !ignored(s))
}

/// Deliver pending signals to the current thread about to return to user
/// mode with `regs`/`fpu`. Returns the context to resume instead, if a
/// handler must run; may end the process.
pub fn deliver(regs: &UserRegs, fpu: &FpuArea) -> Option<UserRegs> {
    let t = sched::current()?;
    loop {
        wait_while_stopped(&t);
        if process::must_exit(&t) {
            // Another thread ends the process or executes a new program.
            drop(t);
            sched::exit_current();
        }
        let (sig, info) = take(&t)?;
        let action = process::with(|p| p.sigactions[sig as usize]);
        if action.handler == SIG_IGN {
            continue;
        }
        if action.handler == SIG_DFL {
            match default_action(sig) {
                Default::Ignore => continue,
                Default::Stop => {
                    stop_process(&t, sig);
                    continue;
                }
                Default::Terminate | Default::Core => {
                    let addr = if is_fault(sig) { info.fields[0] } else { 0 };
                    // `kill` never returns: nothing here would be dropped.
                    drop(t);
                    process::kill(sig, addr, None)
                }
            }
        }
        match setup_frame(&t, &info, &action, regs, fpu) {
            Ok(r) => return Some(r),
            Err(_) => {
                // No room for the frame: Linux kills with SIGSEGV.
                crate::kprintln!(
                    "signal {sig}: cannot build the signal frame; killing with SIGSEGV"
                );
                drop(t);
                process::kill(SIGSEGV, regs.rsp, None)
            }
        }
    }
}

/// Signals whose siginfo carries a fault address rather than a sender.
fn is_fault(sig: u32) -> bool {
    matches!(sig, SIGILL | SIGBUS | SIGFPE | SIGSEGV)
}

/// Bytes the x86-64 ABI leaves untouched below the stack pointer.
const RED_ZONE: u64 = 128;

/// The registers a signal frame saves.
fn sigcontext_of(regs: &UserRegs) -> sigcontext {
    sigcontext {
        r8: regs.r8,
        r9: regs.r9,
        r10: regs.r10,
        r11: regs.r11,
        r12: regs.r12,
        r13: regs.r13,
        r14: regs.r14,
        r15: regs.r15,
        rdi: regs.rdi,
        rsi: regs.rsi,
        rbp: regs.rbp,
        rbx: regs.rbx,
        rdx: regs.rdx,
        rax: regs.rax,
        rcx: regs.rcx,
        rsp: regs.rsp,
        rip: regs.rip,
        eflags: regs.rflags,
        cs: regs.cs as u16,
        ss: regs.ss as u16,
        ..sigcontext::default()
    }
}

/// The registers `rt_sigreturn` restores (cs and ss are the kernel's own).
fn regs_of(sc: &sigcontext) -> UserRegs {
    UserRegs {
        r8: sc.r8,
        r9: sc.r9,
        r10: sc.r10,
        r11: sc.r11,
        r12: sc.r12,
        r13: sc.r13,
        r14: sc.r14,
        r15: sc.r15,
        rdi: sc.rdi,
        rsi: sc.rsi,
        rbp: sc.rbp,
        rbx: sc.rbx,
        rdx: sc.rdx,
        rax: sc.rax,
        rcx: sc.rcx,
        rsp: sc.rsp,
        rip: sc.rip,
        rflags: sc.eflags,
        cs: 0,
        ss: 0,
    }
}

/// Build the `rt_sigframe` (and the fxsave image above it) for a handler of
/// `sig` on the user stack, as Linux lays it out; the handler's context.
fn setup_frame(
    t: &TaskRef,
    info: &siginfo,
    a: &SigAction,
    regs: &UserRegs,
    fpu: &FpuArea,
) -> Result<UserRegs, Errno> {
    if a.flags & SA_RESTORER == 0 {
        // x86-64 has no vDSO trampoline here: libcs always pass a restorer.
        return Err(Errno::EFAULT);
    }
    // iretq to a non-canonical address faults in the kernel on real
    // hardware: a handler outside user space cannot be entered.
    if a.handler >= CANONICAL_USER_END {
        return Err(Errno::EFAULT);
    }
    let (ss_sp, ss_flags, ss_size) = process::with(|p| p.altstack);
    let alt_enabled = ss_flags & u64::from(SS_DISABLE) == 0 && ss_size > 0;
    let on_alt = alt_enabled && regs.rsp.wrapping_sub(ss_sp) < ss_size;
    let mut sp = if a.flags & SA_ONSTACK != 0 && alt_enabled && !on_alt {
        ss_sp + ss_size
    } else {
        regs.rsp.wrapping_sub(RED_ZONE)
    };
    // The fxsave image, 64-byte aligned, then the frame below it, aligned so
    // that the handler starts as if called (rsp + 8 a multiple of 16).
    sp = sp.wrapping_sub(size_of::<fpstate>() as u64) & !63;
    let fp_at = sp;
    let frame_at = ((fp_at - size_of::<rt_sigframe>() as u64) & !15) - 8;
    let old_mask = match t.restore_mask.swap(sched::NO_MASK, Ordering::AcqRel) {
        sched::NO_MASK => t.sigmask.load(Ordering::Acquire),
        m => m,
    };
    let sig = info.si_signo as u32;
    let mut mcontext = sigcontext_of(regs);
    mcontext.oldmask = old_mask;
    mcontext.cr2 = if sig == SIGSEGV || sig == SIGBUS {
        info.fields[0]
    } else {
        0
    };
    mcontext.fpstate = fp_at;
    let frame = rt_sigframe {
        pretcode: a.restorer,
        uc: ucontext {
            uc_flags: UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
            uc_link: 0,
            uc_stack: stack_t {
                ss_sp,
                ss_flags: if on_alt {
                    SS_ONSTACK as i32
                } else {
                    ss_flags as i32
                },
                _pad: 0,
                ss_size,
            },
            uc_mcontext: mcontext,
            uc_sigmask: old_mask,
        },
        info: *info,
    };
    let frame_ptr = UserPtr::<rt_sigframe>::new(frame_at);
    process::with(|p| {
        UserPtr::<u8>::new(fp_at)
            .cast::<[u8; 512]>()
            .write_in(&p.aspace, &fpu.0)?;
        frame_ptr.write_in(&p.aspace, &frame)
    })?;

    let mut mask = old_mask | a.mask;
    if a.flags & SA_NODEFER == 0 {
        mask |= bit(sig);
    }
    t.sigmask.store(mask & !UNBLOCKABLE, Ordering::Release);
    if a.flags & SA_RESETHAND != 0 {
        process::with(|p| p.sigactions[sig as usize] = SigAction::default());
    }
    let mut r = *regs;
    r.rip = a.handler;
    r.rsp = frame_at;
    r.rdi = u64::from(sig);
    r.rsi = frame_at + offset_of!(rt_sigframe, info) as u64;
    r.rdx = frame_at + offset_of!(rt_sigframe, uc) as u64;
    r.rax = 0;
    r.rflags &= !(1 << 10 | 1 << 8); // DF and TF clear in the handler
    Ok(r)
}

/// rt_sigreturn: restore the context saved by `setup_frame` (the frame sits
/// just below the user stack pointer after the handler's `ret` popped the
/// restorer's address).
pub fn sigreturn(user_rsp: u64) -> ! {
    let frame_at = user_rsp.wrapping_sub(8);
    let Ok(frame) = UserPtr::<rt_sigframe>::new(frame_at).read() else {
        crate::kprintln!("rt_sigreturn: bad frame at {frame_at:#x}; killing with SIGSEGV");
        process::kill(SIGSEGV, frame_at, None);
    };
    let sc = &frame.uc.uc_mcontext;
    let regs = regs_of(sc);
    if regs.rip >= CANONICAL_USER_END || regs.rsp >= CANONICAL_USER_END {
        process::kill(SIGSEGV, regs.rip, None);
    }
    let fp = if sc.fpstate != 0 {
        let Ok(mut state) = UserPtr::<fpstate>::new(sc.fpstate).read() else {
            process::kill(SIGSEGV, sc.fpstate, None);
        };
        // MXCSR reserved bits would fault in fxrstor: keep the valid ones.
        state.mxcsr &= MXCSR_VALID;
        FpuArea(<[u8; 512]>::try_from(crate::arch::plain::bytes_of(&state)).unwrap_or([0; 512]))
    } else {
        FpuArea::current()
    };
    // Nothing on this stack is dropped after `resume` or `kill`: the task
    // is let go of at once.
    match sched::current() {
        Some(t) => t
            .sigmask
            .store(frame.uc.uc_sigmask & !UNBLOCKABLE, Ordering::Release),
        None => process::kill(SIGSEGV, 0, None),
    }
    // Another signal may be pending now that the mask changed.
    match deliver(&regs, &fp) {
        Some(next) => trap::resume(&next, &fp),
        None => trap::resume(&regs, &fp),
    }
}

/// rt_sigprocmask on the current thread.
pub fn sigprocmask(how: i32, set: Option<u64>) -> Result<u64, Errno> {
    let t = sched::current().ok_or(Errno::EINVAL)?;
    let old = t.sigmask.load(Ordering::Acquire);
    if let Some(s) = set {
        let new = match u32::try_from(how) {
            Ok(SIG_BLOCK) => old | s,
            Ok(SIG_UNBLOCK) => old & !s,
            Ok(SIG_SETMASK) => s,
            _ => return Err(Errno::EINVAL),
        };
        t.sigmask.store(new & !UNBLOCKABLE, Ordering::Release);
    }
    Ok(old)
}

/// rt_sigpending: the union of the thread's and the process's pending sets.
pub fn pending() -> u64 {
    sched::current().map_or(0, |t| {
        t.pending.load(Ordering::Acquire) | process_pending(&t)
    })
}

/// Send `sig` to thread `tid` of this process (tgkill/tkill).
pub fn send_to_thread(tid: u32, sig: u32, code: i32) -> SysResult {
    if sig > NSIG {
        return Err(Errno::EINVAL);
    }
    let t = sched::find(tid).ok_or(Errno::ESRCH)?;
    if sig != 0 {
        let pid = process::with(|p| p.pid);
        post_thread(&t, sig, code, u64::from(pid));
    }
    Ok(0)
}
