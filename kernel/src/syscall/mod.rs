//! Syscall dispatch, generated from the one table (`linux_abi::for_each_syscall!`,
//! crates/linux-abi/src/syscalls.rs): local calls run here, in one file per
//! family (`local(family)` in the table is `family::name` below), offloaded
//! ones go to the proxy, unsupported ones get ENOSYS and one kmsg line. Also
//! the `--stats` counters and `--trace` records.

mod brk;
mod clock;
mod clone;
mod cpu;
mod execve;
mod futex;
mod itimer;
mod kill;
mod madvise;
mod mmap;
mod prctl;
mod sigaction;
mod sigmask;
pub mod signalfd;
mod sigreturn;
mod sysinfo;
mod sysvshm;
mod thread;
mod timer;

use crate::arch::mem::SpinLock;
use crate::arch::trap::SyscallFrame;
use crate::ikc;
use crate::shared::write_obj as write_phys_obj;
use crate::uaccess::UserPtr;
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

/// Offload a syscall on a local handler's behalf: its result as a `SysResult`.
pub fn offload_result(nr: u64, args: [u64; 6]) -> SysResult {
    let r = offload(nr, args);
    match Errno::from_ret(r as i64) {
        Some(e) => Err(e),
        None => Ok(r),
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
    if nr == wire::INIT_SYSCALL && crate::instance::is_init() {
        frame.rax = crate::instance::serve();
        crate::sched::leave_kernel();
        return;
    }
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
            let r = match signalfd::intercept(frame, nr, args) {
                Some(r) => to_raw(r),
                None => offload(nr, args),
            };
            kill::after_offload(nr, args, r);
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
            (to_raw(Err(Errno::ENOSYS)), wire::TRACE_UNSUPPORTED)
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
    // Nothing on this stack is dropped after `resume`: let go of the task.
    drop(t);
    let mut regs = crate::arch::trap::UserRegs::from_syscall(frame);
    // Restarted when no handler runs (the call was cut short by a stop) or
    // the handler asked for it.
    let restart = Errno::from_ret(frame.rax as i64) == Some(Errno::EINTR)
        && linux_abi::restarts(nr)
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

/// Send a `--trace` record to the proxy, which prints it on the application's stderr.
pub fn trace(nr: u64, args: [u64; 6], ret: u64, flags: u64) {
    ikc::call(RequestKind::Trace, nr, args, [ret, flags, 0, 0]);
}

pub fn tracing() -> bool {
    TRACE.load(Ordering::Relaxed)
}

/// A local call's handler, reached through the saved registers.
type Handler = fn(&mut SyscallFrame) -> SysResult;

const fn handler(h: Handler) -> Option<Handler> {
    Some(h)
}

/// A syscall argument as the handler's parameter type: integers keep the
/// bits Linux looks at (an `int` is the low half of the register), pointers
/// become `UserPtr`s. The one place where raw registers become typed values.
pub trait FromArg {
    fn from_arg(raw: u64) -> Self;
}

/// Integer parameters: the register truncated (or reinterpreted) to the
/// handler's type, as Linux's `SYSCALL_DEFINE` does.
macro_rules! from_arg_as {
    ($($t:ty),*) => {$(
        impl FromArg for $t {
            fn from_arg(raw: u64) -> Self {
                raw as $t
            }
        }
    )*};
}
from_arg_as!(u64, i64, u32, i32, usize);

impl<T> FromArg for UserPtr<T> {
    fn from_arg(raw: u64) -> Self {
        UserPtr::new(raw)
    }
}

/// The arguments of one call, taken in order.
struct Args {
    raw: [u64; 6],
    next: usize,
}

impl Args {
    fn new(raw: [u64; 6]) -> Self {
        Args { raw, next: 0 }
    }

    /// The next argument (the table lists at most six).
    fn next<T: FromArg>(&mut self) -> T {
        let v = self.raw.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        T::from_arg(v)
    }
}

/// One table line to its handler: `None` unless local; a local line passes
/// as many arguments as it lists kinds (the handler's parameter types decide
/// their Rust types), so a missing handler or a wrong count does not compile.
macro_rules! handler_of {
    ($name:ident local($family:ident, frame) [ $($kind:ident),* ]) => {
        handler(|f: &mut SyscallFrame| {
            let mut _a = Args::new(f.args());
            $family::$name(f $(, { let _ = stringify!($kind); _a.next() })*)
        })
    };
    ($name:ident local($family:ident) [ $($kind:ident),* ]) => {
        handler(|f: &mut SyscallFrame| {
            let mut _a = Args::new(f.args());
            $family::$name($({ let _ = stringify!($kind); _a.next() }),*)
        })
    };
    ($name:ident local $($rest:tt)*) => {
        compile_error!(concat!("local syscall `", stringify!($name), "` lists no argument kinds"))
    };
    ($name:ident $($rest:tt)*) => {
        None
    };
}

macro_rules! local_handlers {
    ($(
        $nr:literal $name:ident $pol:ident $( ( $($pa:tt)* ) )?
        $( [ $( $kind:ident $( ( $($kp:tt)* ) )? ),* ] )?
        $( $attr:ident )* ;
    )*) => {
        /// The handler of every local call, by number.
        static HANDLERS: [Option<Handler>; STATS_NR] = {
            let mut t: [Option<Handler>; STATS_NR] = [None; STATS_NR];
            $( t[$nr] = handler_of!($name $pol $( ( $($pa)* ) )? $( [ $( $kind ),* ] )?); )*
            t
        };
    };
}

linux_abi::for_each_syscall!(local_handlers);

fn local(nr: u64, frame: &mut SyscallFrame) -> SysResult {
    match HANDLERS.get(nr as usize).copied().flatten() {
        Some(h) => h(frame),
        None => Err(Errno::ENOSYS),
    }
}
