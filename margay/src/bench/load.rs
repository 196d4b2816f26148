//! How busy the host is: the load average and the CPU time other processes
//! (everything but margay bench and its descendants) used over a short
//! window, from /proc. Sampled before and after each kernel's runs, so a
//! comparison taken while something else ran is marked as such, and used by
//! `--quiet-wait` to wait for a quiet host.

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Others using more than this many cores make a sample "busy".
pub const BUSY_CORES: f64 = 0.25;
/// `/proc/<pid>/stat` counts in USER_HZ ticks, 100 per second on Linux/x86.
const TICKS_PER_S: f64 = 100.0;
/// How long one sample watches the other processes.
pub const WINDOW: Duration = Duration::from_millis(500);

/// One look at the host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    /// 1, 5 and 15 minute load averages.
    pub loadavg: [f64; 3],
    /// Cores' worth of CPU time used by other processes during the window.
    pub others_cores: f64,
    /// The busiest of them: "name (pid) cores".
    pub busiest: Vec<String>,
    pub window_ms: u64,
}

impl Sample {
    pub fn busy(&self) -> bool {
        self.others_cores > BUSY_CORES
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "load average {:.2}, other processes used {:.2} cores",
            self.loadavg[0], self.others_cores
        );
        if !self.busiest.is_empty() {
            s.push_str(&format!(" ({})", self.busiest.join(", ")));
        }
        s
    }
}

/// A kernel's samples around its runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Around {
    pub before: Sample,
    pub after: Sample,
}

impl Around {
    pub fn busy(&self) -> bool {
        self.before.busy() || self.after.busy()
    }
}

pub fn loadavg() -> [f64; 3] {
    let s = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// (pid, ppid, comm, utime + stime) from a /proc/<pid>/stat line.
pub fn parse_stat(line: &str) -> Option<(u32, u32, String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_string();
    // After ")": state ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime ...
    let f: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((pid, ppid, comm, ut + st))
}

fn processes() -> HashMap<u32, (u32, String, u64)> {
    let mut m = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return m;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some((p, ppid, comm, t)) = parse_stat(&s) {
                m.insert(p, (ppid, comm, t));
            }
        }
    }
    m
}

/// Whether `pid` is `me` or descends from it.
fn ours(pid: u32, me: u32, procs: &HashMap<u32, (u32, String, u64)>) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == me {
            return true;
        }
        match procs.get(&p) {
            Some((ppid, _, _)) if *ppid != 0 && *ppid != p => p = *ppid,
            _ => return false,
        }
    }
    false
}

/// Watches the other processes for `window`.
pub fn sample(window: Duration) -> Sample {
    let me = std::process::id();
    let t0 = Instant::now();
    let a = processes();
    std::thread::sleep(window);
    let b = processes();
    let secs = t0.elapsed().as_secs_f64().max(0.001);
    let mut used: Vec<(f64, String)> = b
        .iter()
        .filter(|(pid, _)| !ours(**pid, me, &b))
        .filter_map(|(pid, (_, comm, t))| {
            // A process born during the window counts from zero.
            let before = a.get(pid).map_or(0, |x| x.2);
            let d = t.saturating_sub(before) as f64 / TICKS_PER_S / secs;
            (d > 0.0).then(|| (d, format!("{comm} ({pid})")))
        })
        .collect();
    used.sort_by(|x, y| y.0.total_cmp(&x.0));
    let total: f64 = used.iter().map(|u| u.0).sum();
    Sample {
        loadavg: loadavg(),
        others_cores: (total * 100.0).round() / 100.0,
        busiest: used
            .iter()
            .take(3)
            .filter(|u| u.0 >= 0.05)
            .map(|(c, n)| format!("{n} {c:.2}"))
            .collect(),
        window_ms: u64::try_from(WINDOW.as_millis()).unwrap_or(0),
    }
}

/// `--quiet-wait`: samples until the others use at most `BUSY_CORES` or
/// `max` has passed; returns the seconds waited and the last sample.
pub fn wait_quiet(max: Duration, report: &mut dyn FnMut(&Sample)) -> (u64, Sample) {
    let t0 = Instant::now();
    loop {
        let s = sample(Duration::from_secs(1));
        if !s.busy() || t0.elapsed() >= max {
            return (t0.elapsed().as_secs(), s);
        }
        report(&s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let l = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(l), Some((1234, 1, "a (b) c".into(), 300)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_busy_child_is_ours_and_a_sample_is_sane() {
        let me = std::process::id();
        let procs = processes();
        assert!(ours(me, me, &procs));
        assert!(!ours(1, me, &procs));
        let s = sample(Duration::from_millis(50));
        assert!(s.others_cores >= 0.0 && s.loadavg[0] >= 0.0);
        let busy = Sample {
            others_cores: 1.5,
            busiest: vec!["cc1 (7) 1.50".into()],
            ..s
        };
        assert!(busy.busy());
        assert!(busy.describe().contains("1.50 cores (cc1 (7) 1.50)"));
    }
}
