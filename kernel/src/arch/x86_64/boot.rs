//! PVH entry: 32-bit protected mode to long mode, boot page tables (identity,
//! direct map at `PHYS_OFFSET`, kernel image at `KERNEL_BASE`), SSE enabled
//! before any Rust code runs.

/// The switch to long mode that the boot CPU (here) and the application
/// processors (smp.rs trampoline) both run, in 32-bit protected mode with the
/// physical address of the PML4 in %edx: PAE and SSE (OSFXSR, OSXMMEXCPT)
/// in CR4, the page tables in CR3, EFER.SCE/LME/NXE, then CR0.PE/MP/WP/PG
/// with EM and TS clear. The caller then far-jumps to 64-bit code.
macro_rules! enable_long_mode {
    () => {
        r#"
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4
    mov %edx, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 0) | (1 << 8) | (1 << 11)), %eax
    wrmsr
    mov %cr0, %eax
    and $~((1 << 2) | (1 << 3)), %eax
    or $((1 << 0) | (1 << 1) | (1 << 16) | (1 << 31)), %eax
    mov %eax, %cr0
"#
    };
}
pub(super) use enable_long_mode;

core::arch::global_asm!(
    r#"
    .section .note.xen, "a"
    .balign 4
    .long 4
    .long 4
    .long 18            /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32

    .section .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %edi              /* PVH start_info (physical) */

    /* 4 page directories of 2 MiB pages: identity of the first 4 GiB. */
    mov $boot_pd, %esi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%esi,%ecx,8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, 4(%esi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov $boot_pdpt_low, %esi
    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, 0(%esi)
    add $4096, %eax
    mov %eax, 8(%esi)
    add $4096, %eax
    mov %eax, 16(%esi)
    add $4096, %eax
    mov %eax, 24(%esi)

    /* The hot-plug window [4 GiB, 260 GiB) as 1 GiB pages: host files
       plugged for shared file mappings (wire::HOTPLUG_BASE/SPACE). */
    mov $4, %ecx
2:  mov %ecx, %eax
    and $3, %eax
    shl $30, %eax
    or $0x83, %eax
    mov %eax, (%esi,%ecx,8)
    mov %ecx, %eax
    shr $2, %eax
    mov %eax, 4(%esi,%ecx,8)
    inc %ecx
    cmp $260, %ecx
    jne 2b

    mov $boot_pdpt_high, %esi
    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, 510*8(%esi)

    mov $boot_pml4, %esi
    mov $boot_pdpt_low, %eax
    or $3, %eax
    mov %eax, 0(%esi)
    mov %eax, 256*8(%esi)
    mov $boot_pdpt_high, %eax
    or $3, %eax
    mov %eax, 511*8(%esi)

    mov $boot_pml4, %edx
"#,
    enable_long_mode!(),
    r#"
    lgdt boot_gdtr
    ljmp $0x08, $boot64

    .code64
boot64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $higher_half_entry, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdtr:
    .word 23
    .long boot_gdt
    .balign 4096
    .global boot_pml4
boot_pml4:
    .space 4096
boot_pdpt_low:
    .space 4096
boot_pdpt_high:
    .space 4096
    .global boot_pd
boot_pd:
    .space 4096 * 4

    .text
    .code64
higher_half_entry:
    movabs $boot_stack_top, %rsp
    mov %rdi, %r12
    movabs $__bss_start, %rdi
    movabs $__bss_end, %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    mov %r12, %rdi
    xor %ebp, %ebp
    call kernel_main
2:  cli
    hlt
    jmp 2b

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
boot_stack:
    .space 65536
boot_stack_top:
"#,
    options(att_syntax)
);

extern "C" {
    static boot_pml4: u8;
    static mut boot_pd: [u64; 2048];
}

/// Mark the 2 MiB page of the boot tables (identity and direct map share
/// them) that holds `phys` uncached, for memory-mapped devices.
pub fn set_direct_map_uncached(phys: u64) {
    let idx = (phys >> 21) as usize;
    assert!(idx < 2048);
    // SAFETY: boot_pd is the live page directory of the first 4 GiB; setting
    // PCD|PWT on one 2 MiB device page changes only its caching, and the TLB
    // is flushed right after. Only the boot CPU does this, before SMP.
    unsafe {
        let pd = core::ptr::addr_of_mut!(boot_pd);
        (*pd)[idx] |= (1 << 3) | (1 << 4);
    }
    super::cpu::flush_tlb();
}

/// Physical address of the boot PML4, whose upper half (direct map and
/// kernel image) every address space shares.
pub fn boot_pml4_phys() -> u64 {
    // The symbol lives in the identity-linked .boot section, so its address is physical.
    core::ptr::addr_of!(boot_pml4) as u64
}
