//! Signal delivery on return to user mode, Linux style: a signal that is
//! pending and not blocked either takes its default action (terminate, core,
//! ignore, stop) or runs its handler on a Linux-compatible `rt_sigframe`
//! (siginfo, ucontext with sigcontext and the fxsave image), from which
//! `rt_sigreturn` restores the interrupted context exactly.

use crate::arch::trap::{self, FpuArea, UserRegs};
use crate::process::{self, SigAction, SIG_DFL, SIG_IGN};
use crate::sched::{self, TaskRef};
use crate::uaccess;
use core::sync::atomic::{AtomicU64, Ordering};
use linux_abi::{Errno, SysResult};

pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const FPE_INTDIV: i32 = 1;
pub const FPE_FLTINV: i32 = 7;
pub const ILL_ILLOPN: i32 = 2;
pub const TRAP_TRACE: i32 = 2;
pub const BUS_ADRALN: i32 = 1;

/// siginfo details of pending signals: address or sender pid above a
/// 16-bit si_code.
static INFO: [AtomicU64; 65] = [const { AtomicU64::new(0) }; 65];

const fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

const UNBLOCKABLE: u64 = bit(9) | bit(19);
const SIGKILL: u32 = 9;
const SIGCONT: u32 = 18;
/// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU.
const STOP_MASK: u64 = bit(19) | bit(20) | bit(21) | bit(22);

/// What a signal does when its disposition is SIG_DFL.
enum Default {
    Terminate,
    Core,
    Ignore,
    Stop,
}

fn default_action(sig: u32) -> Default {
    match sig {
        3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31 => Default::Core,
        17 | 18 | 23 | 28 => Default::Ignore,
        19..=22 => Default::Stop,
        _ => Default::Terminate,
    }
}

fn record(sig: u32, code: i32, value: u64) {
    INFO[sig as usize].store((value << 16) | u64::from(code as u16), Ordering::Release);
}

/// Make `sig` pending for the current process; wake a thread that can take it.
pub fn post_process(sig: u32, code: i32, value: u64) {
    let pid = sched::current_pid().unwrap_or_else(process::initial_pid);
    post_to(pid, sig, code, value);
}

/// Make `sig` pending for process `pid`.
pub fn post_to(pid: u32, sig: u32, code: i32, value: u64) {
    if !(1..=64).contains(&sig) {
        return;
    }
    let Some(e) = process::entry(pid) else { return };
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
    if ignored_now && sig != 9 && sig != 19 {
        return;
    }
    record(sig, code, value);
    e.pending.fetch_or(bit(sig), Ordering::AcqRel);
    if sig == SIGKILL && e.stopped.load(Ordering::Acquire) {
        // Every stopped thread wakes to die.
        for t in sched::tasks_of(pid) {
            sched::wake(&t);
        }
    }
    sched::kick_for_signal(pid, |t| t.sigmask.load(Ordering::Acquire) & bit(sig) == 0);
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
        let Some(sig) = (19..=22u32).find(|&s| d & bit(s) != 0 && default_stop(s)) else {
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
    deliverable(t) != 0
        || process::entry(t.pid).is_some_and(|e| e.stopped.load(Ordering::Acquire))
        || process::must_exit(t)
}

/// Signals pending for the whole process of `t`.
fn process_pending(t: &TaskRef) -> u64 {
    process::entry(t.pid).map_or(0, |e| e.pending.load(Ordering::Acquire))
}

/// Take `sig` off `t`'s own pending set, or else off its process's.
fn take_signal(t: &TaskRef, sig: u32) {
    let b = bit(sig);
    if t.pending.fetch_and(!b, Ordering::AcqRel) & b == 0 {
        if let Some(e) = process::entry(t.pid) {
            e.pending.fetch_and(!b, Ordering::AcqRel);
        }
    }
}
/// Make `sig` pending for one thread.
pub fn post_thread(t: &TaskRef, sig: u32, code: i32, value: u64) {
    if !(1..=64).contains(&sig) {
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
    record(sig, code, value);
    t.pending.fetch_or(bit(sig), Ordering::AcqRel);
    sched::kick_task_for_signal(t);
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
        let d = deliverable(&t);
        // Ignored signals never interrupt.
        (1..=64u32).any(|s| d & bit(s) != 0 && !ignored(s))
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

/// The lowest deliverable signal, taken off the pending sets.
fn take(t: &TaskRef) -> Option<u32> {
    let d = deliverable(t);
    if d == 0 {
        return None;
    }
    let sig = d.trailing_zeros() + 1;
    take_signal(t, sig);
    Some(sig)
}

/// Pending signals of the current thread within `want` (blocked or not).
pub fn take_peek(want: u64) -> Option<u32> {
    let t = sched::current()?;
    let p = (t.pending.load(Ordering::Acquire) | process_pending(&t)) & want;
    (p != 0).then(|| p.trailing_zeros() + 1)
}

/// Take one pending signal within `want` (rt_sigtimedwait).
pub fn take_from(want: u64) -> Option<u32> {
    let t = sched::current()?;
    let sig = take_peek(want)?;
    take_signal(&t, sig);
    Some(sig)
}

/// The next signal that would be delivered (for SA_RESTART decisions).
pub fn next_deliverable() -> Option<u32> {
    let t = sched::current()?;
    let d = deliverable(&t);
    (1..=64u32).find(|&s| d & bit(s) != 0 && !ignored(s))
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
        let sig = take(&t)?;
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
                    let addr = match sig {
                        4 | 7 | 8 | 11 => INFO[sig as usize].load(Ordering::Acquire) >> 16,
                        _ => 0,
                    };
                    process::kill(sig, addr, None)
                }
            }
        }
        match setup_frame(&t, sig, &action, regs, fpu) {
            Ok(r) => return Some(r),
            Err(_) => {
                // No room for the frame: Linux kills with SIGSEGV.
                crate::kprintln!(
                    "signal {sig}: cannot build the signal frame; killing with SIGSEGV"
                );
                process::kill(11, regs.rsp, None)
            }
        }
    }
}

const UC_SIGCONTEXT_SS: u64 = 0x2;
const UC_STRICT_RESTORE_SS: u64 = 0x4;
const SIGFRAME: u64 = 8 + 304 + 128; // pretcode, ucontext, siginfo

fn setup_frame(
    t: &TaskRef,
    sig: u32,
    a: &SigAction,
    regs: &UserRegs,
    fpu: &FpuArea,
) -> Result<UserRegs, Errno> {
    if a.flags & SA_RESTORER == 0 {
        // x86-64 has no vDSO trampoline here: libcs always pass a restorer.
        return Err(Errno::EFAULT);
    }
    let (ss_sp, ss_flags, ss_size) = process::with(|p| p.altstack);
    let on_alt = ss_flags & 2 == 0 && ss_size > 0 && regs.rsp.wrapping_sub(ss_sp) < ss_size;
    let mut sp = if a.flags & SA_ONSTACK != 0 && ss_flags & 2 == 0 && ss_size > 0 && !on_alt {
        ss_sp + ss_size
    } else {
        regs.rsp.wrapping_sub(128) // the red zone
    };
    sp = sp.wrapping_sub(512) & !63;
    let fp_at = sp;
    let frame = ((fp_at - SIGFRAME) & !15) - 8;
    let old_mask = match t.restore_mask.swap(sched::NO_MASK, Ordering::AcqRel) {
        sched::NO_MASK => t.sigmask.load(Ordering::Acquire),
        m => m,
    };
    let info_code = INFO[sig as usize].load(Ordering::Acquire);
    let code = (info_code & 0xffff) as u16 as i16 as i32;
    let value = info_code >> 16;

    let mut buf = [0u8; SIGFRAME as usize];
    let put = |b: &mut [u8], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut buf, 0, a.restorer);
    // ucontext at 8
    let uc = 8;
    put(&mut buf, uc, UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
    put(&mut buf, uc + 8, 0);
    put(&mut buf, uc + 16, ss_sp);
    put(&mut buf, uc + 24, if on_alt { 1 } else { ss_flags });
    put(&mut buf, uc + 32, ss_size);
    let sc = uc + 40;
    let gprs = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ];
    for (i, v) in gprs.iter().enumerate() {
        put(&mut buf, sc + i * 8, *v);
    }
    // cs, gs, fs, ss as four u16.
    let segs = (regs.cs & 0xffff) | ((regs.ss & 0xffff) << 48);
    put(&mut buf, sc + 18 * 8, segs);
    put(&mut buf, sc + 19 * 8, 0); // err
    put(&mut buf, sc + 20 * 8, 0); // trapno
    put(&mut buf, sc + 21 * 8, old_mask);
    put(
        &mut buf,
        sc + 22 * 8,
        if sig == 11 || sig == 7 { value } else { 0 },
    ); // cr2
    put(&mut buf, sc + 23 * 8, fp_at); // fpstate
    put(&mut buf, uc + 296, old_mask); // uc_sigmask
                                       // siginfo at 8 + 304
    let si = 8 + 304;
    buf[si..si + 4].copy_from_slice(&(sig as i32).to_le_bytes());
    buf[si + 8..si + 12].copy_from_slice(&code.to_le_bytes());
    match sig {
        // Faults: si_addr.
        4 | 7 | 8 | 11 => put(&mut buf, si + 16, value),
        // Sent by a process: si_pid, si_uid.
        _ => {
            buf[si + 16..si + 20].copy_from_slice(&(value as u32).to_le_bytes());
            buf[si + 20..si + 24].copy_from_slice(&0u32.to_le_bytes());
        }
    }

    process::with(|p| {
        uaccess::copy_to_user(&p.aspace, fp_at, &fpu.0)?;
        uaccess::copy_to_user(&p.aspace, frame, &buf)
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
    r.rsp = frame;
    r.rdi = u64::from(sig);
    r.rsi = frame + si as u64;
    r.rdx = frame + uc as u64;
    r.rax = 0;
    r.rflags &= !(1 << 10 | 1 << 8); // DF and TF clear in the handler
    Ok(r)
}

/// rt_sigreturn: restore the context saved by `setup_frame` (the frame sits
/// just below the user stack pointer after the handler's `ret`).
pub fn sigreturn(user_rsp: u64) -> ! {
    let Some(t) = sched::current() else {
        process::kill(11, 0, None)
    };
    let frame = user_rsp.wrapping_sub(8);
    let mut buf = [0u8; SIGFRAME as usize];
    let mut fp = FpuArea([0; 512]);
    let ok = process::with(|p| uaccess::copy_from_user(&p.aspace, frame, &mut buf));
    if ok.is_err() {
        crate::kprintln!("rt_sigreturn: bad frame at {frame:#x}; killing with SIGSEGV");
        process::kill(11, frame, None);
    }
    let get = |off: usize| u64::from_le_bytes(buf[off..off + 8].try_into().unwrap_or([0; 8]));
    let sc = 8 + 40;
    let g = |i: usize| get(sc + i * 8);
    let regs = UserRegs {
        r8: g(0),
        r9: g(1),
        r10: g(2),
        r11: g(3),
        r12: g(4),
        r13: g(5),
        r14: g(6),
        r15: g(7),
        rdi: g(8),
        rsi: g(9),
        rbp: g(10),
        rbx: g(11),
        rdx: g(12),
        rax: g(13),
        rcx: g(14),
        rsp: g(15),
        rip: g(16),
        rflags: g(17),
        cs: 0,
        ss: 0,
    };
    let fpstate = g(23);
    let mask = get(8 + 296);
    if regs.rip >= 0x8000_0000_0000 {
        process::kill(11, regs.rip, None);
    }
    if fpstate != 0 {
        if process::with(|p| uaccess::copy_from_user(&p.aspace, fpstate, &mut fp.0)).is_err() {
            process::kill(11, fpstate, None);
        }
        // MXCSR reserved bits would fault in fxrstor: keep the valid ones.
        let mxcsr = u32::from_le_bytes([fp.0[24], fp.0[25], fp.0[26], fp.0[27]]) & 0xffff;
        fp.0[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    } else {
        fp = FpuArea::current();
    }
    t.sigmask.store(mask & !UNBLOCKABLE, Ordering::Release);
    // Another signal may be pending now that the mask changed.
    match deliver(&regs, &fp) {
        Some(next) => trap::resume(&next, &fp),
        None => trap::resume(&regs, &fp),
    }
}

/// rt_sigprocmask on the current thread.
pub fn sigprocmask(how: u64, set: Option<u64>) -> Result<u64, Errno> {
    let t = sched::current().ok_or(Errno::EINVAL)?;
    let old = t.sigmask.load(Ordering::Acquire);
    if let Some(s) = set {
        let new = match how {
            0 => old | s,
            1 => old & !s,
            2 => s,
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
pub fn send_to_thread(tid: u32, sig: u64, code: i32) -> SysResult {
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    let t = sched::find(tid).ok_or(Errno::ESRCH)?;
    if sig != 0 {
        let pid = process::with(|p| p.pid);
        post_thread(&t, sig as u32, code, u64::from(pid));
    }
    Ok(0)
}
