//! Signals sent from Linux reach the LWK application: to its pid (the
//! proxy's), and to margay itself as a terminal's Ctrl-C would.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_and_signal(target_margay: bool) {
    let prog = program("hostsig");
    let _permit = qemu_permit();
    let mut child = Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(["run", "--cpus", "2", "--"])
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
    let target = if target_margay { margay_pid } else { app_pid };
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
    assert_eq!(status.code(), Some(7));
}

#[test]
fn signals_to_the_application_pid_run_its_handlers() {
    run_and_signal(false);
}

#[test]
fn terminal_signals_to_margay_are_forwarded_to_the_application() {
    run_and_signal(true);
}

#[test]
fn unhandled_sigterm_from_linux_ends_the_application_with_143() {
    let _permit = qemu_permit();
    let mut child = Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(["run", "--", "/bin/busybox", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margay");
    // The proxy is margay's child; signal it once the application sleeps.
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
    std::thread::sleep(Duration::from_millis(500));
    send_signal("TERM", proxy, false);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143));
}
