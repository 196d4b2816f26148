//! Physical memory access through the direct map, the mem* functions the
//! compiler expects, a spin lock, and the kernel heap's `GlobalAlloc` glue.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// All guest RAM (up to 4 GiB) is mapped at `PHYS_OFFSET + phys`.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// End of the direct map set up at boot.
pub const DIRECT_MAP_SIZE: u64 = 4 << 30;

fn virt(phys: u64) -> u64 {
    debug_assert!(phys < DIRECT_MAP_SIZE);
    PHYS_OFFSET + phys
}

// The compiler's memory intrinsics, written in assembly so LLVM cannot turn
// them back into calls to themselves.
core::arch::global_asm!(
    r#"
    .text
    .global memcpy
memcpy:
    mov %rdi, %rax
    mov %rdx, %rcx
    shr $3, %rcx
    rep movsq
    mov %rdx, %rcx
    and $7, %rcx
    rep movsb
    ret
    .global memmove
memmove:
    mov %rdi, %rax
    mov %rdx, %rcx
    cmp %rsi, %rdi
    jbe 1f
    lea -1(%rsi,%rdx), %rsi
    lea -1(%rdi,%rdx), %rdi
    std
    rep movsb
    cld
    ret
1:  rep movsb
    ret
    .global memset
memset:
    /* Large fills store 64 bytes per iteration (four 16-byte SSE stores):
       under TCG a `rep stos` runs one element per translated-block execution,
       which is far slower. The rest is stored bytewise. xmm0 is free here:
       the syscall and interrupt entries save the user's xmm state. */
    mov %rdi, %r9
    movzbl %sil, %eax
    mov $0x0101010101010101, %r8
    imul %r8, %rax
    mov %rdx, %rcx
    shr $6, %rcx
    jz 2f
    movq %rax, %xmm0
    punpcklqdq %xmm0, %xmm0
1:  movups %xmm0, (%rdi)
    movups %xmm0, 16(%rdi)
    movups %xmm0, 32(%rdi)
    movups %xmm0, 48(%rdi)
    add $64, %rdi
    dec %rcx
    jnz 1b
2:  mov %rdx, %rcx
    and $63, %rcx
    rep stosb
    mov %r9, %rax
    ret
    .global memcmp
    .global bcmp
memcmp:
bcmp:
    xor %eax, %eax
    test %rdx, %rdx
    jz 3f
2:  movzbl (%rdi), %eax
    movzbl (%rsi), %ecx
    sub %ecx, %eax
    jnz 3f
    inc %rdi
    inc %rsi
    dec %rdx
    jnz 2b
3:  ret
    .global rust_eh_personality
rust_eh_personality:
    ret
    /* The precompiled alloc has landing pads; panics abort, so this never runs. */
    .global _Unwind_Resume
_Unwind_Resume:
    ud2
"#,
    options(att_syntax)
);

/// Copy `src` into physical memory at `phys`.
pub fn write_phys(phys: u64, src: &[u8]) {
    // SAFETY: the direct map covers all guest RAM; callers pass ranges they own
    // (validated against a region map or the kernel's own allocations).
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), virt(phys) as *mut u8, src.len()) }
}

/// Copy physical memory at `phys` into `dst`.
pub fn read_phys(phys: u64, dst: &mut [u8]) {
    // SAFETY: as for `write_phys`.
    unsafe { core::ptr::copy_nonoverlapping(virt(phys) as *const u8, dst.as_mut_ptr(), dst.len()) }
}

/// Zero `len` bytes of physical memory.
pub fn zero_phys(phys: u64, len: u64) {
    // SAFETY: as for `write_phys`.
    unsafe { core::ptr::write_bytes(virt(phys) as *mut u8, 0, len as usize) }
}

/// Copy `len` bytes between physical ranges that do not overlap.
pub fn copy_phys(dst: u64, src: u64, len: u64) {
    // SAFETY: both ranges are in the direct map and owned by the caller
    // (user regions of two different address spaces in fork).
    unsafe {
        core::ptr::copy_nonoverlapping(virt(src) as *const u8, virt(dst) as *mut u8, len as usize)
    }
}

/// Volatile read of a plain value from physical memory (shared with the host).
pub fn read_phys_obj<T: Copy>(phys: u64) -> T {
    // SAFETY: callers read `Copy` plain-old-data wire structs from the shared
    // area, which is always mapped; unaligned reads are allowed.
    unsafe { core::ptr::read_volatile(virt(phys) as *const T) }
}

/// Volatile write of a plain value into physical memory (shared with the host).
pub fn write_phys_obj<T: Copy>(phys: u64, v: T) {
    // SAFETY: as for `read_phys_obj`.
    unsafe { core::ptr::write_volatile(virt(phys) as *mut T, v) }
}

/// An atomic u32 in physical memory (4-byte aligned).
pub fn phys_atomic_u32(phys: u64) -> &'static AtomicU32 {
    assert!(phys.is_multiple_of(4));
    // SAFETY: aligned, always mapped, and only ever accessed atomically by the kernel.
    unsafe { &*(virt(phys) as *const AtomicU32) }
}

/// An atomic u64 in physical memory (8-byte aligned).
pub fn phys_atomic_u64(phys: u64) -> &'static AtomicU64 {
    assert!(phys.is_multiple_of(8));
    // SAFETY: aligned, always mapped, and only ever accessed atomically by the kernel.
    unsafe { &*(virt(phys) as *const AtomicU64) }
}

/// A slice of `T` carved out of physical memory for the kernel's own lifetime
/// use (allocator metadata). `phys..phys+len*size_of::<T>()` must be reserved
/// for this purpose and never handed out again.
pub fn phys_slice_mut<T: Copy>(phys: u64, len: usize) -> &'static mut [T] {
    assert!(phys.is_multiple_of(core::mem::align_of::<T>() as u64));
    // SAFETY: the caller reserves the range exclusively (see above), it is
    // mapped, aligned for T, and T is plain data for which zero is valid
    // (u8/u32 metadata).
    unsafe { core::slice::from_raw_parts_mut(virt(phys) as *mut T, len) }
}

/// A minimal spin lock. Interrupts are never enabled in kernel mode, so
/// holding it cannot deadlock against an interrupt handler.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the value.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(v: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(v),
        }
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        SpinGuard { lock: self }
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// Kernel heap: power-of-two size classes from 16 B to 2 KiB carved out of
/// pages, larger objects straight from the page allocator.
pub struct KernelHeap {
    free: SpinLock<[u64; NCLASSES]>,
}

const NCLASSES: usize = 8; // 16 .. 2048
const MIN_CLASS_SHIFT: u32 = 4;

fn class_of(size: usize, align: usize) -> Option<usize> {
    let need = size
        .max(align)
        .max(1 << MIN_CLASS_SHIFT)
        .next_power_of_two();
    let shift = need.trailing_zeros();
    let c = (shift - MIN_CLASS_SHIFT) as usize;
    (c < NCLASSES).then_some(c)
}

impl KernelHeap {
    pub const fn new() -> Self {
        Self {
            free: SpinLock::new([0; NCLASSES]),
        }
    }
}

// SAFETY: blocks handed out are disjoint: each comes either from a class free
// list (blocks of exactly that class, carved from whole pages) or from whole
// pages of the page allocator; alignment is at least the class size, which is
// at least the requested alignment.
unsafe impl core::alloc::GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        match class_of(layout.size(), layout.align()) {
            Some(c) => {
                let mut free = self.free.lock();
                if free[c] == 0 {
                    let Some(page) = crate::mm::alloc_kernel_pages(1) else {
                        return core::ptr::null_mut();
                    };
                    let size = 1u64 << (c as u32 + MIN_CLASS_SHIFT);
                    let base = virt(page);
                    let mut off = 4096 - size;
                    loop {
                        // SAFETY: `base + off` is inside the fresh page owned by this heap.
                        unsafe { *((base + off) as *mut u64) = free[c] };
                        free[c] = base + off;
                        if off == 0 {
                            break;
                        }
                        off -= size;
                    }
                }
                let block = free[c];
                // SAFETY: `block` is a free block of this class; its first word is the next link.
                free[c] = unsafe { *(block as *const u64) };
                block as *mut u8
            }
            None => {
                let pages = layout.size().div_ceil(4096) as u64;
                let align = (layout.align() as u64).div_ceil(4096).max(1);
                match crate::mm::alloc_kernel_pages_aligned(pages, align) {
                    Some(p) => virt(p) as *mut u8,
                    None => core::ptr::null_mut(),
                }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        match class_of(layout.size(), layout.align()) {
            Some(c) => {
                let mut free = self.free.lock();
                // SAFETY: `ptr` was returned by `alloc` for this class and is now unused.
                unsafe { *(ptr as *mut u64) = free[c] };
                free[c] = ptr as u64;
            }
            None => {
                let pages = layout.size().div_ceil(4096) as u64;
                crate::mm::free_kernel_pages(ptr as u64 - PHYS_OFFSET, pages);
            }
        }
    }
}
