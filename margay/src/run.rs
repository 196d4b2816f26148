//! `margay run`, step by step: resolve the program (`Resolved`), plan the
//! partition (`Plan`: accelerator, memory check, vCPU placement), boot it
//! (`Booted`: RAM and kernel memfds, proxy, QEMU started and pinned), serve it
//! until QEMU exits (relaying signals as NMIs), then report the outcome and
//! turn it into margay's exit status.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};

use crate::children::{self, Supervised};
use crate::cli::{self, RunArgs};
use crate::guest_mem::GuestMem;
use crate::hotplug;
use crate::report::{self, Outcome, EXIT_INTERNAL};
use crate::{partition, pinning, program, proxy, qemu, qmp, sys, Fatal, OrExit as _};

/// The kernel image, built by build.rs.
pub(crate) static KERNEL_ELF: &[u8] = include_bytes!(env!("MARGAY_KERNEL_ELF"));

/// Run the program `args` names on a fresh partition; returns margay's exit status.
pub fn run(args: RunArgs, start_ns: u64) -> Result<i32, Fatal> {
    // Before any thread exists, so that every thread inherits the blocked mask.
    children::handle_terminal_signals()
        .context("cannot set up signal handling")
        .or_exit(1)?;
    let debug = std::env::var_os("MARGAY_DEBUG").is_some();
    let resolved = Resolved::from_args(&args)?;
    let plan = Plan::new(&args, &resolved)?;
    let mut booted = Booted::boot(&args, &resolved, &plan, start_ns, debug)?;
    let ended = booted.serve()?;
    Ok(report(&args, &resolved, &plan, &booted, &ended, debug))
}

/// The program to run and its argv (argv[0] as typed).
struct Resolved {
    program: program::Program,
    argv: Vec<OsString>,
}

impl Resolved {
    fn from_args(args: &RunArgs) -> Result<Resolved, Fatal> {
        let (typed, argv_rest) = args
            .command
            .split_first()
            .ok_or_else(|| anyhow!("no program given"))
            .or_exit(2)?;
        let program =
            program::prepare(typed, std::env::var_os("PATH").as_deref()).map_err(|e| Fatal {
                status: e.exit_status(),
                error: e.into(),
            })?;
        let argv = std::iter::once(program.typed.clone())
            .chain(argv_rest.iter().cloned())
            .collect();
        Ok(Resolved { program, argv })
    }
}

/// What the partition will be: checked against the program and the host.
struct Plan {
    accel: qemu::Accel,
    pinning: pinning::Plan,
}

impl Plan {
    fn new(args: &RunArgs, resolved: &Resolved) -> Result<Plan, Fatal> {
        let needed = wire::min_mem_for(resolved.program.image_bytes, args.mem);
        if args.mem < needed {
            return Err(Fatal {
                status: 2,
                error: anyhow!(
                    "--mem {} MiB is too small for {}: its image, stack and the kernel need at least {} MiB",
                    args.mem >> 20,
                    resolved.program.typed.to_string_lossy(),
                    needed.div_ceil(1 << 20).div_ceil(2) * 2
                ),
            });
        }
        let accel = qemu::choose_accel(args.accel).or_exit(1)?;
        let (allowed, online) = pinning::host_cores()
            .context("cannot read the host cores margay may run on")
            .or_exit(1)?;
        let pinning = pinning::plan(
            args.host_cpus.as_ref().map(|l| l.0.as_slice()),
            args.cpus,
            &allowed,
            online.as_deref(),
        )
        .map_err(|e| Fatal {
            status: 2,
            error: anyhow!(e),
        })?;
        Ok(Plan { accel, pinning })
    }
}

/// The header flags `args` (and MARGAY_DEBUG) ask for.
fn boot_flags(args: &RunArgs, debug: bool) -> u32 {
    let mut flags = 0;
    if args.stats {
        flags |= wire::FLAG_STATS;
    }
    if args.trace {
        flags |= wire::FLAG_TRACE;
    }
    if debug {
        flags |= wire::FLAG_KMSG_ECHO;
    }
    flags
        | match args.inject {
            Some(cli::InjectArg::KernelFault) => wire::FLAG_INJECT_FAULT,
            Some(cli::InjectArg::KernelPanic) => wire::FLAG_INJECT_PANIC,
            None => 0,
        }
}

/// margay's environment, as `KEY=value` strings.
fn environment() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect()
}

/// A running partition: guest RAM, the kernel image, the proxy and QEMU.
struct Booted {
    ram: partition::Ram,
    /// Kept open: QEMU reads the kernel through /proc/<margay>/fd.
    _kernel: OwnedFd,
    proxy: Supervised,
    vm: qemu::Qemu,
    qmp: qmp::Qmp,
    placement: pinning::Outcome,
    /// Plugs host files into guest memory for shared file mappings (`None`
    /// if its socket could not be made: such mappings then fail with ENODEV).
    plugs: Option<hotplug::Service>,
}

impl Booted {
    /// Write the boot data, start the proxy and QEMU (stopped), pin the vCPU
    /// threads and let the guest run.
    fn boot(
        args: &RunArgs,
        resolved: &Resolved,
        plan: &Plan,
        start_ns: u64,
        debug: bool,
    ) -> Result<Booted, Fatal> {
        let envp = environment();
        let path = &resolved.program.path;
        let mut boot = partition::BootParams {
            ncpus: args.cpus,
            mem_size: args.mem,
            flags: boot_flags(args, debug),
            proxy_pid: 0,
            ids: sys::ids(),
            host_start_ns: start_ns,
            path: path.as_os_str().as_bytes(),
            argv: &resolved.argv,
            envp: &envp,
        };
        // Fail on oversized arguments before starting anything.
        partition::encode_bootdata(&boot).or_exit(2)?;

        let ram = partition::Ram::create(args.mem).or_exit(1)?;
        let kernel = partition::kernel_image(KERNEL_ELF).or_exit(1)?;
        let kernel_path = partition::proc_fd_path(&kernel);

        // Listening before the proxy exists, which connects when the
        // application maps a file shared.
        let plugs = hotplug::Service::listen(hotplug::Window::new(
            wire::HOTPLUG_BASE,
            wire::HOTPLUG_SPACE,
            wire::HOTPLUG_SLOTS,
        ))
        .map_err(|e| eprintln!("margay: no shared file mappings in this partition: {e}"))
        .ok();

        // The proxy: inherits stdio, cwd, umask and environment.
        let self_exe = std::env::current_exe()
            .context("cannot find margay's own executable to start the proxy")
            .or_exit(1)?;
        let mut cmd = Command::new(self_exe);
        cmd.args(proxy::spawn_args(
            &ram.path(),
            args.mem,
            args.cpus,
            path,
            args.trace,
        ));
        sys::die_with_parent(&mut cmd);
        let proxy = Supervised::spawn(&mut cmd)
            .context("cannot start the proxy process")
            .or_exit(1)?;

        boot.proxy_pid = proxy.id();
        partition::write_boot(ram.mem(), &boot).or_exit(1)?;

        let qcfg = qemu::Config {
            mem: args.mem,
            cpus: args.cpus,
            accel: plan.accel,
            icount: args.icount,
            ram_path: &ram.path(),
            kernel_path: &kernel_path,
        };
        // QEMU starts the guest stopped and answers QMP on a socketpair (nothing
        // in the file system): margay pins the vCPU threads, lets the guest run,
        // and later raises NMIs to deliver signals Linux sends the application.
        let (monitor, qemu_end) = UnixStream::pair()
            .context("cannot create QEMU's monitor socket")
            .or_exit(1)?;
        let mut vm = qemu::spawn(&qcfg, debug, Some(OwnedFd::from(qemu_end))).or_exit(1)?;
        let started = qmp::Qmp::handshake(monitor, pinning::QMP_TIMEOUT)
            .context("QEMU's monitor (QMP)")
            .and_then(|mut q| {
                let placement = match &plan.pinning {
                    pinning::Plan::Pin { cores, explicit } => {
                        pinning::apply(&mut q, vm.process.id(), cores, *explicit)?
                    }
                    pinning::Plan::Skip(why) => pinning::Outcome::NotPinned(why.clone()),
                };
                q.cont().context("QEMU's monitor (QMP)")?;
                Ok((q, placement))
            });
        let (qmp, placement) = match started {
            Ok(v) => v,
            Err(e) => {
                let _ = vm.process.kill();
                let qemu_stderr = vm.stderr.take().map(qemu::Tail::finish).unwrap_or_default();
                if !qemu_stderr.is_empty() {
                    eprintln!(
                        "QEMU said:\n{}",
                        report::last_lines(&qemu_stderr, 20).trim_end()
                    );
                }
                return Err(Fatal {
                    status: 1,
                    error: e.context("cannot pin and start the partition's vCPUs"),
                });
            }
        };
        Ok(Booted {
            ram,
            _kernel: kernel,
            proxy,
            vm,
            qmp,
            placement,
            plugs,
        })
    }

    /// Forward signals to the application while the guest runs, until QEMU
    /// exits (the proxy must not die first); then collect QEMU's output.
    fn serve(&mut self) -> Result<Ended, Fatal> {
        // Signals for the application: from the terminal (to margay, forwarded
        // here) and from anyone who signals its pid (the proxy posts them).
        children::forward_terminal_signals_to(self.ram.shared_mem());
        let stop_relay = AtomicBool::new(false);
        let (mem, qmp, plugs) = (self.ram.mem(), &mut self.qmp, &mut self.plugs);
        let (vm, proxy) = (&mut self.vm, &mut self.proxy);
        // While the guest runs, a relay raises an NMI whenever signals are
        // waiting in HOST_SIGNALS, so a core busy in user mode notices at once,
        // and plugs files into guest memory as proxies ask.
        std::thread::scope(|scope| {
            scope.spawn(|| relay_host_signals(mem, qmp, plugs.as_mut(), &stop_relay));
            let r = wait_for_qemu(vm, proxy);
            stop_relay.store(true, Ordering::Release);
            r
        })?;
        let qemu_status = self
            .vm
            .process
            .wait()
            .context("reaping QEMU")
            .or_exit(EXIT_INTERNAL)?;
        let console = self
            .vm
            .console
            .take()
            .map(qemu::Tail::finish)
            .unwrap_or_default();
        let qemu_stderr = self
            .vm
            .stderr
            .take()
            .map(qemu::Tail::finish)
            .unwrap_or_default();
        let _ = self.proxy.kill();
        Ok(Ended {
            qemu_status,
            console,
            qemu_stderr,
        })
    }
}

/// Wait until QEMU exits; an earlier death of the proxy is fatal.
fn wait_for_qemu(vm: &mut qemu::Qemu, proxy: &mut Supervised) -> Result<(), Fatal> {
    loop {
        let pid = sys::wait_any_child_exit()
            .context("waiting for QEMU")
            .or_exit(EXIT_INTERNAL)?;
        if pid == vm.process.id() {
            return Ok(());
        }
        if pid == proxy.id() {
            let st = proxy.wait().ok();
            let _ = vm.process.kill();
            return Err(Fatal {
                status: EXIT_INTERNAL,
                error: anyhow!(
                    "the proxy process died ({}) while the program was running; its error, if any, is above",
                    st.map_or("unknown status".into(), |s| s.to_string())
                ),
            });
        }
        // Some other child (none expected): reap it and go on.
        sys::reap(pid, true);
    }
}

/// Raise an NMI in the guest while signals from Linux wait in the
/// HOST_SIGNALS word or a forked process's proxy has poked (the kernel takes
/// them and clears the words); serve plug requests and remove the dimms the
/// kernel ejected; stop when told.
pub(crate) fn relay_host_signals(
    mem: &GuestMem,
    qmp: &mut qmp::Qmp,
    mut plugs: Option<&mut hotplug::Service>,
    stop: &AtomicBool,
) {
    let ejected_word = wire::SHARED_PHYS + wire::HOTPLUG_EJECTED_OFF;
    let mut last_nmi: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        if let Some(p) = plugs.as_deref_mut() {
            let ejected = mem.load_u64(ejected_word, Ordering::Acquire).unwrap_or(0);
            let cleared = p.serve(qmp, ejected);
            if cleared != 0 {
                let _ = mem.fetch_and_u64(ejected_word, !cleared, Ordering::AcqRel);
            }
        }
        let waiting = mem
            .load_u64(wire::HOST_SIGNALS_PHYS, Ordering::Acquire)
            .unwrap_or(0)
            != 0
            || mem
                .load_u64(wire::SIGNALS_POKE_PHYS, Ordering::Acquire)
                .unwrap_or(0)
                != 0;
        let due = last_nmi.is_none_or(|t| t.elapsed() >= Duration::from_millis(20));
        if waiting && due {
            if qmp.execute("inject-nmi").is_err() {
                return; // QEMU is going away
            }
            last_nmi = Some(Instant::now());
        } else if !waiting {
            last_nmi = None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What QEMU left behind.
struct Ended {
    qemu_status: ExitStatus,
    console: Vec<u8>,
    qemu_stderr: Vec<u8>,
}

/// Print what the user asked for (--kmsg, --stats) and what went wrong, and
/// return margay's exit status: the program's, 128+signal, or EXIT_INTERNAL.
fn report(
    args: &RunArgs,
    resolved: &Resolved,
    plan: &Plan,
    booted: &Booted,
    ended: &Ended,
    debug: bool,
) -> i32 {
    let mem = booted.ram.mem();
    let kmsg = report::read_kmsg(mem);
    let header = report::read_header(mem);
    let mut err = std::io::stderr().lock();
    if args.kmsg {
        let _ = err.write_all(&kmsg);
        if !kmsg.ends_with(b"\n") && !kmsg.is_empty() {
            let _ = err.write_all(b"\n");
        }
    }
    let name = resolved.program.typed.to_string_lossy();
    let outcome = header.as_ref().map_or(
        Outcome::Corrupt("unreadable header".into()),
        report::outcome,
    );
    if args.stats {
        let _ = err.write_all(pinning::render(args.cpus, plan.accel, &booted.placement).as_bytes());
        match (header.as_ref(), report::read_stats(mem)) {
            (Some(h), Some((st, entries))) => {
                let cpus = report::read_cpu_stats(mem, st.ncpus);
                let _ = err.write_all(report::render_stats(h, &st, &entries, &cpus).as_bytes());
            }
            _ => {
                let _ = writeln!(
                    err,
                    "margay: no statistics: the kernel did not finish writing them"
                );
            }
        }
    }
    match outcome {
        Outcome::Exited(code) => {
            // The program never started: the kernel's reason is in its log.
            if header.as_ref().is_some_and(|h| h.user_entry_ns == 0) {
                for line in String::from_utf8_lossy(&kmsg).lines() {
                    if line.starts_with("margay: ") && !args.kmsg {
                        let _ = writeln!(err, "{line}");
                    }
                }
            }
            i32::from(code)
        }
        Outcome::Killed { signal, fault_addr } => {
            // Like a shell: a death by SIGINT or SIGPIPE goes unreported.
            if !report::is_quiet_signal(signal) {
                let what = report::describe_signal(signal, fault_addr);
                let _ = writeln!(err, "margay: {name}: {what}");
            }
            128 + signal as i32
        }
        Outcome::Panicked => {
            let h = header.unwrap_or_default();
            let _ = err.write_all(report::panic_report(&h, &kmsg, &ended.console).as_bytes());
            EXIT_INTERNAL
        }
        Outcome::Stopped(_) | Outcome::Corrupt(_) => {
            let why = match &outcome {
                Outcome::Corrupt(c) => format!("the LWK left a corrupt status ({c})"),
                _ => format!("the LWK stopped before {name} finished"),
            };
            let _ = writeln!(err, "margay: {why}; QEMU {}", ended.qemu_status);
            if !ended.qemu_stderr.is_empty() {
                let _ = writeln!(
                    err,
                    "QEMU said:\n{}",
                    report::last_lines(&ended.qemu_stderr, 20).trim_end()
                );
            }
            if !ended.console.is_empty() && !debug {
                let _ = writeln!(
                    err,
                    "debug console (last lines):\n{}",
                    report::last_lines(&ended.console, 20).trim_end()
                );
            }
            let _ = writeln!(
                err,
                "margay: rerun with MARGAY_DEBUG=1 and --kmsg for the kernel's log"
            );
            EXIT_INTERNAL
        }
    }
}
