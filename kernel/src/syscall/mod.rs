//! Syscall dispatch from the one table in `linux_abi::table`: local calls run
//! here, offloaded ones go to the proxy, unsupported ones get ENOSYS and one
//! kmsg line. Also the `--stats` counters and `--trace` records.

mod exec;
mod mem;
mod signal;
mod task;
mod time;

use crate::arch::mem::SpinLock;
use crate::arch::trap::SyscallFrame;
use crate::ikc;
use crate::shared::write_obj as write_phys_obj;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use linux_abi::{to_raw, Errno, Policy, SysResult};
use wire::{RequestKind, StatsHeader, SyscallStat, STATS_ENTRIES_OFF, STATS_NR, STATS_OFF};

static STATS: SpinLock<[SyscallStat; STATS_NR]> = SpinLock::new(
    [SyscallStat {
        local: 0,
        offloaded: 0,
        unsupported: 0,
        offload_cycles: 0,
    }; STATS_NR],
);
static WARNED: SpinLock<[u64; STATS_NR / 64]> = SpinLock::new([0; STATS_NR / 64]);
static IRQS: AtomicU64 = AtomicU64::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);
static BOOT_CYCLES: AtomicU64 = AtomicU64::new(0);

/// Where each syscall number runs, decoded once from the table at boot
/// (0 = local, 1 = offload, 2 = unsupported; numbers past the end are unsupported).
static ROUTE: [AtomicU8; STATS_NR] = [const { AtomicU8::new(2) }; STATS_NR];
const ROUTE_LOCAL: u8 = 0;
const ROUTE_OFFLOAD: u8 = 1;

/// Fill the dispatch table from `linux_abi::policy`.
pub fn init() {
    for (nr, r) in ROUTE.iter().enumerate() {
        let code = match linux_abi::policy(nr as u64) {
            Policy::Local => ROUTE_LOCAL,
            Policy::Offload => ROUTE_OFFLOAD,
            Policy::Unsupported(_) => 2,
        };
        r.store(code, Ordering::Relaxed);
    }
}

pub fn set_trace(on: bool) {
    TRACE.store(on, Ordering::Relaxed);
}

pub fn set_boot_cycles(c: u64) {
    BOOT_CYCLES.store(c, Ordering::Relaxed);
}

pub fn count_irq() {
    IRQS.fetch_add(1, Ordering::Relaxed);
}

fn stat(nr: u64, f: impl FnOnce(&mut SyscallStat)) {
    if let Some(s) = STATS.lock().get_mut(nr as usize) {
        f(s);
    }
}

/// Write the counters into the shared area for `--stats`.
pub fn flush_stats() {
    let stats = STATS.lock();
    let base = STATS_OFF;
    for (i, s) in stats.iter().enumerate() {
        write_phys_obj(
            base + STATS_ENTRIES_OFF + (i * core::mem::size_of::<SyscallStat>()) as u64,
            *s,
        );
    }
    write_phys_obj(
        base,
        StatsHeader {
            valid: 1,
            _pad: 0,
            timer_irqs: (0..crate::sched::ncpus())
                .map(|c| crate::sched::cpu_counters(c).0)
                .sum(),
            other_irqs: IRQS.load(Ordering::Relaxed),
            context_switches: (0..crate::sched::ncpus())
                .map(|c| crate::sched::cpu_counters(c).2)
                .sum(),
            boot_cycles: BOOT_CYCLES.load(Ordering::Relaxed),
            ncpus: crate::sched::ncpus() as u64,
            _rest: [0; 2],
        },
    );
    for c in 0..crate::sched::ncpus() {
        let (timer_irqs, ipis, context_switches) = crate::sched::cpu_counters(c);
        write_phys_obj(
            base + wire::CPU_STATS_OFF + (c * core::mem::size_of::<wire::CpuStat>()) as u64,
            wire::CpuStat {
                timer_irqs,
                ipis,
                context_switches,
                online: 1,
            },
        );
    }
}

/// Offload a syscall, with stats.
pub fn offload(nr: u64, args: [u64; 6]) -> u64 {
    let r = ikc::syscall(nr, args);
    stat(nr, |s| {
        s.offloaded += 1;
        s.offload_cycles += r.cycles;
    });
    r.ret as u64
}

pub fn dispatch(frame: &mut SyscallFrame) {
    crate::sched::enter_kernel();
    let nr = frame.rax;
    let args = frame.args();
    let route = ROUTE
        .get(nr as usize)
        .map_or(2, |r| r.load(Ordering::Relaxed));
    let (ret, flags) = match route {
        ROUTE_LOCAL => {
            stat(nr, |s| s.local += 1);
            (to_raw(local(nr, frame)), wire::TRACE_LOCAL)
        }
        ROUTE_OFFLOAD => {
            let r = offload(nr, args);
            signal::after_offload(nr, args, r);
            (r, 0)
        }
        _ => {
            let reason = match linux_abi::policy(nr) {
                Policy::Unsupported(r) => r,
                _ => "no route",
            };
            stat(nr, |s| s.unsupported += 1);
            let first = {
                let mut w = WARNED.lock();
                let i = (nr as usize).min(STATS_NR - 1);
                let bit = 1u64 << (i % 64);
                let seen = w[i / 64] & bit != 0;
                w[i / 64] |= bit;
                !seen
            };
            if first {
                crate::kprintln!(
                    "syscall {nr} ({}) unsupported: {reason}; returning ENOSYS",
                    linux_abi::name(nr).unwrap_or("unknown")
                );
            }
            (Errno::ENOSYS.as_ret() as u64, wire::TRACE_UNSUPPORTED)
        }
    };
    frame.rax = ret;
    if TRACE.load(Ordering::Relaxed) {
        trace(nr, args, ret, flags);
    }
    deliver_signals(frame, nr);
    crate::sched::leave_kernel();
}

/// Before returning to user mode: run pending signals' handlers (or default
/// actions). A call interrupted with EINTR is restarted after the handler
/// when it asked for SA_RESTART.
fn deliver_signals(frame: &mut SyscallFrame, nr: u64) {
    let Some(t) = crate::sched::current() else {
        return;
    };
    if !crate::signal::attention(&t) {
        return;
    }
    let mut regs = crate::arch::trap::UserRegs::from_syscall(frame);
    // Restarted when no handler runs (the call was cut short by a stop) or
    // the handler asked for it.
    let restart = frame.rax as i64 == Errno::EINTR.as_ret()
        && restartable(nr)
        && crate::signal::next_deliverable().is_none_or(crate::signal::restarts);
    if restart {
        regs.rax = nr;
        regs.rip -= 2; // back onto the `syscall` instruction
        regs.rcx = regs.rip;
    }
    let fpu = crate::arch::trap::fpu_of_syscall(frame);
    if let Some(handler) = crate::signal::deliver(&regs, &fpu) {
        crate::sched::leave_kernel();
        crate::arch::trap::resume(&handler, &fpu);
    }
    if restart {
        frame.rax = nr;
        frame.rip -= 2;
    }
}

/// Calls Linux restarts after a SA_RESTART handler (never the waits that
/// always fail with EINTR, nor sleeps).
fn restartable(nr: u64) -> bool {
    use linux_abi::syscalls_gen::*;
    !matches!(
        u32::try_from(nr).unwrap_or(u32::MAX),
        SYS_PAUSE
            | SYS_RT_SIGSUSPEND
            | SYS_RT_SIGTIMEDWAIT
            | SYS_NANOSLEEP
            | SYS_CLOCK_NANOSLEEP
            | SYS_SELECT
            | SYS_PSELECT6
            | SYS_POLL
            | SYS_PPOLL
            | SYS_EPOLL_WAIT
            | SYS_EPOLL_PWAIT
    )
}

/// Send a `--trace` record to the proxy, which prints it on the application's stderr.
pub fn trace(nr: u64, args: [u64; 6], ret: u64, flags: u64) {
    ikc::call(RequestKind::Trace, nr, args, [ret, flags, 0, 0]);
}

pub fn tracing() -> bool {
    TRACE.load(Ordering::Relaxed)
}

fn local(nr: u64, frame: &SyscallFrame) -> SysResult {
    use linux_abi::syscalls_gen::*;
    let a = frame.args();
    let Ok(n) = u32::try_from(nr) else {
        return Err(Errno::ENOSYS);
    };
    match n {
        SYS_BRK => mem::brk(a[0]),
        SYS_MMAP => mem::mmap(a[0], a[1], a[2], a[3], a[4], a[5]),
        SYS_MUNMAP => mem::munmap(a[0], a[1]),
        SYS_MPROTECT => mem::mprotect(a[0], a[1], a[2]),
        SYS_MADVISE => mem::madvise(a[0], a[1], a[2]),
        SYS_MREMAP => mem::mremap(a[0], a[1], a[2], a[3], a[4]),
        SYS_MSYNC | SYS_MLOCK | SYS_MUNLOCK => mem::check_mapped(a[0], a[1]),
        SYS_MLOCK2 => mem::check_mapped(a[0], a[1]),
        SYS_MLOCKALL | SYS_MUNLOCKALL => Ok(0),
        SYS_MINCORE => mem::mincore(a[0], a[1], a[2]),
        SYS_ARCH_PRCTL => task::arch_prctl(a[0], a[1]),
        SYS_SET_TID_ADDRESS => task::set_tid_address(a[0]),
        SYS_SET_ROBUST_LIST => task::set_robust_list(a[0], a[1]),
        SYS_GET_ROBUST_LIST => task::get_robust_list(a[0], a[1], a[2]),
        SYS_EXIT => task::exit_thread(nr, a[0]),
        SYS_EXIT_GROUP => task::exit_group(nr, a[0]),
        SYS_GETPID => task::getpid(),
        SYS_GETTID => task::gettid(),
        SYS_CLONE => task::clone(frame),
        SYS_FORK | SYS_VFORK => task::fork_syscall(frame),
        SYS_CLONE3 => task::clone3(frame),
        SYS_SCHED_YIELD => task::sched_yield(),
        SYS_SCHED_GETAFFINITY => task::sched_getaffinity(a[0], a[1], a[2]),
        SYS_SCHED_SETAFFINITY => task::sched_setaffinity(a[0], a[1], a[2]),
        SYS_GETCPU => task::getcpu(a[0], a[1]),
        SYS_FUTEX => task::futex(a),
        SYS_PRCTL => task::prctl(a[0], a[1]),
        SYS_SYSINFO => task::sysinfo(a[0]),
        SYS_EXECVE => exec::execve(a[0], a[1], a[2]),
        SYS_CLOCK_GETTIME => time::clock_gettime(a[0], a[1]),
        SYS_CLOCK_GETRES => time::clock_getres(a[0], a[1]),
        SYS_GETTIMEOFDAY => time::gettimeofday(a[0], a[1]),
        SYS_TIME => time::time(a[0]),
        SYS_NANOSLEEP => time::nanosleep(a[0], a[1]),
        SYS_CLOCK_NANOSLEEP => time::clock_nanosleep(a[0], a[1], a[2], a[3]),
        SYS_RT_SIGACTION => signal::rt_sigaction(a[0], a[1], a[2], a[3]),
        SYS_RT_SIGPROCMASK => signal::rt_sigprocmask(a[0], a[1], a[2], a[3]),
        SYS_RT_SIGRETURN => crate::signal::sigreturn(frame.rsp),
        SYS_RT_SIGPENDING => signal::rt_sigpending(a[0], a[1]),
        SYS_RT_SIGSUSPEND => signal::rt_sigsuspend(a[0], a[1]),
        SYS_RT_SIGTIMEDWAIT => signal::rt_sigtimedwait(a[0], a[1], a[2], a[3]),
        SYS_PAUSE => signal::pause(),
        SYS_ALARM => time::alarm(a[0]),
        SYS_GETITIMER => time::getitimer(a[0], a[1]),
        SYS_SETITIMER => time::setitimer(a[0], a[1], a[2]),
        SYS_SIGALTSTACK => signal::sigaltstack(a[0], a[1]),
        SYS_KILL => signal::kill(a[0], a[1]),
        SYS_TGKILL => signal::tgkill(a[0], a[1], a[2]),
        SYS_TKILL => signal::tgkill(0, a[0], a[1]),
        _ => {
            crate::kprintln!("syscall {nr} is marked local but has no handler");
            Err(Errno::ENOSYS)
        }
    }
}
