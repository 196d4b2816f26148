//! The LWK process: its address space, heap, identity and signal bookkeeping,
//! and the ways it ends (exit, or death by a signal).

use crate::arch::mem::SpinLock;
use crate::aspace::AddressSpace;
use crate::shared;

/// One `struct kernel_sigaction` (handler, flags, restorer, mask).
#[derive(Clone, Copy, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub struct Process {
    pub aspace: AddressSpace,
    /// Start of the heap (end of the loaded image).
    pub brk_start: u64,
    /// Current program break.
    pub brk: u64,
    /// End of the memory actually mapped for the heap (>= brk).
    pub heap_end: u64,
    /// Linux pid as seen by the application (the proxy's pid).
    pub pid: u32,
    pub sigactions: [SigAction; 65],
    pub altstack: (u64, u64, u64),
    pub name: [u8; 16],
    pub start_ns: u64,
}

pub static CURRENT: SpinLock<Option<Process>> = SpinLock::new(None);

/// Run `f` on the current process.
pub fn with<R>(f: impl FnOnce(&mut Process) -> R) -> R {
    let mut g = CURRENT.lock();
    match g.as_mut() {
        Some(p) => f(p),
        None => panic!("no current process"),
    }
}

fn finish(code: u32) -> ! {
    crate::syscall::flush_stats();
    crate::arch::cpu::qemu_exit(code)
}

/// exit_group: report the status and stop the partition.
pub fn exit(status: u64) -> ! {
    shared::report_exit((status & 0xff) as u32);
    finish(wire::DEBUG_EXIT_DONE)
}

/// The process dies of `signal`.
pub fn kill(signal: u32, fault_addr: u64, regs: Option<[u64; 24]>) -> ! {
    crate::kprintln!("process killed by signal {signal} (fault address {fault_addr:#x})");
    shared::report_killed(signal, fault_addr, regs);
    finish(wire::DEBUG_EXIT_DONE)
}
