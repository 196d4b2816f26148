//! The IDT, exception/interrupt entry stubs (every gate on an IST stack), the
//! `syscall` entry and the first entry into user mode.

use super::gdt::{IST_DF, IST_NMI, KERNEL_CS, PERCPU_KERNEL_RSP, PERCPU_USER_RSP};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicPtr, Ordering};

/// What the exception entry stub saves, lowest address first: the vector
/// and error code, then the interrupted registers in `UserRegs` layout (the
/// stub moves the vector and error code below the general registers, so the
/// registers and the CPU's iretq frame are one `UserRegs`).
///
/// Only the entry stub makes one (no constructor, no copies), so a
/// `&TrapFrame` always has the stub's fxsave image right below it.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub vector: u64,
    pub error: u64,
    pub regs: UserRegs,
    _entry_only: (),
}

impl TrapFrame {
    pub fn is_user(&self) -> bool {
        self.regs.cs & 3 == 3
    }

    /// Registers in `wire::REG_NAMES` order: `UserRegs`' own, then cr2,
    /// cr3, the error code and the vector.
    pub fn wire_regs(&self, cr2: u64, cr3: u64) -> [u64; 24] {
        const N: usize = core::mem::size_of::<UserRegs>() / 8;
        const _: () = assert!(N == 20 && wire::REG_NAMES.len() == N + 4);
        // SAFETY: UserRegs is repr(C) with 20 u64 fields and no padding
        // (asserted above), so it has the layout of [u64; 20].
        let regs: [u64; N] = unsafe { core::mem::transmute_copy(&self.regs) };
        let mut out = [0u64; 24];
        out[..N].copy_from_slice(&regs);
        out[N..].copy_from_slice(&[cr2, cr3, self.error, self.vector]);
        out
    }
}

/// What the syscall entry saves: the user's registers in `UserRegs` layout
/// (rcx and r11 hold the return address and flags, as `syscall` leaves
/// them; cs and ss are the user selectors). `rax` holds the number on entry
/// and the result on exit; the exit path returns to `rip` with `rflags`.
pub type SyscallFrame = UserRegs;

global_asm!(
    r#"
    .macro isr_stub n
    .balign 16
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    push $0
    .endif
    push $\n
    jmp isr_common
    .endm

    /* `UserRegs`'s general registers, in its order (r15 lowest): each entry
       path pushes rax and rbx (or what stands in their slots) first. */
    .macro push_regs_rcx_to_r15
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    .endm

    .macro pop_user_regs
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    .endm

    .text
    .balign 16
    .global isr_stubs
isr_stubs:
    .altmacro
    .set i, 0
    .rept 256
    isr_stub %i
    .set i, i+1
    .endr
    .noaltmacro

isr_common:
    /* An interrupt or exception keeps the interrupted code's direction
       flag: user code may have set it (std), and the kernel's string
       instructions (memcpy, memset) must run forwards. */
    cld
    testb $3, 24(%rsp)
    jz 1f
    swapgs
    /* Swap rax and rbx into the vector and error slots, right below the
       iretq frame, and push the vector and error code below the registers:
       the frame is then (vector, error, UserRegs). */
1:  xchg %rax, 8(%rsp)
    xchg %rbx, (%rsp)
    push_regs_rcx_to_r15
    push %rax
    push %rbx
    sub $512, %rsp
    fxsave64 (%rsp)
    lea 512(%rsp), %rdi
    call margay_trap
    fxrstor64 (%rsp)
    add $528, %rsp              /* the fxsave image, vector and error code */
    pop_user_regs
    testb $3, 8(%rsp)
    jz 2f
    swapgs
2:  iretq

    /* Kernel Rust code may use xmm0-15 (the precompiled core does), so the
       syscall path saves them and MXCSR. Nothing else of the FPU state is
       touched by the kernel: it has no x87 or AVX code, and legacy SSE
       instructions leave the upper halves of ymm/zmm registers alone. This
       is far cheaper than fxsave/fxrstor (about 650 ns per syscall under TCG). */
    .global syscall_entry
syscall_entry:
    swapgs
    mov %rsp, %gs:{user_rsp}
    mov %gs:{kernel_rsp}, %rsp
    push ${user_ds}
    push %gs:{user_rsp}
    push %r11
    push ${user_cs}
    push %rcx
    push %rax
    push %rbx
    push_regs_rcx_to_r15
    sub $272, %rsp
    movdqa %xmm0, 0(%rsp)
    movdqa %xmm1, 16(%rsp)
    movdqa %xmm2, 32(%rsp)
    movdqa %xmm3, 48(%rsp)
    movdqa %xmm4, 64(%rsp)
    movdqa %xmm5, 80(%rsp)
    movdqa %xmm6, 96(%rsp)
    movdqa %xmm7, 112(%rsp)
    movdqa %xmm8, 128(%rsp)
    movdqa %xmm9, 144(%rsp)
    movdqa %xmm10, 160(%rsp)
    movdqa %xmm11, 176(%rsp)
    movdqa %xmm12, 192(%rsp)
    movdqa %xmm13, 208(%rsp)
    movdqa %xmm14, 224(%rsp)
    movdqa %xmm15, 240(%rsp)
    stmxcsr 256(%rsp)
    lea 272(%rsp), %rdi
    call margay_syscall
    .global syscall_exit
syscall_exit:
    ldmxcsr 256(%rsp)
    movdqa 0(%rsp), %xmm0
    movdqa 16(%rsp), %xmm1
    movdqa 32(%rsp), %xmm2
    movdqa 48(%rsp), %xmm3
    movdqa 64(%rsp), %xmm4
    movdqa 80(%rsp), %xmm5
    movdqa 96(%rsp), %xmm6
    movdqa 112(%rsp), %xmm7
    movdqa 128(%rsp), %xmm8
    movdqa 144(%rsp), %xmm9
    movdqa 160(%rsp), %xmm10
    movdqa 176(%rsp), %xmm11
    movdqa 192(%rsp), %xmm12
    movdqa 208(%rsp), %xmm13
    movdqa 224(%rsp), %xmm14
    movdqa 240(%rsp), %xmm15
    add $272, %rsp
    pop_user_regs
    /* sysret returns to rcx with flags r11: the frame's rip and rflags. */
    pop %rcx
    add $8, %rsp
    pop %r11
    pop %rsp
    swapgs
    sysretq

    /* switch_stacks(prev_rsp: *mut u64, next_rsp: u64): save the callee-saved
       registers on this stack, store its pointer, continue on `next`. */
    .global switch_stacks
switch_stacks:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdi)
    mov %rsi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    /* First code of a new thread: finish the switch, then leave through the
       syscall exit path with the registers its creator prepared. */
    .global new_task_start
new_task_start:
    call margay_new_task
    jmp syscall_exit

    .global kthread_start
kthread_start:
    call *%r12
    ud2

    /* resume_user(regs: *const UserRegs, fpu: *const FpuArea): load the FPU
       image and every general register, then iretq to user mode. */
    .global resume_user
resume_user:
    fxrstor64 (%rsi)
    mov %rdi, %rsp
    pop_user_regs
    swapgs
    iretq

    .global enter_user
enter_user:
    swapgs
    push ${user_ds}
    push %rsi
    push $0x202
    push ${user_cs}
    push %rdi
    fninit
    ldmxcsr mxcsr_default(%rip)
    pxor %xmm0, %xmm0
    pxor %xmm1, %xmm1
    pxor %xmm2, %xmm2
    pxor %xmm3, %xmm3
    pxor %xmm4, %xmm4
    pxor %xmm5, %xmm5
    pxor %xmm6, %xmm6
    pxor %xmm7, %xmm7
    pxor %xmm8, %xmm8
    pxor %xmm9, %xmm9
    pxor %xmm10, %xmm10
    pxor %xmm11, %xmm11
    pxor %xmm12, %xmm12
    pxor %xmm13, %xmm13
    pxor %xmm14, %xmm14
    pxor %xmm15, %xmm15
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    iretq

    .section .rodata
    .balign 4
mxcsr_default:
    .long 0x1f80
    .text
"#,
    user_rsp = const PERCPU_USER_RSP,
    kernel_rsp = const PERCPU_KERNEL_RSP,
    user_ds = const super::gdt::USER_DS as u64,
    user_cs = const super::gdt::USER_CS as u64,
    options(att_syntax)
);

extern "C" {
    static isr_stubs: u8;
    fn syscall_entry();
    fn new_task_start();
    fn kthread_start();
    fn enter_user(rip: u64, rsp: u64) -> !;
    fn switch_stacks(prev_rsp: *mut u64, next_rsp: u64);
    fn resume_user(regs: *const UserRegs, fpu: *const FpuArea) -> !;
}

/// The complete user register state, in the order `resume_user` pops it
/// (general registers, then an iretq frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl UserRegs {
    /// The state a syscall returns with (rcx/r11 are what sysret would leave).
    pub fn from_syscall(f: &SyscallFrame) -> Self {
        UserRegs {
            rcx: f.rip,
            r11: f.rflags,
            cs: u64::from(super::gdt::USER_CS),
            ss: u64::from(super::gdt::USER_DS),
            ..*f
        }
    }

    /// The state an interrupt or exception from user mode interrupted.
    pub fn from_trap(f: &TrapFrame) -> Self {
        f.regs
    }

    /// A syscall's six arguments.
    pub fn args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

/// Return to user mode with exactly `regs` and `fpu` (signal delivery and
/// rt_sigreturn). `regs` must describe user mode (cs/ss are forced here).
pub fn resume(regs: &UserRegs, fpu: &FpuArea) -> ! {
    let mut r = *regs;
    r.cs = u64::from(super::gdt::USER_CS);
    r.ss = u64::from(super::gdt::USER_DS);
    // Only user-changeable flags survive; IF is always on.
    r.rflags = (r.rflags & 0x0000_0000_0025_0fd5) | 0x202;
    // SAFETY: `r` lives on this kernel stack, below anything still in use;
    // resume_user reads it with rsp pointed at it and leaves with iretq,
    // never touching the stack again. Selectors and flags are sanitised above.
    unsafe { resume_user(&r, fpu) }
}

/// The FPU image of a thread stopped in a syscall: live x87 state, with
/// xmm0-15 and MXCSR from what the syscall entry saved below `frame` (the
/// running syscall's entry frame).
pub fn fpu_of_syscall(frame: &SyscallFrame) -> FpuArea {
    assert_eq!(
        frame as *const SyscallFrame as u64,
        entry_frame_addr(),
        "fpu_of_syscall: not the running syscall's frame"
    );
    let mut a = FpuArea::current();
    let xmm = saved_xmm();
    a.0[160..416].copy_from_slice(&xmm[..256]);
    a.0[24..28].copy_from_slice(&xmm[256..260]);
    a
}

/// The FPU image the interrupt entry saved below `frame` (fxsave64).
pub fn fpu_of_trap(frame: &TrapFrame) -> FpuArea {
    let mut a = FpuArea([0; 512]);
    let at = frame as *const TrapFrame as u64 - 512;
    // SAFETY: isr_common stores a 512-byte fxsave image right below the frame.
    unsafe { core::ptr::copy_nonoverlapping(at as *const u8, a.0.as_mut_ptr(), 512) };
    a
}

/// Bytes the syscall entry keeps below the `SyscallFrame` for xmm0-15 and MXCSR.
pub const XMM_AREA: u64 = 272;

/// Switch kernel stacks: save the current context into `*prev_rsp` and resume
/// the one saved at `next_rsp`.
///
/// # Safety
/// `next_rsp` must be a context saved by `switch_stacks` or built by
/// `build_new_task_stack`, whose stack is not in use elsewhere; `prev_rsp`
/// must be writable and stay valid until that context is resumed.
pub unsafe fn switch_to(prev_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe { switch_stacks(prev_rsp, next_rsp) }
}

/// Where the syscall entry put the running syscall's frame: right below the
/// top of this CPU's kernel stack.
fn entry_frame_addr() -> u64 {
    super::gdt::kernel_stack_top() - core::mem::size_of::<SyscallFrame>() as u64
}

/// Prepare a new thread's kernel stack `stack` (its own, not in use): the
/// first switch to the returned stack pointer leaves to user mode with
/// registers `regs` and xmm/MXCSR state `xmm`.
pub fn build_new_task_stack(
    stack: &mut [u8],
    regs: &SyscallFrame,
    xmm: &[u8; XMM_AREA as usize],
) -> u64 {
    const NEED: usize = core::mem::size_of::<SyscallFrame>() + XMM_AREA as usize + 8 * 7;
    let base = stack.as_mut_ptr() as u64;
    let top = (base + stack.len() as u64) & !0xf;
    assert!(top - base >= NEED as u64, "kernel stack too small");
    let frame_at = top - core::mem::size_of::<SyscallFrame>() as u64;
    let xmm_at = frame_at - XMM_AREA;
    let regs_at = xmm_at - 8 * 7;
    // SAFETY: [regs_at, top) lies inside `stack` (checked above), which the
    // caller holds exclusively: 160 + 272 + 56 bytes are written.
    unsafe {
        core::ptr::write_unaligned(frame_at as *mut SyscallFrame, *regs);
        core::ptr::copy_nonoverlapping(xmm.as_ptr(), xmm_at as *mut u8, xmm.len());
        let words = regs_at as *mut u64;
        for i in 0..6 {
            words.add(i).write(0);
        }
        words.add(6).write(new_task_start as *const () as u64);
    }
    regs_at
}

/// The xmm/MXCSR area the syscall entry saved for the running syscall (the
/// creator's state for a new thread, a signal frame's fpstate).
pub fn saved_xmm() -> [u8; XMM_AREA as usize] {
    let mut out = [0u8; XMM_AREA as usize];
    let at = entry_frame_addr() - XMM_AREA;
    // SAFETY: syscall_entry saved XMM_AREA bytes right below its frame at
    // the top of this CPU's kernel stack, which the running task owns.
    unsafe { core::ptr::copy_nonoverlapping(at as *const u8, out.as_mut_ptr(), out.len()) };
    out
}

/// Prepare a kernel-only context on `top` that runs `entry` when first
/// switched to (the idle loop of the boot CPU).
///
/// # Safety
/// The 64 bytes below `top` must belong to a stack nothing uses yet.
pub(super) unsafe fn build_kernel_thread_stack(top: u64, entry: extern "C" fn() -> !) -> u64 {
    let regs_at = top - 8 * 8;
    // SAFETY: guaranteed by the caller; 64 bytes are written.
    unsafe {
        let regs = regs_at as *mut u64;
        // Popped as r15, r14, r13, r12, rbx, rbp; r12 carries the entry point.
        for i in 0..6 {
            regs.add(i).write(0);
        }
        regs.add(3).write(entry as *const () as u64);
        regs.add(6).write(kthread_start as *const () as u64);
        regs.add(7).write(0);
    }
    regs_at
}

/// Save the x87/SSE state into `area`.
pub fn fpu_save(area: &mut FpuArea) {
    // SAFETY: `area` is 512 bytes, 16-byte aligned, as fxsave64 requires.
    unsafe { asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack)) }
}

/// Load the x87/SSE state from `area` (written by `fpu_save` or `FpuArea::new`).
pub fn fpu_restore(area: &FpuArea) {
    // SAFETY: as for `fpu_save`; the area holds a valid fxsave image.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack)) }
}

/// An fxsave image.
#[repr(C, align(16))]
pub struct FpuArea(pub [u8; 512]);

impl FpuArea {
    /// The state after execve: x87 control word 0x37f, MXCSR 0x1f80, all
    /// registers zero.
    pub fn initial() -> Self {
        let mut a = FpuArea([0; 512]);
        a.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        a.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        a.0[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        a
    }

    /// The state of a fresh thread: a copy of the current CPU state.
    pub fn current() -> Self {
        let mut a = FpuArea([0; 512]);
        fpu_save(&mut a);
        a
    }
}

#[repr(C, align(16))]
struct Idt([u64; 512]);
static mut IDT: Idt = Idt([0; 512]);

/// Fill and load the IDT; program the `syscall` MSRs.
pub fn init() {
    let base = core::ptr::addr_of!(isr_stubs) as u64;
    // SAFETY: called once during single-threaded boot; no other reference to IDT exists.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
    for v in 0..256usize {
        let handler = base + 16 * v as u64;
        // Only double faults and NMIs/machine checks use IST stacks: everything
        // else arrives either from user mode (on the thread's kernel stack,
        // TSS.rsp0) or in the idle loop's hlt, where no red zone is live.
        let ist = match v {
            8 => IST_DF,
            2 | 18 => IST_NMI,
            _ => 0,
        };
        // Interrupt gate (type 0xE), present, DPL 0; DPL 3 for the vectors
        // user code may raise with `int3` and `into` (a breakpoint, SIGTRAP).
        let attr: u64 = if v == 3 || v == 4 { 0xee } else { 0x8e };
        let lo = (handler & 0xffff)
            | (u64::from(KERNEL_CS) << 16)
            | (u64::from(ist) << 32)
            | (attr << 40)
            | (((handler >> 16) & 0xffff) << 48);
        idt.0[2 * v] = lo;
        idt.0[2 * v + 1] = handler >> 32;
    }
    load_on_this_cpu();
}

/// Load the (shared) IDT and program this CPU's `syscall` MSRs.
pub fn load_on_this_cpu() {
    #[repr(C, packed)]
    struct Dtr {
        limit: u16,
        base: u64,
    }
    let base = core::ptr::addr_of!(IDT) as u64;
    let idtr = Dtr {
        limit: (16 * 256 - 1) as u16,
        base,
    };
    // SAFETY: the IDT is static and was fully populated by `init` on the boot CPU.
    unsafe { asm!("lidt [{}]", in(reg) &idtr, options(nostack)) };

    use super::cpu::{wrmsr, MSR_FMASK, MSR_LSTAR, MSR_STAR};
    // SAFETY: STAR selects the GDT layout of gdt.rs (kernel 0x08/0x10, user
    // base 0x10 so sysret loads CS 0x23 and SS 0x1b); LSTAR points at the
    // entry stub; FMASK clears IF, TF, DF, AC and NT on entry.
    unsafe {
        wrmsr(MSR_STAR, (0x10u64 << 48) | (u64::from(KERNEL_CS) << 32));
        wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        wrmsr(MSR_FMASK, 0x4_7700);
    }
}

/// Enter user mode at `rip` with stack `rsp`, clean registers and FPU state.
pub fn jump_to_user(rip: u64, rsp: u64) -> ! {
    // SAFETY: the address space with the user's mappings is loaded by the
    // caller; `enter_user` never returns and uses only the given values.
    unsafe { enter_user(rip, rsp) }
}

/// The kernel's handlers for what the entry stubs catch, registered once at
/// boot (so `arch` calls up into the kernel without importing it).
pub struct EntryPoints {
    /// An exception or interrupt.
    pub trap: fn(&mut TrapFrame),
    /// A `syscall` from user mode.
    pub syscall: fn(&mut SyscallFrame),
    /// The first code of a new thread, before it leaves to user mode.
    pub new_task: fn(),
}

static ENTRY_POINTS: AtomicPtr<EntryPoints> = AtomicPtr::new(core::ptr::null_mut());

/// Register the kernel's entry points (first thing at boot).
pub fn set_entry_points(e: &'static EntryPoints) {
    ENTRY_POINTS.store(
        e as *const EntryPoints as *mut EntryPoints,
        Ordering::Release,
    );
}

fn entry_points() -> &'static EntryPoints {
    let p = ENTRY_POINTS.load(Ordering::Acquire);
    if p.is_null() {
        // A trap before the kernel registered its handlers: nothing to report to.
        super::cpu::halt_forever();
    }
    // SAFETY: the only non-null value stored is a `&'static EntryPoints`.
    unsafe { &*p }
}

#[no_mangle]
extern "C" fn margay_trap(frame: &mut TrapFrame) {
    (entry_points().trap)(frame);
}

#[no_mangle]
extern "C" fn margay_syscall(frame: &mut SyscallFrame) {
    (entry_points().syscall)(frame);
}

#[no_mangle]
extern "C" fn margay_new_task() {
    (entry_points().new_task)();
}
