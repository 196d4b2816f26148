//! Signals sent from Linux reach the LWK application: to its pid (the
//! proxy's), and to margay itself as a terminal's Ctrl-C would.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where hostsig runs and who gets the signals.
#[derive(PartialEq)]
enum Target {
    /// hostsig is the initial process; signals go to its pid.
    App,
    /// hostsig is the initial process; signals go to margay (a terminal's).
    Margay,
    /// hostsig is a shell's child (a forked LWK process); signals go to its pid.
    ForkedApp,
}

fn run_and_signal(to: Target) {
    let prog = program("hostsig");
    let _permit = qemu_permit();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_margay"));
    // One core for a forked process: nothing else looks at its signals
    // while it computes (on two, the shell's idle core would poll for them).
    let cpus = if to == Target::ForkedApp { "1" } else { "2" };
    cmd.args(["run", "--cpus", cpus, "--"]);
    if to == Target::ForkedApp {
        cmd.args(["/bin/bash-static", "-c", "\"$0\"; echo \"exit $?\""]);
    }
    let mut child = cmd
        .arg(&prog)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margay");
    let margay_pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    let app_pid: u32 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let target = if to == Target::Margay {
        margay_pid
    } else {
        app_pid
    };
    let mut lines = Vec::new();
    for sig in ["INT", "TERM"] {
        send_signal(sig, target, false);
        let mut l = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while l.is_empty() && Instant::now() < deadline {
            out.read_line(&mut l).expect("read");
        }
        lines.push(l.trim().to_string());
    }
    let status = child.wait().expect("wait");
    assert_eq!(lines, ["caught 2", "caught 15"]);
    if to == Target::ForkedApp {
        let mut l = String::new();
        out.read_line(&mut l).expect("read");
        assert_eq!(l.trim(), "exit 7");
        assert_eq!(status.code(), Some(0));
    } else {
        assert_eq!(status.code(), Some(7));
    }
}

#[test]
fn signals_to_the_application_pid_run_its_handlers() {
    run_and_signal(Target::App);
}

#[test]
fn terminal_signals_to_margay_are_forwarded_to_the_application() {
    run_and_signal(Target::Margay);
}

/// A forked process busy in user mode takes a Linux signal at once (its
/// proxy pokes margay, which raises an NMI), not at its next kernel entry.
#[test]
fn signals_from_linux_reach_a_busy_forked_process() {
    run_and_signal(Target::ForkedApp);
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Job control from the shell that started margay: SIGTSTP stops the
/// application, whose proxy then stops margay (the shell sees the job
/// stopped); SIGCONT to margay lets the application go on to a normal end.
#[test]
fn sigtstp_to_margay_stops_the_job_and_sigcont_resumes_it() {
    let _permit = qemu_permit();
    let mut child = Command::new(env!("CARGO_BIN_EXE_margay"))
        .args([
            "run",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "echo ready; exec /bin/busybox sleep 1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margay");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "ready");
    send_signal("TSTP", pid, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while proc_state(pid) != Some('T') {
        assert!(Instant::now() < deadline, "margay did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped for longer than the application's sleep: it still ends well.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(proc_state(pid), Some('T'));
    send_signal("CONT", pid, false);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn unhandled_sigterm_from_linux_ends_the_application_with_143() {
    let _permit = qemu_permit();
    let mut child = Command::new(env!("CARGO_BIN_EXE_margay"))
        .args([
            "run",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "echo ready; exec /bin/busybox sleep 30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margay");
    // The application's first line went through its proxy, which had its
    // signal handlers installed by then.
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "ready");
    // The proxy is margay's child.
    let start = Instant::now();
    let proxy = loop {
        let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        let found = kids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("__proxy"))
            });
        if let Some(p) = found {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no proxy appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    send_signal("TERM", proxy, false);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143));
}
