//! Threads on many LWK cores: pthreads, OpenMP, affinity and the absence of
//! timer ticks, each compared with a native run where the output is
//! deterministic.

mod common;

use common::*;

const TESTS: [&str; 7] = [
    "counter", "condvar", "barrier", "tls", "join", "detached", "piperead",
];

fn pthread_suite(cpus: &str, nthreads: &str) {
    let prog = program("threads");
    for t in TESTS {
        let inv = Invocation::new(&prog)
            .args([t, nthreads])
            .flag("--cpus")
            .flag(cpus);
        let (_, m) = compare_with_native(&inv);
        assert_status(&m, 0, &format!("threads {t} {nthreads} on {cpus} core(s)"));
    }
}

#[test]
fn pthreads_on_one_core() {
    pthread_suite("1", "4");
}

#[test]
fn pthreads_on_two_cores() {
    pthread_suite("2", "4");
}

#[test]
fn pthreads_oversubscribed() {
    pthread_suite("2", "8");
}

#[test]
fn affinity_moves_a_thread_to_each_core() {
    let out = Invocation::new(program("threads"))
        .args(["affinity"])
        .flag("--cpus")
        .flag("2")
        .run_margay();
    assert_status(&out, 0, "threads affinity");
    let s = stdout_str(&out);
    assert!(s.contains("pinned to 0: getcpu says 0"), "{s}");
    assert!(s.contains("pinned to 1: getcpu says 1"), "{s}");
}

fn omp(cpus: &str, threads: &str) {
    let out = Invocation::new(program("omp"))
        .arg(threads)
        .env("OMP_NUM_THREADS", threads)
        .flag("--cpus")
        .flag(cpus)
        .run_margay();
    let s = stdout_str(&out);
    assert_status(
        &out,
        0,
        &format!("omp {threads} threads on {cpus} cores: {s}"),
    );
    assert!(
        s.contains(&format!("team={threads} requested={threads} ok")),
        "{s}"
    );
    assert!(s.contains("reduction sum=4499998500000 ok"), "{s}");
    assert!(s.contains("barrier phases ok"), "{s}");
}

#[test]
fn openmp_one_thread_per_core() {
    omp("2", "2");
}

#[test]
fn openmp_oversubscribed_twice() {
    omp("2", "4");
}

#[test]
fn a_single_busy_thread_takes_no_timer_interrupts() {
    let out = Invocation::new(program("spin"))
        .arg("50000000")
        .flag("--cpus")
        .flag("2")
        .flag("--stats")
        .run_margay();
    assert_status(&out, 0, "spin");
    let err = stderr_str(&out);
    assert!(err.contains("core 0: timer interrupts 0,"), "{err}");
    assert!(err.contains("core 1: timer interrupts 0,"), "{err}");
}

#[test]
fn two_spinning_threads_share_one_core_by_time_slices() {
    // Neither thread makes a syscall while it waits for the other: on one
    // core this finishes only if the one-shot timer preempts.
    let out = Invocation::new(program("threads"))
        .args(["slice"])
        .flag("--cpus")
        .flag("1")
        .flag("--stats")
        .run_margay();
    assert_status(&out, 0, "threads slice on one core");
    let err = stderr_str(&out);
    let line = err
        .lines()
        .find(|l| l.contains("core 0: timer interrupts"))
        .unwrap_or_default();
    assert!(
        !line.contains("timer interrupts 0,"),
        "core 0 never took a slice timer: {err}"
    );
}
