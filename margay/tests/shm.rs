//! Shared memory between LWK processes: `MAP_SHARED|MAP_ANONYMOUS` and shared
//! `/dev/zero` stay shared across fork (private mappings keep their copy),
//! process-shared mutexes and semaphores work between processes, and
//! madvise/mremap/mprotect/munmap of shared mappings behave as on Linux.
//! Every case is compared with a native run.

mod common;

use common::*;

fn shmanon(mode: &str, cpus: &str) {
    compare_with_native(
        &Invocation::new(program("shmanon"))
            .arg(mode)
            .flag("--cpus")
            .flag(cpus),
    );
}

#[test]
fn a_shared_counter_under_a_process_shared_mutex_is_exact_on_one_and_two_cores() {
    shmanon("counter", "1");
    shmanon("counter", "2");
}

#[test]
fn process_shared_semaphores_ping_pong_between_processes() {
    shmanon("sem", "1");
    shmanon("sem", "2");
}

#[test]
fn shared_dev_zero_is_anonymous_shared_memory() {
    shmanon("devzero", "1");
}

#[test]
fn madvise_of_shared_memory_keeps_or_removes_contents_as_linux() {
    shmanon("madvise", "1");
}

#[test]
fn mremap_and_partial_munmap_keep_a_mapping_shared() {
    shmanon("mremap", "1");
}

#[test]
fn mprotect_in_one_process_leaves_the_other_writable() {
    shmanon("mprotect", "2");
}

#[test]
fn proc_self_maps_shows_shared_mappings() {
    shmanon("maps", "1");
}

#[test]
fn large_shared_mappings_are_shared_page_by_page() {
    shmanon("big", "2");
}

/// 40 rounds of 32 MiB in a 512 MiB partition: the objects must be freed
/// when the last process unmaps them.
#[test]
fn shared_objects_are_freed_with_their_last_mapping() {
    shmanon("many", "1");
}
