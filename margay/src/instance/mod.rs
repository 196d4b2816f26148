//! Standing LWK instances: `margay boot` starts an instance's host process
//! (`daemon`, the hidden `margay __instance`), which owns QEMU and the
//! partition and answers on a unix socket; `margay exec` (`exec`) becomes
//! the proxy of a program spawned in it; `status`, `kmsg`, `shutdown` and
//! `reboot` talk to the host process over the same socket.
//!
//! Every instance of a user lives in the user's runtime directory
//! (`$XDG_RUNTIME_DIR/margay`, else `/run/user/UID/margay`, else
//! `/tmp/margay-UID`), mode 0700: `NAME.sock` (mode 0600) and `NAME.log` (the
//! host process's stderr). An instance whose socket refuses connections is
//! stale (its host process was killed): the next `boot` or `status` removes
//! its files with one line saying so.
//!
//! The protocol: one JSON request line per connection, JSON answer lines.

mod daemon;
mod exec;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::cli::{BootArgs, InstanceArgs, KmsgArgs, NameArgs, StatusArgs};
use crate::{pinning, Fatal, OrExit as _};

pub use exec::exec;

/// A request to an instance's host process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Spawn a program whose proxy is the caller.
    Exec {
        path: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
        ids: [u32; 4],
        /// LWK cores (bit n for core n), 0: any.
        cpus: u64,
        inject_panic: bool,
    },
    Status,
    Kmsg {
        follow: bool,
    },
    Shutdown,
    Reboot,
}

/// What `status` reports about one instance.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    /// "running", "panicked", "stopped" or "booting".
    pub state: String,
    pub host_pid: u32,
    pub cpus: u32,
    /// Host cores of the vCPUs (empty when not pinned).
    pub host_cpus: Vec<usize>,
    pub mem_bytes: u64,
    /// Memory the kernel can hand out: total and free now.
    pub usable_bytes: u64,
    pub free_bytes: u64,
    pub uptime_s: f64,
    pub kernel: String,
    pub processes: Vec<ProcessInfo>,
    /// The panic report, once panicked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub panic: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub program: String,
    /// LWK cores it may run on (empty: any).
    pub cores: Vec<usize>,
    pub running_s: f64,
}

/// The user's runtime directory for instances, created 0700 if missing and
/// checked to be the user's own and private.
pub fn runtime_dir() -> anyhow::Result<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .or_else(|| {
            let p = PathBuf::from(format!("/run/user/{uid}"));
            p.is_dir().then_some(p)
        });
    let dir = match base {
        Some(b) => b.join("margay"),
        None => PathBuf::from(format!("/tmp/margay-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let md = std::fs::symlink_metadata(&dir)
        .with_context(|| format!("cannot examine {}", dir.display()))?;
    if !md.is_dir() || md.uid() != uid {
        bail!(
            "{} is not a directory of yours (uid {uid}); refusing to keep instances there",
            dir.display()
        );
    }
    if md.mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(dir)
}

/// A valid instance name: letters, digits, '-', '_' and '.', not starting with '.'.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not an instance name (letters, digits, '-', '_', '.'; at most 64)"
        ))
    }
}

/// The socket of instance `name`: in the user's runtime directory, or the
/// path itself when `name` contains a '/' (someone else's instance).
pub fn socket_path(name: &str) -> anyhow::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    check_name(name).map_err(|e| anyhow!(e))?;
    Ok(runtime_dir()?.join(format!("{name}.sock")))
}

/// How connecting to an instance failed.
pub enum ConnectError {
    Missing,
    Stale,
    Refused(String),
}

/// Connect to the socket at `path`.
pub fn connect_path(path: &Path) -> Result<UnixStream, ConnectError> {
    match UnixStream::connect(path) {
        Ok(s) => Ok(s),
        Err(e) => match e.raw_os_error() {
            Some(libc::ENOENT) => Err(ConnectError::Missing),
            Some(libc::ECONNREFUSED) => Err(ConnectError::Stale),
            Some(libc::EACCES) | Some(libc::EPERM) => Err(ConnectError::Refused(format!(
                "permission denied: {} belongs to another user",
                path.display()
            ))),
            _ => Err(ConnectError::Refused(format!(
                "cannot connect to {}: {e}",
                path.display()
            ))),
        },
    }
}

/// Remove the files a dead instance left, saying so in one line (nothing
/// is said, or removed, in a directory that is not ours).
fn reclaim(dir: &Path, name: &str) {
    if std::fs::remove_file(dir.join(format!("{name}.sock"))).is_ok() {
        let _ = std::fs::remove_file(dir.join(format!("{name}.log")));
        eprintln!("margay: removed stale instance {name} (its host process is gone)");
    }
}

/// Connect to instance `name`, with a clear error when there is none.
pub fn connect(name: &str) -> anyhow::Result<UnixStream> {
    let path = socket_path(name)?;
    match connect_path(&path) {
        Ok(s) => Ok(s),
        Err(ConnectError::Missing) => {
            bail!("no instance named {name} (margay status lists them)")
        }
        Err(ConnectError::Stale) => {
            if let Some(dir) = path.parent() {
                reclaim(dir, name);
            }
            bail!("no instance named {name}: its host process was gone")
        }
        Err(ConnectError::Refused(why)) => bail!("instance {name}: {why}"),
    }
}

/// Send one request line.
pub fn send<T: Serialize>(s: &mut UnixStream, msg: &T) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    s.write_all(&line).context("writing to the instance")?;
    Ok(())
}

/// Read one answer line (None at end of stream).
pub fn recv(r: &mut BufReader<UnixStream>) -> anyhow::Result<Option<serde_json::Value>> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .context("reading from the instance")?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_str(&line).context("a malformed answer")?,
    ))
}

/// The error an answer carries, if any.
pub fn answer_error(v: &serde_json::Value) -> Option<String> {
    v.get("error").and_then(|e| e.as_str()).map(str::to_string)
}

/// Every live instance's status (stale ones reclaimed on the way).
fn all_statuses(dir: &Path) -> Vec<Status> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".sock"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        match connect_path(&dir.join(format!("{n}.sock"))) {
            Ok(s) => {
                if let Ok(st) = query_status(s) {
                    out.push(st);
                }
            }
            Err(ConnectError::Stale) => reclaim(dir, &n),
            Err(_) => {}
        }
    }
    out
}

fn query_status(mut s: UnixStream) -> anyhow::Result<Status> {
    send(&mut s, &Request::Status)?;
    let mut r = BufReader::new(s);
    let v = recv(&mut r)?.ok_or_else(|| anyhow!("the instance did not answer"))?;
    if let Some(e) = answer_error(&v) {
        bail!(e);
    }
    Ok(serde_json::from_value(
        v.get("status").cloned().unwrap_or_default(),
    )?)
}

/// The host's available memory (MemAvailable), in bytes.
fn host_available_memory() -> Option<u64> {
    let mi = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = mi.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mib(b: u64) -> u64 {
    b >> 20
}

/// `margay boot`: check the request against the host and the other
/// instances, start the host process and wait until the kernel is ready.
pub fn boot(args: BootArgs) -> Result<i32, Fatal> {
    let dir = runtime_dir().or_exit(1)?;
    let others = all_statuses(&dir);
    let name = match &args.name {
        Some(n) => {
            check_name(n).map_err(|e| anyhow!(e)).or_exit(2)?;
            if others.iter().any(|s| &s.name == n) {
                return Err(anyhow!("an instance named {n} is running already")).or_exit(1);
            }
            n.clone()
        }
        None => (0..)
            .map(|i| format!("lwk{i}"))
            .find(|n| {
                !others.iter().any(|s| &s.name == n) && !dir.join(format!("{n}.sock")).exists()
            })
            .unwrap_or_else(|| "lwk".into()),
    };
    if let Some(avail) = host_available_memory() {
        let others_mem: u64 = 0; // already taken out of MemAvailable as they touch it
        if args.mem > avail.saturating_sub(others_mem) {
            return Err(anyhow!(
                "--mem {} MiB is more than the host's available memory ({} MiB)",
                mib(args.mem),
                mib(avail)
            ))
            .or_exit(2);
        }
    }
    // Host cores: disjoint from every other instance's.
    let used: Vec<(usize, String)> = others
        .iter()
        .flat_map(|s| s.host_cpus.iter().map(move |&c| (c, s.name.clone())))
        .collect();
    let (allowed, online) = pinning::host_cores()
        .context("cannot read the host cores margay may run on")
        .or_exit(1)?;
    let host_cpus: Vec<usize> = match &args.host_cpus {
        Some(req) => {
            let clash: Vec<String> = req
                .0
                .iter()
                .filter_map(|c| {
                    used.iter()
                        .find(|(u, _)| u == c)
                        .map(|(u, n)| format!("host core {u} is used by instance {n}"))
                })
                .collect();
            if !clash.is_empty() {
                return Err(anyhow!(
                    "--host-cpus overlaps another instance: {}",
                    clash.join(", ")
                ))
                .or_exit(2);
            }
            req.0.clone()
        }
        None => {
            let free: Vec<usize> = allowed
                .iter()
                .copied()
                .filter(|c| !used.iter().any(|(u, _)| u == c))
                .collect();
            if free.len() < args.ncpus() as usize {
                let taken: Vec<String> = used.iter().map(|(c, n)| format!("{c} ({n})")).collect();
                return Err(anyhow!(
                    "--cpus {}: only {} host core(s) are free ({}); the others are used by instances: {}",
                    args.ncpus(),
                    free.len(),
                    pinning::join(&free),
                    taken.join(", ")
                ))
                .or_exit(2);
            }
            free[free.len() - args.ncpus() as usize..].to_vec()
        }
    };
    pinning::plan(Some(&host_cpus), args.ncpus(), &allowed, online.as_deref())
        .map_err(|e| anyhow!(e))
        .or_exit(2)?;

    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))
        .or_exit(1)?;
    let self_exe = std::env::current_exe()
        .context("cannot find margay's own executable")
        .or_exit(1)?;
    let mut cmd = std::process::Command::new(self_exe);
    use std::os::unix::process::CommandExt as _;
    cmd.arg("__instance")
        .args(["--name", &name])
        .args(["--cpus", &args.ncpus().to_string()])
        .args(["--mem", &args.mem.to_string()])
        .args(["--host-cpus", &pinning::join(&host_cpus)]);
    if let Some(a) = args.accel {
        cmd.args([
            "--accel",
            match a {
                crate::qemu::Accel::Kvm => "kvm",
                crate::qemu::Accel::Tcg => "tcg",
            },
        ]);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .context("cannot start the instance's host process")
        .or_exit(1)?;
    // Ready once its socket answers (it listens only after the kernel is up).
    let sock = dir.join(format!("{name}.sock"));
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let _ = std::fs::remove_file(&log_path);
            return Err(anyhow!(
                "cannot boot instance {name} ({st}):\n{}",
                crate::report::last_lines(&log, 20).trim_end()
            ))
            .or_exit(1);
        }
        if let Ok(s) = connect_path(&sock) {
            if query_status(s).is_ok_and(|st| st.state == "running") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The host process lives on (reaped by init once we are gone).
    drop(child);
    println!("{name}");
    Ok(0)
}

fn render_status(s: &Status) -> String {
    let pinned = if s.host_cpus.is_empty() {
        "not pinned".to_string()
    } else {
        format!("host cores {}", pinning::join(&s.host_cpus))
    };
    let mut out = format!(
        "{}: {}, {} core(s) on {pinned}, memory {} MiB ({} MiB usable, {} MiB free), up {:.0} s, kernel {}, host process {}\n",
        s.name,
        s.state,
        s.cpus,
        mib(s.mem_bytes),
        mib(s.usable_bytes),
        mib(s.free_bytes),
        s.uptime_s,
        s.kernel,
        s.host_pid
    );
    if s.processes.is_empty() {
        out.push_str("  no processes\n");
    }
    for p in &s.processes {
        let cores = if p.cores.is_empty() {
            "any core".to_string()
        } else {
            format!("cores {}", pinning::join(&p.cores))
        };
        out.push_str(&format!(
            "  pid {} on {cores}, running {:.1} s: {}\n",
            p.pid, p.running_s, p.program
        ));
    }
    if !s.panic.is_empty() {
        out.push_str(&s.panic);
        if !s.panic.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `margay status [NAME] [--json]`.
pub fn status(args: StatusArgs) -> Result<i32, Fatal> {
    let list = match &args.name {
        Some(n) => {
            let s = connect(n).or_exit(1)?;
            vec![query_status(s).or_exit(1)?]
        }
        None => all_statuses(&runtime_dir().or_exit(1)?),
    };
    if args.json {
        let v = if args.name.is_some() {
            serde_json::to_string_pretty(&list[0])
        } else {
            serde_json::to_string_pretty(&list)
        };
        println!("{}", v.unwrap_or_default());
    } else if list.is_empty() {
        println!("no instances");
    } else {
        for s in &list {
            print!("{}", render_status(s));
        }
    }
    Ok(0)
}

/// `margay kmsg NAME [--follow]`.
pub fn kmsg(args: KmsgArgs) -> Result<i32, Fatal> {
    let mut s = connect(&args.name).or_exit(1)?;
    send(
        &mut s,
        &Request::Kmsg {
            follow: args.follow,
        },
    )
    .or_exit(1)?;
    let mut r = BufReader::new(s);
    let mut out = std::io::stdout();
    while let Some(v) = recv(&mut r).or_exit(1)? {
        if let Some(e) = answer_error(&v) {
            return Err(anyhow!(e)).or_exit(1);
        }
        if let Some(t) = v.get("kmsg").and_then(|t| t.as_str()) {
            if out
                .write_all(t.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
    }
    Ok(0)
}

/// A request answered by one line then the end of the stream.
fn simple(name: &str, req: &Request) -> Result<i32, Fatal> {
    let mut s = connect(name).or_exit(1)?;
    send(&mut s, req).or_exit(1)?;
    let mut r = BufReader::new(s);
    let v = recv(&mut r)
        .or_exit(1)?
        .ok_or_else(|| anyhow!("instance {name} went away without answering"))
        .or_exit(1)?;
    if let Some(e) = answer_error(&v) {
        return Err(anyhow!(e)).or_exit(1);
    }
    // Wait until the host process is done (it closes the stream last).
    while let Ok(Some(_)) = recv(&mut r) {}
    Ok(0)
}

/// `margay shutdown NAME`.
pub fn shutdown(args: NameArgs) -> Result<i32, Fatal> {
    simple(&args.name, &Request::Shutdown)
}

/// `margay reboot NAME`.
pub fn reboot(args: NameArgs) -> Result<i32, Fatal> {
    simple(&args.name, &Request::Reboot)
}

/// `margay __instance`: the host process.
pub fn host(args: InstanceArgs) -> Result<i32, Fatal> {
    daemon::main(args)
}
