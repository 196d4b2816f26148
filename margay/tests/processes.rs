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
fn an_orphaned_process_keeps_running() {
    let script = scripts_dir().join("orphan.sh");
    compare_with_native(&Invocation::new("/bin/bash-static").arg(&script));
}

/// Orphans end with the partition: no proxy outlives margay for long.
#[test]
fn orphans_end_with_margay() {
    use std::time::{Duration, Instant};
    let _permit = qemu_permit();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_margay"))
        .args([
            "run",
            "--",
            "/bin/bash-static",
            "-c",
            "( /bin/busybox sleep 60 & ); echo started",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn margay");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait margay");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert_eq!(out.status.code(), Some(0));
    // Proxies name their guest RAM by margay's pid in their command line.
    let ram = format!("/proc/{pid}/fd/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("__proxy") && c.contains(&ram))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "proxies left: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
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
