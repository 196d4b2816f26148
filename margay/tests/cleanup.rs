//! Killing margay must not leak its QEMU, its proxy processes, or its shared
//! memory files in /dev/shm — not even with SIGKILL.
//!
//! Each test starts `margay run -- /bin/busybox sleep 30` in its own process
//! group, waits until margay has a QEMU child, records all of margay's
//! descendants (pid + start time, so pid reuse cannot fool the check) and the
//! margay files in /dev/shm, sends a signal, and then requires all of them to
//! disappear within a deadline. The tests run one at a time so that their
//! /dev/shm snapshots do not see each other's files.

mod common;

use common::*;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);
/// Boot deadline: until margay has started QEMU.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// After QEMU exists, how long to wait for a non-QEMU child (the proxy).
const PROXY_DEADLINE: Duration = Duration::from_secs(30);
/// After the signal: margay must have exited, and everything it left must be
/// gone, within this.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);
const GONE_DEADLINE: Duration = Duration::from_secs(30);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Debug, PartialEq, Eq)]
struct Proc {
    pid: u32,
    ppid: u32,
    state: char,
    start: u64,
    cmdline: String,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] = state (field 3), f[1] = ppid (field 4), f[19] = starttime (field 22)
    let state = f.first()?.chars().next()?;
    let ppid = f.get(1)?.parse().ok()?;
    let start = f.get(19)?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some(Proc {
        pid,
        ppid,
        state,
        start,
        cmdline,
    })
}

fn all_procs() -> Vec<Proc> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(p) = read_proc(pid) {
                    v.push(p);
                }
            }
        }
    }
    v
}

/// All descendants of `root` (children, grandchildren, ...).
fn descendants(root: u32) -> Vec<Proc> {
    let procs = all_procs();
    let mut by_parent: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in &procs {
        by_parent.entry(p.ppid).or_default().push(p);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for c in by_parent.get(&pid).into_iter().flatten() {
            if !out.iter().any(|o: &Proc| o.pid == c.pid) {
                out.push((*c).clone());
                todo.push(c.pid);
            }
        }
    }
    out
}

/// Is this very process (same pid and start time) still alive (not a zombie)?
fn alive(p: &Proc) -> bool {
    match read_proc(p.pid) {
        Some(now) => now.start == p.start && now.state != 'Z' && now.state != 'X',
        None => false,
    }
}

fn is_qemu(p: &Proc) -> bool {
    p.cmdline.contains("qemu-system")
}

fn shm_margay_files() -> BTreeSet<String> {
    fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.to_lowercase().contains("margay"))
                .collect()
        })
        .unwrap_or_default()
}

/// `mem-path=...` arguments of QEMU command lines: the guest RAM files.
fn mem_paths(procs: &[Proc]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for p in procs.iter().filter(|p| is_qemu(p)) {
        for word in p.cmdline.split([' ', ',']) {
            if let Some(path) = word.strip_prefix("mem-path=") {
                v.push(PathBuf::from(path));
            }
        }
    }
    v
}

/// Kills everything we started if the test fails half-way.
struct Guard {
    pgid: u32,
    procs: Vec<Proc>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        send_signal("KILL", self.pgid, true);
        for p in &self.procs {
            if alive(p) {
                send_signal("KILL", p.pid, false);
            }
        }
    }
}

fn wait_exit(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(POLL);
    }
}

fn read_log(p: &std::path::Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

fn leak_check(sig: &str, to_group: bool) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _permit = qemu_permit();
    let busybox = BUSYBOX;
    assert!(
        std::path::Path::new(busybox).is_file(),
        "{busybox} missing: install busybox-static"
    );

    let logdir = TempDir::new(&format!("cleanup-{sig}"));
    let log = logdir.join("margay.stderr");
    let shm_before = shm_margay_files();

    let mut child = Command::new(MARGAY)
        .args(["run", "--", busybox, "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("create log"))
        .process_group(0)
        .spawn()
        .expect("spawn margay");
    let pid = child.id();
    let mut guard = Guard {
        pgid: pid,
        procs: Vec::new(),
    };

    // Wait for QEMU to appear under margay.
    let end = Instant::now() + START_DEADLINE;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            panic!(
                "margay exited ({s:?}) before starting QEMU; stderr:\n{}",
                read_log(&log)
            );
        }
        let d = descendants(pid);
        if d.iter().any(is_qemu) {
            guard.procs = d;
            break;
        }
        assert!(
            Instant::now() < end,
            "no qemu-system process under margay (pid {pid}) after {START_DEADLINE:?}; stderr:\n{}",
            read_log(&log)
        );
        thread::sleep(POLL);
    }

    // Give the proxy (a non-QEMU child) a chance to appear, so the kill lands
    // while the program runs rather than during boot.
    let end = Instant::now() + PROXY_DEADLINE;
    loop {
        let d = descendants(pid);
        let have_proxy = d.iter().any(|p| !is_qemu(p));
        // Keep every process ever seen, not just the current ones.
        for p in d {
            if !guard
                .procs
                .iter()
                .any(|q| q.pid == p.pid && q.start == p.start)
            {
                guard.procs.push(p);
            }
        }
        if have_proxy || Instant::now() >= end {
            if !have_proxy {
                eprintln!("note: no non-QEMU child of margay seen within {PROXY_DEADLINE:?}");
            }
            break;
        }
        if let Some(s) = child.try_wait().expect("try_wait") {
            panic!(
                "margay exited ({s:?}) before the program ran; stderr:\n{}",
                read_log(&log)
            );
        }
        thread::sleep(POLL);
    }

    let shm_at_kill = shm_margay_files();
    let new_shm: BTreeSet<String> = shm_at_kill.difference(&shm_before).cloned().collect();
    let ram_files = mem_paths(&guard.procs);
    let watched = guard.procs.clone();
    eprintln!(
        "margay pid {pid}; descendants: {:?}; new /dev/shm files: {new_shm:?}; RAM files: {ram_files:?}",
        watched.iter().map(|p| (p.pid, p.cmdline.as_str())).collect::<Vec<_>>()
    );

    send_signal(sig, pid, to_group);

    let status = match wait_exit(&mut child, EXIT_DEADLINE) {
        Some(s) => s,
        None => panic!(
            "margay did not exit within {EXIT_DEADLINE:?} of SIG{sig}; stderr:\n{}",
            read_log(&log)
        ),
    };
    eprintln!(
        "margay exited after SIG{sig}: {status:?} (shell status {})",
        status_code(status)
    );
    if sig != "KILL" {
        // It must not carry on as if nothing happened.
        assert_ne!(status_code(status), 0, "margay exited 0 after SIG{sig}");
    }

    // Everything margay started must go away, as must its shared memory.
    let end = Instant::now() + GONE_DEADLINE;
    loop {
        let procs_left: Vec<&Proc> = watched.iter().filter(|p| alive(p)).collect();
        let shm_left: Vec<&String> = new_shm
            .iter()
            .filter(|n| std::path::Path::new("/dev/shm").join(n).exists())
            .collect();
        let ram_left: Vec<&PathBuf> = ram_files.iter().filter(|p| p.exists()).collect();
        // Any QEMU still around whose command line names one of margay's RAM files.
        let qemu_left: Vec<Proc> = all_procs()
            .into_iter()
            .filter(|p| is_qemu(p) && p.state != 'Z')
            .filter(|p| {
                watched.iter().any(|w| w.pid == p.pid && w.start == p.start)
                    || ram_files
                        .iter()
                        .any(|f| p.cmdline.contains(&*f.to_string_lossy()))
            })
            .collect();
        if procs_left.is_empty()
            && shm_left.is_empty()
            && ram_left.is_empty()
            && qemu_left.is_empty()
        {
            break;
        }
        if Instant::now() >= end {
            panic!(
                "after SIG{sig} to margay{}, leftovers after {GONE_DEADLINE:?}:\n\
                 processes: {:?}\nQEMU: {:?}\n/dev/shm files: {shm_left:?}\nRAM files: {ram_left:?}\n\
                 margay stderr:\n{}",
                if to_group { "'s process group" } else { "" },
                procs_left.iter().map(|p| (p.pid, &p.cmdline)).collect::<Vec<_>>(),
                qemu_left.iter().map(|p| (p.pid, &p.cmdline)).collect::<Vec<_>>(),
                read_log(&log)
            );
        }
        thread::sleep(POLL);
    }
}

#[test]
fn sigkill_leaks_nothing() {
    leak_check("KILL", false);
}

#[test]
fn sigterm_leaks_nothing() {
    leak_check("TERM", false);
}

#[test]
fn sigint_leaks_nothing() {
    leak_check("INT", false);
}

/// Ctrl-C in a terminal signals the whole foreground process group.
#[test]
fn sigint_to_process_group_leaks_nothing() {
    leak_check("INT", true);
}
