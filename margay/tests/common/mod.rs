//! Shared helpers for Margay's integration tests: building the C test
//! programs, running `margay run` (and the same program natively) with a hard
//! timeout, limiting how many QEMU instances run at once, and temporary
//! directories. std only.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The margay binary under test.
pub const MARGAY: &str = env!("CARGO_BIN_EXE_margay");

/// Hard limit for one `margay run` (boot, run, tear down).
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// How long the output pipes may stay open after the child exited. A process
/// that keeps them open longer is a leaked descendant (a QEMU or proxy
/// surviving margay).
const PIPE_GRACE: Duration = Duration::from_secs(15);

/// Static busybox from Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("margay/ has a parent")
        .to_path_buf()
}

pub fn programs_dir() -> PathBuf {
    repo_root().join("tests").join("programs")
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("margay-test-programs")
}

// ---------------------------------------------------------------------------
// Building the C test programs.

static BUILT: OnceLock<Mutex<HashMap<(String, Link), PathBuf>>> = OnceLock::new();

/// `tests/programs/NAME.c` built with `gcc -static -O2`; the path of the
/// binary. Built at most once per test binary, and only when the source is
/// newer than the cached binary.
pub fn program(name: &str) -> PathBuf {
    build(name, Link::Static)
}

/// `tests/programs/NAME.c` built with `gcc -O2` (dynamically linked).
pub fn dynamic_program(name: &str) -> PathBuf {
    build(name, Link::Dynamic)
}

/// `tests/programs/NAME.c` built with `gcc -static-pie -O2`.
pub fn static_pie_program(name: &str) -> PathBuf {
    build(name, Link::StaticPie)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Link {
    Static,
    Dynamic,
    StaticPie,
}

fn build(name: &str, link: Link) -> PathBuf {
    let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    // Hold the lock while compiling: builds are quick and this keeps two tests
    // from compiling the same program at once.
    let mut built = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = (name.to_string(), link);
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let src = programs_dir().join(format!("{name}.c"));
    assert!(
        src.is_file(),
        "test program source {} is missing",
        src.display()
    );
    let dir = cache_dir();
    fs::create_dir_all(&dir).expect("create program cache dir");
    let file_name = match link {
        Link::Static => name.to_string(),
        Link::Dynamic => format!("{name}.dynamic"),
        Link::StaticPie => format!("{name}.static-pie"),
    };
    let out = dir.join(&file_name);
    if !up_to_date(&src, &out) {
        // Build under a private name and rename: another test binary may be
        // building the same program concurrently.
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let mut cmd = Command::new("gcc");
        match link {
            Link::Static => {
                cmd.arg("-static");
            }
            Link::StaticPie => {
                cmd.arg("-static-pie");
            }
            Link::Dynamic => {}
        }
        cmd.arg("-pthread");
        if name.starts_with("omp") {
            cmd.arg("-fopenmp");
        }
        cmd.args(["-O2", "-Wall", "-o"]).arg(&tmp).arg(&src);
        let o = cmd.output().expect("run gcc (is gcc installed?)");
        assert!(
            o.status.success(),
            "gcc failed for {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        fs::rename(&tmp, &out).expect("rename built program");
    }
    built.insert(key, out.clone());
    out
}

fn up_to_date(src: &Path, out: &Path) -> bool {
    let (Ok(s), Ok(o)) = (fs::metadata(src), fs::metadata(out)) else {
        return false;
    };
    match (s.modified(), o.modified()) {
        (Ok(s), Ok(o)) => o >= s,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// At most N QEMU-booting runs at once (this is a 2-core machine). All tests of
// one test binary share this; cargo runs test binaries one after another.

pub struct Permit(());

static SLOTS: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

fn max_parallel() -> usize {
    std::env::var("MARGAY_TEST_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

/// Blocks until fewer than `MARGAY_TEST_JOBS` (default 2) permits are held.
pub fn qemu_permit() -> Permit {
    let max = max_parallel();
    let mut n = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= max {
        n = SLOT_FREED.wait(n).unwrap_or_else(|e| e.into_inner());
    }
    *n += 1;
    Permit(())
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut n = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        SLOT_FREED.notify_one();
    }
}

// ---------------------------------------------------------------------------
// Running commands with a hard timeout.

/// The status as a shell reports it: the exit code, or 128+N for a death by
/// signal N.
pub fn status_code(s: ExitStatus) -> i32 {
    match (s.code(), s.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => panic!("exit status {s:?} has neither code nor signal"),
    }
}

/// Sends `sig` (e.g. "KILL", "TERM") to a pid, or to a process group when
/// `group` is set, with the `kill` command. Errors (already gone) are ignored.
pub fn send_signal(sig: &str, pid: u32, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn lossy_tail(b: &[u8]) -> String {
    const MAX: usize = 4000;
    let s = String::from_utf8_lossy(b);
    if s.len() > MAX {
        let mut start = s.len() - MAX;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &s[start..])
    } else {
        s.into_owned()
    }
}

/// Runs `cmd` in its own process group with piped stdout/stderr, feeding
/// `stdin` (or /dev/null). A watchdog thread kills the whole process group if
/// the command is not done within `timeout`, and the test then fails. The
/// test also fails if some leftover process keeps the output pipes open after
/// the command exited.
pub fn run_with_timeout(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    what: &str,
) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child: Child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let pid = child.id();

    // Feed stdin from a thread; a child that stops reading early just gets
    // EPIPE here, which is not an error for the test.
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        thread::spawn(move || {
            let _ = w.write_all(&data);
            // dropping w closes the pipe: EOF for the child
        });
    }
    let out_rx = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_rx = spawn_reader(child.stderr.take().expect("piped stderr"));

    // Watchdog: kills the process group unless told the child is done.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || match done_rx.recv_timeout(timeout) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            send_signal("KILL", pid, true);
            true
        }
        _ => false,
    });

    let status = child.wait().expect("wait for child");
    let _ = done_tx.send(());
    let timed_out = watchdog.join().expect("watchdog thread");

    let deadline = Instant::now() + PIPE_GRACE;
    let collect = |rx: &mpsc::Receiver<Vec<u8>>, name: &str| -> Vec<u8> {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => b,
            Err(_) => {
                // Something still holds the pipe: clean up and fail.
                send_signal("KILL", pid, true);
                panic!(
                    "{what}: exited with {status:?} but its {name} stayed open for \
                     {PIPE_GRACE:?}; a descendant (QEMU? proxy?) outlived it"
                );
            }
        }
    };
    let stdout = collect(&out_rx, "stdout");
    let stderr = collect(&err_rx, "stderr");

    if timed_out {
        panic!(
            "{what}: timed out after {timeout:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            lossy_tail(&stdout),
            lossy_tail(&stderr)
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs the margay binary with raw arguments (e.g. `["run", "--", prog]`),
/// optional stdin bytes and extra environment variables, with the default
/// timeout and under a QEMU permit.
pub fn run_margay<S: AsRef<OsStr>>(
    args: &[S],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(MARGAY);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = describe(MARGAY.as_ref(), args.iter().map(|a| a.as_ref()));
    let _permit = qemu_permit();
    run_with_timeout(cmd, stdin.map(|s| s.to_vec()), TIMEOUT, &what)
}

fn describe<'a>(prog: &OsStr, args: impl Iterator<Item = &'a OsStr>) -> String {
    let mut s = prog.to_string_lossy().into_owned();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// One program invocation that can be run natively and under `margay run`
/// with the same arguments, stdin and environment.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
    pub margay_flags: Vec<OsString>,
    pub timeout: Duration,
}

impl Invocation {
    pub fn new(program: impl AsRef<Path>) -> Self {
        Invocation {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            cwd: None,
            margay_flags: Vec::new(),
            timeout: TIMEOUT,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// A flag for margay itself (goes before `--`).
    pub fn flag(mut self, f: impl AsRef<OsStr>) -> Self {
        self.margay_flags.push(f.as_ref().to_os_string());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn apply(&self, cmd: &mut Command) {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
    }

    /// The program run directly on the host.
    pub fn run_native(&self) -> Output {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        self.apply(&mut cmd);
        let what = format!(
            "native {}",
            describe(
                self.program.as_os_str(),
                self.args.iter().map(|a| a.as_os_str())
            )
        );
        run_with_timeout(cmd, self.stdin.clone(), self.timeout, &what)
    }

    /// `margay run FLAGS -- PROGRAM ARGS...`
    pub fn run_margay(&self) -> Output {
        let mut cmd = Command::new(MARGAY);
        cmd.arg("run")
            .args(&self.margay_flags)
            .arg("--")
            .arg(&self.program)
            .args(&self.args);
        self.apply(&mut cmd);
        let all: Vec<&OsStr> = std::iter::once(OsStr::new("run"))
            .chain(self.margay_flags.iter().map(|a| a.as_os_str()))
            .chain(std::iter::once(OsStr::new("--")))
            .chain(std::iter::once(self.program.as_os_str()))
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .collect();
        let what = describe(MARGAY.as_ref(), all.into_iter());
        let _permit = qemu_permit();
        run_with_timeout(cmd, self.stdin.clone(), self.timeout, &what)
    }
}

/// Fails with both outputs shown unless stdout and exit status are the same.
pub fn assert_same(native: &Output, margay: &Output, what: &str) {
    let n_code = status_code(native.status);
    let m_code = status_code(margay.status);
    if native.stdout != margay.stdout || n_code != m_code {
        panic!(
            "{what}: margay differs from native\n\
             native status {n_code}, margay status {m_code}\n\
             --- native stdout ---\n{}\n--- margay stdout ---\n{}\n\
             --- native stderr ---\n{}\n--- margay stderr ---\n{}",
            lossy_tail(&native.stdout),
            lossy_tail(&margay.stdout),
            lossy_tail(&native.stderr),
            lossy_tail(&margay.stderr),
        );
    }
}

/// Runs natively and under margay; asserts identical stdout and exit status;
/// returns (native, margay).
pub fn compare_with_native(inv: &Invocation) -> (Output, Output) {
    let native = inv.run_native();
    let margay = inv.run_margay();
    assert_same(&native, &margay, &format!("{}", inv.program.display()));
    (native, margay)
}

/// Like `compare_with_native`, and the native stderr must also appear in
/// margay's stderr (margay may add its own lines around it).
pub fn compare_with_native_stderr(inv: &Invocation) -> (Output, Output) {
    let (n, m) = compare_with_native(inv);
    let ns = String::from_utf8_lossy(&n.stderr);
    let ms = String::from_utf8_lossy(&m.stderr);
    assert!(
        ms.contains(ns.as_ref()),
        "{}: native stderr not found in margay's stderr\n--- native ---\n{ns}\n--- margay ---\n{ms}",
        inv.program.display()
    );
    (n, m)
}

pub fn stdout_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the output shown unless the shell-style status is `code`.
pub fn assert_status(o: &Output, code: i32, what: &str) {
    let got = status_code(o.status);
    assert_eq!(
        got,
        code,
        "{what}: expected status {code}, got {got}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        lossy_tail(&o.stdout),
        lossy_tail(&o.stderr)
    );
}

// ---------------------------------------------------------------------------
// Temporary directories (no tempfile dependency needed).

pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("margay-tests");
        fs::create_dir_all(&base).expect("create temp base");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{tag}-{}-{n}-{nanos}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create temp dir {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        v.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A cached 64 MiB file of deterministic pseudo-random data.
pub fn big_random_file() -> PathBuf {
    static BIG: OnceLock<PathBuf> = OnceLock::new();
    BIG.get_or_init(|| {
        const LEN: u64 = 64 << 20;
        let dir = cache_dir();
        fs::create_dir_all(&dir).expect("cache dir");
        let path = dir.join("random-64MiB.bin");
        if fs::metadata(&path).map(|m| m.len() == LEN).unwrap_or(false) {
            return path;
        }
        let tmp = dir.join(format!(".random-64MiB.{}.tmp", std::process::id()));
        fs::write(&tmp, pseudo_random(LEN as usize, 0x6d61_7267_6179)).expect("write big file");
        fs::rename(&tmp, &path).expect("rename big file");
        path
    })
    .clone()
}

/// sha256 of a file with the host's `sha256sum` command.
pub fn native_sha256(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(o.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}
