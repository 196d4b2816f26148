//! `margay bench`: runs the same static probe binaries on a Linux guest
//! (Debian's kernel) and on Margay with the same QEMU machine, cores, memory
//! and accelerator, and natively on the host where KVM is usable; prints a
//! table of medians, spreads and Margay/Linux ratios against the project's
//! goals, and writes `results.json` and SVG plots to `--out`.
//!
//! Submodules: `probes` (catalog, build), `linux` (the Linux guest),
//! `parse` (result lines, statistics), `table` (table, JSON), `cpio`, `json`,
//! `svg` (small self-contained writers).

mod cpio;
mod json;
mod linux;
mod parse;
mod probes;
mod pyfiles;
mod svg;
mod table;

use std::fs;
use std::io::{IsTerminal as _, Read, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::args::{parse_cpus, parse_mem_size};
use crate::qemu::{self, Accel, Machine};
use parse::Metrics;
use probes::{Probe, Scale, PROBES};
use table::{Column, Results};

const PROBE_NAMES: [&str; 9] = [
    "fwq", "syscall", "migrate", "futex", "thread", "spawn", "pystart", "memory", "stream",
];

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
    /// Where results.json, table.md and the SVG plots go.
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
    /// Probes to run (default: all).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(PROBE_NAMES))]
    pub probes: Vec<String>,
}

/// Hard limit for one probe run (boot, run, tear down) on Margay or natively.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

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

pub fn main(args: &BenchArgs) -> anyhow::Result<i32> {
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
        PROBES
            .iter()
            .filter(|p| args.probes.iter().any(|n| n == p.name))
            .collect()
    };
    let native = args.native || accel == Accel::Kvm;
    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
    };
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))?;

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

    // Linux guest: one boot runs every job.
    let kernel = linux::find_kernel(args.linux_kernel.as_deref())?;
    let busybox = fs::read(linux::BUSYBOX).with_context(|| {
        format!(
            "cannot read {}: run tools/install-deps.sh (busybox-static)",
            linux::BUSYBOX
        )
    })?;
    let mut probe_bins = Vec::new();
    for (p, b) in selected.iter().zip(&bins) {
        probe_bins.push((p.name, fs::read(b)?));
    }
    let extra = if selected.iter().any(|p| p.name == "pystart") {
        pyfiles::guest_files(probes::PYTHON)?
    } else {
        Vec::new()
    };
    let job_timeout = RUN_TIMEOUT.as_secs();
    let initrd = args.out.join("linux-initramfs.cpio");
    fs::write(
        &initrd,
        linux::initramfs(
            &busybox,
            &probe_bins,
            &extra,
            &linux::init_script(&jobs, job_timeout),
        ),
    )
    .with_context(|| format!("cannot write {}", initrd.display()))?;
    let linux_timeout = Duration::from_secs(180 + 120 * jobs.len() as u64);
    progress.show("bench: linux: booting");
    let guest = linux::run(
        &machine,
        &kernel,
        &initrd,
        jobs.len(),
        linux_timeout,
        &mut |i| {
            let j = &jobs[i];
            progress.show(&format!(
                "bench: linux: {} (run {}/{reps}, job {}/{})",
                j.probe.name,
                j.rep + 1,
                i + 1,
                jobs.len()
            ));
        },
    )?;
    let mut linux_col = Column {
        name: "Linux".into(),
        runs: vec![Vec::new(); selected.len()],
        fwq: Vec::new(),
    };
    for (j, out) in jobs.iter().zip(&guest.jobs) {
        let pi = selected
            .iter()
            .position(|p| p.name == j.probe.name)
            .unwrap_or(0);
        let exit = match out.status {
            Some(0) => None,
            Some(143) => Some(format!("timed out after {job_timeout}s (status 143)")),
            Some(s) => Some(format!("exited {s}")),
            None => Some(
                guest
                    .problem
                    .clone()
                    .unwrap_or_else(|| "did not finish".into()),
            ),
        };
        let r = parse::outcome(j.probe, &out.output, exit.as_deref(), "");
        if j.probe.name == "fwq" && j.rep == 0 && r.is_ok() {
            linux_col.fwq = parse::fwq_samples(&out.output);
        }
        linux_col.runs[pi].push(r);
    }

    // Margay: one `margay run` per probe run.
    let mut margay_col = Column {
        name: "Margay".into(),
        runs: vec![Vec::new(); selected.len()],
        fwq: Vec::new(),
    };
    let accel_name = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    for (pi, (p, bin)) in selected.iter().zip(&bins).enumerate() {
        for rep in 0..reps {
            progress.show(&format!(
                "bench: margay: {} (run {}/{reps})",
                p.name,
                rep + 1
            ));
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
            let (r, out) = run_probe(p, cmd);
            if p.name == "fwq" && rep == 0 && r.is_ok() {
                margay_col.fwq = parse::fwq_samples(&out);
            }
            margay_col.runs[pi].push(r);
        }
    }

    let mut columns = vec![linux_col, margay_col];
    if native {
        let mut col = Column {
            name: "native".into(),
            runs: vec![Vec::new(); selected.len()],
            fwq: Vec::new(),
        };
        for (pi, (p, bin)) in selected.iter().zip(&bins).enumerate() {
            for rep in 0..reps {
                progress.show(&format!(
                    "bench: native: {} (run {}/{reps})",
                    p.name,
                    rep + 1
                ));
                let mut cmd = Command::new(bin);
                cmd.args(p.args(args.scale, args.mem, rep == 0));
                let (r, out) = run_probe(p, cmd);
                if p.name == "fwq" && rep == 0 && r.is_ok() {
                    col.fwq = parse::fwq_samples(&out);
                }
                col.runs[pi].push(r);
            }
        }
        columns.push(col);
    }
    progress.done();

    let results = Results {
        probes: selected.clone(),
        columns,
    };
    let table = results.render();
    let command: Vec<String> = std::env::args().collect();
    let elapsed = t0.elapsed().as_secs();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "margay bench: {cpus} cores, {} MiB, {accel_name}{}, {reps} runs each; Linux guest: {} ({})",
        args.mem >> 20,
        if args.icount { " -icount" } else { "" },
        kernel.display(),
        guest.info
    )?;
    write!(out, "{table}")?;

    let config = json::Config {
        command: command.join(" "),
        cpus,
        mem_mib: args.mem >> 20,
        accel: accel_name,
        icount: args.icount,
        icount_options: args.icount.then_some(qemu::ICOUNT),
        repeat: reps,
        scale: format!("{:?}", args.scale).to_lowercase(),
        linux_kernel: kernel.display().to_string(),
        linux_guest: guest.info.clone(),
        linux_cmdline: linux::APPEND,
        elapsed_s: elapsed,
        host: host_cpu(),
    };
    let write = |name: &str, data: &str| -> anyhow::Result<PathBuf> {
        let p = args.out.join(name);
        fs::write(&p, data).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    };
    let results_json =
        json::render(&results.to_json(&config)).context("cannot encode results.json")?;
    write("results.json", &results_json)?;
    write("table.md", &table)?;
    let fwq_cols: Vec<(&str, &[parse::CoreSamples])> = results
        .columns
        .iter()
        .filter(|c| !c.fwq.is_empty())
        .map(|c| (c.name.as_str(), c.fwq.as_slice()))
        .collect();
    if !fwq_cols.is_empty() {
        write("fwq.svg", &svg::fwq_plot(&fwq_cols))?;
    }
    let bars = results.ratio_bars();
    if !bars.is_empty() {
        write("ratios.svg", &svg::ratio_plot(&bars))?;
    }
    let _ = fs::remove_file(&initrd);
    writeln!(
        out,
        "\nWrote {}/{{results.json,table.md,fwq.svg,ratios.svg}} in {elapsed}s.",
        args.out.display()
    )?;
    let failed = results.failures().len();
    if failed > 0 {
        writeln!(out, "margay bench: {failed} probe(s) failed (see above)")?;
        return Ok(1);
    }
    Ok(0)
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

/// Runs one probe process (margay run or native) under `RUN_TIMEOUT`; its
/// outcome and stdout.
fn run_probe(p: &Probe, cmd: Command) -> (Result<Metrics, String>, String) {
    match run_captured(cmd, RUN_TIMEOUT) {
        Ok(c) => {
            let r = parse::outcome(p, &c.stdout, c.exit.as_deref(), &tail_lines(&c.stderr, 6));
            (r, c.stdout)
        }
        Err(e) => (Err(format!("cannot run: {e}")), String::new()),
    }
}

fn tail_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

struct Captured {
    stdout: String,
    stderr: String,
    /// How it ended when that was not exit status 0.
    exit: Option<String>,
}

/// Runs `cmd` in its own process group with captured output; the whole group
/// is killed after `timeout`.
fn run_captured(mut cmd: Command, timeout: Duration) -> std::io::Result<Captured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::sys::die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            crate::sys::kill9_group(child.id());
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let exit = if timed_out {
        Some(format!("timed out after {}s", timeout.as_secs()))
    } else {
        match (status.code(), status.signal()) {
            (Some(0), _) => None,
            (Some(c), _) => Some(format!("exited {c}")),
            (None, Some(s)) => Some(format!("killed by signal {s}")),
            _ => Some(status.to_string()),
        }
    };
    Ok(Captured {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        exit,
    })
}

/// The probe names the command line accepts are the catalog's.
#[cfg(test)]
#[test]
fn probe_names_match_catalog() {
    let names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
    assert_eq!(names, PROBE_NAMES);
}

#[cfg(test)]
#[test]
fn captured_runs_time_out_and_report_exits() {
    let mut c = Command::new("sh");
    c.args(["-c", "echo out; echo err >&2; exit 3"]);
    let r = run_captured(c, Duration::from_secs(10)).unwrap();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(r.exit.as_deref(), Some("exited 3"));
    let mut c = Command::new("sleep");
    c.arg("30");
    let r = run_captured(c, Duration::from_millis(200)).unwrap();
    assert_eq!(r.exit.as_deref(), Some("timed out after 0s"));
}
