//! The probe catalog: each probe's C source (embedded, so the binary is
//! self-contained), how it is built, its arguments at each scale, and the
//! metrics its result line carries, with which direction is better and the
//! goal for the Margay/Linux ratio.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    /// Describes the run (cores used, table size); no ratio.
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Ns,
    Pct,
    Mups,
    MBs,
    Count,
}

/// A target for the Margay/Linux ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtMost(g) => ratio <= g,
            Goal::AtLeast(g) => ratio >= g,
        }
    }

    pub fn value(self) -> f64 {
        match self {
            Goal::AtMost(g) | Goal::AtLeast(g) => g,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Goal::AtMost(g) => format!("<= {g}"),
            Goal::AtLeast(g) => format!(">= {g}"),
        }
    }
}

pub struct Metric {
    /// The key in the probe's result line.
    pub key: &'static str,
    pub label: &'static str,
    pub unit: Unit,
    pub better: Better,
    pub goal: Option<Goal>,
}

const fn m(key: &'static str, label: &'static str, unit: Unit, better: Better) -> Metric {
    Metric {
        key,
        label,
        unit,
        better,
        goal: None,
    }
}

const fn g(
    key: &'static str,
    label: &'static str,
    unit: Unit,
    better: Better,
    goal: Goal,
) -> Metric {
    Metric {
        key,
        label,
        unit,
        better,
        goal: Some(goal),
    }
}

/// How long the probes run: `Full` for `margay bench`, `Tiny` for the test
/// that only checks that each probe runs and parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    Full,
    Tiny,
}

pub struct Probe {
    pub name: &'static str,
    source: &'static str,
    openmp: bool,
    pub metrics: &'static [Metric],
}

use Better::{Higher, Info, Lower};
use Unit::{Count, MBs, Mups, Ns, Pct};

pub static PROBES: &[Probe] = &[
    Probe {
        name: "fwq",
        source: include_str!("../../../bench/probes/fwq.c"),
        openmp: false,
        metrics: &[
            m("cores", "cores measured", Count, Info),
            m("min_ns", "quantum min", Ns, Lower),
            m("med_ns", "quantum median", Ns, Lower),
            m("p99_ns", "quantum p99", Ns, Lower),
            m("p999_ns", "quantum p99.9", Ns, Lower),
            m("max_ns", "quantum max", Ns, Lower),
            g("noise_pct", "noise fraction", Pct, Lower, Goal::AtMost(0.1)),
            g(
                "max_detour_ns",
                "max detour (max - min)",
                Ns,
                Lower,
                Goal::AtMost(0.2),
            ),
        ],
    },
    Probe {
        name: "syscall",
        source: include_str!("../../../bench/probes/syscall.c"),
        openmp: false,
        metrics: &[
            m("local_min_ns", "local getpid min", Ns, Lower),
            g(
                "local_med_ns",
                "local getpid median",
                Ns,
                Lower,
                Goal::AtMost(1.0),
            ),
            m("offload_min_ns", "offloaded getppid min", Ns, Lower),
            m("offload_med_ns", "offloaded getppid median", Ns, Lower),
        ],
    },
    Probe {
        name: "migrate",
        source: include_str!("../../../bench/probes/migrate.c"),
        openmp: false,
        metrics: &[
            m("rt_min_ns", "setaffinity round trip min", Ns, Lower),
            g(
                "rt_med_ns",
                "setaffinity round trip median",
                Ns,
                Lower,
                Goal::AtMost(0.5),
            ),
        ],
    },
    Probe {
        name: "futex",
        source: include_str!("../../../bench/probes/futex.c"),
        openmp: false,
        metrics: &[
            m("rt_min_ns", "ping-pong round trip min", Ns, Lower),
            g(
                "rt_med_ns",
                "ping-pong round trip median",
                Ns,
                Lower,
                Goal::AtMost(1.0),
            ),
        ],
    },
    Probe {
        name: "thread",
        source: include_str!("../../../bench/probes/thread.c"),
        openmp: false,
        metrics: &[
            m("min_ns", "create+join min", Ns, Lower),
            g("med_ns", "create+join median", Ns, Lower, Goal::AtMost(0.5)),
        ],
    },
    Probe {
        name: "spawn",
        source: include_str!("../../../bench/probes/spawn.c"),
        openmp: false,
        metrics: &[
            m("min_ns", "fork+exec+wait min", Ns, Lower),
            m("med_ns", "fork+exec+wait median", Ns, Lower),
        ],
    },
    Probe {
        name: "pystart",
        source: include_str!("../../../bench/probes/spawn.c"),
        openmp: false,
        metrics: &[
            m("min_ns", "python3 -c pass min", Ns, Lower),
            m("med_ns", "python3 -c pass median", Ns, Lower),
        ],
    },
    Probe {
        name: "memory",
        source: include_str!("../../../bench/probes/memory.c"),
        openmp: false,
        metrics: &[
            m("touch_min_ns", "mmap+touch+munmap per 4 KiB min", Ns, Lower),
            g(
                "touch_med_ns",
                "mmap+touch+munmap per 4 KiB median",
                Ns,
                Lower,
                Goal::AtMost(0.5),
            ),
            m("gups_table_mib", "GUPS table MiB", Count, Info),
            g(
                "gups_mups",
                "GUPS random updates",
                Mups,
                Higher,
                Goal::AtLeast(1.0),
            ),
        ],
    },
    Probe {
        name: "shm",
        source: include_str!("../../../bench/probes/shm.c"),
        openmp: false,
        metrics: &[
            m("cores", "cores used", Count, Info),
            m("pingpong_min_ns", "shared-word ping-pong min", Ns, Lower),
            g(
                "pingpong_med_ns",
                "shared-word ping-pong median",
                Ns,
                Lower,
                Goal::AtMost(1.0),
            ),
            g(
                "segment_page_ns",
                "shm_open+mmap+touch per 4 KiB",
                Ns,
                Lower,
                Goal::AtMost(0.5),
            ),
            m("fork_plain_ns", "fork+exit+wait", Ns, Lower),
            m(
                "fork_shared_ns",
                "fork+exit+wait holding shared memory",
                Ns,
                Lower,
            ),
        ],
    },
    Probe {
        name: "stream",
        source: include_str!("../../../bench/probes/stream.c"),
        openmp: true,
        metrics: &[
            m("threads", "OpenMP threads", Count, Info),
            g("triad_mbs", "STREAM triad", MBs, Higher, Goal::AtLeast(1.0)),
        ],
    },
];

/// TEST-ONLY: a probe that never finishes (`margay bench hang`, hidden from
/// `--help`), for the test of the bench's deadlines; see `c/hang.c`.
pub static HANG: Probe = Probe {
    name: "hang",
    source: include_str!("c/hang.c"),
    openmp: false,
    metrics: &[m("slept_s", "slept", Count, Info)],
};

/// Not a probe: the helper that measures the host's TSC frequency when
/// nothing else gives it (`tsc`).
pub static TSCKHZ: Probe = Probe {
    name: "tsckhz",
    source: include_str!("c/tsckhz.c"),
    openmp: false,
    metrics: &[m("khz", "TSC kHz", Count, Info)],
};

/// A probe by name, the test-only one included.
pub fn by_name(name: &str) -> Option<&'static Probe> {
    PROBES
        .iter()
        .find(|p| p.name == name)
        .or_else(|| (name == HANG.name).then_some(&HANG))
}

/// The interpreter the `pystart` probe starts (its files go into the Linux
/// guest's initramfs).
pub const PYTHON: &str = "/usr/bin/python3";

const HEADER: &str = include_str!("../../../bench/probes/probe.h");

#[cfg(test)]
pub fn find(name: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|p| p.name == name)
}

/// The GUPS table: a quarter of the partition, a power of two, at most 1 GiB.
pub fn gups_table_mib(mem: u64) -> u64 {
    let quarter = (mem >> 20) / 4;
    let mut t = 1;
    while t * 2 <= quarter && t < 1024 {
        t *= 2;
    }
    t
}

impl Probe {
    /// The probe's arguments; `dump` asks fwq for its per-quantum samples.
    pub fn args(&self, scale: Scale, mem: u64, dump: bool) -> Vec<String> {
        let full = scale == Scale::Full;
        let v: Vec<String> = match self.name {
            // quanta, work per quantum (loop iterations), dump
            "fwq" if full => vec!["2000".into(), "200000".into()],
            "fwq" => vec!["50".into(), "20000".into()],
            // calls per batch, batches
            "syscall" if full => vec!["2000".into(), "20".into()],
            "syscall" => vec!["100".into(), "5".into()],
            "migrate" | "futex" if full => vec!["500".into()],
            "thread" if full => vec!["300".into()],
            "migrate" | "futex" | "thread" => vec!["20".into()],
            // name, runs, program, argv
            "spawn" | "pystart" => {
                let runs = match (self.name, full) {
                    ("spawn", true) => "30",
                    ("spawn", false) => "3",
                    (_, true) => "10",
                    (_, false) => "1",
                };
                let cmd: &[&str] = if self.name == "spawn" {
                    &["/bin/busybox", "true"]
                } else {
                    &[PYTHON, "python3", "-c", "pass"]
                };
                [self.name, runs]
                    .iter()
                    .chain(cmd)
                    .map(|s| s.to_string())
                    .collect()
            }
            // repetitions, GUPS table MiB, thousands of updates, mapping MiB
            "memory" if full => vec![
                "5".into(),
                gups_table_mib(mem).to_string(),
                "4000".into(),
                "64".into(),
            ],
            "memory" => vec!["1".into(), "8".into(), "100".into(), "8".into()],
            // round trips, repetitions, segment MiB, shared MiB held by fork
            "shm" if full => vec!["500".into(), "5".into(), "64".into(), "256".into()],
            "shm" => vec!["20".into(), "1".into(), "4".into(), "16".into()],
            // array length, repetitions
            "stream" if full => vec!["2000000".into(), "5".into()],
            "stream" => vec!["100000".into(), "2".into()],
            _ => Vec::new(),
        };
        let mut v = v;
        if self.name == "fwq" {
            v.push(if dump { "1" } else { "0" }.into());
        }
        v
    }

    /// Builds the probe with `gcc -static -O2` into `dir` (unless the binary
    /// there was built from the same source) and returns its path.
    pub fn build(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let src_dir = dir.join("src");
        fs::create_dir_all(&src_dir)
            .with_context(|| format!("cannot create {}", src_dir.display()))?;
        let src = src_dir.join(format!("{}.c", self.name));
        let header = src_dir.join("probe.h");
        let out = dir.join(self.name);
        let same = |p: &Path, text: &str| fs::read(p).is_ok_and(|b| b == text.as_bytes());
        if same(&src, self.source) && same(&header, HEADER) && out.is_file() {
            return Ok(out);
        }
        fs::write(&header, HEADER)?;
        fs::write(&src, self.source)?;
        let tmp = dir.join(format!(".{}.{}.tmp", self.name, std::process::id()));
        let mut cmd = Command::new("gcc");
        cmd.args(["-static", "-O2", "-Wall", "-pthread"]);
        if self.openmp {
            cmd.arg("-fopenmp");
        }
        cmd.arg("-o").arg(&tmp).arg(&src);
        let o = cmd
            .output()
            .context("cannot run gcc to build the probes; run tools/install-deps.sh")?;
        if !o.status.success() {
            // The source may be stale next time: make sure it is rebuilt.
            let _ = fs::remove_file(&src);
            bail!(
                "gcc failed to build probe {}:\n{}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        fs::rename(&tmp, &out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog() {
        for p in PROBES {
            assert!(!p.metrics.is_empty(), "{}", p.name);
            // A probe names itself, or is told its name by its first argument.
            assert!(
                p.source.contains(&format!("probe_name = \"{}\"", p.name))
                    || (p.source.contains("probe_name = argv[1]")
                        && p.args(Scale::Tiny, 0, false)[0] == p.name),
                "{}",
                p.name
            );
            for m in p.metrics {
                assert!(
                    p.source.contains(&format!("{}=", m.key)),
                    "{} {}",
                    p.name,
                    m.key
                );
            }
            assert!(!p.args(Scale::Tiny, 64 << 20, false).is_empty());
        }
        assert!(find("fwq").is_some() && find("nope").is_none());
        assert_eq!(
            find("fwq")
                .unwrap()
                .args(Scale::Tiny, 0, true)
                .last()
                .unwrap(),
            "1"
        );
    }

    #[test]
    fn gups_table_fits() {
        assert_eq!(gups_table_mib(1 << 30), 256);
        assert_eq!(gups_table_mib(3 << 30), 512);
        assert_eq!(gups_table_mib(8 << 30), 1024);
        assert_eq!(gups_table_mib(64 << 20), 16);
        assert!(Goal::AtMost(0.5).met(0.5) && !Goal::AtMost(0.5).met(0.6));
        assert!(Goal::AtLeast(1.0).met(1.2) && !Goal::AtLeast(1.0).met(0.9));
    }
}
