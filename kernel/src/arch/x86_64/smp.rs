//! Starting application processors: a real-mode trampoline copied to low
//! memory takes each AP to long mode on the boot page tables, then into Rust.

use super::apic;
use super::mem::write_phys;
use core::arch::global_asm;

/// Physical page the trampoline runs from (below 1 MiB, page aligned).
pub const TRAMP_BASE: u64 = 0x8000;

global_asm!(
    r#"
    .section .rodata.trampoline, "a"
    .balign 16
    .global ap_tramp_start
ap_tramp_start:
    .code16
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl ({base} + (ap_gdtr - ap_tramp_start))
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x18, ${base} + (ap_tramp32 - ap_tramp_start)
    .code32
ap_tramp32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov ({base} + (ap_cr3 - ap_tramp_start)), %edx
"#,
    super::boot::enable_long_mode!(),
    r#"
    ljmp $0x08, ${base} + (ap_tramp64 - ap_tramp_start)
    .code64
ap_tramp64:
    mov ({base} + (ap_stack - ap_tramp_start)), %rsp
    mov ({base} + (ap_arg - ap_tramp_start)), %rdi
    mov ({base} + (ap_entry - ap_tramp_start)), %rax
    jmp *%rax
    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
ap_gdtr:
    .word 31
    .long {base} + (ap_gdt - ap_tramp_start)
    .balign 8
    .global ap_cr3
ap_cr3:
    .quad 0
    .global ap_stack
ap_stack:
    .quad 0
    .global ap_entry
ap_entry:
    .quad 0
    .global ap_arg
ap_arg:
    .quad 0
    .global ap_tramp_end
ap_tramp_end:
    .text
"#,
    base = const TRAMP_BASE,
    options(att_syntax)
);

extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
    static ap_cr3: u8;
    static ap_stack: u8;
    static ap_entry: u8;
    static ap_arg: u8;
}

fn sym(p: *const u8) -> u64 {
    p as u64
}

/// Copy the trampoline to TRAMP_BASE (once, before starting APs).
pub fn install_trampoline() {
    let start = sym(core::ptr::addr_of!(ap_tramp_start));
    let end = sym(core::ptr::addr_of!(ap_tramp_end));
    // SAFETY: [start, end) is the trampoline blob in the kernel's read-only
    // data, a valid, immutable byte range.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
    // SAFETY: the page at TRAMP_BASE (below 1 MiB) is reserved for the
    // trampoline: nothing else in the kernel uses it.
    unsafe { write_phys(TRAMP_BASE, bytes) };
}

fn patch(field: *const u8, v: u64) {
    let off = sym(field) - sym(core::ptr::addr_of!(ap_tramp_start));
    // SAFETY: as in `install_trampoline`; `off` is inside the trampoline.
    unsafe { write_phys(TRAMP_BASE + off, &v.to_le_bytes()) };
}

/// Start the AP with `apic_id`: it enters `entry(arg)` on `stack_top` with the
/// boot page tables. Waits are in TSC cycles (`cycles_per_ms`).
pub fn start_ap(
    apic_id: u32,
    entry: extern "C" fn(u64) -> !,
    arg: u64,
    stack_top: u64,
    cycles_per_ms: u64,
) {
    patch(core::ptr::addr_of!(ap_cr3), super::boot::boot_pml4_phys());
    patch(core::ptr::addr_of!(ap_stack), stack_top);
    patch(core::ptr::addr_of!(ap_entry), entry as *const () as u64);
    patch(core::ptr::addr_of!(ap_arg), arg);
    let wait = |ms_tenths: u64| {
        let t0 = super::cpu::rdtsc();
        while super::cpu::rdtsc() - t0 < cycles_per_ms * ms_tenths / 10 {
            core::hint::spin_loop();
        }
    };
    apic::send_init(apic_id);
    wait(10);
    let page = (TRAMP_BASE >> 12) as u32;
    apic::send_startup(apic_id, page);
    wait(2);
    apic::send_startup(apic_id, page);
}

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use wire::MAX_CPUS;

/// What a core may need to know about another: its APIC id, whether it is
/// up, whether it runs user code right now, and the last TLB shootdown it took.
struct Core {
    apic_id: AtomicU32,
    online: AtomicBool,
    in_user: AtomicBool,
    tlb_ack: AtomicU64,
}

static CORES: [Core; MAX_CPUS] = [const {
    Core {
        apic_id: AtomicU32::new(0),
        online: AtomicBool::new(false),
        in_user: AtomicBool::new(false),
        tlb_ack: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Generation of the last TLB shootdown started.
static TLB_GEN: AtomicU64 = AtomicU64::new(0);

/// Record the APIC id of core `cpu` (before it is started).
pub fn set_apic_id(cpu: usize, apic_id: u32) {
    CORES[cpu].apic_id.store(apic_id, Ordering::Relaxed);
}

/// Core `cpu` is up and takes interrupts.
pub fn set_online(cpu: usize) {
    CORES[cpu].online.store(true, Ordering::Release);
}

pub fn is_online(cpu: usize) -> bool {
    CORES[cpu].online.load(Ordering::Acquire)
}

/// Whether this core runs user code (and may so hold user translations) now.
pub fn set_in_user(cpu: usize, on: bool) {
    CORES[cpu].in_user.store(on, Ordering::Release);
}

/// Send core `cpu` a reschedule IPI.
pub fn send_resched(cpu: usize) {
    apic::send_ipi(
        CORES[cpu].apic_id.load(Ordering::Relaxed),
        apic::RESCHED_VECTOR,
    );
}

/// Make every online core of `mask` other than this one drop its user
/// translations, and wait until those running user code have done so.
pub fn tlb_shootdown(mask: u64) {
    let me = super::gdt::this_cpu();
    let targets = |c: usize| c != me && mask & (1 << c) != 0 && is_online(c);
    if !(0..MAX_CPUS).any(targets) {
        return;
    }
    let gen = TLB_GEN.fetch_add(1, Ordering::AcqRel) + 1;
    for (c, core) in CORES.iter().enumerate() {
        if targets(c) {
            apic::send_ipi(core.apic_id.load(Ordering::Relaxed), apic::TLB_VECTOR);
        }
    }
    // A core in the kernel takes the IPI before it next runs user code, and
    // the kernel reaches user memory only through the direct map: only cores
    // running user code now must confirm.
    for (c, core) in CORES.iter().enumerate() {
        if !targets(c) {
            continue;
        }
        while core.tlb_ack.load(Ordering::Acquire) < gen && core.in_user.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
}

/// TLB shootdown IPI: flush this core's TLB and acknowledge.
pub fn on_tlb_ipi() {
    super::cpu::flush_tlb();
    CORES[super::gdt::this_cpu()]
        .tlb_ack
        .store(TLB_GEN.load(Ordering::Acquire), Ordering::Release);
    apic::eoi();
}
