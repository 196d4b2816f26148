//! The shape of `results.json`, serialized with serde: the run's
//! configuration, per probe and kernel the status, error, every run and the
//! summaries, the Margay/Linux ratios, and fwq's samples. Maps keep the order
//! in which they are built (kernels: Linux, Margay, native).

use serde::{Serialize, Serializer};

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

/// How the bench ran (`config`).
#[derive(Serialize)]
pub struct Config {
    pub command: String,
    pub cpus: u32,
    pub mem_mib: u64,
    pub accel: &'static str,
    pub icount: bool,
    pub icount_options: Option<&'static str>,
    pub repeat: usize,
    pub scale: String,
    pub linux_kernel: String,
    pub linux_guest: String,
    pub linux_cmdline: &'static str,
    pub elapsed_s: u64,
    pub host: String,
}

/// The whole file.
#[derive(Serialize)]
pub struct ResultsFile<'a> {
    pub config: &'a Config,
    pub probes: Vec<ProbeResults<'a>>,
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
}

/// Pretty-printed with two-space indentation and a final newline.
pub fn render(value: &impl Serialize) -> serde_json::Result<String> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}
