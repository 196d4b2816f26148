//! Processes on the LWK: fork, exec, wait, pipes between processes, SIGCHLD,
//! and real shells running scripts, compared with native runs.

mod common;

use common::*;

fn scripts_dir() -> std::path::PathBuf {
    repo_root().join("tests/scripts")
}

#[test]
fn fork_exec_wait_chain() {
    let (_, m) = compare_with_native(&Invocation::new(program("forkexec")).arg("chain"));
    assert_status(&m, 43, "forkexec chain");
}

#[test]
fn pipe_between_parent_and_child() {
    compare_with_native(&Invocation::new(program("forkexec")).arg("pipe"));
}

#[test]
fn sigchld_reaches_the_parent() {
    compare_with_native(&Invocation::new(program("forkexec")).arg("sigchld"));
}

#[test]
fn signal_mask_is_inherited_across_fork() {
    compare_with_native(&Invocation::new(program("forkexec")).arg("mask"));
}

#[test]
fn child_killed_by_a_signal_is_reported_by_wait() {
    compare_with_native(&Invocation::new(program("forkexec")).arg("signaled"));
}

#[test]
fn exec_from_a_threaded_process_ends_its_other_threads() {
    compare_with_native(&Invocation::new(program("forkexec")).arg("threadexec"));
}

#[test]
fn exit_from_a_threaded_child_ends_its_other_threads() {
    compare_with_native(&Invocation::new(program("forkexec")).arg("threadexit"));
}

/// Stop and continue (SIGSTOP, SIGTSTP, SIGCONT): stopped children make no
/// progress, wait reports them stopped and continued, blocked calls go on.
#[test]
fn stop_and_continue() {
    for mode in ["stopcont", "threads", "tstp", "handler", "sleep", "read"] {
        compare_with_native(&Invocation::new(program("jobctl")).arg(mode));
    }
}

#[test]
fn bash_static_runs_a_script() {
    let script = scripts_dir().join("shell.sh");
    compare_with_native(&Invocation::new("/bin/bash-static").arg(&script));
}

#[test]
fn busybox_sh_pipelines() {
    compare_with_native(&Invocation::new("/bin/busybox").args([
        "sh",
        "-c",
        "seq 1 10000 | sort -r | head -3; echo $(echo nested | tr a-z A-Z); (exit 4); echo status $?",
    ]));
}

#[test]
fn shell_signals_its_background_children() {
    let script = scripts_dir().join("kill.sh");
    compare_with_native(&Invocation::new("/bin/bash-static").arg(&script));
}

#[test]
fn dynamic_fork_exec_wait_chain() {
    let (_, m) = compare_with_native(&Invocation::new(dynamic_program("forkexec")).arg("chain"));
    assert_status(&m, 43, "dynamic forkexec chain");
}
