//! An instance's host process (`margay __instance`, started by `margay
//! boot`): it owns the partition (guest RAM, QEMU, the signal relay and the
//! hot-plug service) and answers on the instance's socket.
//!
//! Threads: the main thread started QEMU (so QEMU's PR_SET_PDEATHSIG is
//! tied to it) and is the only one that stops or restarts it (shutdown,
//! reboot, a QEMU that ended); an acceptor thread takes connections and
//! one thread per connection serves it. An exec connection's thread posts
//! the spawn in the kernel's mailbox, hands the client the new process's
//! region table, then watches the client: when it is gone while its LWK
//! process still runs (kill -9), the kernel kills that process.

use std::collections::BTreeMap;
use std::io::{BufReader, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::json;
use wire::{
    Mailbox, SlotState, MAILBOX_DATA_OFF, MAILBOX_DATA_SIZE, MAILBOX_DONE, MAILBOX_IDLE,
    MAILBOX_LOADING, MAILBOX_OFF, MAILBOX_POSTED, MAILBOX_STATE_OFF, OP_KILL, OP_SPAWN,
    SHARED_PHYS, SPAWN_INJECT_PANIC,
};

use super::{recv, send, ProcessInfo, Request, Status};
use crate::cli::InstanceArgs;
use crate::guest_mem::GuestMem;
use crate::report::{self, Outcome};
use crate::{hotplug, partition, pinning, qemu, qmp, sys, Fatal, OrExit as _};

/// How long the kernel may take to boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a client's liveness and the mailbox are looked at.
const POLL: Duration = Duration::from_millis(2);
const CLIENT_POLL: Duration = Duration::from_millis(20);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the instance was booted with.
struct Config {
    name: String,
    cpus: u32,
    mem: u64,
    accel: qemu::Accel,
    host_cpus: Vec<usize>,
}

/// A running partition.
struct Vm {
    ram: partition::Ram,
    _kernel: OwnedFd,
    qemu: qemu::Qemu,
    relay_stop: Arc<AtomicBool>,
    relay: Option<std::thread::JoinHandle<()>>,
    kernel_requests: Option<std::thread::JoinHandle<()>>,
    pinned: Vec<usize>,
}

impl Vm {
    /// Boot the kernel with no program and wait until its init is ready.
    fn boot(cfg: &Config) -> anyhow::Result<Vm> {
        let debug = std::env::var_os("MARGAY_DEBUG").is_some();
        let ram = partition::Ram::create(cfg.mem)?;
        let kernel = partition::kernel_image(crate::run::KERNEL_ELF)?;
        let kernel_path = partition::proc_fd_path(&kernel);
        let boot = partition::BootParams {
            ncpus: cfg.cpus,
            mem_size: cfg.mem,
            flags: wire::FLAG_INSTANCE | if debug { wire::FLAG_KMSG_ECHO } else { 0 },
            proxy_pid: std::process::id(),
            ids: sys::ids(),
            host_start_ns: sys::clock_ns(sys::ClockId::Realtime),
            path: b"margay-init",
            argv: &[],
            envp: &[],
        };
        partition::write_boot(ram.mem(), &boot)?;
        let plugs = hotplug::Service::listen(hotplug::Window::new(
            wire::HOTPLUG_BASE,
            wire::HOTPLUG_SPACE,
            wire::HOTPLUG_SLOTS,
        ))
        .map_err(|e| eprintln!("margay: no shared file mappings in this instance: {e}"))
        .ok();
        let qcfg = qemu::Config {
            mem: cfg.mem,
            cpus: cfg.cpus,
            accel: cfg.accel,
            icount: false,
            ram_path: &ram.path(),
            kernel_path: &kernel_path,
        };
        let (monitor, qemu_end) =
            UnixStream::pair().context("cannot create QEMU's monitor socket")?;
        let mut vm = qemu::spawn(&qcfg, debug, Some(OwnedFd::from(qemu_end)))?;
        let started = qmp::Qmp::handshake(monitor, pinning::QMP_TIMEOUT)
            .context("QEMU's monitor (QMP)")
            .and_then(|mut q| {
                let placement = if cfg.host_cpus.is_empty() {
                    pinning::Outcome::NotPinned("no host cores given".into())
                } else {
                    pinning::apply(&mut q, vm.process.id(), &cfg.host_cpus, true)?
                };
                q.cont().context("QEMU's monitor (QMP)")?;
                Ok((q, placement))
            });
        let (mut q, placement) = match started {
            Ok(v) => v,
            Err(e) => {
                let _ = vm.process.kill();
                let said = vm.stderr.take().map(qemu::Tail::finish).unwrap_or_default();
                bail!(
                    "{e:#}; QEMU said:\n{}",
                    report::last_lines(&said, 20).trim_end()
                );
            }
        };
        let pinned = match placement {
            pinning::Outcome::Pinned { cores, .. } => cores,
            pinning::Outcome::NotPinned(_) => Vec::new(),
        };
        let relay_stop = Arc::new(AtomicBool::new(false));
        let (mem, stop) = (ram.shared_mem(), Arc::clone(&relay_stop));
        let relay = std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || {
                let mut plugs = plugs;
                crate::run::relay_host_signals(&mem, &mut q, plugs.as_mut(), &stop);
            })
            .context("cannot start the signal relay thread")?;
        let (mem, stop) = (ram.shared_mem(), Arc::clone(&relay_stop));
        let kernel_requests = std::thread::Builder::new()
            .name("kernel-requests".into())
            .spawn(move || crate::proxy::serve_kernel_requests(&mem, &stop))
            .context("cannot start the kernel-request thread")?;
        let mut vm = Vm {
            ram,
            _kernel: kernel,
            qemu: vm,
            relay_stop,
            relay: Some(relay),
            kernel_requests: Some(kernel_requests),
            pinned,
        };
        let start = Instant::now();
        loop {
            let state = report::read_header(vm.ram.mem()).map(|h| h.state);
            if state == Some(wire::State::Running as u32) {
                return Ok(vm);
            }
            if vm.exited() || start.elapsed() > BOOT_TIMEOUT {
                let kmsg = report::read_kmsg(vm.ram.mem());
                let said = vm.stop();
                bail!(
                    "the kernel did not come up{}\nkernel log:\n{}\nQEMU said:\n{}",
                    if start.elapsed() > BOOT_TIMEOUT {
                        " in time"
                    } else {
                        ""
                    },
                    report::last_lines(&kmsg, 20).trim_end(),
                    report::last_lines(&said, 20).trim_end()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether QEMU has exited.
    fn exited(&mut self) -> bool {
        !matches!(self.qemu.process.child_mut().try_wait(), Ok(None))
    }

    /// Kill QEMU and stop the relay; returns QEMU's stderr.
    fn stop(&mut self) -> Vec<u8> {
        let _ = self.qemu.process.kill();
        self.relay_stop.store(true, Ordering::Release);
        for t in [self.relay.take(), self.kernel_requests.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        self.qemu
            .stderr
            .take()
            .map(qemu::Tail::finish)
            .unwrap_or_default()
    }
}

/// An exec client (the proxy of one LWK process).
struct Client {
    program: String,
    cores: Vec<usize>,
    started: Instant,
    generation: u64,
    /// For notices (a panic): the client reads them on its socket.
    stream: UnixStream,
}

/// What the connection threads see of the current partition.
struct Current {
    generation: u64,
    mem: Arc<GuestMem>,
    ram_path: PathBuf,
    booted: Instant,
    /// "running", "panicked" or "stopped".
    state: String,
    report: String,
    pinned: Vec<usize>,
}

struct Inner {
    cfg: Config,
    owner: u32,
    cur: Mutex<Current>,
    /// By client pid (= its LWK process's pid).
    clients: Mutex<BTreeMap<u32, Client>>,
    /// One mailbox request at a time.
    mailbox: Mutex<()>,
}

/// What connection threads ask of the main thread.
enum Control {
    Shutdown(mpsc::Sender<()>, mpsc::Receiver<()>),
    Reboot(mpsc::Sender<Result<(), String>>),
}

/// Entry point of `margay __instance`.
pub fn main(args: InstanceArgs) -> Result<i32, Fatal> {
    let dir = super::runtime_dir().or_exit(1)?;
    let accel = qemu::choose_accel(args.accel).or_exit(1)?;
    let cfg = Config {
        name: args.name.clone(),
        cpus: args.cpus,
        mem: args.mem,
        accel,
        host_cpus: args.host_cpus.map(|l| l.0).unwrap_or_default(),
    };
    let mut vm = Vm::boot(&cfg).or_exit(1)?;
    let sock = dir.join(format!("{}.sock", cfg.name));
    let log = dir.join(format!("{}.log", cfg.name));
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)
        .with_context(|| format!("cannot listen on {}", sock.display()))
        .or_exit(1)?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
        .context("cannot make the instance's socket private")
        .or_exit(1)?;
    let inner = Arc::new(Inner {
        owner: rustix::process::getuid().as_raw(),
        cur: Mutex::new(Current {
            generation: 1,
            mem: vm.ram.shared_mem(),
            ram_path: vm.ram.path(),
            booted: Instant::now(),
            state: "running".into(),
            report: String::new(),
            pinned: vm.pinned.clone(),
        }),
        cfg,
        clients: Mutex::new(BTreeMap::new()),
        mailbox: Mutex::new(()),
    });
    let (tx, rx) = mpsc::channel::<Control>();
    {
        let inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let (inner, tx) = (Arc::clone(&inner), tx.clone());
                    let _ = std::thread::Builder::new()
                        .name("conn".into())
                        .spawn(move || serve_connection(&inner, conn, &tx));
                }
            })
            .context("cannot start the accept thread")
            .or_exit(1)?;
    }
    eprintln!("margay: instance {} ready", inner.cfg.name);
    let mut running = true;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Control::Shutdown(done, ack)) => {
                kill_clients(&inner);
                if running {
                    vm.stop();
                }
                let _ = std::fs::remove_file(&sock);
                let _ = std::fs::remove_file(&log);
                let _ = done.send(());
                let _ = ack.recv_timeout(Duration::from_secs(5));
                return Ok(0);
            }
            Ok(Control::Reboot(done)) => {
                kill_clients(&inner);
                if running {
                    vm.stop();
                }
                match Vm::boot(&inner.cfg) {
                    Ok(v) => {
                        vm = v;
                        running = true;
                        let mut c = lock(&inner.cur);
                        c.generation += 1;
                        c.mem = vm.ram.shared_mem();
                        c.ram_path = vm.ram.path();
                        c.booted = Instant::now();
                        c.state = "running".into();
                        c.report.clear();
                        c.pinned = vm.pinned.clone();
                        drop(c);
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        running = false;
                        lock(&inner.cur).state = "stopped".into();
                        let _ = done.send(Err(format!("{e:#}")));
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(0),
        }
        if running && vm.exited() {
            running = false;
            qemu_ended(&inner, &mut vm);
        }
    }
}

/// QEMU ended on its own: a kernel panic (or a crash). Record why and tell
/// the exec clients, which exit 70.
fn qemu_ended(inner: &Inner, vm: &mut Vm) {
    let said = vm.stop();
    let console = vm
        .qemu
        .console
        .take()
        .map(qemu::Tail::finish)
        .unwrap_or_default();
    let mem = vm.ram.mem();
    let kmsg = report::read_kmsg(mem);
    let header = report::read_header(mem);
    let (state, text) = match header.as_ref().map(report::outcome) {
        Some(Outcome::Panicked) => (
            "panicked",
            report::panic_report(&header.unwrap_or_default(), &kmsg, &console),
        ),
        _ => (
            "stopped",
            format!(
                "margay: the instance's QEMU ended unexpectedly; QEMU said:\n{}\n",
                report::last_lines(&said, 20).trim_end()
            ),
        ),
    };
    eprint!("{text}");
    {
        let mut c = lock(&inner.cur);
        c.state = state.into();
        c.report = text.clone();
    }
    let mut clients = lock(&inner.clients);
    for (_, c) in clients.iter_mut() {
        let _ = send(&mut c.stream, &json!({ "panic": text }));
    }
    clients.clear();
}

/// SIGKILL every exec client (shutdown, reboot): they exit 137.
fn kill_clients(inner: &Inner) {
    let mut clients = lock(&inner.clients);
    for (&pid, _) in clients.iter() {
        sys::kill9(pid);
    }
    clients.clear();
}

fn error_line(s: &mut UnixStream, msg: impl std::fmt::Display) {
    let _ = send(s, &json!({ "error": msg.to_string() }));
}

fn serve_connection(inner: &Arc<Inner>, mut conn: UnixStream, tx: &mpsc::Sender<Control>) {
    let Ok(cred) = rustix::net::sockopt::socket_peercred(&conn) else {
        return;
    };
    let (uid, pid) = (
        cred.uid.as_raw(),
        cred.pid.as_raw_nonzero().get().unsigned_abs(),
    );
    if uid != inner.owner {
        error_line(
            &mut conn,
            format!(
                "permission denied: instance {} belongs to uid {}, not to uid {uid}",
                inner.cfg.name, inner.owner
            ),
        );
        // Keep the connection until the client has sent its request (a
        // bounded amount, for a while), so that it reads this answer.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = std::io::Read::read(&mut conn, &mut [0u8; 4096]);
        return;
    }
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let req: Request = match recv(&mut reader)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_value(v).ok())
    {
        Some(r) => r,
        None => return error_line(&mut conn, "malformed request"),
    };
    match req {
        Request::Status => {
            let st = status(inner);
            let _ = send(&mut conn, &json!({ "ok": true, "status": st }));
        }
        Request::Kmsg { follow } => kmsg(inner, &mut conn, follow),
        Request::Shutdown => {
            let (done_tx, done_rx) = mpsc::channel();
            let (ack_tx, ack_rx) = mpsc::channel();
            if tx.send(Control::Shutdown(done_tx, ack_rx)).is_ok() && done_rx.recv().is_ok() {
                let _ = send(&mut conn, &json!({ "ok": true }));
                let _ = ack_tx.send(());
                // The process exits now; the client sees the end of the stream.
                std::thread::sleep(Duration::from_secs(10));
            }
        }
        Request::Reboot => {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Control::Reboot(done_tx)).is_err() {
                return;
            }
            match done_rx.recv() {
                Ok(Ok(())) => {
                    let _ = send(&mut conn, &json!({ "ok": true }));
                }
                Ok(Err(e)) => error_line(&mut conn, format!("reboot failed: {e}")),
                Err(_) => {}
            }
        }
        Request::Exec {
            path,
            argv,
            envp,
            ids,
            cpus,
            inject_panic,
        } => {
            let spawn = Spawn {
                pid,
                path,
                argv,
                envp,
                ids,
                cpus,
                inject_panic,
            };
            if let Err(e) = exec(inner, &mut conn, spawn) {
                let report = lock(&inner.cur).report.clone();
                if report.is_empty() {
                    error_line(&mut conn, format!("{e:#}"));
                } else {
                    let _ = send(&mut conn, &json!({ "panic": report }));
                }
            }
        }
    }
}

fn status(inner: &Inner) -> Status {
    let c = lock(&inner.cur);
    let h = report::read_header(&c.mem).unwrap_or_default();
    let free = c
        .mem
        .load_u64(
            SHARED_PHYS + wire::HEADER_OFF + wire::HEADER_FREE_BYTES_OFF,
            Ordering::Acquire,
        )
        .unwrap_or(0);
    let processes = lock(&inner.clients)
        .iter()
        .filter(|(&pid, cl)| cl.generation == c.generation && !gone(pid))
        .map(|(&pid, cl)| ProcessInfo {
            pid,
            program: cl.program.clone(),
            cores: cl.cores.clone(),
            running_s: cl.started.elapsed().as_secs_f64(),
        })
        .collect();
    Status {
        name: inner.cfg.name.clone(),
        state: c.state.clone(),
        host_pid: std::process::id(),
        cpus: inner.cfg.cpus,
        host_cpus: c.pinned.clone(),
        mem_bytes: inner.cfg.mem,
        usable_bytes: h.total_bytes,
        free_bytes: free,
        uptime_s: c.booted.elapsed().as_secs_f64(),
        kernel: format!(
            "margay {} (contract {})",
            env!("CARGO_PKG_VERSION"),
            wire::VERSION
        ),
        processes,
        panic: c.report.clone(),
    }
}

fn kmsg(inner: &Inner, conn: &mut UnixStream, follow: bool) {
    let head_off = SHARED_PHYS + wire::HEADER_OFF + wire::HEADER_KMSG_HEAD_OFF;
    let (mut mem, mut gen) = {
        let c = lock(&inner.cur);
        (Arc::clone(&c.mem), c.generation)
    };
    let mut sent = 0u64;
    loop {
        let head = mem.load_u64(head_off, Ordering::Acquire).unwrap_or(0);
        if head > sent || (!follow && sent == 0) {
            let text = report::read_kmsg(&mem);
            let new = usize::try_from(head - sent)
                .unwrap_or(usize::MAX)
                .min(text.len());
            let chunk = String::from_utf8_lossy(&text[text.len() - new..]).into_owned();
            if send(conn, &json!({ "kmsg": chunk })).is_err() {
                return;
            }
            sent = head;
        }
        if !follow {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
        let c = lock(&inner.cur);
        if c.generation != gen {
            (mem, gen, sent) = (Arc::clone(&c.mem), c.generation, 0);
        }
    }
}

/// A spawn request from client `pid`.
struct Spawn {
    pid: u32,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    ids: [u32; 4],
    cpus: u64,
    inject_panic: bool,
}

/// Whether process `pid` is gone (or a zombie).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
        st.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| state == 'Z' || state == 'X')
    })
}

/// Whether generation `gen` still runs.
fn current(inner: &Inner, gen: u64) -> bool {
    let c = lock(&inner.cur);
    c.generation == gen && c.state == "running"
}

fn mailbox_state(mem: &GuestMem) -> u32 {
    mem.load_u32(
        SHARED_PHYS + MAILBOX_OFF + MAILBOX_STATE_OFF,
        Ordering::Acquire,
    )
    .unwrap_or(MAILBOX_IDLE)
}

/// Post `m` (and its data) in the mailbox.
fn post(mem: &GuestMem, m: &Mailbox, data: &[u8]) -> anyhow::Result<()> {
    mem.write_bytes(SHARED_PHYS + MAILBOX_DATA_OFF, data)?;
    mem.write_obj(SHARED_PHYS + MAILBOX_OFF, m)?;
    mem.store_u32(
        SHARED_PHYS + MAILBOX_OFF + MAILBOX_STATE_OFF,
        MAILBOX_POSTED,
        Ordering::Release,
    )?;
    Ok(())
}

/// Answer every request of the process whose region table is `table` that
/// its (dead) proxy left unanswered: the kernel gets EINTR.
fn abandon_slots(mem: &GuestMem, table: u64) {
    for i in 0..wire::MAX_SLOTS {
        let at = wire::slot_phys(i);
        let Ok(s) = mem.read_obj::<wire::Slot>(at) else {
            continue;
        };
        let state = mem.load_u32(at + wire::SLOT_STATE_OFF, Ordering::Acquire);
        let open =
            state.is_ok_and(|st| st == SlotState::Posted as u32 || st == SlotState::Taken as u32);
        if s.table == table && open {
            let ret_at = at + std::mem::offset_of!(wire::Slot, ret) as u64;
            let _ = mem.write_obj(ret_at, &linux_abi::Errno::EINTR.as_ret());
            let _ = mem.store_u32(
                at + wire::SLOT_STATE_OFF,
                SlotState::Done as u32,
                Ordering::Release,
            );
        }
    }
}

/// Wait for the mailbox to reach one of `states`; gives up when the
/// partition ends. With `client`, a dead client's loader requests are
/// answered on its behalf (so the kernel's loader fails instead of waiting).
fn wait_mailbox(
    inner: &Inner,
    mem: &GuestMem,
    gen: u64,
    states: &[u32],
    client: Option<(u32, u64)>,
) -> anyhow::Result<u32> {
    let mut last_check = Instant::now();
    loop {
        let s = mailbox_state(mem);
        if states.contains(&s) {
            return Ok(s);
        }
        if last_check.elapsed() >= CLIENT_POLL {
            last_check = Instant::now();
            if !current(inner, gen) {
                let c = lock(&inner.cur);
                if c.state == "panicked" {
                    bail!("the instance's kernel panicked:\n{}", c.report);
                }
                bail!("the instance stopped");
            }
            if let Some((pid, table)) = client {
                if gone(pid) {
                    abandon_slots(mem, table);
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Kill the LWK processes of client `pid`, which is gone.
fn kill_process(inner: &Inner, mem: &GuestMem, gen: u64, pid: u32) {
    let _mb = lock(&inner.mailbox);
    if !current(inner, gen) {
        return;
    }
    let m = Mailbox {
        op: OP_KILL,
        proxy_pid: pid,
        ..Mailbox::default()
    };
    if post(mem, &m, &[]).is_ok() && wait_mailbox(inner, mem, gen, &[MAILBOX_DONE], None).is_ok() {
        let _ = mem.store_u32(
            SHARED_PHYS + MAILBOX_OFF + MAILBOX_STATE_OFF,
            MAILBOX_IDLE,
            Ordering::Release,
        );
    }
}

fn exec(inner: &Arc<Inner>, conn: &mut UnixStream, sp: Spawn) -> anyhow::Result<()> {
    let (mem, ram_path, gen) = {
        let c = lock(&inner.cur);
        match c.state.as_str() {
            "running" => {}
            "panicked" => bail!(
                "instance {}'s kernel panicked (margay kmsg {0}; margay reboot {0})",
                inner.cfg.name
            ),
            other => bail!("instance {} is {other}", inner.cfg.name),
        }
        (Arc::clone(&c.mem), c.ram_path.clone(), c.generation)
    };
    let mut data = vec![0u8; MAILBOX_DATA_SIZE as usize];
    let n = wire::encode_bootdata(
        &mut data,
        &sp.path,
        sp.argv.iter().map(Vec::as_slice),
        sp.envp.iter().map(Vec::as_slice),
    )
    .ok_or_else(|| anyhow!("argument list too long: the path, arguments and environment need more than {MAILBOX_DATA_SIZE} bytes"))?;
    data.truncate(n);
    let cores: Vec<usize> = (0..64).filter(|c| sp.cpus & (1 << c) != 0).collect();
    if let Some(&c) = cores.iter().find(|&&c| c >= inner.cfg.cpus as usize) {
        bail!(
            "--cpus-of-instance: instance {} has cores 0-{}, not {c}",
            inner.cfg.name,
            inner.cfg.cpus - 1
        );
    }
    let count = |v: usize| u32::try_from(v).map_err(|_| anyhow!("too many arguments"));
    let m = Mailbox {
        op: OP_SPAWN,
        flags: if sp.inject_panic {
            SPAWN_INJECT_PANIC
        } else {
            0
        },
        proxy_pid: sp.pid,
        argc: count(sp.argv.len())?,
        envc: count(sp.envp.len())?,
        data_len: count(n)?,
        uid: sp.ids[0],
        gid: sp.ids[1],
        euid: sp.ids[2],
        egid: sp.ids[3],
        cpus: sp.cpus,
        ..Mailbox::default()
    };
    let program = sp
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let answer = {
        let _mb = lock(&inner.mailbox);
        post(&mem, &m, &data)?;
        let s = wait_mailbox(inner, &mem, gen, &[MAILBOX_LOADING, MAILBOX_DONE], None)?;
        let table = mem
            .read_obj::<Mailbox>(SHARED_PHYS + MAILBOX_OFF)
            .map(|m| m.table)
            .unwrap_or(0);
        if s == MAILBOX_LOADING {
            lock(&inner.clients).insert(
                sp.pid,
                Client {
                    program: program.clone(),
                    cores: cores.clone(),
                    started: Instant::now(),
                    generation: gen,
                    stream: conn.try_clone()?,
                },
            );
            send(
                conn,
                &json!({
                    "ok": true,
                    "ram": ram_path,
                    "mem": inner.cfg.mem,
                    "cpus": inner.cfg.cpus,
                    "table": table,
                    "host_pid": std::process::id(),
                }),
            )?;
        }
        let r = wait_mailbox(inner, &mem, gen, &[MAILBOX_DONE], Some((sp.pid, table)));
        let answer = mem.read_obj::<Mailbox>(SHARED_PHYS + MAILBOX_OFF);
        let why = answer.as_ref().map_or(Vec::new(), |a| {
            let len = (a.data_len as usize).min(MAILBOX_DATA_SIZE as usize);
            mem.read_bytes(SHARED_PHYS + MAILBOX_DATA_OFF, len)
                .unwrap_or_default()
        });
        if r.is_ok() {
            let _ = mem.store_u32(
                SHARED_PHYS + MAILBOX_OFF + MAILBOX_STATE_OFF,
                MAILBOX_IDLE,
                Ordering::Release,
            );
        }
        r?;
        (answer.map_or(-1, |a| a.ret), why)
    };
    let (ret, why) = answer;
    if ret <= 0 {
        lock(&inner.clients).remove(&sp.pid);
        send(
            conn,
            &json!({ "failed": String::from_utf8_lossy(&why), "status": 126 }),
        )?;
        return Ok(());
    }
    send(conn, &json!({ "started": ret }))?;
    let _ = conn.flush();
    // Watch the client: its LWK process ends with it.
    loop {
        std::thread::sleep(CLIENT_POLL);
        if !current(inner, gen) || !lock(&inner.clients).contains_key(&sp.pid) {
            return Ok(());
        }
        if gone(sp.pid) {
            break;
        }
    }
    lock(&inner.clients).remove(&sp.pid);
    kill_process(inner, &mem, gen, sp.pid);
    Ok(())
}
