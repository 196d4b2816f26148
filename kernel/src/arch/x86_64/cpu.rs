//! Thin wrappers over privileged x86-64 instructions: ports, MSRs, control
//! registers, CPUID, TSC, halting and leaving QEMU.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// TSC frequency, calibrated at boot (`time::calibrate`).
static TSC_HZ: AtomicU64 = AtomicU64::new(1_000_000_000);

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn set_tsc_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
}

pub const MSR_STAR: u32 = 0xC000_0081;
pub const MSR_LSTAR: u32 = 0xC000_0082;
pub const MSR_FMASK: u32 = 0xC000_0084;
pub const MSR_FS_BASE: u32 = 0xC000_0100;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// Write a byte to an I/O port.
pub fn outb(port: u16, v: u8) {
    // SAFETY: the ports used by the kernel (debug console, debug exit, PIC)
    // are QEMU devices whose writes have no effect on memory safety.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

/// Write a 32-bit value to an I/O port.
pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the kernel only reads architectural MSRs that exist on every x86-64 CPU.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Write an MSR.
///
/// # Safety
/// The caller must ensure the value keeps the CPU in a state the kernel expects
/// (e.g. segment bases, syscall entry points).
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller guarantees the write is valid (see above).
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    }
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Load a new page-table root.
///
/// # Safety
/// `pml4` must be the physical address of a valid PML4 that maps the kernel
/// (upper half) exactly as the current one does.
pub unsafe fn write_cr3(pml4: u64) {
    // SAFETY: the caller guarantees the new tables keep the kernel mapped.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) }
}

/// Flush the whole (non-global) TLB of this core.
pub fn flush_tlb() {
    // SAFETY: reloading CR3 with its own value only drops cached translations.
    unsafe { write_cr3(read_cr3()) }
}

pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged and side-effect free.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A hardware random number, when the CPU has RDRAND.
pub fn rdrand() -> Option<u64> {
    let (_, _, ecx, _) = cpuid(1, 0);
    if ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..16 {
        let v: u64;
        let ok: u8;
        // SAFETY: RDRAND is supported (checked above) and only writes registers.
        unsafe {
            asm!("rdrand {}", "setc {}", out(reg) v, out(reg_byte) ok, options(nomem, nostack))
        }
        if ok != 0 {
            return Some(v);
        }
    }
    None
}

pub fn pause() {
    core::hint::spin_loop();
}

/// Halt this core forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli; hlt only stops this core.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// End the QEMU process through the `isa-debug-exit` device.
pub fn qemu_exit(code: u32) -> ! {
    outl(wire::DEBUG_EXIT_PORT, code);
    halt_forever()
}

/// Mask both 8259 PICs, which the firmware leaves on vectors 8-15.
pub fn mask_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}
