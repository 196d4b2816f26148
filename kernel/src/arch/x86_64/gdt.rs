//! Per-CPU GDT, TSS (with IST stacks for every exception) and the per-CPU
//! block that `gs` points at in kernel mode.

use core::arch::asm;
use core::mem::size_of;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
const TSS_SEL: u16 = 0x28;

const IST_STACK_SIZE: usize = 16 * 1024;
const KERNEL_STACK_SIZE: usize = 64 * 1024;

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

#[repr(C, align(16))]
struct Stack<const N: usize>([u8; N]);

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
const _: () = assert!(core::mem::offset_of!(PerCpu, kernel_rsp) == PERCPU_KERNEL_RSP);
const _: () = assert!(core::mem::offset_of!(PerCpu, user_rsp) == PERCPU_USER_RSP);

struct CpuTables {
    gdt: [u64; 7],
    tss: Tss,
    percpu: PerCpu,
    ist_exc: Stack<IST_STACK_SIZE>,
    ist_df: Stack<IST_STACK_SIZE>,
    ist_nmi: Stack<IST_STACK_SIZE>,
    kstack: Stack<KERNEL_STACK_SIZE>,
}

// One core for now; per-CPU arrays come with SMP.
static mut BSP: CpuTables = CpuTables {
    gdt: [0; 7],
    tss: Tss {
        _r0: 0,
        rsp: [0; 3],
        _r1: 0,
        ist: [0; 7],
        _r2: 0,
        _r3: 0,
        iomap: size_of::<Tss>() as u16,
    },
    percpu: PerCpu {
        self_ptr: 0,
        kernel_rsp: 0,
        user_rsp: 0,
        cpu: 0,
    },
    ist_exc: Stack([0; IST_STACK_SIZE]),
    ist_df: Stack([0; IST_STACK_SIZE]),
    ist_nmi: Stack([0; IST_STACK_SIZE]),
    kstack: Stack([0; KERNEL_STACK_SIZE]),
};

/// IST index (1-based) used by ordinary exceptions and interrupts.
pub const IST_EXC: u8 = 1;
/// IST index for double faults.
pub const IST_DF: u8 = 2;
/// IST index for NMIs and machine checks.
pub const IST_NMI: u8 = 3;

/// Load this core's GDT and TSS, set up `gs` for the per-CPU block.
pub fn init_bsp() {
    // SAFETY: called once on the boot CPU before anything else uses these
    // tables; no other reference to BSP exists.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(BSP) };
    let top = |s: &[u8]| s.as_ptr() as u64 + s.len() as u64;
    t.tss.ist[usize::from(IST_EXC) - 1] = top(&t.ist_exc.0);
    t.tss.ist[usize::from(IST_DF) - 1] = top(&t.ist_df.0);
    t.tss.ist[usize::from(IST_NMI) - 1] = top(&t.ist_nmi.0);
    let kstack_top = top(&t.kstack.0);
    t.tss.rsp[0] = kstack_top;
    t.percpu.self_ptr = core::ptr::addr_of!(t.percpu) as u64;
    t.percpu.kernel_rsp = kstack_top;

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
    // SAFETY: the GDT above is static and valid; reloading CS/DS with the same
    // selectors the boot GDT used keeps execution continuous, and the TSS
    // descriptor points at a static TSS.
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
}
