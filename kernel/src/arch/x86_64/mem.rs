//! Physical memory access through the direct map, the mem* functions the
//! compiler expects, a spin lock, and the kernel heap's `GlobalAlloc` glue.

pub use super::plain::Plain;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// All guest RAM (up to 4 GiB) is mapped at `PHYS_OFFSET + phys`.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// End of the direct map set up at boot: the first 4 GiB (RAM, devices)
/// with 2 MiB pages, then the hot-plug window with 1 GiB pages.
pub const DIRECT_MAP_SIZE: u64 = wire::HOTPLUG_BASE + wire::HOTPLUG_SPACE;
// boot.rs maps 1 GiB pages 4..260 for the window.
const _: () = assert!(wire::HOTPLUG_BASE == 4 << 30 && DIRECT_MAP_SIZE == 260 << 30);

/// Direct-map address of `phys`.
pub(super) fn virt(phys: u64) -> u64 {
    assert!(
        phys < DIRECT_MAP_SIZE,
        "physical address {phys:#x} beyond the direct map"
    );
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

/// A bounded window of physical memory, reached through the direct map.
/// Only `arch` makes one: for frames the page allocator handed out
/// (`Frames`) and for the area shared with the host (`shared_area`). Every
/// access is checked against the window (a real check, not a debug one), so
/// safe code can touch only memory it was given. Accesses go through raw
/// pointers (the memory may be shared with the host or mapped to user
/// space), never through Rust references other than atomics.
pub struct PhysRange {
    start: u64,
    len: u64,
}

impl PhysRange {
    /// A window onto `[start, start+len)`, which the caller (in `arch`)
    /// owns or shares with the host for as long as the window lives.
    pub(in crate::arch) const fn new(start: u64, len: u64) -> Self {
        Self { start, len }
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.start
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether `[phys, phys+len)` lies inside this window.
    pub fn contains(&self, phys: u64, len: u64) -> bool {
        phys >= self.start
            && phys
                .checked_add(len)
                .is_some_and(|end| end <= self.start + self.len)
    }

    /// Direct-map address of `[off, off+len)`, checked against the window.
    fn at(&self, off: u64, len: u64) -> u64 {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "physical access [{off:#x}+{len:#x}) outside a window of {:#x} bytes at {:#x}",
            self.len,
            self.start
        );
        virt(self.start + off)
    }

    /// Copy `dst.len()` bytes from offset `off`.
    pub fn read(&self, off: u64, dst: &mut [u8]) {
        let p = self.at(off, dst.len() as u64);
        // SAFETY: `at` checked that the bytes lie inside this window, which
        // is mapped (direct map) and readable; `dst` is a distinct buffer.
        unsafe { core::ptr::copy_nonoverlapping(p as *const u8, dst.as_mut_ptr(), dst.len()) }
    }

    /// Copy `src` to offset `off`.
    pub fn write(&self, off: u64, src: &[u8]) {
        let p = self.at(off, src.len() as u64);
        // SAFETY: inside this window (checked), which its holder may write;
        // no Rust reference points into it.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), p as *mut u8, src.len()) }
    }

    /// Zero `len` bytes at offset `off`.
    pub fn zero(&self, off: u64, len: u64) {
        let p = self.at(off, len);
        // SAFETY: as for `write`.
        unsafe { core::ptr::write_bytes(p as *mut u8, 0, len as usize) }
    }

    /// Copy `len` bytes from `src` at `src_off` to this window at `off`.
    pub fn copy_from(&self, off: u64, src: &PhysRange, src_off: u64, len: u64) {
        let d = self.at(off, len);
        let s = src.at(src_off, len);
        // SAFETY: both ranges are checked against their windows; windows of
        // distinct owners do not overlap, and within one window `copy`
        // allows overlap.
        unsafe { core::ptr::copy(s as *const u8, d as *mut u8, len as usize) }
    }

    /// Volatile read of a plain value at offset `off` (unaligned allowed).
    pub fn read_obj<T: Plain>(&self, off: u64) -> T {
        let p = self.at(off, core::mem::size_of::<T>() as u64);
        // SAFETY: inside the window (checked); `T: Plain` accepts any bytes.
        unsafe { core::ptr::read_volatile(p as *const T) }
    }

    /// Volatile write of a plain value at offset `off`.
    pub fn write_obj<T: Plain>(&self, off: u64, v: T) {
        let p = self.at(off, core::mem::size_of::<T>() as u64);
        // SAFETY: inside the window (checked), which its holder may write.
        unsafe { core::ptr::write_volatile(p as *mut T, v) }
    }

    /// The atomic u32 at offset `off` (4-byte aligned).
    pub fn atomic_u32(&self, off: u64) -> &AtomicU32 {
        let p = self.at(off, 4);
        assert!(p.is_multiple_of(4), "unaligned atomic at {p:#x}");
        // SAFETY: inside the window (checked) and aligned; the borrow of
        // `self` keeps the window (so the memory) alive for the reference.
        unsafe { &*(p as *const AtomicU32) }
    }

    /// The atomic u64 at offset `off` (8-byte aligned).
    pub fn atomic_u64(&self, off: u64) -> &AtomicU64 {
        let p = self.at(off, 8);
        assert!(p.is_multiple_of(8), "unaligned atomic at {p:#x}");
        // SAFETY: as for `atomic_u32`.
        unsafe { &*(p as *const AtomicU64) }
    }
}

static SHARED: PhysRange = PhysRange::new(wire::SHARED_PHYS, wire::SHARED_SIZE);

/// The area shared with the host (wire layout at `SHARED_PHYS`), reserved
/// from the page allocator at boot and never handed out.
pub fn shared_area() -> &'static PhysRange {
    &SHARED
}

/// Copy firmware memory (boot info, ACPI tables) at `phys` into `dst`:
/// reading only, within the direct map; false when out of it.
pub fn read_firmware(phys: u64, dst: &mut [u8]) -> bool {
    let ok = phys
        .checked_add(dst.len() as u64)
        .is_some_and(|end| end <= DIRECT_MAP_SIZE);
    if ok {
        // SAFETY: the direct map covers [0, DIRECT_MAP_SIZE) (checked); the
        // bytes are copied into a distinct buffer and never written.
        unsafe {
            core::ptr::copy_nonoverlapping(virt(phys) as *const u8, dst.as_mut_ptr(), dst.len())
        }
    }
    ok
}

/// Write `src` to physical memory at `phys`.
///
/// # Safety
/// `[phys, phys+len)` must be memory nothing else uses (the AP trampoline's
/// low page).
pub(super) unsafe fn write_phys(phys: u64, src: &[u8]) {
    // SAFETY: guaranteed by the caller.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), virt(phys) as *mut u8, src.len()) }
}

/// A slice of `T` carved out of physical memory (page tables, allocator
/// metadata).
///
/// # Safety
/// `phys..phys+len*size_of::<T>()` must be owned by the caller for the
/// slice's whole use, aligned for `T`, and hold valid `T`s; no other
/// reference to it may be live meanwhile.
pub(super) unsafe fn phys_slice_mut<T: Plain>(phys: u64, len: usize) -> &'static mut [T] {
    assert!(phys.is_multiple_of(core::mem::align_of::<T>() as u64));
    // SAFETY: guaranteed by the caller (see above); mapped by the direct map.
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
/// pages, larger objects straight from the page allocator. Size-class pages
/// and objects up to `RESERVE_OBJECT_PAGES` pages (the kernel's own records)
/// may use the page allocator's reserve; larger ones (kernel stacks, I/O
/// buffers: sized by what a program asks for) must leave it, and their
/// callers allocate them fallibly (`try_reserve`).
pub struct KernelHeap {
    free: SpinLock<[u64; NCLASSES]>,
}

const NCLASSES: usize = 8; // 16 .. 2048
const MIN_CLASS_SHIFT: u32 = 4;
/// Largest whole-page object that may come from the reserve (a copy of a
/// full region map is 40 KiB; a kernel stack, 64 KiB, is not one of them).
const RESERVE_OBJECT_PAGES: u64 = 12;

/// Pages the heap holds from the page allocator, and the most it ever held.
static HEAP_PAGES: AtomicU64 = AtomicU64::new(0);
static HEAP_PEAK: AtomicU64 = AtomicU64::new(0);

fn heap_took(pages: u64) {
    let now = HEAP_PAGES.fetch_add(pages, Ordering::Relaxed) + pages;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

/// Bytes the kernel heap holds now and its high-water mark.
pub fn heap_usage() -> (u64, u64) {
    (
        HEAP_PAGES.load(Ordering::Relaxed) * 4096,
        HEAP_PEAK.load(Ordering::Relaxed) * 4096,
    )
}

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
        use super::frames::Pool;
        match class_of(layout.size(), layout.align()) {
            Some(c) => {
                let mut free = self.free.lock();
                if free[c] == 0 {
                    let Some(page) = super::frames::alloc_raw(1, 1, Pool::Reserve) else {
                        return core::ptr::null_mut();
                    };
                    heap_took(1);
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
                let pool = if pages <= RESERVE_OBJECT_PAGES {
                    Pool::Reserve
                } else {
                    Pool::Bounded
                };
                match super::frames::alloc_raw(pages, align, pool) {
                    Some(p) => {
                        heap_took(pages);
                        virt(p) as *mut u8
                    }
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
                HEAP_PAGES.fetch_sub(pages, Ordering::Relaxed);
                super::frames::free_raw(ptr as u64 - PHYS_OFFSET, pages);
            }
        }
    }
}
