//! How user memory is accounted: address space reserved with PROT_NONE
//! takes no partition memory until pieces of it are opened with mprotect
//! (glibc's per-thread malloc arenas reserve 64 MiB each), compared with a
//! native run.

mod common;

use common::*;

/// 24 threads that malloc (24 arenas, 1.5 GiB reserved) and a 4 GiB
/// PROT_NONE reservation in a 512 MiB partition; opened pieces are zeroed
/// memory that forks copy, the rest stays inaccessible.
#[test]
fn prot_none_reservations_take_no_memory_until_opened() {
    compare_with_native(
        &Invocation::new(program("reserve"))
            .flag("--mem")
            .flag("512M")
            .flag("--cpus")
            .flag("2"),
    );
}
