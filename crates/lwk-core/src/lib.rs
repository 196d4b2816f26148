//! Margay LWK core logic: pure, allocation-light algorithms shared by the kernel and host tests.
//!
//! Everything here is `no_std` + `alloc`, free of `unsafe`, floating point and panics on
//! bad input, so it links into the kernel (x86_64, code-model=kernel) and is unit-tested
//! on the host.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod acpi;
pub mod buddy;
pub mod elf;
pub mod pmem;
pub mod region;
pub mod shm;
pub mod stack;

/// Size of a base page in bytes (Linux's, from the ABI crate).
pub use linux_abi::PAGE_SIZE;

/// Round `x` down to a multiple of `align` (a nonzero power of two; never panics).
#[inline]
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !align.wrapping_sub(1)
}

/// Round `x` up to a multiple of `align` (a power of two); `None` on overflow.
#[inline]
pub const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align.wrapping_sub(1)) {
        Some(v) => Some(v & !align.wrapping_sub(1)),
        None => None,
    }
}
