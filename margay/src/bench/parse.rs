//! Reading the probes' output: result and error lines (found by prefix
//! anywhere in a line, since a serial console may prefix kernel noise), fwq's
//! per-quantum samples, and the statistics over repeated runs.

use std::collections::BTreeMap;

use super::probes::Probe;

pub const RESULT: &str = "MARGAY-RESULT ";
pub const ERROR: &str = "MARGAY-ERROR ";
pub const FWQ: &str = "MARGAY-FWQ ";
/// Printed by a probe that announces its start (the test-only `hang`), so
/// its own deadline can start then.
pub const START: &str = "MARGAY-START ";

/// One run's metrics by key.
pub type Metrics = BTreeMap<String, f64>;

/// Per-quantum times (ns) of one core.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CoreSamples {
    pub core: u32,
    pub ns: Vec<u64>,
}

fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.find(prefix)
        .map(|i| line[i + prefix.len()..].trim_end())
}

fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split_whitespace().filter_map(|kv| kv.split_once('='))
}

/// The outcome of one probe run from its output. `exit` describes how the
/// process ended when it did not exit 0 (None for success); `stderr_tail` is
/// shown when the probe printed no error of its own.
pub fn outcome(
    probe: &Probe,
    output: &str,
    exit: Option<&str>,
    stderr_tail: &str,
) -> Result<Metrics, String> {
    let tag = format!("probe={}", probe.name);
    let mut result = None;
    for line in output.lines() {
        if let Some(rest) = after(line, ERROR) {
            let msg = rest.strip_prefix(&tag).unwrap_or(rest).trim();
            return Err(msg.to_string());
        }
        if let Some(rest) = after(line, RESULT) {
            if rest.split_whitespace().next() == Some(tag.as_str()) {
                result = Some(rest);
            }
        }
    }
    let context = || {
        let t = stderr_tail.trim();
        if t.is_empty() {
            String::new()
        } else {
            format!(": {}", t.lines().collect::<Vec<_>>().join(" | "))
        }
    };
    let Some(line) = result else {
        return Err(format!(
            "{} without a result line{}",
            exit.unwrap_or("exited 0"),
            context()
        ));
    };
    if let Some(e) = exit {
        return Err(format!("{e} after printing its result{}", context()));
    }
    let mut m = Metrics::new();
    for (k, v) in pairs(line).skip(1) {
        let x: f64 = v
            .parse()
            .map_err(|_| format!("bad value in result line: {k}={v}"))?;
        m.insert(k.to_string(), x);
    }
    for want in probe.metrics {
        if !m.contains_key(want.key) {
            return Err(format!("result line lacks {}: {line}", want.key));
        }
    }
    Ok(m)
}

/// fwq's sample lines ("MARGAY-FWQ core=C i=FIRST t,t,..."), by core in order
/// of appearance.
pub fn fwq_samples(output: &str) -> Vec<CoreSamples> {
    let mut cores: Vec<CoreSamples> = Vec::new();
    for line in output.lines() {
        let Some(rest) = after(line, FWQ) else {
            continue;
        };
        let mut core = None;
        let mut values = "";
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some(("core", c)) => core = c.parse::<u32>().ok(),
                Some(_) => {}
                None => values = word,
            }
        }
        let Some(core) = core else { continue };
        let ns = values.split(',').filter_map(|v| v.parse::<u64>().ok());
        match cores.iter_mut().find(|c| c.core == core) {
            Some(c) => c.ns.extend(ns),
            None => cores.push(CoreSamples {
                core,
                ns: ns.collect(),
            }),
        }
    }
    cores
}

/// Median and spread of one metric over repeated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    /// (max - min) / median, in percent.
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            100.0 * (self.max - self.min) / self.median.abs()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::probes::find;

    #[test]
    fn results_and_errors() {
        let p = find("migrate").unwrap();
        let out = "[  1.0] noise\r\nMARGAY-RESULT probe=migrate rt_min_ns=10 rt_med_ns=12.5\r\n";
        let m = outcome(p, out, None, "").unwrap();
        assert_eq!(m["rt_med_ns"], 12.5);
        assert_eq!(m["rt_min_ns"], 10.0);
        // Another probe's line does not count.
        let e = outcome(
            p,
            "MARGAY-RESULT probe=futex rt_min_ns=1 rt_med_ns=1\n",
            Some("exited 1"),
            "boom\n",
        )
        .unwrap_err();
        assert_eq!(e, "exited 1 without a result line: boom");
        let e = outcome(
            p,
            "x MARGAY-ERROR probe=migrate sched_setaffinity: Invalid argument\n",
            Some("exited 1"),
            "",
        )
        .unwrap_err();
        assert_eq!(e, "sched_setaffinity: Invalid argument");
        let e = outcome(p, "MARGAY-RESULT probe=migrate rt_min_ns=10\n", None, "").unwrap_err();
        assert!(e.contains("lacks rt_med_ns"), "{e}");
        let e = outcome(
            p,
            "MARGAY-RESULT probe=migrate rt_min_ns=x rt_med_ns=1\n",
            None,
            "",
        )
        .unwrap_err();
        assert!(e.contains("bad value"), "{e}");
        let e = outcome(
            p,
            "MARGAY-RESULT probe=migrate rt_min_ns=1 rt_med_ns=1\n",
            Some("killed by SIGSEGV"),
            "",
        )
        .unwrap_err();
        assert!(e.contains("after printing"), "{e}");
    }

    #[test]
    fn fwq_sample_lines() {
        let out =
            "MARGAY-FWQ core=0 i=0 1,2,3\nMARGAY-FWQ core=1 i=0 7\r\nMARGAY-FWQ core=0 i=3 4\n";
        let s = fwq_samples(out);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            CoreSamples {
                core: 0,
                ns: vec![1, 2, 3, 4]
            }
        );
        assert_eq!(s[1].ns, vec![7]);
    }

    #[test]
    fn summaries() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(s.spread_pct(), 100.0);
        assert_eq!(Summary::of(&[1.0, 3.0]).unwrap().median, 2.0);
        assert!(Summary::of(&[]).is_none());
    }
}
