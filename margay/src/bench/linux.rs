//! The Linux guest: Debian's kernel (`linux-image-amd64`) booted on the same
//! QEMU machine as Margay, with an initramfs built on the fly that holds
//! busybox-static, the probes and an init script that runs every probe run,
//! marks where each starts and ends on the serial console, and powers off.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::cpio::Cpio;
use super::deadline::Deadlines;
use super::probes::Probe;
use super::pyfiles;
use crate::children::Supervised;
use crate::qemu::{self, Machine};

/// Static busybox from Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";
/// The kernel command line: serial console, no kernel chatter on it, power
/// off (not hang) on a panic, and trust the TSC: under TCG the vCPUs' TSCs
/// fail Linux's synchronization check, and Linux would otherwise fall back
/// to the HPET, each read of which is an exit to QEMU. Margay's clock is the
/// TSC as well.
pub const APPEND: &str = "console=ttyS0 loglevel=1 panic=-1 tsc=reliable rdinit=/init";

const RUN: &str = "MARGAY-RUN job=";
const DONE: &str = "MARGAY-DONE job=";
const INFO: &str = "MARGAY-INFO ";

/// The newest /boot/vmlinuz-* (by version), unless `explicit` names one.
pub fn find_kernel(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("Linux kernel {} does not exist", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let mut found: Vec<String> = fs::read_dir("/boot")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("vmlinuz-"))
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|n| version_key(n));
    match found.pop() {
        Some(n) => Ok(Path::new("/boot").join(n)),
        None => bail!(
            "no Linux kernel in /boot for the Linux guest: run tools/install-deps.sh \
             (it installs Debian's linux-image-amd64) or pass --linux-kernel"
        ),
    }
}

/// "vmlinuz-6.1.0-56-amd64" -> [6, 1, 0, 56]: numbers compare as numbers.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// One probe run in the guest.
pub struct Job {
    pub probe: &'static Probe,
    pub rep: usize,
    pub args: Vec<String>,
}

/// What one job printed, and its exit status (None: it never finished).
#[derive(Clone, Debug, Default)]
pub struct JobOutput {
    pub output: String,
    pub status: Option<i32>,
}

/// The init script: mounts, facts about the guest, each job (global index,
/// job, deadline in seconds for the guest's own `timeout`) between markers,
/// power off.
pub fn init_script(jobs: &[(usize, &Job, u64)]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         export PATH=/bin\n\
         busybox mount -t proc proc /proc\n\
         busybox mount -t sysfs sys /sys\n\
         busybox mkdir -p /dev/shm\n\
         busybox mount -t tmpfs shm /dev/shm\n\
         echo \"MARGAY-INFO kernel=$(busybox uname -r) cpus=$(busybox nproc) \
         clocksource=$(busybox cat /sys/devices/system/clocksource/clocksource0/current_clocksource) \
         cpu_mhz=$(busybox awk -F': ' '/^cpu MHz/{print $2; exit}' /proc/cpuinfo)\"\n",
    );
    for (i, j, timeout_s) in jobs {
        s.push_str(&format!(
            "echo '{RUN}{i} probe={} rep={}'\nbusybox timeout {timeout_s} /probes/{} {}\necho \"{DONE}{i} status=$?\"\n",
            j.probe.name,
            j.rep,
            j.probe.name,
            j.args.join(" ")
        ));
    }
    s.push_str("busybox poweroff -f\n");
    s
}

/// The initramfs: /init, busybox (also as /bin/sh), the probes under /probes,
/// and `extra` files (a path relative to the root, contents) that probes run.
pub fn initramfs(
    busybox: &[u8],
    probes: &[(&str, Vec<u8>)],
    extra: &[(String, Vec<u8>)],
    init: &str,
) -> Vec<u8> {
    let mut c = Cpio::new();
    let base = ["bin", "dev", "proc", "sys", "tmp", "probes"];
    for d in base {
        c.dir(d);
    }
    for d in pyfiles::parent_dirs(extra.iter().map(|(p, _)| p.as_str())) {
        if !base.contains(&d.as_str()) {
            c.dir(&d);
        }
    }
    c.char_dev("dev/console", 0o600, 5, 1);
    c.char_dev("dev/null", 0o666, 1, 3);
    c.file("bin/busybox", 0o755, busybox);
    c.symlink("bin/sh", "busybox");
    for (name, bin) in probes {
        c.file(&format!("probes/{name}"), 0o755, bin);
    }
    for (path, data) in extra {
        // Directories ("dir/") were made with the parents above.
        if !path.ends_with('/') {
            c.file(path, 0o755, data);
        }
    }
    c.file("init", 0o755, init.as_bytes());
    c.finish()
}

/// The kernel command line with the TSC frequency (kHz) the guest is told.
pub fn append(tsc_khz: Option<u64>) -> String {
    match tsc_khz {
        Some(k) => format!("{APPEND} tsc_early_khz={k}"),
        None => APPEND.to_string(),
    }
}

/// The QEMU command line for the Linux guest: Margay's machine, plus the
/// UART for the console, Linux's kernel, initramfs and command line.
pub fn qemu_args(m: &Machine, kernel: &Path, initrd: &Path, append: &str) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        "-M".into(),
        m.machine_opt().into(),
        "-object".into(),
        format!("memory-backend-memfd,id=ram,size={}M,share=on", m.mem >> 20).into(),
    ];
    v.extend(m.sizing_args());
    v.extend(["-serial", "stdio", "-kernel"].map(OsString::from));
    v.push(kernel.into());
    v.push("-initrd".into());
    v.push(initrd.into());
    v.push("-append".into());
    v.push(append.into());
    v.extend(m.accel_args());
    v
}

/// Why a boot of the guest ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every job ran and the guest powered off.
    Finished,
    /// The init script did not start within the boot deadline.
    BootTimeout,
    /// Job `n` (global index) did not end within its deadline.
    JobTimeout(usize),
    /// Every job ran, but the guest did not power off in time.
    ShutdownTimeout,
    /// QEMU exited early, during job `n` if any.
    Died(Option<usize>),
}

/// One boot of the guest.
pub struct Boot {
    /// By global job index, the jobs that ran to their end marker.
    pub outputs: Vec<(usize, JobOutput)>,
    /// The guest's MARGAY-INFO line (kernel version, cpus, clocksource, TSC).
    pub info: String,
    pub stop: Stop,
    /// What went wrong, with the console's last lines, unless `Finished`.
    pub problem: Option<String>,
}

/// The Linux guest's fixed parts.
pub struct Guest {
    pub machine: Machine,
    pub kernel: PathBuf,
    pub append: String,
    /// Where each boot's initramfs is written.
    pub initrd: PathBuf,
    pub busybox: Vec<u8>,
    pub probes: Vec<(&'static str, Vec<u8>)>,
    pub extra: Vec<(String, Vec<u8>)>,
}

/// Everything the Linux side produced: per job its output or why it has none.
pub struct LinuxSide {
    pub jobs: Vec<Result<JobOutput, String>>,
    pub info: String,
    /// Every boot that did not go as planned, in order.
    pub incidents: Vec<String>,
}

impl Guest {
    /// Boots the guest for `jobs` (global index, job) and collects their
    /// outputs under the deadlines; `progress` gets a job's global index when
    /// it starts.
    pub fn boot(
        &self,
        jobs: &[(usize, &Job)],
        d: &Deadlines,
        progress: &mut dyn FnMut(usize),
    ) -> anyhow::Result<Boot> {
        let list: Vec<(usize, &Job, u64)> = jobs
            .iter()
            .map(|&(i, j)| (i, j, d.job(j.probe).as_secs().max(1)))
            .collect();
        fs::write(
            &self.initrd,
            initramfs(
                &self.busybox,
                &self.probes,
                &self.extra,
                &init_script(&list),
            ),
        )
        .with_context(|| format!("cannot write {}", self.initrd.display()))?;
        let qemu_bin = std::env::var_os("MARGAY_QEMU").unwrap_or_else(|| qemu::QEMU.into());
        let mut cmd = Command::new(&qemu_bin);
        cmd.args(qemu_args(
            &self.machine,
            &self.kernel,
            &self.initrd,
            &self.append,
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        crate::sys::die_with_parent(&mut cmd);
        let mut vm = Supervised::spawn(&mut cmd).with_context(|| {
            format!(
                "cannot start {} for the Linux guest; install QEMU (tools/install-deps.sh)",
                qemu_bin.to_string_lossy()
            )
        })?;
        let child = vm.child_mut();
        let stdout = child.stdout.take().context("QEMU stdout")?;
        let stderr =
            qemu::Tail::collect(child.stderr.take().context("QEMU stderr")?, 16 << 10, false)?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("linux-console".into())
            .spawn(move || {
                let mut r = BufReader::new(stdout);
                let mut buf = Vec::new();
                while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                    buf.clear();
                }
            })?;

        let started = Instant::now();
        let deadline_of = |i: usize| {
            list.iter()
                .find(|(g, _, _)| *g == i)
                .map_or(d.grace(), |(_, _, s)| Duration::from_secs(*s) + d.grace())
        };
        let mut deadline = started + d.linux_boot();
        let mut booted = false;
        let mut outputs: Vec<(usize, JobOutput)> = Vec::new();
        let mut current: Option<(usize, JobOutput)> = None;
        let mut info = String::new();
        let mut tail: Vec<String> = Vec::new();
        let mut expired = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    expired = true;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            tail.push(line.clone());
            if tail.len() > 12 {
                tail.remove(0);
            }
            if let Some(i) = line.find(INFO) {
                info = line[i + INFO.len()..].to_string();
                booted = true;
                // The first job's marker follows at once.
                deadline = Instant::now() + d.grace();
            } else if let Some(n) = marker(&line, RUN) {
                if list.iter().any(|(g, _, _)| *g == n) {
                    progress(n);
                    current = Some((n, JobOutput::default()));
                    deadline = Instant::now() + deadline_of(n);
                }
            } else if let Some(n) = marker(&line, DONE) {
                if let Some((i, mut out)) = current.take() {
                    if i == n {
                        out.status = status_of(&line);
                        outputs.push((i, out));
                    }
                }
                deadline = Instant::now()
                    + if outputs.len() == list.len() {
                        d.shutdown()
                    } else {
                        d.grace()
                    };
            } else if let Some((_, out)) = current.as_mut() {
                // Bounded: fwq's samples are the largest output (~100 KiB).
                if out.output.len() < 4 << 20 {
                    out.output.push_str(&line);
                    out.output.push('\n');
                }
            }
        }
        let _ = vm.kill();
        let qemu_err = stderr.finish();
        let all_done = outputs.len() == list.len();
        let current = current.map(|(i, _)| i);
        let (stop, why) = match (expired, booted, all_done, current) {
            (false, _, true, _) => (Stop::Finished, String::new()),
            (true, _, true, _) => (
                Stop::ShutdownTimeout,
                format!("did not power off within {}s", d.shutdown().as_secs()),
            ),
            (true, false, _, _) => (
                Stop::BootTimeout,
                format!("did not boot within {}s", d.linux_boot().as_secs()),
            ),
            (true, true, _, Some(i)) => (
                Stop::JobTimeout(i),
                format!(
                    "job {i} ({}) did not end within {}s (its deadline of {}s plus {}s); killed",
                    list.iter()
                        .find(|(g, _, _)| *g == i)
                        .map_or("?", |(_, j, _)| j.probe.name),
                    deadline_of(i).as_secs(),
                    deadline_of(i).saturating_sub(d.grace()).as_secs(),
                    d.grace().as_secs()
                ),
            ),
            (true, true, _, None) => (
                Stop::Died(None),
                format!(
                    "stopped making progress between jobs for {}s",
                    d.grace().as_secs()
                ),
            ),
            (false, _, false, c) => (Stop::Died(c), "stopped before finishing".to_string()),
        };
        let problem = (stop != Stop::Finished).then(|| {
            let mut s = format!(
                "the Linux guest {why} (after {}s); console's last lines: {}",
                started.elapsed().as_secs(),
                tail.join(" | ")
            );
            let e = String::from_utf8_lossy(&qemu_err);
            if !e.trim().is_empty() {
                s.push_str(&format!("; QEMU said: {}", e.trim()));
            }
            s
        });
        Ok(Boot {
            outputs,
            info,
            stop,
            problem,
        })
    }

    /// Runs every job, booting the guest as often as needed: a boot that
    /// fails is retried once; a job that hits its deadline (the guest's own
    /// `timeout`, status 143, or the host's, which kills the guest) is retried
    /// once, and the jobs after it run in a new boot.
    pub fn run_all(
        &self,
        jobs: &[Job],
        d: &Deadlines,
        progress: &mut dyn FnMut(usize),
    ) -> LinuxSide {
        let n = jobs.len();
        let mut result: Vec<Option<Result<JobOutput, String>>> = vec![None; n];
        let mut attempts = vec![0u32; n];
        let mut pending: Vec<usize> = (0..n).collect();
        let mut failed_boots = 0;
        let mut info = String::new();
        let mut incidents = Vec::new();
        while !pending.is_empty() {
            let list: Vec<(usize, &Job)> = pending.iter().map(|&i| (i, &jobs[i])).collect();
            let b = match self.boot(&list, d, progress) {
                Ok(b) => b,
                Err(e) => {
                    let e = format!("{e:#}");
                    incidents.push(e.clone());
                    for &i in &pending {
                        result[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            if !b.info.is_empty() {
                info.clone_from(&b.info);
            }
            let problem = b.problem.clone().unwrap_or_default();
            if let Some(p) = &b.problem {
                incidents.push(p.clone());
            }
            let mut next = Vec::new();
            let mut progressed = false;
            for &i in &pending {
                let out = b.outputs.iter().find(|(g, _)| *g == i).map(|(_, o)| o);
                let hung = match b.stop {
                    Stop::JobTimeout(k) | Stop::Died(Some(k)) => k == i,
                    _ => false,
                };
                match out {
                    Some(o) if o.status == Some(143) && attempts[i] == 0 => {
                        attempts[i] += 1;
                        progressed = true;
                        incidents.push(format!(
                            "{} run {} reached its deadline in the guest (status 143); retrying once",
                            jobs[i].probe.name,
                            jobs[i].rep + 1
                        ));
                        next.push(i);
                    }
                    Some(o) => {
                        progressed = true;
                        result[i] = Some(Ok(o.clone()));
                    }
                    None if hung => {
                        attempts[i] += 1;
                        progressed = true;
                        if attempts[i] >= 2 {
                            result[i] = Some(Err(problem.clone()));
                        } else {
                            next.push(i);
                        }
                    }
                    None if matches!(b.stop, Stop::Finished | Stop::ShutdownTimeout) => {
                        result[i] = Some(Err("no output from the Linux guest".into()));
                    }
                    None => next.push(i),
                }
            }
            if progressed {
                failed_boots = 0;
            } else {
                failed_boots += 1;
                if failed_boots >= 2 {
                    for &i in &next {
                        result[i] = Some(Err(problem.clone()));
                    }
                    next.clear();
                }
            }
            pending = next;
        }
        let _ = fs::remove_file(&self.initrd);
        LinuxSide {
            jobs: result
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err("not run".into())))
                .collect(),
            info,
            incidents,
        }
    }
}

fn marker(line: &str, prefix: &str) -> Option<usize> {
    let i = line.find(prefix)?;
    line[i + prefix.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn status_of(line: &str) -> Option<i32> {
    let i = line.find("status=")?;
    line[i + 7..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::probes::find;
    use crate::qemu::Accel;

    #[test]
    fn script_marks_jobs() {
        let jobs = [
            Job {
                probe: find("syscall").unwrap(),
                rep: 0,
                args: vec!["10".into(), "2".into()],
            },
            Job {
                probe: find("fwq").unwrap(),
                rep: 1,
                args: vec!["5".into()],
            },
        ];
        let list: Vec<(usize, &Job, u64)> =
            jobs.iter().enumerate().map(|(i, j)| (i, j, 60)).collect();
        let s = init_script(&list);
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("echo 'MARGAY-RUN job=0 probe=syscall rep=0'\nbusybox timeout 60 /probes/syscall 10 2\necho \"MARGAY-DONE job=0 status=$?\"\n"), "{s}");
        assert!(s.contains("MARGAY-RUN job=1 probe=fwq rep=1"));
        assert!(s.ends_with("busybox poweroff -f\n"));
        assert_eq!(marker("[ 1.2] MARGAY-RUN job=12 probe=x", RUN), Some(12));
        assert_eq!(status_of("MARGAY-DONE job=1 status=143"), Some(143));
    }

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = [
            "vmlinuz-6.10.0-1-amd64",
            "vmlinuz-6.9.0-3-amd64",
            "vmlinuz-6.10.0-12-amd64",
        ];
        v.sort_by_key(|n| version_key(n));
        assert_eq!(v[2], "vmlinuz-6.10.0-12-amd64");
        assert_eq!(v[0], "vmlinuz-6.9.0-3-amd64");
    }

    #[test]
    fn same_machine_as_margay() {
        let m = Machine {
            mem: 1 << 30,
            cpus: 2,
            accel: Accel::Tcg,
            icount: false,
        };
        let a: Vec<String> = qemu_args(
            &m,
            Path::new("/boot/k"),
            Path::new("/tmp/i"),
            &append(Some(2_596_132)),
        )
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
        let s = a.join(" ");
        let margay = qemu::args(&qemu::Config {
            mem: 1 << 30,
            cpus: 2,
            accel: Accel::Tcg,
            icount: false,
            ram_path: Path::new("/r"),
            kernel_path: Path::new("/k"),
        });
        let margay: Vec<String> = margay
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        // The same machine; the UART comes from -serial.
        assert_eq!(margay[1], a[1]);
        let sizing =
            "-m 1024M,slots=64,maxmem=263168M -smp 2 -bios /usr/share/qemu/qboot.rom -nodefaults";
        assert!(s.contains(sizing), "{s}");
        assert!(margay.join(" ").contains(sizing));
        assert!(s.ends_with("-accel tcg -cpu max"), "{s}");
        assert!(
            s.contains("-kernel /boot/k -initrd /tmp/i -append console=ttyS0"),
            "{s}"
        );
        assert!(
            s.contains("tsc=reliable rdinit=/init tsc_early_khz=2596132 "),
            "{s}"
        );
        assert_eq!(append(None), APPEND);
    }

    #[test]
    fn initramfs_has_console_and_init() {
        let a = initramfs(
            b"BB",
            &[("fwq", b"ELF".to_vec())],
            &[
                ("usr/lib/x/os.py".to_string(), b"pass".to_vec()),
                ("usr/lib/x/dynload/".to_string(), Vec::new()),
            ],
            "#!/bin/busybox sh\n",
        );
        let s = String::from_utf8_lossy(&a);
        for name in [
            "dev/console",
            "bin/busybox",
            "bin/sh",
            "probes/fwq",
            "usr/lib/x/os.py",
            "usr/lib/x\0",
            "usr/lib/x/dynload\0",
            "init",
            "TRAILER!!!",
        ] {
            assert!(s.contains(name), "{name}");
        }
    }
}
