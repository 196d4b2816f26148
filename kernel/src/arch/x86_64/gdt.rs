//! Per-CPU GDT, TSS (IST stacks for double faults and NMIs) and the per-CPU
//! block that `gs` points at in kernel mode.

use core::arch::asm;
use core::mem::size_of;
use core::sync::atomic::{AtomicPtr, Ordering};

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
const TSS_SEL: u16 = 0x28;

const IST_STACK_SIZE: usize = 16 * 1024;
/// Size of each CPU's boot/idle stack.
pub const IDLE_STACK_SIZE: usize = 64 * 1024;

#[repr(C, packed)]
struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap: u16,
}

/// The per-CPU block; `gs:0` in kernel mode. The syscall entry reads
/// `kernel_rsp` and saves the user stack in `user_rsp` (offsets fixed in asm).
#[repr(C)]
pub struct PerCpu {
    pub self_ptr: u64,
    pub kernel_rsp: u64,
    pub user_rsp: u64,
    pub cpu: u64,
}
pub const PERCPU_KERNEL_RSP: usize = 8;
pub const PERCPU_USER_RSP: usize = 16;
pub const PERCPU_CPU: usize = 24;
const _: () = assert!(core::mem::offset_of!(PerCpu, kernel_rsp) == PERCPU_KERNEL_RSP);
const _: () = assert!(core::mem::offset_of!(PerCpu, user_rsp) == PERCPU_USER_RSP);
const _: () = assert!(core::mem::offset_of!(PerCpu, cpu) == PERCPU_CPU);

/// Everything one CPU needs for itself. All-zero is a valid initial value.
#[repr(C, align(16))]
pub struct CpuTables {
    gdt: [u64; 7],
    tss: Tss,
    percpu: PerCpu,
    ist_df: [u8; IST_STACK_SIZE],
    ist_nmi: [u8; IST_STACK_SIZE],
    idle_stack: [u8; IDLE_STACK_SIZE],
}

static mut BSP: CpuTables = CpuTables {
    gdt: [0; 7],
    tss: Tss {
        _r0: 0,
        rsp: [0; 3],
        _r1: 0,
        ist: [0; 7],
        _r2: 0,
        _r3: 0,
        iomap: 0,
    },
    percpu: PerCpu {
        self_ptr: 0,
        kernel_rsp: 0,
        user_rsp: 0,
        cpu: 0,
    },
    ist_df: [0; IST_STACK_SIZE],
    ist_nmi: [0; IST_STACK_SIZE],
    idle_stack: [0; IDLE_STACK_SIZE],
};

static TABLES: [AtomicPtr<CpuTables>; wire::MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; wire::MAX_CPUS];

/// IST index (1-based) for double faults.
pub const IST_DF: u8 = 1;
/// IST index for NMIs and machine checks.
pub const IST_NMI: u8 = 2;

fn top(s: &[u8]) -> u64 {
    (s.as_ptr() as u64 + s.len() as u64) & !0xf
}

/// Fresh, zeroed tables for an application processor.
pub fn alloc_ap_tables() -> Option<*mut CpuTables> {
    let layout = core::alloc::Layout::new::<CpuTables>();
    // SAFETY: the layout has non-zero size; zeroed memory is a valid CpuTables
    // (plain integers and byte arrays).
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut CpuTables;
    (!p.is_null()).then_some(p)
}

/// Top of CPU `cpu`'s idle stack (valid once its tables exist).
pub fn idle_stack_top(tables: *mut CpuTables) -> u64 {
    // SAFETY: `tables` came from `alloc_ap_tables` or is the BSP's static;
    // only the stack's address is computed.
    unsafe { top(&(*tables).idle_stack) }
}

/// The boot CPU's tables.
pub fn bsp_tables() -> *mut CpuTables {
    core::ptr::addr_of_mut!(BSP)
}

/// Load `tables` as this CPU's GDT and TSS and point `gs` at its per-CPU block.
///
/// # Safety
/// `tables` must be valid for the kernel's lifetime and used by this CPU only.
pub unsafe fn init_cpu(cpu: usize, tables: *mut CpuTables) {
    // SAFETY: guaranteed by the caller: exclusive, 'static tables.
    let t = unsafe { &mut *tables };
    t.tss.iomap = size_of::<Tss>() as u16;
    t.tss.ist[usize::from(IST_DF) - 1] = top(&t.ist_df);
    t.tss.ist[usize::from(IST_NMI) - 1] = top(&t.ist_nmi);
    let idle_top = top(&t.idle_stack);
    t.tss.rsp[0] = idle_top;
    t.percpu.self_ptr = core::ptr::addr_of!(t.percpu) as u64;
    t.percpu.kernel_rsp = idle_top;
    t.percpu.cpu = cpu as u64;

    let tss_base = core::ptr::addr_of!(t.tss) as u64;
    let tss_limit = (size_of::<Tss>() - 1) as u64;
    t.gdt = [
        0,
        0x00af_9a00_0000_ffff, // kernel code 64
        0x00cf_9200_0000_ffff, // kernel data
        0x00cf_f200_0000_ffff, // user data
        0x00af_fa00_0000_ffff, // user code 64
        // TSS (available, type 9), low and high halves
        (tss_limit & 0xffff)
            | ((tss_base & 0xff_ffff) << 16)
            | (0x89u64 << 40)
            | (((tss_limit >> 16) & 0xf) << 48)
            | (((tss_base >> 24) & 0xff) << 56),
        tss_base >> 32,
    ];
    #[repr(C, packed)]
    struct Dtr {
        limit: u16,
        base: u64,
    }
    let gdtr = Dtr {
        limit: (size_of::<[u64; 7]>() - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    // SAFETY: the GDT above is valid for the kernel's lifetime; reloading
    // CS/DS with the same selector values the boot GDT used keeps execution
    // continuous, and the TSS descriptor points at this CPU's TSS.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            gdtr = in(reg) &gdtr,
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) u64::from(KERNEL_DS),
            tss = in(reg) u64::from(TSS_SEL),
            tmp = lateout(reg) _,
        );
        super::cpu::wrmsr(super::cpu::MSR_GS_BASE, t.percpu.self_ptr);
        super::cpu::wrmsr(super::cpu::MSR_KERNEL_GS_BASE, 0);
    }
    TABLES[cpu].store(tables, Ordering::Release);
}

/// Index of the CPU this code runs on (kernel mode only).
pub fn this_cpu() -> usize {
    let v: u64;
    // SAFETY: in kernel mode gs points at this CPU's PerCpu block (set by init_cpu).
    unsafe {
        asm!("mov {}, gs:[{off}]", out(reg) v, off = const PERCPU_CPU, options(nostack, readonly, preserves_flags))
    };
    v as usize
}

/// The stack this CPU enters the kernel on (see `set_kernel_stack`).
pub fn kernel_stack_top() -> u64 {
    let t = TABLES[this_cpu()].load(Ordering::Acquire);
    // SAFETY: `t` is this CPU's own tables (set by init_cpu); only this CPU
    // writes the field.
    unsafe { (*t).percpu.kernel_rsp }
}

/// Make `top` the stack this CPU enters the kernel on (syscalls and
/// interrupts from user mode).
///
/// # Safety
/// `top` must be the 16-byte aligned top of a kernel stack of at least
/// 16 KiB that only the task about to run on this CPU uses, and that stays
/// allocated while this CPU may enter the kernel on it.
pub unsafe fn set_kernel_stack(top: u64) {
    let cpu = this_cpu();
    let t = TABLES[cpu].load(Ordering::Acquire);
    // SAFETY: `t` is this CPU's own tables (set by init_cpu); only this CPU
    // writes these two fields, with interrupts off.
    unsafe {
        (*t).tss.rsp[0] = top;
        (*t).percpu.kernel_rsp = top;
    }
}
