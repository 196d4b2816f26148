//! The kernel survives hostile programs (issue 12): the in-LWK system-call
//! fuzzer at a small fixed size with several seeds, regression programs for
//! the bugs it and the stress programs found, TLB coherence on two cores,
//! and stress at CI size (fork storm bounded by memory, memory hog, futex
//! storm, every way a process ends) with free memory coming back.

mod common;

use common::*;
use std::time::Duration;

/// `margay run FLAGS -- PROGRAM ARGS` must end normally (no kernel panic,
/// exit 70; no hang, the harness's timeout) with status 0; its stdout.
fn run_ok(inv: Invocation, what: &str) -> String {
    let out = inv.run_margay();
    let text = format!("{}{}", stdout_str(&out), stderr_str(&out));
    assert!(
        !text.contains("KERNEL PANIC"),
        "{what}: kernel panic:\n{text}"
    );
    assert_status(&out, 0, what);
    stdout_str(&out)
}

/// Seeds `cargo test` fuzzes with: each run is 4 children of 1500 calls.
const SEEDS: [u64; 4] = [1, 2, 3, 4];

#[test]
fn fuzzer_with_several_seeds_leaves_the_kernel_running() {
    let dir = TempDir::new("fuzz");
    for seed in SEEDS {
        let inv = Invocation::new(program("fuzz"))
            .args([
                seed.to_string(),
                "4".into(),
                "1500".into(),
                "2".into(),
                "10".into(),
            ])
            .env("TMPDIR", dir.path())
            .timeout(Duration::from_secs(90));
        let out = run_ok(inv, &format!("fuzz seed {seed}"));
        assert!(
            out.contains(&format!("fuzz: seed {seed}: ")),
            "seed {seed}: no summary line:\n{out}"
        );
    }
}

#[test]
fn direction_flag_left_set_by_user_code_does_not_reach_the_kernel() {
    let out = run_ok(Invocation::new(program("fuzz_df")), "fuzz_df");
    assert!(
        out.contains(
            "df: 200 faults handled (0 with a wrong siginfo), 20 children killed by SIGSEGV"
        ),
        "{out}"
    );
}

#[test]
fn mprotect_read_only_faults_a_writer_on_another_core() {
    let inv = Invocation::new(program("stress_mprotect"))
        .flag("--cpus")
        .flag("2");
    let out = run_ok(inv, "stress_mprotect");
    assert!(
        out.contains("mprotect: 0 of 20 rounds with stores after the downgrade"),
        "{out}"
    );
}

#[test]
fn fork_storm_fails_with_enomem_and_memory_comes_back() {
    let inv = Invocation::new(program("stress_fork"))
        .flag("--mem")
        .flag("256M")
        .arg("2")
        .timeout(Duration::from_secs(180));
    let out = run_ok(inv, "stress_fork");
    assert!(out.contains("fork storm: ok"), "{out}");
}

#[test]
fn memory_hog_takes_everything_and_gives_it_back() {
    let inv = Invocation::new(program("stress_hog"))
        .flag("--mem")
        .flag("256M")
        .arg("5");
    let out = run_ok(inv, "stress_hog");
    assert!(out.contains("memory hog: ok"), "{out}");
}

#[test]
fn oversubscribed_futex_storm_completes() {
    let inv = Invocation::new(program("stress_futex"))
        .flag("--cpus")
        .flag("2")
        .args(["8", "500"]);
    let out = run_ok(inv, "stress_futex");
    assert!(out.contains("futex storm: 4000 hand-offs of 4000"), "{out}");
}

/// Regression: a killed child's Exit was served by the next child's proxy
/// (region table pages reused while a request named them), so one child
/// reported exit 0 and the next died of SIGKILL; and tasks killed by a
/// signal kept their kernel stacks forever.
#[test]
fn every_way_a_process_ends_returns_its_memory_and_status() {
    let out = run_ok(
        Invocation::new(program("stress_exit")).arg("10"),
        "stress_exit",
    );
    assert!(out.contains("exit paths: ok"), "{out}");
}

/// Regression: heap exhaustion when forks ran the partition out of memory
/// (LTP pipe13, futex_cmp_requeue01: `memory allocation of 65536 bytes
/// failed`, a kernel stack): fork must fail instead.
#[test]
fn fork_until_memory_runs_out_does_not_panic_on_a_kernel_stack() {
    let inv = Invocation::new(program("stress_fork"))
        .flag("--mem")
        .flag("128M")
        .arg("1");
    let out = run_ok(inv, "stress_fork 128M");
    assert!(out.contains("fork storm: ok"), "{out}");
}
