//! Saved runs and regressions: `--save NAME` copies a run's results.json,
//! table.md and plots to `OUT/history/NAME/` with `run.json` (name, time, git
//! commit, configuration) and redraws `OUT/history/ratios-over-time.svg`
//! (each goal metric's ratio over the saved runs); `--compare OLD [NEW]`
//! prints each metric's old and new Margay/Linux ratios and flags changes
//! larger than the runs' spreads; `--table NAME` prints a saved run's
//! Markdown table (the README's tables come from it).

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::json::{self, Config};
use super::probes::{Better, PROBES};
use super::svg::{self, Series};
use super::table::Results;

/// Under `--out`.
pub const DIR: &str = "history";
/// The plot of the goal metrics over the saved runs, in `DIR`.
pub const PLOT: &str = "ratios-over-time.svg";
/// `--compare`/`--table`: the last run in `--out` rather than a saved one.
pub const LAST: &str = "last";

/// `run.json` of a saved run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub name: String,
    pub saved_unix_s: u64,
    pub git_commit: Option<String>,
    pub config: Config,
}

/// A saved run's name: letters, digits, '.', '_', '-', not starting with '.'.
pub fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s != LAST
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a run name (letters, digits, '.', '_', '-'; not \"{LAST}\")"
        ))
    }
}

fn run_dir(out: &Path, name: &str) -> PathBuf {
    out.join(DIR).join(name)
}

/// Refuses a name that is already saved (before spending time on the run).
pub fn check_free(out: &Path, name: &str) -> anyhow::Result<()> {
    let d = run_dir(out, name);
    if d.exists() {
        bail!(
            "a run named {name} is already saved in {}; choose another name or remove it",
            d.display()
        );
    }
    Ok(())
}

/// Keeps the run just written to `out` (its `files`) as `name`; redraws
/// the history plot.
pub fn save(out: &Path, name: &str, files: &[&str]) -> anyhow::Result<PathBuf> {
    check_free(out, name)?;
    let dir = run_dir(out, name);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in files {
        fs::copy(out.join(f), dir.join(f))
            .with_context(|| format!("cannot copy {} to {}", f, dir.display()))?;
    }
    let (v, _) = load(out, LAST)?;
    let config: Config = serde_json::from_value(v["config"].clone()).unwrap_or_default();
    let saved = Saved {
        name: name.to_string(),
        saved_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        git_commit: config.git_commit.clone(),
        config,
    };
    let run_json = json::render(&saved).context("cannot encode run.json")?;
    fs::write(dir.join("run.json"), run_json)
        .with_context(|| format!("cannot write {}", dir.join("run.json").display()))?;
    plot(out)?;
    Ok(dir)
}

/// A run's results.json: `LAST` (the last run in `out`), a saved run's
/// name, or a path to a run directory or results.json. Also its label.
pub fn load(out: &Path, name: &str) -> anyhow::Result<(serde_json::Value, String)> {
    let path = if name == LAST {
        out.join("results.json")
    } else if run_dir(out, name).is_dir() {
        run_dir(out, name).join("results.json")
    } else if Path::new(name).is_dir() {
        Path::new(name).join("results.json")
    } else if Path::new(name).is_file() {
        PathBuf::from(name)
    } else {
        bail!(
            "no run {name}: not saved in {} (saved: {}), and no such file or directory",
            out.join(DIR).display(),
            saved_runs(out)
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let text = super::read(&path)?;
    let v = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok((v, name.to_string()))
}

/// The saved runs (name, save time), oldest first.
pub fn saved_runs(out: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(out.join(DIR))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let text = fs::read_to_string(e.path().join("run.json")).ok()?;
                    let s: Saved = serde_json::from_str(&text).ok()?;
                    Some((name, s.saved_unix_s))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn results_and_config(v: &serde_json::Value) -> anyhow::Result<(Results, Config)> {
    let r = Results::from_json(v).map_err(anyhow::Error::msg)?;
    let c = serde_json::from_value(v["config"].clone()).unwrap_or_default();
    Ok((r, c))
}

/// `--table NAME`: the headline and Markdown table of a run.
pub fn table(out: &Path, name: &str) -> anyhow::Result<String> {
    let (v, _) = load(out, name)?;
    let (r, c) = results_and_config(&v)?;
    Ok(format!("{}\n\n{}", c.headline(), r.render()))
}

/// How a metric's ratio moved between two runs.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// The runs' intervals overlap.
    WithinSpread,
    Better,
    Worse,
}

/// Disjoint intervals are a change; its direction follows `better`.
pub fn classify(old: (f64, f64), new: (f64, f64), better: Better) -> Change {
    let up = new.0 > old.1;
    let down = new.1 < old.0;
    match (up, down, better) {
        (false, false, _) | (_, _, Better::Info) => Change::WithinSpread,
        (true, _, Better::Higher) | (_, true, Better::Lower) => Change::Better,
        _ => Change::Worse,
    }
}

/// `--compare OLD NEW`: prints the comparison; exit status 0.
pub fn compare(out: &Path, old: &str, new: &str, w: &mut dyn Write) -> anyhow::Result<i32> {
    let (ov, _) = load(out, old)?;
    let (nv, _) = load(out, new)?;
    let (or, oc) = results_and_config(&ov)?;
    let (nr, nc) = results_and_config(&nv)?;
    writeln!(w, "old ({old}): {}", oc.headline())?;
    writeln!(w, "new ({new}): {}", nc.headline())?;
    let differ: Vec<String> = [
        ("cores", oc.cpus.to_string(), nc.cpus.to_string()),
        ("MiB", oc.mem_mib.to_string(), nc.mem_mib.to_string()),
        ("accel", oc.accel.clone(), nc.accel.clone()),
        ("icount", oc.icount.to_string(), nc.icount.to_string()),
        ("scale", oc.scale.clone(), nc.scale.clone()),
        ("runs", oc.repeat.to_string(), nc.repeat.to_string()),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(k, a, b)| format!("{k} {a} -> {b}"))
    .collect();
    if !differ.is_empty() {
        writeln!(
            w,
            "note: the runs differ in configuration ({}); ratios may not be comparable",
            differ.join(", ")
        )?;
    }
    for (label, r) in [("old", &or), ("new", &nr)] {
        if !r.under_load().is_empty() {
            writeln!(w, "note: the {label} run was taken under load")?;
        }
    }
    let mut rows = vec![[
        "probe",
        "metric",
        "old Margay/Linux",
        "new Margay/Linux",
        "new/old",
        "change",
    ]
    .map(String::from)];
    let (mut better, mut worse) = (0, 0);
    for (np, probe) in nr.probes.iter().enumerate() {
        let Some(op) = or.probes.iter().position(|p| p.name == probe.name) else {
            continue;
        };
        for m in probe.metrics.iter().filter(|m| m.better != Better::Info) {
            let (o, n) = (or.ratio(op, m), nr.ratio(np, m));
            let fmt = |x: Option<f64>, range: Option<(f64, f64)>| match (x, range) {
                (Some(x), Some((a, b))) => format!("{x:.2} [{a:.2}-{b:.2}]"),
                (Some(x), None) => format!("{x:.2}"),
                _ => "-".into(),
            };
            let (orange, nrange) = (or.ratio_range(op, m), nr.ratio_range(np, m));
            let change = match (orange, nrange) {
                (Some(a), Some(b)) => match classify(a, b, m.better) {
                    Change::WithinSpread => "within spread".to_string(),
                    Change::Better => {
                        better += 1;
                        "BETTER (beyond spread)".into()
                    }
                    Change::Worse => {
                        worse += 1;
                        "WORSE (beyond spread)".into()
                    }
                },
                _ => "n/a".into(),
            };
            let goal = m.goal.map_or(String::new(), |g| match (o, n) {
                (Some(o), Some(n)) if g.met(o) != g.met(n) => format!(
                    "; goal {} {}",
                    g.describe(),
                    if g.met(n) { "now met" } else { "no longer met" }
                ),
                _ => String::new(),
            });
            rows.push([
                probe.name.to_string(),
                m.label.to_string(),
                fmt(o, orange),
                fmt(n, nrange),
                match (o, n) {
                    (Some(o), Some(n)) if o != 0.0 => format!("{:.2}", n / o),
                    _ => "-".into(),
                },
                format!("{change}{goal}"),
            ]);
        }
    }
    writeln!(w)?;
    write!(w, "{}", markdown(&rows))?;
    writeln!(
        w,
        "\nRatios are medians; [a-b] is the interval the runs span (Margay's min over Linux's max to \
         Margay's max over Linux's min). A change is flagged when the two intervals do not overlap: \
         {better} better, {worse} worse."
    )?;
    Ok(0)
}

/// A Markdown table with aligned columns.
pub fn markdown<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        out.push('|');
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(
                out,
                " {cell}{} |",
                " ".repeat(widths[c] - cell.chars().count())
            );
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
    out
}

/// Redraws `OUT/history/ratios-over-time.svg` from the saved runs.
pub fn plot(out: &Path) -> anyhow::Result<()> {
    let runs = saved_runs(out);
    let mut loaded = Vec::new();
    for (name, _) in &runs {
        let (v, _) = load(out, name)?;
        loaded.push((name.clone(), Results::from_json(&v).ok()));
    }
    let mut series = Vec::new();
    for probe in PROBES {
        for m in probe.metrics {
            let Some(goal) = m.goal else { continue };
            let points = loaded
                .iter()
                .map(|(_, r)| {
                    let r = r.as_ref()?;
                    let p = r.probes.iter().position(|x| x.name == probe.name)?;
                    Some((r.ratio(p, m)?, r.ratio_range(p, m)))
                })
                .collect::<Vec<_>>();
            if points.iter().any(Option::is_some) {
                series.push(Series {
                    label: format!("{}: {}", probe.name, m.label),
                    goal: goal.value(),
                    goal_is_max: matches!(goal, super::probes::Goal::AtMost(_)),
                    points,
                });
            }
        }
    }
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    let p = out.join(DIR).join(PLOT);
    fs::write(&p, svg::history_plot(&names, &series))
        .with_context(|| format!("cannot write {}", p.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_name("pc-2026-12-07_a.1").is_ok());
        for bad in ["", ".x", "a/b", "last", "a b", ".."] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn changes_beyond_spread() {
        use Better::{Higher, Lower};
        assert_eq!(
            classify((1.0, 1.2), (1.1, 1.3), Lower),
            Change::WithinSpread
        );
        assert_eq!(classify((1.0, 1.2), (0.5, 0.9), Lower), Change::Better);
        assert_eq!(classify((1.0, 1.2), (0.5, 0.9), Higher), Change::Worse);
        assert_eq!(classify((1.0, 1.2), (1.3, 1.4), Higher), Change::Better);
        assert_eq!(classify((1.0, 1.0), (1.01, 1.01), Lower), Change::Worse);
    }
}
