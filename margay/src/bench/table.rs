//! The results of a bench run: per kernel (column) and probe, every run's
//! metrics or error; rendered as a Markdown table (metric, Linux, Margay,
//! native, ratio, which way is better, goal) and as `results.json`.

use std::fmt::Write as _;

use super::json;
use super::load::Around;
use super::parse::{CoreSamples, Metrics, Summary};
use super::probes::{self, Better, Metric, Probe, Unit};
use super::svg::RatioBar;

/// One kernel's runs: `runs[probe][rep]`.
pub struct Column {
    pub name: String,
    pub runs: Vec<Vec<Result<Metrics, String>>>,
    /// fwq's per-quantum samples from its first run.
    pub fwq: Vec<CoreSamples>,
    /// The host's load before and after this kernel's runs.
    pub load: Option<Around>,
    /// Deadlines that expired, retries.
    pub incidents: Vec<String>,
}

impl Column {
    pub fn new(name: &str, probes: usize) -> Column {
        Column {
            name: name.into(),
            runs: vec![Vec::new(); probes],
            fwq: Vec::new(),
            load: None,
            incidents: Vec::new(),
        }
    }

    /// Ok if every run of probe `p` succeeded, else the first error and how
    /// many runs failed.
    pub fn status(&self, p: usize) -> Result<(), String> {
        let runs = &self.runs[p];
        if runs.is_empty() {
            return Err("not run".into());
        }
        let failed: Vec<&String> = runs.iter().filter_map(|r| r.as_ref().err()).collect();
        match failed.first() {
            None => Ok(()),
            Some(e) => Err(format!(
                "{} ({}/{} runs failed)",
                e,
                failed.len(),
                runs.len()
            )),
        }
    }

    pub fn summary(&self, p: usize, key: &str) -> Option<Summary> {
        self.status(p).ok()?;
        let v: Vec<f64> = self.runs[p]
            .iter()
            .filter_map(|r| r.as_ref().ok()?.get(key).copied())
            .collect();
        Summary::of(&v)
    }
}

pub struct Results {
    pub probes: Vec<&'static Probe>,
    /// Linux first, Margay second, then native if it ran.
    pub columns: Vec<Column>,
}

/// A value with its unit, three significant digits or so.
pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ns if v >= 1e6 => format!("{:.3} ms", v / 1e6),
        Unit::Ns if v >= 1e4 => format!("{:.1} µs", v / 1e3),
        Unit::Ns if v >= 1e3 => format!("{:.2} µs", v / 1e3),
        Unit::Ns => format!("{v:.0} ns"),
        Unit::Pct => format!("{v:.2} %"),
        Unit::Mups => format!("{v:.2} Mup/s"),
        Unit::MBs => format!("{v:.0} MB/s"),
        Unit::Count => format!("{v:.0}"),
    }
}

impl Results {
    const LINUX: usize = 0;
    const MARGAY: usize = 1;

    fn cell(&self, c: usize, p: usize, m: &Metric) -> String {
        let col = &self.columns[c];
        if col.status(p).is_err() {
            return "FAILED".into();
        }
        match col.summary(p, m.key) {
            None => "-".into(),
            Some(s) if s.runs > 1 && m.better != Better::Info => {
                format!("{} ±{:.0}%", format_value(s.median, m.unit), s.spread_pct())
            }
            Some(s) => format_value(s.median, m.unit),
        }
    }

    /// Margay/Linux for a metric, when both ran.
    pub fn ratio(&self, p: usize, m: &Metric) -> Option<f64> {
        if m.better == Better::Info {
            return None;
        }
        let l = self.columns[Self::LINUX].summary(p, m.key)?.median;
        let g = self.columns[Self::MARGAY].summary(p, m.key)?.median;
        (l != 0.0).then_some(g / l)
    }

    /// The interval the ratio's runs span: Margay's min over Linux's max to
    /// Margay's max over Linux's min.
    pub fn ratio_range(&self, p: usize, m: &Metric) -> Option<(f64, f64)> {
        self.ratio(p, m)?;
        let l = self.columns[Self::LINUX].summary(p, m.key)?;
        let g = self.columns[Self::MARGAY].summary(p, m.key)?;
        (l.min > 0.0).then(|| (g.min / l.max, g.max / l.min))
    }

    /// The Linux and Margay columns taken under load, described.
    pub fn under_load(&self) -> Vec<String> {
        self.columns
            .iter()
            .take(2)
            .filter_map(|c| {
                let a = c.load.as_ref()?;
                a.busy().then(|| {
                    format!(
                        "{}: before its runs {}; after {}",
                        c.name,
                        a.before.describe(),
                        a.after.describe()
                    )
                })
            })
            .collect()
    }

    pub fn failures(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (p, probe) in self.probes.iter().enumerate() {
            for c in &self.columns {
                if let Err(e) = c.status(p) {
                    v.push(format!("{} on {}: {e}", probe.name, c.name));
                }
            }
        }
        v
    }

    /// The Markdown table, then one line per failure.
    pub fn render(&self) -> String {
        let loaded = self.under_load();
        let mark = if loaded.is_empty() { "" } else { "*" };
        let mut head = vec!["probe".to_string(), "metric".into()];
        head.extend(self.columns.iter().map(|c| c.name.clone()));
        head.extend(["Margay/Linux".into(), "better".into(), "goal".into()]);
        let mut rows = vec![head];
        for (p, probe) in self.probes.iter().enumerate() {
            for (i, m) in probe.metrics.iter().enumerate() {
                let mut r = vec![
                    if i == 0 {
                        probe.name.to_string()
                    } else {
                        String::new()
                    },
                    m.label.to_string(),
                ];
                r.extend((0..self.columns.len()).map(|c| self.cell(c, p, m)));
                let ratio = self.ratio(p, m);
                r.push(ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}{mark}")));
                r.push(match m.better {
                    Better::Lower => "lower".into(),
                    Better::Higher => "higher".into(),
                    Better::Info => String::new(),
                });
                r.push(match (m.goal, ratio) {
                    (None, _) => String::new(),
                    (Some(g), None) => format!("{} n/a", g.describe()),
                    (Some(g), Some(x)) if g.met(x) => format!("{} met", g.describe()),
                    (Some(g), Some(_)) => format!("{} MISSED", g.describe()),
                });
                rows.push(r);
            }
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (i, r) in rows.iter().enumerate() {
            out.push('|');
            for (c, cell) in r.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                for w in &widths {
                    let _ = write!(out, "{}|", "-".repeat(w + 2));
                }
                out.push('\n');
            }
        }
        if !loaded.is_empty() {
            out.push_str(
                "\n\\* Taken under load (other processes used more than a quarter of a core):\n",
            );
            for l in &loaded {
                let _ = writeln!(out, "- {l}");
            }
        }
        let failures = self.failures();
        if !failures.is_empty() {
            out.push_str("\nFailed:\n");
            for f in failures {
                let _ = writeln!(out, "- {f}");
            }
        }
        let incidents: Vec<String> = self
            .columns
            .iter()
            .flat_map(|c| c.incidents.iter().map(move |i| format!("{}: {i}", c.name)))
            .collect();
        if !incidents.is_empty() {
            out.push_str("\nDeadlines and retries:\n");
            for i in incidents {
                let _ = writeln!(out, "- {i}");
            }
        }
        out
    }

    pub fn ratio_bars(&self) -> Vec<RatioBar> {
        let mut v = Vec::new();
        for (p, probe) in self.probes.iter().enumerate() {
            for m in probe.metrics {
                if let Some(r) = self.ratio(p, m) {
                    v.push(RatioBar {
                        label: format!("{}: {}", probe.name, m.label),
                        ratio: r,
                        goal: m.goal.map(|g| (g.value(), g.met(r))),
                        higher_better: m.better == Better::Higher,
                    });
                }
            }
        }
        v
    }

    /// `results.json`: `config` is passed through; per probe and kernel the
    /// status, error, every run and the summaries; the ratios; fwq samples.
    pub fn to_json<'a>(&'a self, config: &'a json::Config) -> json::ResultsFile<'a> {
        let probes = self.probes.iter().enumerate().map(|(p, probe)| {
            let kernels = self.columns.iter().map(|c| {
                let status = c.status(p);
                let runs = c.runs[p].iter().map(|r| match r {
                    Ok(m) => json::Run::Metrics(m),
                    Err(e) => json::Run::Failed { error: e },
                });
                let summary = probe.metrics.iter().filter_map(|m| {
                    let s = c.summary(p, m.key)?;
                    Some((
                        m.key,
                        json::Summary {
                            median: s.median,
                            min: s.min,
                            max: s.max,
                            spread_pct: s.spread_pct(),
                            runs: s.runs,
                        },
                    ))
                });
                (
                    c.name.as_str(),
                    json::KernelResults {
                        status: if status.is_ok() { "ok" } else { "failed" },
                        error: status.err(),
                        summary: summary.collect(),
                        runs: runs.collect(),
                    },
                )
            });
            let ratios = probe
                .metrics
                .iter()
                .filter(|m| m.better != Better::Info)
                .map(|m| {
                    let r = self.ratio(p, m);
                    (
                        m.key,
                        json::Ratio {
                            label: m.label,
                            margay_over_linux: r,
                            better: if m.better == Better::Lower {
                                "lower"
                            } else {
                                "higher"
                            },
                            goal: m.goal.map(|g| g.describe()),
                            goal_met: match (m.goal, r) {
                                (Some(g), Some(r)) => Some(g.met(r)),
                                _ => None,
                            },
                            range: self.ratio_range(p, m),
                        },
                    )
                });
            json::ProbeResults {
                name: probe.name,
                kernels: kernels.collect(),
                ratios: ratios.collect(),
            }
        });
        json::ResultsFile {
            config,
            probes: probes.collect(),
            load: self
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.load.as_ref()))
                .collect(),
            incidents: self
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.incidents.as_slice()))
                .collect(),
            fwq_samples: self
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.fwq.as_slice()))
                .collect(),
        }
    }
}

impl Results {
    /// The results back from a `results.json` (`--compare`, `--table`):
    /// probes by name (unknown ones are skipped), columns in file order.
    pub fn from_json(v: &serde_json::Value) -> Result<Results, String> {
        let probes_v = v["probes"].as_array().ok_or("results.json has no probes")?;
        let mut probes = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut per_probe = Vec::new();
        for pv in probes_v {
            let Some(p) = pv["name"].as_str().and_then(probes::by_name) else {
                continue;
            };
            let Some(kernels) = pv["kernels"].as_object() else {
                continue;
            };
            for k in kernels.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
            probes.push(p);
            per_probe.push(kernels);
        }
        // Linux, Margay, then the rest.
        names.sort_by_key(|n| match n.as_str() {
            "Linux" => 0,
            "Margay" => 1,
            _ => 2,
        });
        let columns = names
            .iter()
            .map(|name| {
                let mut c = Column::new(name, probes.len());
                for (pi, kernels) in per_probe.iter().enumerate() {
                    let runs = kernels
                        .get(name)
                        .and_then(|k| k["runs"].as_array())
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    c.runs[pi] = runs
                        .iter()
                        .map(|r| match r["error"].as_str() {
                            Some(e) => Err(e.to_string()),
                            None => Ok(r
                                .as_object()
                                .map(|o| {
                                    o.iter()
                                        .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
                                        .collect()
                                })
                                .unwrap_or_default()),
                        })
                        .collect();
                }
                c.load = serde_json::from_value(v["load"][name].clone()).ok();
                c.incidents =
                    serde_json::from_value(v["incidents"][name].clone()).unwrap_or_default();
                c
            })
            .collect::<Vec<_>>();
        if columns.len() < 2 {
            return Err("results.json lacks the Linux or the Margay column".into());
        }
        Ok(Results { probes, columns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::probes::find;

    fn metrics(pairs: &[(&str, f64)]) -> Metrics {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn sample() -> Results {
        let thread = find("thread").unwrap();
        let futex = find("futex").unwrap();
        let ok = |a: f64| Ok(metrics(&[("min_ns", a), ("med_ns", a * 2.0)]));
        let fx = Ok(metrics(&[
            ("cores", 2.0),
            ("rt_min_ns", 50_000.0),
            ("rt_med_ns", 83_000.0),
        ]));
        Results {
            probes: vec![thread, futex],
            columns: vec![
                Column {
                    runs: vec![vec![ok(100_000.0), ok(120_000.0), ok(80_000.0)], vec![fx]],
                    ..Column::new("Linux", 2)
                },
                Column {
                    runs: vec![
                        vec![ok(10_000.0), ok(10_000.0), ok(10_000.0)],
                        vec![Err("pthread_create: Function not implemented".into())],
                    ],
                    ..Column::new("Margay", 2)
                },
            ],
        }
    }

    #[test]
    fn table_shows_ratios_goals_and_failures() {
        let r = sample();
        let t = r.render();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("| probe "), "{t}");
        assert!(lines[1].starts_with("|---"), "{t}");
        let med = lines
            .iter()
            .find(|l| l.contains("create+join median"))
            .unwrap();
        assert!(med.contains("200.0 µs ±40%"), "{med}");
        assert!(med.contains("| 0.10 "), "{med}");
        assert!(med.contains("<= 0.5 met"), "{med}");
        let fx = lines
            .iter()
            .find(|l| l.contains("ping-pong round trip median"))
            .unwrap();
        assert!(fx.contains("FAILED") && fx.contains("<= 1 n/a"), "{fx}");
        assert!(t.contains("\nFailed:\n- futex on Margay: pthread_create: Function not implemented (1/1 runs failed)"), "{t}");
        assert_eq!(r.failures().len(), 1);
        assert_eq!(r.ratio_bars().len(), 2);
    }

    #[test]
    fn json_has_everything() {
        let config = json::Config {
            command: "margay bench".into(),
            cpus: 2,
            mem_mib: 1024,
            accel: "tcg".into(),
            repeat: 3,
            scale: "tiny".into(),
            linux_kernel: "/boot/vmlinuz".into(),
            linux_guest: "Linux".into(),
            linux_cmdline: "console=ttyS0".into(),
            tsc_khz: Some(2_596_132),
            tsc_source: "cpuid".into(),
            elapsed_s: 1,
            host: "cpu".into(),
            ..json::Config::default()
        };
        let r = sample();
        let j = json::render(&r.to_json(&config)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["config"]["cpus"], 2);
        assert_eq!(
            v["probes"][0]["kernels"]["Linux"]["runs"][0]["min_ns"],
            100_000.0
        );
        assert_eq!(
            v["probes"][1]["kernels"]["Margay"]["runs"][0]["error"],
            "pthread_create: Function not implemented"
        );
        assert_eq!(
            v["probes"][0]["kernels"]["Margay"]["error"],
            serde_json::Value::Null
        );
        assert_eq!(
            v["probes"][0]["kernels"]["Linux"]["summary"]["med_ns"]["runs"],
            3
        );
        // Kernels in column order.
        let kernels = j.find("\"Linux\": {").unwrap();
        assert!(kernels < j.find("\"Margay\": {").unwrap());
        assert!(j.contains("\"status\": \"failed\""), "{j}");
        assert!(
            j.contains("\"error\": \"pthread_create: Function not implemented (1/1 runs failed)\"")
        );
        assert!(j.contains("\"margay_over_linux\": 0.1"), "{j}");
        assert!(j.contains("\"goal_met\": true"));
        assert_eq!(v["config"]["tsc_khz"], 2_596_132);
        // Read back, it renders the same table.
        let back = Results::from_json(&v).unwrap();
        assert_eq!(back.render(), r.render());
        assert_eq!(
            back.ratio_range(0, &find("thread").unwrap().metrics[1]),
            Some((20_000.0 / 240_000.0, 20_000.0 / 160_000.0))
        );
    }

    #[test]
    fn load_marks_the_ratios() {
        let mut r = sample();
        let quiet = crate::bench::load::Sample {
            loadavg: [0.1, 0.1, 0.1],
            others_cores: 0.0,
            busiest: vec![],
            window_ms: 500,
        };
        let busy = crate::bench::load::Sample {
            loadavg: [2.5, 1.0, 0.5],
            others_cores: 1.8,
            busiest: vec!["cc1 (42) 1.80".into()],
            ..quiet.clone()
        };
        r.columns[0].load = Some(Around {
            before: quiet.clone(),
            after: quiet.clone(),
        });
        assert!(!r.render().contains('*'));
        r.columns[1].load = Some(Around {
            before: quiet,
            after: busy,
        });
        let t = r.render();
        assert!(t.contains("| 0.10* "), "{t}");
        assert!(t.contains("Taken under load"), "{t}");
        assert!(t.contains("- Margay: before its runs load average 0.10, other processes used 0.00 cores; after load average 2.50, other processes used 1.80 cores (cc1 (42) 1.80)"), "{t}");
    }

    #[test]
    fn values() {
        assert_eq!(format_value(443.0, Unit::Ns), "443 ns");
        assert_eq!(format_value(1_500.0, Unit::Ns), "1.50 µs");
        assert_eq!(format_value(136_000.0, Unit::Ns), "136.0 µs");
        assert_eq!(format_value(2_500_000.0, Unit::Ns), "2.500 ms");
        assert_eq!(format_value(7.7, Unit::Pct), "7.70 %");
    }
}
