//! What exceptions mean: a fault in user mode kills the process with the
//! signal Linux would send; anything in kernel mode is a panic with registers.

use crate::arch::apic;
use crate::arch::cpu::{read_cr2, read_cr3};
use crate::arch::trap::{TrapFrame, UserRegs};
use crate::signal::{
    BUS_ADRALN, BUS_ADRERR, FPE_FLTINV, FPE_INTDIV, ILL_ILLOPN, SEGV_ACCERR, SEGV_MAPERR,
    SI_KERNEL, TRAP_TRACE,
};
use core::sync::atomic::Ordering;
use linux_abi::signal::*;

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Run pending signals' handlers before returning to user mode from an
/// interrupt or exception.
fn deliver_signals(frame: &mut TrapFrame) {
    let Some(t) = crate::sched::current() else {
        return;
    };
    if !crate::signal::attention(&t) {
        return;
    }
    // Nothing on this stack is dropped after `resume`: let go of the task.
    drop(t);
    let regs = UserRegs::from_trap(frame);
    let fpu = crate::arch::trap::fpu_of_trap(frame);
    if let Some(handler) = crate::signal::deliver(&regs, &fpu) {
        crate::sched::leave_kernel();
        crate::arch::trap::resume(&handler, &fpu);
    }
}

/// Whether user address `addr` lies in pages mapped past the end of a file.
fn past_eof(addr: u64) -> bool {
    crate::sched::current().is_some()
        && crate::process::with(|p| {
            p.aspace
                .regions()
                .find(addr)
                .is_some_and(|r| r.kind == lwk_core::region::RegionKind::PastEof)
        })
}

pub fn handle(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if vector >= 32 {
        let from_user = frame.is_user();
        if from_user {
            crate::sched::enter_kernel();
        }
        match vector as u8 {
            apic::TIMER_VECTOR => crate::sched::on_timer(from_user),
            apic::RESCHED_VECTOR => crate::sched::on_resched(from_user),
            apic::TLB_VECTOR => crate::sched::on_tlb_ipi(),
            apic::SPURIOUS_VECTOR => {}
            _ => {
                crate::syscall::count_irq();
                apic::eoi();
            }
        }
        if from_user {
            deliver_signals(frame);
            crate::sched::leave_kernel();
        }
        return;
    }
    if vector == 2 {
        // An NMI: the host may have posted a signal (see host_signals::on_nmi).
        crate::host_signals::on_nmi();
        return;
    }
    let cr2 = read_cr2();
    let name = NAMES[vector as usize];
    if frame.is_user() {
        // Signal, si_code and si_addr as Linux reports them.
        let (sig, code, addr) = match vector {
            0 => (SIGFPE, FPE_INTDIV, frame.regs.rip),
            16 | 19 => (SIGFPE, FPE_FLTINV, frame.regs.rip),
            1 => (SIGTRAP, TRAP_TRACE, frame.regs.rip),
            3 | 4 => (SIGTRAP, SI_KERNEL, 0),
            6 => (SIGILL, ILL_ILLOPN, frame.regs.rip),
            // Pages of a shared file mapping past the end of the file.
            14 if past_eof(cr2) => (SIGBUS, BUS_ADRERR, cr2),
            14 if frame.error & 1 != 0 => (SIGSEGV, SEGV_ACCERR, cr2),
            14 => (SIGSEGV, SEGV_MAPERR, cr2),
            17 => (SIGBUS, BUS_ADRALN, frame.regs.rip),
            _ => (SIGSEGV, SI_KERNEL, 0),
        };
        crate::sched::enter_kernel();
        // A handler runs if one is installed and the signal is not blocked;
        // otherwise the fault kills the process (Linux forces the signal).
        let handled = crate::sched::current().is_some_and(|t| {
            let blocked = t.sigmask.load(Ordering::Acquire) & (1 << (sig - 1)) != 0;
            let h = crate::process::with(|p| p.sigactions[sig as usize].handler);
            !blocked && h > crate::process::SIG_IGN
        });
        if !handled {
            crate::kprintln!(
                "user {name} at rip {:#x} (address {addr:#x}, error {:#x})",
                frame.regs.rip,
                frame.error
            );
            crate::process::kill(sig, addr, Some(frame.wire_regs(cr2, read_cr3())));
        }
        if let Some(t) = crate::sched::current() {
            crate::signal::post_thread(&t, sig, code, addr);
        }
        deliver_signals(frame);
        crate::sched::leave_kernel();
        return;
    }
    crate::panic::kernel_trap(name, frame, cr2)
}
