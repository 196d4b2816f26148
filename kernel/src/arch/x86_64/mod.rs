//! x86-64: boot, descriptor tables, traps and syscall entry, page tables,
//! physical memory access.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod frames;
pub mod gdt;
pub mod mem;
pub mod paging;
pub mod plain;
pub mod smp;
pub mod trap;

#[no_mangle]
extern "C" fn kernel_main(start_info: u64) -> ! {
    crate::kernel_main(start_info)
}

/// Bring up this (boot) core: GDT/TSS, IDT and syscall MSRs, PIC masked.
pub fn init_bsp() {
    cpu::mask_pic();
    // SAFETY: the BSP's static tables are used by this CPU only.
    unsafe { gdt::init_cpu(0, gdt::bsp_tables()) };
    trap::init();
}

/// Per-CPU setup of application processor `cpu` (started by `start_cpu`),
/// on its idle stack.
pub fn init_ap(cpu: usize) {
    let tables = AP_TABLES[cpu].load(core::sync::atomic::Ordering::Acquire);
    assert!(!tables.is_null(), "cpu {cpu} was not started");
    // SAFETY: `tables` was allocated by `start_cpu` for this CPU alone and
    // is never freed.
    unsafe { gdt::init_cpu(cpu, tables) };
    trap::load_on_this_cpu();
    apic::init_local();
}

/// Start CPU `cpu` (APIC id `apic_id`): it runs `entry(cpu)` on its own
/// idle stack. None when there is no memory for its tables.
pub fn start_cpu(
    cpu: usize,
    apic_id: u32,
    entry: extern "C" fn(u64) -> !,
    cycles_per_ms: u64,
) -> Option<()> {
    let tables = gdt::alloc_ap_tables()?;
    AP_TABLES[cpu].store(tables, core::sync::atomic::Ordering::Release);
    smp::start_ap(
        apic_id,
        entry,
        cpu as u64,
        gdt::idle_stack_top(tables),
        cycles_per_ms,
    );
    Some(())
}

static AP_TABLES: [core::sync::atomic::AtomicPtr<gdt::CpuTables>; wire::MAX_CPUS] =
    [const { core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()) }; wire::MAX_CPUS];

static BSP_IDLE_BUILT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The boot CPU's idle context: a kernel context on its idle stack that runs
/// `entry` when first switched to. Built once (the stack is in use after).
pub fn bsp_idle_context(entry: extern "C" fn() -> !) -> u64 {
    assert!(
        !BSP_IDLE_BUILT.swap(true, core::sync::atomic::Ordering::AcqRel),
        "the boot CPU's idle context is built once"
    );
    let top = gdt::idle_stack_top(gdt::bsp_tables());
    // SAFETY: the boot CPU runs on the boot stack until its first switch, so
    // its idle stack is unused; this runs once (checked above).
    unsafe { trap::build_kernel_thread_stack(top, entry) }
}

/// Enable interrupts and halt until one arrives, then disable them again.
pub fn idle_halt() {
    // SAFETY: `sti; hlt` is atomic with respect to interrupts (the sti shadow),
    // so a wakeup cannot be lost between them; handlers run on this stack
    // (IST 0), where no red zone is live.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

extern "C" {
    static __kernel_end: u8;
}

/// Physical end of the kernel image (bss included).
pub fn kernel_phys_end() -> u64 {
    core::ptr::addr_of!(__kernel_end) as u64 - 0xffff_ffff_8000_0000
}

#[repr(C, align(4096))]
struct BootArena([u8; 16 * 4096]);
static BOOT_ARENA: BootArena = BootArena([0; 16 * 4096]);

/// Physical address of 16 pages inside the kernel image for the heap's use
/// before the page allocator exists. They are written only through the
/// direct map, never through this static.
pub fn boot_arena_phys() -> u64 {
    core::ptr::addr_of!(BOOT_ARENA) as u64 - 0xffff_ffff_8000_0000
}

/// Load an address space's page tables: the root of live `PageTables` or
/// the boot tables (anything else is refused with a panic).
pub fn activate_page_tables(pml4: u64) {
    if cpu::read_cr3() != pml4 {
        assert!(
            pml4 == boot::boot_pml4_phys() || paging::is_live_root(pml4),
            "activate_page_tables: {pml4:#x} is not a page-table root"
        );
        // SAFETY: `pml4` is the boot PML4 or the root of live PageTables
        // (checked above), whose kernel half is copied from the boot tables
        // (paging::PageTables::new), so the kernel stays mapped.
        unsafe { cpu::write_cr3(pml4) }
    }
}

/// Save the running task's user FS and GS bases.
pub fn save_user_segment_bases(
    fs: &core::sync::atomic::AtomicU64,
    gs: &core::sync::atomic::AtomicU64,
) {
    use core::sync::atomic::Ordering::Relaxed;
    fs.store(cpu::rdmsr(cpu::MSR_FS_BASE), Relaxed);
    gs.store(cpu::rdmsr(cpu::MSR_KERNEL_GS_BASE), Relaxed);
}

/// The running task's user FS and GS bases, read from the CPU.
pub fn user_segment_bases() -> (u64, u64) {
    (
        cpu::rdmsr(cpu::MSR_FS_BASE),
        cpu::rdmsr(cpu::MSR_KERNEL_GS_BASE),
    )
}

/// Load a task's user FS and GS bases (kernel mode: the user GS base lives in
/// KERNEL_GS_BASE until swapgs).
pub fn load_user_segment_bases(fs: u64, gs: u64) {
    // SAFETY: both values were saved from (or validated for) user mode.
    unsafe {
        cpu::wrmsr(cpu::MSR_FS_BASE, fs);
        cpu::wrmsr(cpu::MSR_KERNEL_GS_BASE, gs);
    }
}

/// Set the user's FS base (`fs == true`) or GS base. While in the kernel the
/// user's GS base sits in KERNEL_GS_BASE (swapgs).
pub fn set_user_segment_base(fs: bool, base: u64) {
    // SAFETY: `base` is a canonical user address (checked by the caller);
    // these MSRs only affect user-mode segment bases.
    unsafe {
        cpu::wrmsr(
            if fs {
                cpu::MSR_FS_BASE
            } else {
                cpu::MSR_KERNEL_GS_BASE
            },
            base,
        )
    }
}

/// Read an unmapped kernel address: a page fault in kernel mode (test hook).
pub fn touch_unmapped_kernel_address() {
    let p = 0xffff_c000_dead_b000u64 as *const u64;
    // SAFETY: deliberately faults; the page-fault handler never returns for
    // kernel-mode faults (it reports a panic and stops the partition).
    let _ = unsafe { core::ptr::read_volatile(p) };
}
