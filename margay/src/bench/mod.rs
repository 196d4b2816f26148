//! `margay bench`: runs the same static probe binaries on a Linux guest
//! (Debian's kernel) and on Margay with the same QEMU machine, cores, memory
//! and accelerator, and natively on the host where KVM is usable; prints a
//! table of medians, spreads and Margay/Linux ratios against the project's
//! goals, and writes `results.json` and SVG plots to `--out`.
//!
//! Submodules: `probes` (catalog, build), `linux` (the Linux guest),
//! `tsc` (the TSC frequency the Linux guest is told), `deadline` and `watch`
//! (no step without a deadline), `load` (how busy the host is), `parse`
//! (result lines, statistics), `table` (table, JSON), `history` (`--save`,
//! `--compare`, `--table`), `cpio`, `json`, `svg` (small self-contained
//! writers).

mod cpio;
mod deadline;
mod history;
mod json;
mod linux;
mod load;
mod parse;
mod probes;
mod pyfiles;
mod svg;
mod table;
mod tsc;
mod watch;

use std::fs;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::Args;

use crate::args::{parse_cpus, parse_mem_size};
use crate::qemu::{self, Accel, Machine};
use deadline::Deadlines;
use parse::Metrics;
use probes::{Probe, Scale, PROBES};
use table::{Column, Results};
use watch::Phases;

const PROBE_NAMES: [&str; 10] = [
    "fwq", "syscall", "migrate", "futex", "thread", "spawn", "pystart", "memory", "shm", "stream",
];

/// The probe names the command line takes: the catalog's, and the hidden,
/// test-only `hang`.
fn probe_parser() -> PossibleValuesParser {
    PossibleValuesParser::new(
        PROBE_NAMES
            .iter()
            .map(|&n| PossibleValue::new(n))
            .chain([PossibleValue::new(probes::HANG.name).hide(true)]),
    )
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Cores of both guests (default 2; 1 with --icount).
    #[arg(long, value_parser = parse_cpus)]
    pub cpus: Option<u32>,
    /// Memory of both guests (as for `margay run --mem`).
    #[arg(long, default_value = "1G", value_name = "SIZE", value_parser = parse_mem_size)]
    pub mem: u64,
    /// How QEMU runs both guests.
    #[arg(long, default_value = "auto", value_parser = qemu::accel_parser())]
    pub accel: ::std::option::Option<Accel>,
    /// QEMU's deterministic instruction counting (TCG, one core): virtual
    /// time is one nanosecond per guest instruction.
    #[arg(long)]
    pub icount: bool,
    /// Where results.json, table.md, the SVG plots and the saved runs
    /// (history/) go.
    #[arg(long, default_value = "bench-results", value_name = "DIR")]
    pub out: PathBuf,
    /// Runs of each probe on each kernel.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Probe durations: full, or tiny (only checks that everything runs).
    #[arg(long, value_enum, default_value_t = Scale::Full)]
    pub scale: Scale,
    /// Also run the probes natively on the host (always done under KVM).
    #[arg(long)]
    pub native: bool,
    /// The Linux guest's kernel (default: the newest /boot/vmlinuz-*).
    #[arg(long, value_name = "PATH")]
    pub linux_kernel: Option<PathBuf>,
    /// Before starting, wait up to SECONDS for the host to be quiet (other
    /// processes using at most a quarter of a core).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub quiet_wait: u64,
    /// Multiply every deadline (boot, probe run, shutdown) by F.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    pub timeout_scale: f64,
    /// Keep this run under DIR/history/NAME (results, plots, git commit).
    #[arg(long, value_name = "NAME", value_parser = history::parse_name)]
    pub save: Option<String>,
    /// Compare two saved runs (NEW defaults to the last run in DIR) and
    /// exit: per metric the old and new ratios, flagging changes larger than
    /// the runs' spreads.
    #[arg(long, value_name = "OLD [NEW]", num_args = 1..=2, conflicts_with_all = ["save", "table"])]
    pub compare: Option<Vec<String>>,
    /// Print the Markdown table of a saved run (or "last") and exit.
    #[arg(long, value_name = "NAME", conflicts_with = "save")]
    pub table: Option<String>,
    /// Probes to run (default: all).
    #[arg(value_parser = probe_parser())]
    pub probes: Vec<String>,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 100.0 => Ok(f),
        _ => Err(format!("'{s}' is not a factor between 0 and 100")),
    }
}

/// The progress line on stderr: rewritten in place on a terminal.
struct Progress {
    tty: bool,
}

impl Progress {
    fn show(&self, msg: &str) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K{msg}");
        } else {
            let _ = writeln!(e, "{msg}");
        }
        let _ = e.flush();
    }

    fn done(&self) {
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// The git commit margay was built from ("-dirty" if the work tree differs
/// from it), when its source tree is a git checkout.
fn git_commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C").arg(dir).args(args);
        watch::run_captured(c, Duration::from_secs(20))
            .ok()
            .filter(|c| c.exit.is_none())
            .map(|c| c.stdout.trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"]).filter(|h| !h.is_empty())?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

pub fn main(args: &BenchArgs) -> anyhow::Result<i32> {
    if let Some(c) = &args.compare {
        let new = c.get(1).map_or(history::LAST, String::as_str);
        return history::compare(&args.out, &c[0], new, &mut std::io::stdout().lock());
    }
    if let Some(name) = &args.table {
        let t = history::table(&args.out, name)?;
        print!("{t}");
        return Ok(0);
    }
    if let Some(name) = &args.save {
        history::check_free(&args.out, name)?;
    }
    let t0 = Instant::now();
    let accel = qemu::choose_accel(args.accel)?;
    if args.icount && accel == Accel::Kvm {
        bail!("--icount needs TCG: add --accel tcg");
    }
    let cpus = match (args.cpus, args.icount) {
        (Some(n), true) if n > 1 => bail!(
            "--icount works with --cpus 1 only: a Linux guest with 2 vCPUs under -icount does not finish booting"
        ),
        (Some(n), _) => n,
        (None, true) => 1,
        (None, false) => 2,
    };
    let machine = Machine {
        mem: args.mem,
        cpus,
        accel,
        icount: args.icount,
    };
    let selected: Vec<&'static Probe> = if args.probes.is_empty() {
        PROBES.iter().collect()
    } else {
        // In the order of the catalog; the test-only probe first.
        probes::by_name(probes::HANG.name)
            .filter(|_| args.probes.iter().any(|n| n == probes::HANG.name))
            .into_iter()
            .chain(
                PROBES
                    .iter()
                    .filter(|p| args.probes.iter().any(|n| n == p.name)),
            )
            .collect()
    };
    let native = args.native || accel == Accel::Kvm;
    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
    };
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))?;

    let quiet = (args.quiet_wait > 0).then(|| {
        let (waited, s) = load::wait_quiet(Duration::from_secs(args.quiet_wait), &mut |s| {
            progress.show(&format!(
                "bench: waiting for a quiet host: {}",
                s.describe()
            ));
        });
        if s.busy() {
            progress.show(&format!(
                "bench: the host did not become quiet within {}s ({}); going on",
                args.quiet_wait,
                s.describe()
            ));
        }
        json::QuietWait {
            max_s: args.quiet_wait,
            waited_s: waited,
            quiet: !s.busy(),
        }
    });
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut deadlines = Deadlines::new(&machine, host_cpus, load::loadavg()[0], args.timeout_scale);
    deadlines.scale = args.scale;

    // Build the probes next to the margay binary (the target directory).
    let exe = std::env::current_exe().context("cannot find margay's own executable")?;
    let build_dir = exe
        .parent()
        .map_or_else(|| PathBuf::from("bench-probes"), |d| d.join("bench-probes"));
    progress.show("bench: building probes");
    let bins: Vec<PathBuf> = selected
        .iter()
        .map(|p| p.build(&build_dir))
        .collect::<anyhow::Result<_>>()?;

    let reps = args.repeat as usize;
    let jobs: Vec<linux::Job> = selected
        .iter()
        .flat_map(|&p| {
            (0..reps).map(move |rep| linux::Job {
                probe: p,
                rep,
                args: p.args(args.scale, args.mem, rep == 0),
            })
        })
        .collect();

    // The Linux guest: its failures become the Linux column's errors; the
    // Margay side is measured regardless.
    progress.show("bench: finding the host's TSC frequency");
    let tsc = tsc::guest_tsc(args.icount, &build_dir);
    let append = linux::append(tsc.as_ref().ok().map(|t| t.khz));
    let linux_load_before = load::sample(load::WINDOW);
    let (linux_side, kernel_name) = match linux_guest(args, &machine, &selected, &bins, &append) {
        Ok(guest) => {
            progress.show("bench: linux: booting");
            let side = guest.run_all(&jobs, &deadlines, &mut |i| {
                let j = &jobs[i];
                progress.show(&format!(
                    "bench: linux: {} (run {}/{reps}, job {}/{})",
                    j.probe.name,
                    j.rep + 1,
                    i + 1,
                    jobs.len()
                ));
            });
            (side, guest.kernel.display().to_string())
        }
        Err(e) => {
            let e = format!("{e:#}");
            let side = linux::LinuxSide {
                jobs: jobs.iter().map(|_| Err(e.clone())).collect(),
                info: String::new(),
                incidents: vec![e],
            };
            (side, "none".to_string())
        }
    };
    let mut linux_col = Column::new("Linux", selected.len());
    linux_col.load = Some(load::Around {
        before: linux_load_before,
        after: load::sample(load::WINDOW),
    });
    for (j, out) in jobs.iter().zip(&linux_side.jobs) {
        let pi = selected
            .iter()
            .position(|p| p.name == j.probe.name)
            .unwrap_or(0);
        let r = match out {
            Err(e) => Err(e.clone()),
            Ok(out) => {
                let exit = match out.status {
                    Some(0) => None,
                    Some(143) => Some(format!(
                        "reached its deadline of {}s in the guest (status 143)",
                        deadlines.job(j.probe).as_secs()
                    )),
                    Some(s) => Some(format!("exited {s}")),
                    None => Some("did not finish".to_string()),
                };
                parse::outcome(j.probe, &out.output, exit.as_deref(), "")
            }
        };
        if j.probe.name == "fwq" && j.rep == 0 {
            if let (Ok(_), Ok(out)) = (&r, out) {
                linux_col.fwq = parse::fwq_samples(&out.output);
            }
        }
        linux_col.runs[pi].push(r);
    }

    // Margay: one `margay run` per probe run.
    let accel_name = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    let margay_phases = |p: &Probe| Phases {
        boot: deadlines.margay_boot(),
        run: deadlines.job(p),
        shutdown: deadlines.shutdown(),
    };
    let mut margay_col = Column::new("Margay", selected.len());
    let before = load::sample(load::WINDOW);
    for (pi, (p, bin)) in selected.iter().zip(&bins).enumerate() {
        for rep in 0..reps {
            progress.show(&format!(
                "bench: margay: {} (run {}/{reps})",
                p.name,
                rep + 1
            ));
            let cmd = || {
                let mut cmd = Command::new(&exe);
                cmd.arg("run")
                    .args(["--cpus", &cpus.to_string()])
                    .args(["--mem", &format!("{}M", args.mem >> 20)])
                    .args(["--accel", accel_name]);
                if args.icount {
                    cmd.arg("--icount");
                }
                cmd.arg("--")
                    .arg(bin)
                    .args(p.args(args.scale, args.mem, rep == 0));
                cmd
            };
            let (r, out) = run_probe(p, &cmd, margay_phases(p), &mut margay_col.incidents);
            if p.name == "fwq" && rep == 0 && r.is_ok() {
                margay_col.fwq = parse::fwq_samples(&out);
            }
            margay_col.runs[pi].push(r);
        }
    }
    margay_col.load = Some(load::Around {
        before,
        after: load::sample(load::WINDOW),
    });
    linux_col.incidents = linux_side.incidents;

    let mut columns = vec![linux_col, margay_col];
    if native {
        let mut col = Column::new("native", selected.len());
        let before = load::sample(load::WINDOW);
        for (pi, (p, bin)) in selected.iter().zip(&bins).enumerate() {
            for rep in 0..reps {
                progress.show(&format!(
                    "bench: native: {} (run {}/{reps})",
                    p.name,
                    rep + 1
                ));
                let cmd = || {
                    let mut cmd = Command::new(bin);
                    cmd.args(p.args(args.scale, args.mem, rep == 0));
                    cmd
                };
                let ph = Phases {
                    boot: deadlines.grace(),
                    run: deadlines.job(p),
                    shutdown: deadlines.grace(),
                };
                let (r, out) = run_probe(p, &cmd, ph, &mut col.incidents);
                if p.name == "fwq" && rep == 0 && r.is_ok() {
                    col.fwq = parse::fwq_samples(&out);
                }
                col.runs[pi].push(r);
            }
        }
        col.load = Some(load::Around {
            before,
            after: load::sample(load::WINDOW),
        });
        columns.push(col);
    }
    progress.done();

    let results = Results {
        probes: selected.clone(),
        columns,
    };
    let command: Vec<String> = std::env::args().collect();
    let elapsed = t0.elapsed().as_secs();
    let (tsc_khz, tsc_source) = match &tsc {
        Ok(t) => (Some(t.khz), t.source.clone()),
        Err(e) => (None, format!("unknown ({e}); the guest calibrates itself")),
    };
    let config = json::Config {
        command: command.join(" "),
        cpus,
        mem_mib: args.mem >> 20,
        accel: accel_name.into(),
        icount: args.icount,
        icount_options: args.icount.then(|| qemu::ICOUNT.into()),
        repeat: reps,
        scale: format!("{:?}", args.scale).to_lowercase(),
        linux_kernel: kernel_name,
        linux_guest: linux_side.info.clone(),
        linux_cmdline: append,
        tsc_khz,
        tsc_source,
        deadlines: deadlines.describe(),
        quiet_wait: quiet,
        git_commit: git_commit(),
        elapsed_s: elapsed,
        host: host_cpu(),
    };
    let table = format!("{}\n\n{}", config.headline(), results.render());
    let mut out = std::io::stdout().lock();
    write!(out, "{table}")?;

    let write = |name: &str, data: &str| -> anyhow::Result<PathBuf> {
        let p = args.out.join(name);
        fs::write(&p, data).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    };
    let results_json =
        json::render(&results.to_json(&config)).context("cannot encode results.json")?;
    write("results.json", &results_json)?;
    write("table.md", &table)?;
    let mut written = vec!["results.json", "table.md"];
    let _ = fs::remove_file(args.out.join("fwq.svg"));
    let _ = fs::remove_file(args.out.join("ratios.svg"));
    let fwq_cols: Vec<(&str, &[parse::CoreSamples])> = results
        .columns
        .iter()
        .filter(|c| !c.fwq.is_empty())
        .map(|c| (c.name.as_str(), c.fwq.as_slice()))
        .collect();
    if !fwq_cols.is_empty() {
        write("fwq.svg", &svg::fwq_plot(&fwq_cols))?;
        written.push("fwq.svg");
    }
    let bars = results.ratio_bars();
    if !bars.is_empty() {
        write("ratios.svg", &svg::ratio_plot(&bars))?;
        written.push("ratios.svg");
    }
    writeln!(
        out,
        "\nWrote {}/{{{}}} in {elapsed}s.",
        args.out.display(),
        written.join(",")
    )?;
    if let Some(name) = &args.save {
        let dir = history::save(&args.out, name, &written)?;
        writeln!(
            out,
            "Saved as {name} in {} (history plot: {}).",
            dir.display(),
            args.out.join(history::DIR).join(history::PLOT).display()
        )?;
    }
    let failed = results.failures().len();
    if failed > 0 {
        writeln!(out, "margay bench: {failed} probe(s) failed (see above)")?;
        return Ok(1);
    }
    Ok(0)
}

/// The Linux guest's parts: kernel, busybox, probes, pystart's files.
fn linux_guest(
    args: &BenchArgs,
    machine: &Machine,
    selected: &[&'static Probe],
    bins: &[PathBuf],
    append: &str,
) -> anyhow::Result<linux::Guest> {
    let kernel = linux::find_kernel(args.linux_kernel.as_deref())?;
    let busybox = fs::read(linux::BUSYBOX).with_context(|| {
        format!(
            "cannot read {}: run tools/install-deps.sh (busybox-static)",
            linux::BUSYBOX
        )
    })?;
    let mut probe_bins = Vec::new();
    for (p, b) in selected.iter().zip(bins) {
        probe_bins.push((p.name, fs::read(b)?));
    }
    let extra = if selected.iter().any(|p| p.name == "pystart") {
        pyfiles::guest_files(probes::PYTHON)?
    } else {
        Vec::new()
    };
    Ok(linux::Guest {
        machine: *machine,
        kernel,
        append: append.to_string(),
        initrd: args.out.join("linux-initramfs.cpio"),
        busybox,
        probes: probe_bins,
        extra,
    })
}

fn host_cpu() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {n} CPUs")
}

/// Runs one probe process (margay run or native) under `ph`, once more if it
/// timed out (noted in `incidents`); its outcome and stdout.
fn run_probe(
    p: &Probe,
    cmd: &dyn Fn() -> Command,
    ph: Phases,
    incidents: &mut Vec<String>,
) -> (Result<Metrics, String>, String) {
    let mut last = (Err("not run".to_string()), String::new());
    for attempt in 1..=2 {
        match watch::run_phased(cmd(), ph) {
            Ok(c) => {
                let tail = watch::tail_lines(&format!("{}\n{}", c.stdout, c.stderr), 6);
                let r = parse::outcome(p, &c.stdout, c.exit.as_deref(), &tail);
                if c.timed_out {
                    let e = format!(
                        "{} (attempt {attempt} of 2); last lines: {tail}",
                        c.exit.as_deref().unwrap_or("timed out")
                    );
                    incidents.push(format!("{}: {e}", p.name));
                    last = (Err(e), c.stdout);
                    continue;
                }
                return (r, c.stdout);
            }
            Err(e) => return (Err(format!("cannot run: {e}")), String::new()),
        }
    }
    last
}

/// Reads a file that must exist, with the path in the error.
fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The probe names the command line accepts are the catalog's.
#[cfg(test)]
#[test]
fn probe_names_match_catalog() {
    let names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
    assert_eq!(names, PROBE_NAMES);
}
