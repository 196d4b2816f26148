//! Running a process (`margay run` of a probe, a native probe, a helper)
//! under deadlines: its stdout is read line by line, and the deadline in
//! force depends on how far it got: start-up until the probe announces
//! itself (`MARGAY-START`) or prints its result, the probe's own time after
//! the announcement, and the shutdown time after the result. On expiry the
//! whole process group is killed (QEMU dies with `margay run`).

use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::parse::{ERROR, RESULT, START};

/// The deadlines of one process's phases.
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    /// Until the probe announces itself; without an announcement, until its
    /// result line (then `boot + run` applies).
    pub boot: Duration,
    /// The probe's own run, from its announcement.
    pub run: Duration,
    /// From the result line until the process has exited.
    pub shutdown: Duration,
}

impl Phases {
    /// One deadline for everything.
    pub fn total(t: Duration) -> Phases {
        Phases {
            boot: t,
            run: Duration::ZERO,
            shutdown: t,
        }
    }
}

pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    /// How it ended when that was not exit status 0.
    pub exit: Option<String>,
    pub timed_out: bool,
}

/// The last `n` non-empty lines of `s`, joined by " | ".
pub fn tail_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(n)..].join(" | ")
}

/// Runs `cmd` in its own process group with captured output under `timeout`.
pub fn run_captured(cmd: Command, timeout: Duration) -> std::io::Result<Captured> {
    run_phased(cmd, Phases::total(timeout))
}

/// Runs `cmd` in its own process group with captured output; the whole group
/// is killed when the deadline of the phase it is in expires.
pub fn run_phased(mut cmd: Command, ph: Phases) -> std::io::Result<Captured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::sys::die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take();
    let out = std::thread::spawn(move || {
        if let Some(o) = stdout {
            let mut r = BufReader::new(o);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    break;
                }
                buf.clear();
            }
        }
    });
    let stderr = child.stderr.take();
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = stderr {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let start = Instant::now();
    let mut deadline = start + ph.boot + ph.run;
    let mut phase = "start-up and run";
    let mut text = String::new();
    let mut timed_out = None;
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            if line.contains(START) && phase == "start-up and run" {
                phase = "run";
                deadline = Instant::now() + ph.run;
            } else if (line.contains(RESULT) || line.contains(ERROR)) && phase != "shutdown" {
                phase = "shutdown";
                deadline = Instant::now() + ph.shutdown;
            }
            // Bounded: fwq's samples are the largest output (~100 KiB).
            if text.len() < 8 << 20 {
                text.push_str(&line);
            }
        }
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            timed_out = Some(phase);
            crate::sys::kill9_group(child.id());
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = out.join();
    while let Ok(line) = rx.try_recv() {
        text.push_str(&line);
    }
    let exit = if let Some(phase) = timed_out {
        Some(format!(
            "timed out in {phase} after {}s",
            start.elapsed().as_secs()
        ))
    } else {
        match (status.code(), status.signal()) {
            (Some(0), _) => None,
            (Some(c), _) => Some(format!("exited {c}")),
            (None, Some(s)) => Some(format!("killed by signal {s}")),
            _ => Some(status.to_string()),
        }
    };
    Ok(Captured {
        stdout: text,
        stderr: err.join().unwrap_or_default(),
        exit,
        timed_out: timed_out.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_runs_time_out_and_report_exits() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let r = run_captured(c, Duration::from_secs(10)).unwrap();
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
        assert_eq!(r.exit.as_deref(), Some("exited 3"));
        assert!(!r.timed_out);
        let mut c = Command::new("sleep");
        c.arg("30");
        let r = run_captured(c, Duration::from_millis(200)).unwrap();
        assert_eq!(
            r.exit.as_deref(),
            Some("timed out in start-up and run after 0s")
        );
        assert!(r.timed_out);
    }

    #[test]
    fn phases_follow_the_output() {
        // Announced, then hangs: the run deadline (short) applies, not the
        // start-up one (long).
        let mut c = Command::new("sh");
        c.args(["-c", "echo MARGAY-START probe=x; exec sleep 30"]);
        let t = Instant::now();
        let ph = Phases {
            boot: Duration::from_secs(20),
            run: Duration::from_millis(300),
            shutdown: Duration::from_secs(20),
        };
        let r = run_phased(c, ph).unwrap();
        assert!(t.elapsed() < Duration::from_secs(15));
        assert_eq!(r.exit.as_deref(), Some("timed out in run after 0s"));
        // A result, then no exit: the shutdown deadline.
        let mut c = Command::new("sh");
        c.args(["-c", "echo MARGAY-RESULT probe=x a=1; exec sleep 30"]);
        let r = run_phased(
            c,
            Phases {
                shutdown: Duration::from_millis(300),
                ..ph
            },
        )
        .unwrap();
        assert_eq!(r.exit.as_deref(), Some("timed out in shutdown after 0s"));
        assert!(r.stdout.contains("a=1"));
        assert_eq!(tail_lines("a\n\nb\nc\n", 2), "b | c");
    }
}
