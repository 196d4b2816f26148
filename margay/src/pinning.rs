//! vCPU pinning: which host cores the partition's vCPU threads run on. Linux
//! cpulists (`--host-cpus`), margay's allowed cores, the choice of cores, and
//! pinning QEMU's vCPU threads (found through QMP) before the guest starts.
//! Everything but `apply` and `host_cores` is pure.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::qemu::Accel;
use crate::qmp::Qmp;

/// Core numbers beyond this are refused (the kernel's default CPU_SETSIZE).
pub const MAX_CORE: usize = 1023;
/// How long QEMU may take to answer on its monitor.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(20);

/// Parse a Linux cpulist (`3`, `2-5`, `0,2,4-6`): the cores in increasing order.
/// Empty items, reversed ranges, duplicates and numbers above `MAX_CORE` are errors.
pub fn parse_cpulist(s: &str) -> Result<Vec<usize>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("an empty core list (e.g. 2-3 or 0,2)".into());
    }
    let num = |x: &str| -> Result<usize, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{s}' is not a core list (e.g. 3, 2-5 or 0,2,4-6)"));
        }
        match x.parse::<usize>() {
            Ok(n) if n <= MAX_CORE => Ok(n),
            _ => Err(format!("core {x} in '{s}' is above {MAX_CORE}")),
        }
    };
    let mut cores = Vec::new();
    for item in t.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("'{item}' in '{s}' is a reversed range"));
        }
        cores.extend(lo..=hi);
    }
    cores.sort_unstable();
    if let Some(w) = cores.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("'{s}' names core {} twice", w[0]));
    }
    Ok(cores)
}

/// A parsed `--host-cpus` value (a newtype, so that clap takes it as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// clap's value parser for `--host-cpus`.
pub fn parse_host_cpus(s: &str) -> Result<CpuList, String> {
    parse_cpulist(s).map(CpuList)
}

/// `0,1,4`.
pub fn join(v: &[impl ToString]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What to do with the vCPU threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Pin vCPU i to host core `cores[i]`.
    Pin { cores: Vec<usize>, explicit: bool },
    /// Leave them to the host scheduler, for this reason.
    Skip(String),
}

/// Choose the host cores for `n` vCPUs: `requested` (from `--host-cpus`) must name
/// exactly `n` cores, each existing (in `online`, when known) and in `allowed`;
/// the default is the last `n` allowed cores, or no pinning when fewer than `n`
/// are allowed. An `Err` is a usage error.
pub fn plan(
    requested: Option<&[usize]>,
    n: u32,
    allowed: &[usize],
    online: Option<&[usize]>,
) -> Result<Plan, String> {
    let n = n as usize;
    let Some(req) = requested else {
        if allowed.len() < n {
            return Ok(Plan::Skip(format!(
                "oversubscribed: margay may use only {} host core{} ({})",
                allowed.len(),
                if allowed.len() == 1 { "" } else { "s" },
                join(allowed)
            )));
        }
        return Ok(Plan::Pin {
            cores: allowed[allowed.len() - n..].to_vec(),
            explicit: false,
        });
    };
    if req.len() != n {
        return Err(format!(
            "--host-cpus names {} host core{} ({}), but --cpus is {n}: give exactly one host core per LWK core",
            req.len(),
            if req.len() == 1 { "" } else { "s" },
            join(req)
        ));
    }
    for &c in req {
        if let Some(online) = online {
            if !online.contains(&c) {
                return Err(format!(
                    "--host-cpus: host core {c} does not exist or is offline (online cores: {})",
                    join(online)
                ));
            }
        }
        if !allowed.contains(&c) {
            return Err(format!(
                "--host-cpus: host core {c} is not among the cores margay may use ({})",
                join(allowed)
            ));
        }
    }
    Ok(Plan::Pin {
        cores: req.to_vec(),
        explicit: true,
    })
}

/// margay's allowed cores and the host's online cores (if /sys says).
pub fn host_cores() -> std::io::Result<(Vec<usize>, Option<Vec<usize>>)> {
    let allowed = crate::sys::allowed_cpus()?;
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpulist(&s).ok());
    Ok((allowed, online))
}

/// What was done, for `--stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pinned {
        cores: Vec<usize>,
        threads: Vec<u32>,
    },
    NotPinned(String),
}

/// The `--stats` line.
pub fn render(cpus: u32, accel: Accel, o: &Outcome) -> String {
    let accel = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    let s_ = if cpus == 1 { "" } else { "s" };
    let mut s = format!("partition: {cpus} LWK core{s_}");
    match o {
        Outcome::Pinned { cores, threads } => {
            let _ = write!(
                s,
                " on host core{} {} (vCPU thread{} {} pinned)",
                if cores.len() == 1 { "" } else { "s" },
                join(cores),
                if threads.len() == 1 { "" } else { "s" },
                join(threads)
            );
        }
        Outcome::NotPinned(why) => {
            let _ = write!(s, ", vCPU threads not pinned ({why})");
        }
    }
    let _ = writeln!(s, ", accel {accel}");
    s
}

/// With QEMU stopped (`-S`) behind `monitor`: find its `cpus` vCPU threads, pin
/// vCPU i to `cores[i]`, and let the guest run. An error leaves the guest stopped
/// (the caller kills QEMU); a failed pin of a default (not `--host-cpus`) choice
/// only leaves the threads unpinned, with a warning.
pub fn apply(
    qmp: &mut Qmp,
    qemu_pid: u32,
    cores: &[usize],
    explicit: bool,
) -> anyhow::Result<Outcome> {
    let threads = qmp
        .vcpu_threads(cores.len())
        .context("QEMU's monitor (QMP)")?;
    pin(qemu_pid, cores, &threads, explicit)
}

fn pin(qemu_pid: u32, cores: &[usize], threads: &[u32], explicit: bool) -> anyhow::Result<Outcome> {
    let mut distinct = threads.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != threads.len() {
        return Ok(Outcome::NotPinned(
            "the vCPUs share QEMU threads (single-threaded TCG)".into(),
        ));
    }
    for (&tid, &core) in threads.iter().zip(cores) {
        // QEMU is trusted less than we are: only ever touch its own threads.
        if !std::path::Path::new(&format!("/proc/{qemu_pid}/task/{tid}")).exists() {
            bail!("QEMU reported vCPU thread {tid}, which is not one of its threads");
        }
        if let Err(e) = crate::sys::pin_thread(tid, core) {
            let msg = format!("cannot pin vCPU thread {tid} to host core {core}: {e}");
            if explicit {
                bail!("--host-cpus: {msg}");
            }
            eprintln!("margay: warning: {msg}; vCPU threads left unpinned");
            return Ok(Outcome::NotPinned(msg));
        }
    }
    Ok(Outcome::Pinned {
        cores: cores.to_vec(),
        threads: threads.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists() {
        assert_eq!(parse_cpulist("3"), Ok(vec![3]));
        assert_eq!(parse_cpulist("2-5"), Ok(vec![2, 3, 4, 5]));
        assert_eq!(parse_cpulist("0,2,4-6"), Ok(vec![0, 2, 4, 5, 6]));
        assert_eq!(parse_cpulist("4-6,0\n"), Ok(vec![0, 4, 5, 6]));
        assert_eq!(parse_cpulist("7-7"), Ok(vec![7]));
        assert_eq!(parse_cpulist("1023"), Ok(vec![1023]));
        for bad in [
            "",
            " ",
            ",",
            "1,",
            ",1",
            "1,,2",
            "-1",
            "1-",
            "3-2",
            "a",
            "1.5",
            "0x3",
            "1 ,2",
            "1024",
            "1-1024",
            "+1",
            "1-2-3",
            "99999999999999999999999",
        ] {
            assert!(parse_cpulist(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_cpulist("1,0-2").unwrap_err().contains("core 1 twice"));
        assert!(parse_cpulist("3-2").unwrap_err().contains("reversed"));
    }

    #[test]
    fn default_is_the_last_allowed_cores() {
        let allowed = [0, 1, 2, 3];
        assert_eq!(
            plan(None, 2, &allowed, None),
            Ok(Plan::Pin {
                cores: vec![2, 3],
                explicit: false
            })
        );
        assert_eq!(
            plan(None, 4, &allowed, Some(&allowed)),
            Ok(Plan::Pin {
                cores: vec![0, 1, 2, 3],
                explicit: false
            })
        );
        let Ok(Plan::Skip(why)) = plan(None, 5, &allowed, None) else {
            panic!("oversubscription must not pin");
        };
        assert!(
            why.contains("oversubscribed") && why.contains("4 host cores (0,1,2,3)"),
            "{why}"
        );
    }

    #[test]
    fn requested_cores_are_validated() {
        let online = [0, 1, 2, 3, 4, 5];
        let allowed = [1, 2, 3, 5];
        let p = |s: &str, n| plan(Some(&parse_cpulist(s).unwrap()), n, &allowed, Some(&online));
        assert_eq!(
            p("2,5", 2),
            Ok(Plan::Pin {
                cores: vec![2, 5],
                explicit: true
            })
        );
        assert!(p("1-3", 2).unwrap_err().contains("names 3 host cores"));
        assert!(p("2", 2).unwrap_err().contains("names 1 host core (2)"));
        assert!(p("99", 1).unwrap_err().contains("core 99 does not exist"));
        assert!(p("0,1", 2).unwrap_err().contains("core 0 is not among"));
        // Unknown online set: only the allowed set decides.
        assert!(plan(Some(&[7]), 1, &allowed, None)
            .unwrap_err()
            .contains("core 7 is not among"));
        // --host-cpus with fewer allowed cores than LWK cores is an error, not a skip.
        assert!(plan(Some(&[1, 2, 3, 5, 0]), 5, &allowed, Some(&online)).is_err());
    }

    #[test]
    fn stats_line() {
        let o = Outcome::Pinned {
            cores: vec![0, 1],
            threads: vec![1234, 1235],
        };
        assert_eq!(
            render(2, Accel::Tcg, &o),
            "partition: 2 LWK cores on host cores 0,1 (vCPU threads 1234,1235 pinned), accel tcg\n"
        );
        let o = Outcome::Pinned {
            cores: vec![3],
            threads: vec![9],
        };
        assert_eq!(
            render(1, Accel::Kvm, &o),
            "partition: 1 LWK core on host core 3 (vCPU thread 9 pinned), accel kvm\n"
        );
        let o = Outcome::NotPinned("oversubscribed".into());
        assert_eq!(
            render(4, Accel::Tcg, &o),
            "partition: 4 LWK cores, vCPU threads not pinned (oversubscribed), accel tcg\n"
        );
    }
}
