//! `margay bench` with a tiny configuration: every probe builds, runs and
//! parses on the Linux guest; on Margay every probe either runs and parses or
//! is reported as failed with its error (never dropped), and the exit status
//! says whether anything failed. Bench numbers themselves are not checked.
//! Also: the Linux guest boots while the host's cores are kept busy (issue
//! 17), a probe that hangs is killed at its deadline and reported while the
//! bench goes on, `--save`/`--compare`/`--table` over two runs, and every SVG
//! parses as XML (and renders, where rsvg-convert is installed).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard};
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
    let _host = shared_host();
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
            // Deadlines inside scale with the host's load; this is only the
            // last resort.
            Duration::from_secs(400),
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
    assert_eq!(check_svgs(out.path()), 2);
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

/// The busy-host test keeps every core busy: it runs alone (write), the
/// other bench tests share (read).
static HOST: RwLock<()> = RwLock::new(());

fn shared_host() -> RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(|e| e.into_inner())
}

/// Runs `margay bench` with `args` under a QEMU permit and a hard timeout.
fn bench(args: &[&str], out: &Path, timeout: Duration, what: &str) -> Output {
    let mut cmd = Command::new(MARGAY);
    cmd.arg("bench").args(args).arg("--out").arg(out);
    let _p = qemu_permit();
    run_with_timeout(cmd, None, timeout, what)
}

fn results(out: &Path, o: &Output) -> serde_json::Value {
    let text = fs::read_to_string(out.join("results.json")).unwrap_or_else(|e| {
        panic!(
            "no results.json ({e})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            stdout_str(o),
            stderr_str(o)
        )
    });
    serde_json::from_str(&text).expect("results.json is JSON")
}

/// The run's status of `probe` on `kernel`, and its error.
fn status<'a>(v: &'a serde_json::Value, probe: &str, kernel: &str) -> (&'a str, &'a str) {
    let p = v["probes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == probe))
        .unwrap_or_else(|| panic!("{probe} missing from results.json:\n{v:#}"));
    let k = &p["kernels"][kernel];
    (
        k["status"].as_str().unwrap_or("?"),
        k["error"].as_str().unwrap_or(""),
    )
}

/// Parses every SVG in `dir` with a real XML parser, and renders it with
/// rsvg-convert when that is installed (Debian's librsvg2-bin).
fn check_svgs(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).expect("read dir").flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "svg") {
            continue;
        }
        let text = fs::read_to_string(&path).expect("read svg");
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
        assert!(root.attribute("viewBox").is_some(), "{}", path.display());
        assert!(
            !text.contains("NaN") && !text.contains("inf\""),
            "{}",
            path.display()
        );
        if Path::new("/usr/bin/rsvg-convert").exists() {
            let png = path.with_extension("png");
            let mut c = Command::new("rsvg-convert");
            c.arg("-o").arg(&png).arg(&path);
            let o = run_with_timeout(c, None, Duration::from_secs(60), "rsvg-convert");
            assert_status(&o, 0, &format!("rsvg-convert {}", path.display()));
            let head = fs::read(&png).expect("png written");
            assert!(head.starts_with(b"\x89PNG"), "{}", png.display());
        }
        n += 1;
    }
    n
}

/// Processes that keep every host core busy until dropped.
struct BusyHost(Vec<Child>);

impl BusyHost {
    fn new() -> BusyHost {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        BusyHost(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("spawn a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for BusyHost {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Issue 17: with both host cores busy, the Linux guest (2 vCPUs under TCG)
/// stalled in TSC calibration and never reached init. It is now told the
/// host's TSC frequency, boots, and the table says the run was under load.
#[test]
fn linux_guest_boots_while_the_host_is_busy() {
    let out = TempDir::new("bench-busy");
    let _alone = HOST.write().unwrap_or_else(|e| e.into_inner());
    let o = {
        let _busy = BusyHost::new();
        bench(
            &[
                "--scale", "tiny", "--repeat", "1", "--cpus", "2", "--mem", "256M", "--accel",
                "tcg", "syscall",
            ],
            out.path(),
            Duration::from_secs(400),
            "margay bench on a busy host",
        )
    };
    let v = results(out.path(), &o);
    let stdout = stdout_str(&o);
    assert_eq!(status(&v, "syscall", "Linux"), ("ok", ""), "{stdout}");
    let c = &v["config"];
    let khz = c["tsc_khz"].as_u64().unwrap_or_else(|| panic!("{c:#}"));
    assert!(
        c["linux_cmdline"]
            .as_str()
            .unwrap()
            .ends_with(&format!(" tsc_early_khz={khz}")),
        "{c:#}"
    );
    assert!(!c["tsc_source"].as_str().unwrap().is_empty());
    assert!(
        c["linux_guest"].as_str().unwrap().contains("cpus=2"),
        "{c:#}"
    );
    // Our busy loops are "other processes": the comparison is marked.
    assert!(
        v["load"]["Linux"]["before"]["others_cores"]
            .as_f64()
            .unwrap()
            > 0.25
    );
    assert!(stdout.contains("Taken under load"), "{stdout}");
    assert!(stdout.contains(" 1."), "{stdout}");
}

/// A probe that never finishes (the hidden, test-only `hang`) is killed at
/// its deadline on both kernels, retried once, reported with the console's
/// last lines, and the next probe still runs on both.
#[test]
fn hanging_probe_is_killed_at_its_deadline_and_reported() {
    let _host = shared_host();
    let out = TempDir::new("bench-hang");
    let o = bench(
        &[
            "--scale", "tiny", "--repeat", "1", "--cpus", "1", "--mem", "256M", "--accel", "tcg",
            "hang", "syscall",
        ],
        out.path(),
        Duration::from_secs(400),
        "margay bench hang syscall",
    );
    let stdout = stdout_str(&o);
    assert_status(&o, 1, "margay bench hang syscall");
    let v = results(out.path(), &o);
    let (st, linux_err) = status(&v, "hang", "Linux");
    assert_eq!(st, "failed");
    assert!(
        linux_err.contains("(hang) did not end within")
            && linux_err.contains("; killed (after ")
            && linux_err.contains("console's last lines:")
            && linux_err.contains("MARGAY-START probe=hang"),
        "{linux_err}"
    );
    let (st, margay_err) = status(&v, "hang", "Margay");
    assert_eq!(st, "failed");
    assert!(
        margay_err.contains("timed out in run after")
            && margay_err.contains("(attempt 2 of 2)")
            && margay_err.contains("MARGAY-START probe=hang"),
        "{margay_err}"
    );
    // Each side tried twice.
    for k in ["Linux", "Margay"] {
        let n = v["incidents"][k].as_array().map_or(0, Vec::len);
        assert_eq!(n, 2, "{k}: {:#}", v["incidents"]);
    }
    // And went on.
    assert_eq!(status(&v, "syscall", "Linux"), ("ok", ""), "{stdout}");
    assert_eq!(status(&v, "syscall", "Margay"), ("ok", ""), "{stdout}");
    assert!(stdout.contains("- hang on Linux: ") && stdout.contains("Deadlines and retries:"));
}

/// Two saved runs: `--compare` prints each metric's ratios with their
/// intervals, `--table` reproduces a saved run's table, a name cannot be
/// saved twice, and the history plot and every SVG parse (and render).
#[test]
fn saved_runs_compare_and_print_tables() {
    let _host = shared_host();
    let out = TempDir::new("bench-history");
    let args = [
        "--scale", "tiny", "--repeat", "2", "--cpus", "1", "--mem", "256M", "--accel", "tcg",
        "syscall",
    ];
    for name in ["first", "second"] {
        let mut a = args.to_vec();
        a.extend(["--save", name]);
        let o = bench(
            &a,
            out.path(),
            Duration::from_secs(300),
            "margay bench --save",
        );
        assert_status(&o, 0, "margay bench --save");
        assert!(stdout_str(&o).contains(&format!("Saved as {name} in ")));
        let saved = out.join("history").join(name);
        let run: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(saved.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["name"], name);
        assert_eq!(run["config"]["repeat"], 2);
        assert!(
            run["git_commit"].as_str().is_some_and(|c| c.len() >= 40),
            "{run:#}"
        );
        assert!(saved.join("results.json").is_file() && saved.join("ratios.svg").is_file());
    }
    let o = run_margay(
        &[
            "bench",
            "--out",
            out.path().to_str().unwrap(),
            "--compare",
            "first",
            "second",
        ],
        None,
        &[],
    );
    assert_status(&o, 0, "bench --compare");
    let c = stdout_str(&o);
    let row = c
        .lines()
        .find(|l| l.contains("local getpid median"))
        .unwrap_or_else(|| panic!("{c}"));
    // old ratio [interval] | new ratio [interval] | new/old | change
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert!(cells[3].contains(" [") && cells[4].contains(" ["), "{row}");
    assert!(cells[5].parse::<f64>().is_ok(), "{row}");
    assert!(
        [
            "within spread",
            "BETTER (beyond spread)",
            "WORSE (beyond spread)"
        ]
        .iter()
        .any(|x| cells[6].starts_with(x)),
        "{row}"
    );
    assert!(c.starts_with("old (first): margay bench: 1 cores"), "{c}");
    // The saved table, regenerated from results.json, is the one printed.
    let o = run_margay(
        &[
            "bench",
            "--out",
            out.path().to_str().unwrap(),
            "--table",
            "first",
        ],
        None,
        &[],
    );
    assert_status(&o, 0, "bench --table");
    let saved = fs::read_to_string(out.join("history/first/table.md")).unwrap();
    assert_eq!(stdout_str(&o), saved);
    // A name is saved once; an unknown run is a clear error.
    let o = run_margay(
        &[
            "bench",
            "--out",
            out.path().to_str().unwrap(),
            "--save",
            "first",
            "syscall",
        ],
        None,
        &[],
    );
    assert_status(&o, 1, "bench --save first again");
    assert!(
        stderr_str(&o).contains("already saved"),
        "{}",
        stderr_str(&o)
    );
    let o = run_margay(
        &[
            "bench",
            "--out",
            out.path().to_str().unwrap(),
            "--compare",
            "nope",
        ],
        None,
        &[],
    );
    assert_status(&o, 1, "bench --compare nope");
    assert!(
        stderr_str(&o).contains("saved: first, second"),
        "{}",
        stderr_str(&o)
    );
    let plot = fs::read_to_string(out.join("history/ratios-over-time.svg")).unwrap();
    assert!(plot.contains("syscall: local getpid median") && plot.contains(">second<"));
    assert_eq!(check_svgs(&out.join("history")), 1);
    assert!(check_svgs(&out.join("history/second")) >= 1);
}
