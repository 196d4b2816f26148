//! Plain data: types whose values are nothing but initialised bytes, so they
//! can be copied to and from user memory as bytes. The one place where that
//! is asserted (`unsafe impl Plain`), type by type.

use linux_abi::uapi;

/// A type without padding, pointers or invalid bit patterns: every byte of
/// a value is initialised, and any bytes of the right length are a value.
///
/// # Safety
/// Implement only for `#[repr(C)]` (or primitive) types with no implicit
/// padding whose fields are all `Plain`.
pub unsafe trait Plain: Copy + 'static {}

/// The bytes of `v`.
pub fn bytes_of<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so all `size_of::<T>()` bytes of `v`
    // are initialised; the slice borrows `v`.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The bytes of `v`, writable: any bytes written leave a valid `T`.
pub fn bytes_of_mut<T: Plain>(v: &mut T) -> &mut [u8] {
    // SAFETY: as for `bytes_of`, and every bit pattern is a valid `T: Plain`,
    // so writes through the slice cannot make `v` invalid; the slice borrows
    // `v` exclusively.
    unsafe { core::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), size_of::<T>()) }
}

/// The all-zero value.
pub fn zeroed<T: Plain>() -> T {
    // SAFETY: zero bytes are a valid `T: Plain`.
    unsafe { core::mem::zeroed() }
}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        // SAFETY: primitives, and Linux structures made of 8-byte fields, or of
        // smaller ones whose padding uapi spells out (its layout assertions
        // check the sizes against Linux's).
        $(unsafe impl Plain for $t {})*
    };
}

plain!(
    u8,
    u16,
    u32,
    u64,
    i32,
    i64,
    uapi::stat,
    uapi::timespec,
    uapi::timeval,
    uapi::timezone,
    uapi::itimerval,
    uapi::itimerspec,
    uapi::sigevent,
    uapi::signalfd_siginfo,
    uapi::clone_args,
    uapi::kernel_sigaction,
    uapi::stack_t,
    uapi::robust_list_head,
    uapi::sysinfo,
    uapi::siginfo,
    uapi::sigcontext,
    uapi::ucontext,
    uapi::rt_sigframe,
    uapi::fpstate,
);

// SAFETY: the shared-area contract's `#[repr(C)]` structs: integer fields
// only, padding spelled out as `_pad` fields (both sides read them as bytes).
unsafe impl Plain for wire::Header {}
// SAFETY: as above (its size and offsets are asserted in wire).
unsafe impl Plain for wire::Slot {}
// SAFETY: as above.
unsafe impl Plain for wire::MirrorEntry {}
// SAFETY: as above.
unsafe impl Plain for wire::SyscallStat {}
// SAFETY: as above.
unsafe impl Plain for wire::StatsHeader {}
// SAFETY: as above.
unsafe impl Plain for wire::CpuStat {}
// SAFETY: as above.
unsafe impl Plain for wire::Mailbox {}

// SAFETY: an array of plain values has no padding between elements.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}
