//! `margay bench` with a tiny configuration: every probe builds, runs and
//! parses on the Linux guest; on Margay every probe either runs and parses or
//! is reported as failed with its error (never dropped), and the exit status
//! says whether anything failed. Bench numbers themselves are not checked.

mod common;

use common::*;
use std::fs;
use std::process::Command;
use std::time::Duration;

const PROBES: [&str; 7] = [
    "fwq", "syscall", "migrate", "futex", "thread", "memory", "stream",
];
/// Probes that need neither threads nor a second core, so Margay must run them.
const SINGLE_CORE: [&str; 4] = ["fwq", "syscall", "memory", "stream"];

/// The text of `"key": {` ... up to the next key at the same indentation, a
/// crude but dependency-free way to look into results.json.
fn section<'a>(json: &'a str, key: &str, indent: usize) -> &'a str {
    let pad = " ".repeat(indent);
    let start = json
        .find(&format!("{pad}\"{key}\": {{"))
        .unwrap_or_else(|| panic!("no {key} in results.json:\n{json}"));
    let rest = &json[start + 1..];
    let end = rest.find(&format!("\n{pad}}}")).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn tiny_bench_runs_every_probe_on_both_kernels() {
    let out = TempDir::new("bench");
    let mut cmd = Command::new(MARGAY);
    cmd.args([
        "bench", "--scale", "tiny", "--repeat", "1", "--cpus", "2", "--mem", "256M", "--accel",
        "tcg", "--out",
    ])
    .arg(out.path());
    let o = {
        let _p = qemu_permit();
        run_with_timeout(
            cmd,
            None,
            Duration::from_secs(110),
            "margay bench --scale tiny",
        )
    };
    let stdout = stdout_str(&o);
    let json = fs::read_to_string(out.join("results.json")).unwrap_or_else(|e| {
        panic!(
            "no results.json ({e})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            stderr_str(&o)
        )
    });
    let mut margay_failed = 0;
    for p in PROBES {
        let probe = json
            .split("\"name\": ")
            .find(|s| s.starts_with(&format!("\"{p}\"")))
            .unwrap_or_else(|| panic!("{p} missing from results.json"));
        let linux = section(probe, "Linux", 8);
        assert!(
            linux.contains("\"status\": \"ok\""),
            "{p} failed on Linux:\n{linux}\n{stdout}"
        );
        assert!(
            linux.contains("\"median\""),
            "{p}: no summary on Linux:\n{linux}"
        );
        let margay = section(probe, "Margay", 8);
        if margay.contains("\"status\": \"ok\"") {
            assert!(
                margay.contains("\"median\""),
                "{p}: no summary on Margay:\n{margay}"
            );
        } else {
            assert!(
                !SINGLE_CORE.contains(&p),
                "{p} failed on Margay:\n{margay}\n{stdout}"
            );
            // Failed: the error is in the JSON and in the printed table.
            assert!(margay.contains("\"status\": \"failed\""), "{margay}");
            assert!(!margay.contains("\"error\": null"), "{margay}");
            assert!(
                stdout.contains(&format!("- {p} on Margay: ")),
                "{p}: failure not printed:\n{stdout}"
            );
            margay_failed += 1;
        }
        assert!(
            stdout.contains(&format!("| {p} ")),
            "{p} not in the table:\n{stdout}"
        );
    }
    assert_status(&o, if margay_failed > 0 { 1 } else { 0 }, "margay bench");
    for f in ["table.md", "fwq.svg", "ratios.svg"] {
        let text = fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!text.is_empty(), "{f} is empty");
    }
    let svg = fs::read_to_string(out.join("fwq.svg")).unwrap();
    assert!(svg.contains("Linux: time per quantum") && svg.contains("Margay: time per quantum"));
}

#[test]
fn bench_usage_errors() {
    let o = run_margay(
        &["bench", "--accel", "tcg", "--icount", "--cpus", "2"],
        None,
        &[],
    );
    assert_status(&o, 1, "bench --icount --cpus 2");
    assert!(
        stderr_str(&o).contains("--icount works with --cpus 1"),
        "{}",
        stderr_str(&o)
    );
    let o = run_margay(&["bench", "nosuchprobe"], None, &[]);
    assert_status(&o, 2, "bench nosuchprobe");
}
