//! The shape of `results.json`, serialized with serde: the run's
//! configuration, per probe and kernel the status, error, every run and the
//! summaries, the Margay/Linux ratios, and fwq's samples. Maps keep the order
//! in which they are built (kernels: Linux, Margay, native).

use serde::{Deserialize, Serialize, Serializer};

use super::load::Around;
use super::parse::{CoreSamples, Metrics};

/// A JSON object whose keys keep the order of `0`.
pub struct Ordered<K, V>(pub Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Ordered<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<K, V> FromIterator<(K, V)> for Ordered<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Ordered(iter.into_iter().collect())
    }
}

/// How the bench ran (`config`). Read back by `--compare` and `--table`;
/// fields added later default when an older file lacks them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub command: String,
    pub cpus: u32,
    pub mem_mib: u64,
    pub accel: String,
    pub icount: bool,
    pub icount_options: Option<String>,
    pub repeat: usize,
    pub scale: String,
    pub linux_kernel: String,
    pub linux_guest: String,
    pub linux_cmdline: String,
    /// The TSC frequency the Linux guest was told (`tsc_early_khz=`).
    pub tsc_khz: Option<u64>,
    /// Where `tsc_khz` came from.
    pub tsc_source: String,
    /// The deadlines in force (see `deadline`).
    pub deadlines: String,
    pub quiet_wait: Option<QuietWait>,
    /// The commit margay was built from ("-dirty": with local changes).
    pub git_commit: Option<String>,
    pub elapsed_s: u64,
    pub host: String,
}

impl Config {
    /// The line above the table.
    pub fn headline(&self) -> String {
        let mut s = format!(
            "margay bench: {} cores, {} MiB, {}{}, {} runs each{}; Linux guest: {} ({})",
            self.cpus,
            self.mem_mib,
            self.accel,
            if self.icount { " -icount" } else { "" },
            self.repeat,
            if self.scale == "tiny" {
                ", tiny scale"
            } else {
                ""
            },
            self.linux_kernel,
            self.linux_guest
        );
        if let Some(k) = self.tsc_khz {
            s.push_str(&format!("; TSC {k} kHz from {}", self.tsc_source));
        }
        if let Some(c) = &self.git_commit {
            s.push_str(&format!("; commit {}", c.get(..12).unwrap_or(c)));
            if c.ends_with("-dirty") {
                s.push_str("-dirty");
            }
        }
        s
    }
}

/// `--quiet-wait`: the most it would wait, how long it waited, and whether
/// the host was quiet then.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuietWait {
    pub max_s: u64,
    pub waited_s: u64,
    pub quiet: bool,
}

/// The whole file.
#[derive(Serialize)]
pub struct ResultsFile<'a> {
    pub config: &'a Config,
    pub probes: Vec<ProbeResults<'a>>,
    /// Per kernel, the host's load before and after its runs.
    pub load: Ordered<&'a str, Option<&'a Around>>,
    /// Per kernel, the deadlines that expired and the retries.
    pub incidents: Ordered<&'a str, &'a [String]>,
    /// Per kernel, fwq's per-quantum samples from its first run.
    pub fwq_samples: Ordered<&'a str, &'a [CoreSamples]>,
}

#[derive(Serialize)]
pub struct ProbeResults<'a> {
    pub name: &'static str,
    pub kernels: Ordered<&'a str, KernelResults<'a>>,
    pub ratios: Ordered<&'static str, Ratio>,
}

/// One probe on one kernel.
#[derive(Serialize)]
pub struct KernelResults<'a> {
    /// "ok" or "failed".
    pub status: &'static str,
    pub error: Option<String>,
    pub summary: Ordered<&'static str, Summary>,
    pub runs: Vec<Run<'a>>,
}

/// One run: its metrics, or `{"error": ...}`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Run<'a> {
    Metrics(&'a Metrics),
    Failed { error: &'a str },
}

#[derive(Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub spread_pct: f64,
    pub runs: usize,
}

/// Margay/Linux for one metric.
#[derive(Serialize)]
pub struct Ratio {
    pub label: &'static str,
    pub margay_over_linux: Option<f64>,
    /// "lower" or "higher".
    pub better: &'static str,
    pub goal: Option<String>,
    pub goal_met: Option<bool>,
    /// The interval the runs span (Margay's min / Linux's max, Margay's
    /// max / Linux's min).
    pub range: Option<(f64, f64)>,
}

/// Pretty-printed with two-space indentation and a final newline.
pub fn render(value: &impl Serialize) -> serde_json::Result<String> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}
