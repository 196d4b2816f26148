//! x86-64: boot, descriptor tables, traps and syscall entry, page tables,
//! physical memory access.

pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod mem;
pub mod paging;
pub mod trap;

#[no_mangle]
extern "C" fn kernel_main(start_info: u64) -> ! {
    crate::kernel_main(start_info)
}

/// Bring up this (boot) core: GDT/TSS, IDT and syscall MSRs, PIC masked.
pub fn init_bsp() {
    cpu::mask_pic();
    gdt::init_bsp();
    trap::init();
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

/// Load an address space's page tables.
pub fn activate_page_tables(pml4: u64) {
    if cpu::read_cr3() != pml4 {
        // SAFETY: every user PML4 copies the kernel half from the boot tables
        // (paging::PageTables::new), so the kernel stays mapped.
        unsafe { cpu::write_cr3(pml4) }
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
