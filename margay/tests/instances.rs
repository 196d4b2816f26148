//! Standing instances: `margay boot`, `exec`, `status`, `kmsg`, `reboot`,
//! `shutdown`, with real QEMU and real programs. Each test keeps its
//! instances in a runtime directory of its own (XDG_RUNTIME_DIR) and kills
//! their host processes if it fails half-way. The tests run one at a time:
//! instances take host cores, and these tests check who gets which.
//!
//! Synchronisation is by handshakes: a program prints a line once it runs,
//! and the test reads it before it acts.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a process may take to disappear once it was told to.
const GONE_DEADLINE: Duration = Duration::from_secs(30);

/// A short runtime directory under /tmp (a unix socket's path must fit in
/// 108 bytes, which a deep target directory may not leave room for).
struct Runtime(std::path::PathBuf);

impl Runtime {
    fn new(tag: &str) -> Runtime {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("mgy-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("create runtime dir");
        Runtime(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, p: impl AsRef<Path>) -> std::path::PathBuf {
        self.0.join(p)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime directory and the instances booted in it.
struct Lab {
    runtime: Runtime,
    hosts: Mutex<Vec<u32>>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        Lab {
            runtime: Runtime::new(tag),
            hosts: Mutex::new(Vec::new()),
        }
    }

    fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(MARGAY);
        c.args(args).env("XDG_RUNTIME_DIR", self.runtime.path());
        c
    }

    fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], stdin: Option<&[u8]>) -> Output {
        let what = format!(
            "margay {}",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        run_with_timeout(self.cmd(args), stdin.map(<[u8]>::to_vec), TIMEOUT, &what)
    }

    /// Boot an instance; returns its name.
    fn boot(&self, args: &[&str]) -> String {
        let mut a = vec!["boot"];
        a.extend_from_slice(args);
        let out = self.run(&a, None);
        assert_status(&out, 0, "margay boot");
        let name = stdout_str(&out).trim().to_string();
        assert!(!name.is_empty(), "margay boot printed no name");
        let pid = self.status(&name)["host_pid"]
            .as_u64()
            .expect("host_pid in status") as u32;
        self.hosts.lock().unwrap().push(pid);
        name
    }

    fn status(&self, name: &str) -> Value {
        let out = self.run(&["status", name, "--json"], None);
        assert_status(&out, 0, "margay status --json");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", stdout_str(&out)))
    }

    fn exec(&self, name: &str, cmd: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut a = vec!["exec", name, "--"];
        a.extend_from_slice(cmd);
        self.run(&a, stdin)
    }

    /// Start `margay exec` with piped stdio, its output read line by line.
    fn spawn_exec(&self, name: &str, extra: &[&str], cmd: &[&str]) -> Client {
        let mut a = vec!["exec", name];
        a.extend_from_slice(extra);
        a.push("--");
        a.extend_from_slice(cmd);
        Client::spawn(self.cmd(&a))
    }

    fn shutdown(&self, name: &str) {
        let out = self.run(&["shutdown", name], None);
        assert_status(&out, 0, "margay shutdown");
    }

    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.runtime.join("margay"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A failed test must not leave instances running (their QEMUs die
        // with them).
        for &pid in self.hosts.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if alive(pid) {
                send_signal("KILL", pid, false);
            }
        }
    }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|s| s != 'Z' && s != 'X')
    })
}

/// Processes that belong to the instance whose host process is `host`:
/// the host itself and anything that maps its memory (QEMU, proxies).
fn leftovers(host: u32) -> Vec<String> {
    let needle = format!("/proc/{host}/fd/");
    let mut v = Vec::new();
    if alive(host) {
        v.push(format!("host process {host}"));
    }
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && alive(pid) {
            v.push(format!("{pid}: {cmdline}"));
        }
    }
    v
}

/// Wait until nothing of instance `host` is left.
fn assert_nothing_left(host: u32) {
    let start = Instant::now();
    loop {
        let left = leftovers(host);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < GONE_DEADLINE,
            "left behind by instance {host}: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A running `margay exec` with piped stdio.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Client {
    fn spawn(mut cmd: Command) -> Client {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn margay exec");
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            let _ = etx.send(b);
        });
        Client {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of output (the program's handshake).
    fn expect_line(&self, want: &str) {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(l) => assert_eq!(l, want, "unexpected output line"),
            Err(e) => panic!("no line '{want}' from margay exec ({e})"),
        }
    }

    /// Skip output lines until one contains `want`.
    fn expect_line_containing(&self, want: &str) {
        let start = Instant::now();
        loop {
            let left = TIMEOUT.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(want) => return,
                Ok(_) => {}
                Err(e) => panic!("no line containing '{want}' ({e})"),
            }
        }
    }

    fn write(&mut self, data: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(data).expect("write to margay exec");
        w.flush().expect("flush");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait for the end: (status, remaining stdout lines, stderr). Stdin
    /// stays open until then (an EOF would end a program that reads it).
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        // A blocking wait, with a watchdog that kills the client at TIMEOUT.
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let pid = self.child.id();
        let watchdog = thread::spawn(move || {
            let expired = watch.recv_timeout(TIMEOUT).is_err();
            if expired {
                send_signal("KILL", pid, true);
            }
            expired
        });
        let status = self.child.wait().expect("wait for margay exec");
        let _ = done.send(());
        if watchdog.join().unwrap_or(true) {
            panic!("margay exec did not end within {TIMEOUT:?}");
        }
        let mut rest = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            rest.push(l);
        }
        let err = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        (status, rest, String::from_utf8_lossy(&err).into_owned())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            send_signal("KILL", self.child.id(), true);
            let _ = self.child.wait();
        }
    }
}

fn free_bytes(st: &Value) -> u64 {
    st["free_bytes"].as_u64().expect("free_bytes")
}

fn processes(st: &Value) -> usize {
    st["processes"].as_array().map_or(0, Vec::len)
}

/// Wait until the instance runs no process and the memory its processes
/// took is back (give or take the kernel's own heap): the kernel frees a
/// process's memory just after its client ended. Returns the last status.
fn wait_idle(lab: &Lab, name: &str, before: u64) -> Value {
    let start = Instant::now();
    loop {
        let st = lab.status(name);
        let now = free_bytes(&st);
        if processes(&st) == 0 && now + (4 << 20) >= before {
            return st;
        }
        assert!(
            start.elapsed() < GONE_DEADLINE,
            "free memory {} MiB, {} MiB before the programs ran: {st}",
            now >> 20,
            before >> 20
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// One exec: command, stdin, expected status.
type Case<'a> = (Vec<&'a str>, Option<&'a [u8]>, i32);

/// boot -> 20 sequential execs of static, dynamic, threaded programs and
/// shell pipelines (stdio, exit status, environment, cwd) -> status shows
/// them gone and the memory back -> reboot -> exec -> shutdown, with nothing
/// left behind.
#[test]
fn boot_sequential_execs_reboot_shutdown() {
    let _one = one_at_a_time();
    let lab = Lab::new("inst-seq");
    let (hello, dhello) = (program("hello"), dynamic_program("hello"));
    let threads = program("threads");
    let exitcode = program("exitcode");
    let stdin_prog = program("stdin");
    let name = lab.boot(&["--name", "seq", "--mem", "256M"]);
    assert_eq!(name, "seq");
    let st = lab.status(&name);
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(processes(&st), 0, "{st}");
    let free0 = free_bytes(&st);
    assert!(free0 > 128 << 20, "{st}");

    let script_dir = TempDir::new("inst-script");
    let script = script_dir.join("pipes.sh");
    write_file(
        &script,
        b"#!/bin/busybox sh\nseq 1 100 | grep 7 | wc -l\necho one two three | tr ' ' '\\n' | sort -r | head -n 1\nexit 5\n",
        0o755,
    );
    let (h, dh, th, ex, si) = (
        hello.to_str().unwrap(),
        dhello.to_str().unwrap(),
        threads.to_str().unwrap(),
        exitcode.to_str().unwrap(),
        stdin_prog.to_str().unwrap(),
    );
    let native = |p: &str, args: &[&str], input: Option<&[u8]>| {
        let mut c = Command::new(p);
        c.args(args);
        run_with_timeout(c, input.map(<[u8]>::to_vec), TIMEOUT, p)
    };
    let input = pseudo_random(100_000, 7);
    // (command, stdin, expected status)
    let cases: Vec<Case> = vec![
        (vec![h], None, 0),
        (vec![dh], None, 0),
        (vec![ex, "0"], None, 0),
        (vec![ex, "42"], None, 42),
        (vec![th, "counter", "4"], None, 0),
        (vec![th, "condvar"], None, 0),
        (vec![si], Some(&input), 0),
        (vec![BUSYBOX, "echo", "hello", "instance"], None, 0),
        (
            vec![BUSYBOX, "sh", "-c", "echo a b c | tr a-z A-Z | wc -w"],
            None,
            0,
        ),
        (vec![BUSYBOX, "sh", "-c", "exit 3"], None, 3),
        (vec![BUSYBOX, "sh", script.to_str().unwrap()], None, 5),
        (vec![BUSYBOX, "cat"], Some(b"through the instance\n"), 0),
        (vec![BUSYBOX, "sort"], Some(b"c\nb\na\n"), 0),
        (vec![BUSYBOX, "ls", "/"], None, 0),
        (vec![BUSYBOX, "true"], None, 0),
        (vec![BUSYBOX, "false"], None, 1),
        (vec![h], None, 0),
        (vec![dh], None, 0),
        (
            vec![
                BUSYBOX,
                "sh",
                "-c",
                "for i in 1 2 3; do echo $i; done | busybox tac",
            ],
            None,
            0,
        ),
        (vec![ex, "7"], None, 7),
    ];
    assert_eq!(cases.len(), 20);
    for (cmd, input, code) in &cases {
        let got = lab.exec(&name, cmd, *input);
        let want = native(cmd[0], &cmd[1..], *input);
        let what = format!("exec {cmd:?}");
        assert_status(&got, *code, &what);
        assert_eq!(status_code(want.status), *code, "native {cmd:?}");
        assert_eq!(stdout_str(&got), stdout_str(&want), "{what}: stdout");
    }
    // Environment and working directory are the caller's.
    let mut c = lab.cmd(&[
        "exec",
        &name,
        "--",
        BUSYBOX,
        "sh",
        "-c",
        "echo $MARGAY_T; pwd",
    ]);
    c.env("MARGAY_T", "from the caller")
        .current_dir(script_dir.path());
    let out = run_with_timeout(c, None, TIMEOUT, "exec with env and cwd");
    assert_status(&out, 0, "exec with env and cwd");
    let cwd = std::fs::canonicalize(script_dir.path()).unwrap();
    assert_eq!(
        stdout_str(&out),
        format!("from the caller\n{}\n", cwd.display())
    );
    // A missing program is the caller's error, as with margay run.
    let out = lab.exec(&name, &["/no/such/program"], None);
    assert_status(&out, 127, "exec of a missing program");

    let st = wait_idle(&lab, &name, free0);

    let host = st["host_pid"].as_u64().unwrap() as u32;
    let out = lab.run(&["reboot", &name], None);
    assert_status(&out, 0, "margay reboot");
    let st = lab.status(&name);
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(st["host_pid"].as_u64(), Some(u64::from(host)));
    let out = lab.exec(&name, &[BUSYBOX, "echo", "after reboot"], None);
    assert_status(&out, 0, "exec after reboot");
    assert_eq!(stdout_str(&out), "after reboot\n");
    let out = lab.run(&["kmsg", &name], None);
    assert_status(&out, 0, "margay kmsg");
    assert!(
        stdout_str(&out).contains("instance: ready for programs"),
        "{}",
        stdout_str(&out)
    );

    lab.shutdown(&name);
    assert_nothing_left(host);
    assert_eq!(lab.files(), Vec::<String>::new(), "files left behind");
    let out = lab.run(&["status"], None);
    assert_eq!(stdout_str(&out), "no instances\n");
}

/// Three execs from different "shells" run side by side in one instance,
/// each with its own proxy (its own pid, stdio and exit status).
#[test]
fn concurrent_execs_into_one_instance() {
    let _one = one_at_a_time();
    let lab = Lab::new("inst-conc");
    let (allowed, _) = host_cores();
    let cpus = allowed.len().min(2).to_string();
    let name = lab.boot(&["--cpus", &cpus]);
    let free0 = free_bytes(&lab.status(&name));
    let mut clients: Vec<Client> = (0..3)
        .map(|i| {
            let script = format!("echo ready {i}; read x; echo got $x; exit {}", 10 + i);
            lab.spawn_exec(&name, &[], &[BUSYBOX, "sh", "-c", &script])
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.expect_line(&format!("ready {i}"));
    }
    // All three run now.
    let st = lab.status(&name);
    let mut pids: Vec<u64> = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    pids.sort();
    let mut want: Vec<u64> = clients.iter().map(|c| u64::from(c.pid())).collect();
    want.sort();
    assert_eq!(pids, want, "status: {st}");
    // Answer them in reverse order.
    for (i, c) in clients.iter_mut().enumerate().rev() {
        c.write(format!("word{i}\n").as_bytes());
        c.expect_line(&format!("got word{i}"));
        c.close_stdin();
    }
    for (i, c) in clients.into_iter().enumerate() {
        let (status, rest, err) = c.finish();
        assert_eq!(status_code(status), 10 + i as i32, "client {i}: {err}");
        assert!(rest.is_empty(), "{rest:?}");
    }
    // Signals sent to a client reach its program: a handler runs, and a
    // signal without one ends both with it.
    let c = lab.spawn_exec(
        &name,
        &[],
        &[
            BUSYBOX,
            "sh",
            "-c",
            "trap 'echo caught USR1' USR1; echo ready; until read x; do :; done; echo after $x",
        ],
    );
    c.expect_line("ready");
    send_signal("USR1", c.pid(), false);
    c.expect_line("caught USR1");
    let mut c = c;
    c.write(b"it\n");
    c.expect_line("after it");
    let (status, _, err) = c.finish();
    assert_eq!(status_code(status), 0, "{err}");
    let c = lab.spawn_exec(
        &name,
        &[],
        &[BUSYBOX, "sh", "-c", "echo ready; exec busybox sleep 1000"],
    );
    c.expect_line("ready");
    send_signal("TERM", c.pid(), false);
    let (status, _, err) = c.finish();
    assert_eq!(status_code(status), 128 + 15, "{err}");
    // A program restricted to one core of the instance.
    let out = lab.run(
        &[
            "exec",
            &name,
            "--cpus-of-instance",
            "0",
            "--",
            BUSYBOX,
            "echo",
            "pinned",
        ],
        None,
    );
    assert_status(&out, 0, "exec --cpus-of-instance 0");
    let out = lab.run(
        &[
            "exec",
            &name,
            "--cpus-of-instance",
            "9",
            "--",
            BUSYBOX,
            "true",
        ],
        None,
    );
    assert_status(&out, 1, "exec --cpus-of-instance 9");
    assert!(stderr_str(&out).contains("not 9"), "{}", stderr_str(&out));
    let st = wait_idle(&lab, &name, free0);
    let host = st["host_pid"].as_u64().unwrap() as u32;
    lab.shutdown(&name);
    assert_nothing_left(host);
}

fn host_cores() -> (Vec<usize>, ()) {
    let out = Command::new("nproc").output().expect("nproc");
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    ((0..n).collect(), ())
}

/// Two instances on disjoint host cores run programs at the same time;
/// a boot that overlaps their cores, or asks for more memory than the host
/// has, is refused with a clear message.
#[test]
fn two_instances_and_refused_boots() {
    let _one = one_at_a_time();
    let lab = Lab::new("inst-two");
    let (cores, _) = host_cores();
    assert!(cores.len() >= 2, "this test needs two host cores");
    let a = lab.boot(&["--name", "a", "--host-cpus", "0"]);
    let b = lab.boot(&["--name", "b", "--host-cpus", "1"]);
    let (sa, sb) = (lab.status(&a), lab.status(&b));
    assert_eq!(sa["host_cpus"], serde_json::json!([0]), "{sa}");
    assert_eq!(sb["host_cpus"], serde_json::json!([1]), "{sb}");
    // Both run a program at once.
    let ca = lab.spawn_exec(
        &a,
        &[],
        &[BUSYBOX, "sh", "-c", "echo in a; read x; echo $x"],
    );
    let cb = lab.spawn_exec(
        &b,
        &[],
        &[BUSYBOX, "sh", "-c", "echo in b; read x; echo $x"],
    );
    ca.expect_line("in a");
    cb.expect_line("in b");
    let (mut ca, mut cb) = (ca, cb);
    ca.write(b"bye a\n");
    cb.write(b"bye b\n");
    let (s1, r1, _) = ca.finish();
    let (s2, r2, _) = cb.finish();
    assert_eq!((status_code(s1), r1), (0, vec!["bye a".to_string()]));
    assert_eq!((status_code(s2), r2), (0, vec!["bye b".to_string()]));

    let out = lab.run(&["boot", "--name", "c", "--host-cpus", "1"], None);
    assert_status(&out, 2, "overlapping boot");
    assert!(
        stderr_str(&out).contains("host core 1 is used by instance b"),
        "{}",
        stderr_str(&out)
    );
    let out = lab.run(&["boot", "--name", "d"], None);
    assert_status(&out, 2, "boot with no free core");
    assert!(stderr_str(&out).contains("free"), "{}", stderr_str(&out));
    let out = lab.run(&["boot", "--name", "a"], None);
    assert_status(&out, 1, "boot of a name in use");
    assert!(
        stderr_str(&out).contains("running already"),
        "{}",
        stderr_str(&out)
    );
    lab.shutdown(&b);
    let out = lab.run(&["boot", "--name", "e", "--mem", "1000000G"], None);
    assert_ne!(out.status.code(), Some(0), "a huge --mem was accepted");
    let hosts = lab.hosts.lock().unwrap().clone();
    // Shutdown kills what still runs: its client exits 137.
    let c = lab.spawn_exec(&a, &[], &[BUSYBOX, "sh", "-c", "echo ready; read x"]);
    c.expect_line("ready");
    lab.shutdown(&a);
    let (status, _, err) = c.finish();
    assert_eq!(status_code(status), 137, "{err}");
    for h in hosts {
        assert_nothing_left(h);
    }
}

/// kill -9 of an exec client kills its LWK process and gives its memory
/// back; kill -9 of the instance's host process leaves nothing behind,
/// its clients exit 70, and the next status removes its files with one line.
#[test]
fn killed_client_and_killed_instance() {
    let _one = one_at_a_time();
    let lab = Lab::new("inst-kill");
    let name = lab.boot(&[]);
    let free0 = free_bytes(&lab.status(&name));
    // The program forks: a pipeline of two more LWK processes (both exist
    // once the second one prints).
    let c = lab.spawn_exec(
        &name,
        &[],
        &[
            BUSYBOX,
            "sh",
            "-c",
            "busybox sleep 1000 | { echo ready; exec busybox cat; }",
        ],
    );
    c.expect_line("ready");
    let st = lab.status(&name);
    assert_eq!(processes(&st), 1, "{st}");
    // The kernel log, followed as it grows.
    let follow = Client::spawn(lab.cmd(&["kmsg", &name, "--follow"]));
    follow.expect_line_containing("instance: ready for programs");
    send_signal("KILL", c.pid(), false);
    let (status, _, _) = c.finish();
    assert_eq!(status_code(status), 137);
    follow.expect_line_containing("and 2 descendant(s): its client is gone");
    drop(follow);
    // Its processes are killed and their memory comes back.
    wait_idle(&lab, &name, free0);
    // Still usable, several times over (a killed process leaves no stale slot).
    for i in 0..3 {
        let out = lab.exec(&name, &[BUSYBOX, "echo", &format!("again {i}")], None);
        assert_status(&out, 0, "exec after a killed client");
    }

    // Now kill the host process under a running client.
    let host = lab.status(&name)["host_pid"].as_u64().unwrap() as u32;
    let c = lab.spawn_exec(&name, &[], &[BUSYBOX, "sh", "-c", "echo ready; read x"]);
    c.expect_line("ready");
    send_signal("KILL", host, false);
    let (status, _, err) = c.finish();
    assert_eq!(status_code(status), 70, "{err}");
    assert_nothing_left(host);
    let out = lab.run(&["status"], None);
    assert_status(&out, 0, "status after a killed instance");
    assert!(
        stderr_str(&out).contains(&format!("removed stale instance {name}")),
        "{}",
        stderr_str(&out)
    );
    assert_eq!(stderr_str(&out).lines().count(), 1, "{}", stderr_str(&out));
    assert_eq!(lab.files(), Vec::<String>::new());
}

/// A kernel panic in an instance: its exec clients exit 70, status and kmsg
/// show it with the message, reboot recovers it.
#[test]
fn kernel_panic_in_an_instance() {
    let _one = one_at_a_time();
    let lab = Lab::new("inst-panic");
    let name = lab.boot(&[]);
    let c = lab.spawn_exec(&name, &[], &[BUSYBOX, "sh", "-c", "echo ready; read x"]);
    c.expect_line("ready");
    let out = lab.run(
        &[
            "exec",
            &name,
            "--inject",
            "kernel-panic",
            "--",
            BUSYBOX,
            "true",
        ],
        None,
    );
    assert_status(&out, 70, "exec --inject kernel-panic");
    assert!(
        stderr_str(&out).contains("injected panic"),
        "{}",
        stderr_str(&out)
    );
    let (status, _, err) = c.finish();
    assert_eq!(status_code(status), 70, "{err}");
    assert!(err.contains("KERNEL PANIC"), "{err}");
    let st = lab.status(&name);
    assert_eq!(st["state"], "panicked", "{st}");
    assert!(
        st["panic"]
            .as_str()
            .unwrap_or("")
            .contains("injected panic"),
        "{st}"
    );
    let kmsg = lab.run(&["kmsg", &name], None);
    assert!(
        stdout_str(&kmsg).contains("KERNEL PANIC"),
        "{}",
        stdout_str(&kmsg)
    );
    let out = lab.exec(&name, &[BUSYBOX, "true"], None);
    assert_status(&out, 70, "exec into a panicked instance");
    let out = lab.run(&["reboot", &name], None);
    assert_status(&out, 0, "reboot after a panic");
    let out = lab.exec(&name, &[BUSYBOX, "echo", "recovered"], None);
    assert_status(&out, 0, "exec after reboot");
    assert_eq!(stdout_str(&out), "recovered\n");
    let host = lab.status(&name)["host_pid"].as_u64().unwrap() as u32;
    lab.shutdown(&name);
    assert_nothing_left(host);
}

/// Another user can neither exec on nor stop someone else's instance: the
/// runtime directory keeps them out, and the host process refuses them even
/// when it does not. Needs root (to create the other user).
#[test]
fn another_user_is_refused() {
    let _one = one_at_a_time();
    if !rustix_is_root() {
        eprintln!("another_user_is_refused: not root; the directory mode check still runs");
    }
    let lab = Lab::new("inst-user");
    let name = lab.boot(&[]);
    let dir = lab.runtime.join("margay");
    let sock = dir.join(format!("{name}.sock"));
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&sock), 0o600);
    let host = lab.status(&name)["host_pid"].as_u64().unwrap() as u32;
    if rustix_is_root() {
        let user = "margay-other";
        let exists = Command::new("id")
            .arg(user)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let out = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/bin/false",
                    user,
                ])
                .output()
                .expect("useradd");
            assert!(
                out.status.success(),
                "useradd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The binary must be reachable for the other user: a copy in a
        // world-readable directory under /tmp.
        let bin_dir = Runtime::new("bin");
        let bin = bin_dir.join("margay");
        std::fs::copy(MARGAY, &bin).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let as_other = |args: &[&str]| {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", user, "--regid", user, "--clear-groups", "--"])
                .arg(&bin)
                .args(args)
                .env("XDG_RUNTIME_DIR", "/nonexistent");
            run_with_timeout(c, None, TIMEOUT, "margay as another user")
        };
        let s = sock.to_str().unwrap();
        let out = as_other(&["exec", s, "--", BUSYBOX, "true"]);
        assert_status(&out, 1, "exec as another user");
        assert!(
            stderr_str(&out).contains("permission denied"),
            "{}",
            stderr_str(&out)
        );
        let out = as_other(&["shutdown", s]);
        assert_status(&out, 1, "shutdown as another user");
        assert!(
            stderr_str(&out).contains("permission denied"),
            "{}",
            stderr_str(&out)
        );
        // Even with the directory and socket opened up, the host process
        // refuses a connection from another uid.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
        let out = as_other(&["shutdown", s]);
        assert_status(&out, 1, "shutdown as another user, socket open");
        assert!(
            stderr_str(&out).contains("belongs to uid"),
            "{}",
            stderr_str(&out)
        );
        let out = as_other(&["exec", s, "--", BUSYBOX, "true"]);
        assert_status(&out, 1, "exec as another user, socket open");
        assert!(
            stderr_str(&out).contains("belongs to uid"),
            "{}",
            stderr_str(&out)
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(lab.status(&name)["state"], "running");
    }
    lab.shutdown(&name);
    assert_nothing_left(host);
}

fn rustix_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}
