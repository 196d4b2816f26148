//! The architecture boundary: everything that needs `unsafe` or `asm!` lives
//! below this module, behind safe functions.
#![allow(unsafe_code)]

mod x86_64;
pub use self::x86_64::*;
