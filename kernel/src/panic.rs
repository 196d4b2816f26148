//! Kernel panics: the message and registers go to kmsg and the boot header,
//! and QEMU exits with the panic code so the host reports it.

use crate::arch::cpu::{qemu_exit, read_cr3};
use crate::arch::trap::TrapFrame;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set by the first panic: a fault while reporting it (or a panic on
/// another core) ends QEMU at once instead of overwriting the first report.
static PANICKING: AtomicBool = AtomicBool::new(false);

fn first_panic() -> bool {
    !PANICKING.swap(true, Ordering::AcqRel)
}

pub fn kernel_trap(name: &str, frame: &TrapFrame, cr2: u64) -> ! {
    if !first_panic() {
        qemu_exit(wire::DEBUG_EXIT_PANIC)
    }
    crate::kmsg::write_fmt_unlocked(format_args!(
        "KERNEL PANIC: {name} (vector {}) in kernel mode at rip {:#x}, error {:#x}, cr2 {cr2:#x}\n",
        frame.vector, frame.regs.rip, frame.error
    ));
    crate::shared::report_panic(Some(frame.wire_regs(cr2, read_cr3())), cr2);
    qemu_exit(wire::DEBUG_EXIT_PANIC)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if !first_panic() {
        qemu_exit(wire::DEBUG_EXIT_PANIC)
    }
    crate::kmsg::write_fmt_unlocked(format_args!("KERNEL PANIC: {info}\n"));
    crate::shared::report_panic(None, 0);
    qemu_exit(wire::DEBUG_EXIT_PANIC)
}
