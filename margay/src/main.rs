//! `margay`: the host side of the Margay LWK. `margay run` partitions memory, boots
//! the kernel under QEMU, starts the offload proxy, and exits with the program's
//! status; `margay bench` compares it with a Linux guest; `margay __proxy` is
//! the proxy itself.
//!
//! Module map: `cli` (arguments; `args`: value parsers shared with `bench`), `program` (PATH search, ELF check), `partition`
//! (memfds, boot header/data), `guest_mem` (all guest RAM access), `qemu` (QEMU
//! command line and output), `pinning` and `qmp` (vCPU threads to host cores), `children` (child supervision, signals), `proxy`
//! (the per-process proxy), `bench` (Margay vs Linux benchmarks), `trace` (`--trace` lines), `report` (outcome, kmsg,
//! stats), `sys` (libc wrappers).
//!
//! `unsafe` is denied everywhere but in `guest_mem` (the only window onto guest
//! RAM) and `sys` (the system calls `rustix` and std do not make safe).
#![deny(unsafe_code)]

mod args;
mod bench;
mod children;
mod cli;
#[allow(unsafe_code)]
mod guest_mem;
mod partition;
mod pinning;
mod program;
mod proxy;
mod qemu;
mod qmp;
mod report;
#[allow(unsafe_code)]
mod sys;
mod trace;

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode};

use anyhow::{anyhow, Context as _};
use clap::Parser as _;

use children::Supervised;
use cli::{Cli, RunArgs};
use report::{Outcome, EXIT_INTERNAL};

/// The kernel image, built by build.rs.
static KERNEL_ELF: &[u8] = include_bytes!(env!("MARGAY_KERNEL_ELF"));

/// An error that ends margay with a specific exit status.
struct Fatal {
    status: i32,
    error: anyhow::Error,
}

trait OrExit<T> {
    fn or_exit(self, status: i32) -> Result<T, Fatal>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, status: i32) -> Result<T, Fatal> {
        self.map_err(|e| Fatal {
            status,
            error: e.into(),
        })
    }
}

fn exit_code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(EXIT_INTERNAL as u8))
}

fn main() -> ExitCode {
    let start_ns = sys::clock_ns(sys::ClockId::Realtime);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let msg = e.render().to_string();
            eprint!("margay: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        cli::Command::Run(args) => run(args, start_ns),
        cli::Command::Bench(args) => bench::main(&args).or_exit(1),
        cli::Command::Proxy(args) => match proxy::main(args) {
            Ok(()) => Ok(0),
            Err(e) => Err(Fatal {
                status: EXIT_INTERNAL,
                error: e.context("proxy"),
            }),
        },
    };
    match result {
        Ok(status) => exit_code(status),
        Err(f) => {
            eprintln!("margay: {:#}", f.error);
            exit_code(f.status)
        }
    }
}

/// Raise an NMI in the guest while signals from Linux wait in the
/// HOST_SIGNALS word or a forked process's proxy has poked (the kernel takes
/// them and clears the words); stop when told.
fn relay_host_signals(
    mem: &guest_mem::GuestMem,
    qmp: &mut qmp::Qmp,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let off = wire::HOST_SIGNALS_PHYS;
    let poke = wire::SIGNALS_POKE_PHYS;
    let mut last_nmi: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let waiting = mem.load_u64(off, Ordering::Acquire).unwrap_or(0) != 0
            || mem.load_u64(poke, Ordering::Acquire).unwrap_or(0) != 0;
        let due = last_nmi.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(20));
        if waiting && due {
            if qmp.execute("inject-nmi").is_err() {
                return; // QEMU is going away
            }
            last_nmi = Some(std::time::Instant::now());
        } else if !waiting {
            last_nmi = None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn run(args: RunArgs, start_ns: u64) -> Result<i32, Fatal> {
    // Before any thread exists, so that every thread inherits the blocked mask.
    children::handle_terminal_signals()
        .context("cannot set up signal handling")
        .or_exit(1)?;
    let debug = std::env::var_os("MARGAY_DEBUG").is_some();

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
    let needed = wire::min_mem_for(program.image_bytes, args.mem);
    if args.mem < needed {
        return Err(Fatal {
            status: 2,
            error: anyhow!(
                "--mem {} MiB is too small for {}: its image, stack and the kernel need at least {} MiB",
                args.mem >> 20,
                typed.to_string_lossy(),
                needed.div_ceil(1 << 20).div_ceil(2) * 2
            ),
        });
    }
    let accel = qemu::choose_accel(args.accel).or_exit(1)?;
    let (allowed, online) = pinning::host_cores()
        .context("cannot read the host cores margay may run on")
        .or_exit(1)?;
    let plan = pinning::plan(
        args.host_cpus.as_ref().map(|l| l.0.as_slice()),
        args.cpus,
        &allowed,
        online.as_deref(),
    )
    .map_err(|e| Fatal {
        status: 2,
        error: anyhow!(e),
    })?;

    let argv: Vec<OsString> = std::iter::once(program.typed.clone())
        .chain(argv_rest.iter().cloned())
        .collect();
    let envp: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
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
    flags |= match args.inject {
        Some(cli::InjectArg::KernelFault) => wire::FLAG_INJECT_FAULT,
        Some(cli::InjectArg::KernelPanic) => wire::FLAG_INJECT_PANIC,
        None => 0,
    };
    let mut boot = partition::BootParams {
        ncpus: args.cpus,
        mem_size: args.mem,
        flags,
        proxy_pid: 0,
        ids: sys::ids(),
        host_start_ns: start_ns,
        path: program.path.as_os_str().as_bytes(),
        argv: &argv,
        envp: &envp,
    };
    // Fail on oversized arguments before starting anything.
    partition::encode_bootdata(&boot).or_exit(2)?;

    let ram = partition::Ram::create(args.mem).or_exit(1)?;
    let kernel = partition::kernel_image(KERNEL_ELF).or_exit(1)?;
    let kernel_path = partition::proc_fd_path(&kernel);

    // The proxy: inherits stdio, cwd, umask and environment.
    let self_exe = std::env::current_exe()
        .context("cannot find margay's own executable to start the proxy")
        .or_exit(1)?;
    let mut cmd = Command::new(self_exe);
    cmd.args(proxy::spawn_args(
        &ram.path(),
        args.mem,
        args.cpus,
        &program.path,
        args.trace,
    ));
    sys::die_with_parent(&mut cmd);
    let mut proxy = Supervised::spawn(&mut cmd)
        .context("cannot start the proxy process")
        .or_exit(1)?;

    boot.proxy_pid = proxy.id();
    partition::write_boot(ram.mem(), &boot).or_exit(1)?;

    let qcfg = qemu::Config {
        mem: args.mem,
        cpus: args.cpus,
        accel,
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
            let placement = match &plan {
                pinning::Plan::Pin { cores, explicit } => {
                    pinning::apply(&mut q, vm.process.id(), cores, *explicit)?
                }
                pinning::Plan::Skip(why) => pinning::Outcome::NotPinned(why.clone()),
            };
            q.cont().context("QEMU's monitor (QMP)")?;
            Ok((q, placement))
        });
    let (mut qmp_conn, placement) = match started {
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
    // Signals for the application: from the terminal (to margay, forwarded
    // here) and from anyone who signals its pid (the proxy posts them).
    children::forward_terminal_signals_to(ram.shared_mem());
    let stop_relay = std::sync::atomic::AtomicBool::new(false);

    // While the guest runs, a relay raises an NMI whenever signals are
    // waiting in HOST_SIGNALS, so a core busy in user mode notices at once.
    let waited: Result<(), Fatal> = std::thread::scope(|scope| {
        scope.spawn(|| relay_host_signals(ram.mem(), &mut qmp_conn, &stop_relay));
        let r = (|| -> Result<(), Fatal> {
            // Wait for QEMU; the proxy must not die first.
            loop {
                let pid = sys::wait_any_child_exit()
                    .context("waiting for QEMU")
                    .or_exit(EXIT_INTERNAL)?;
                if pid == vm.process.id() {
                    break;
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
            Ok(())
        })();
        stop_relay.store(true, std::sync::atomic::Ordering::Release);
        r
    });
    waited?;
    let qemu_status = vm
        .process
        .wait()
        .context("reaping QEMU")
        .or_exit(EXIT_INTERNAL)?;
    let console = vm
        .console
        .take()
        .map(qemu::Tail::finish)
        .unwrap_or_default();
    let qemu_stderr = vm.stderr.take().map(qemu::Tail::finish).unwrap_or_default();
    let _ = proxy.kill();

    let mem = ram.mem();
    let kmsg = report::read_kmsg(mem);
    let header = report::read_header(mem);
    let mut err = std::io::stderr().lock();
    if args.kmsg {
        let _ = err.write_all(&kmsg);
        if !kmsg.ends_with(b"\n") && !kmsg.is_empty() {
            let _ = err.write_all(b"\n");
        }
    }
    let name = program.typed.to_string_lossy();
    let outcome = header.as_ref().map_or(
        Outcome::Corrupt("unreadable header".into()),
        report::outcome,
    );
    if args.stats {
        let _ = err.write_all(pinning::render(args.cpus, accel, &placement).as_bytes());
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
    let status = match outcome {
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
            let _ = err.write_all(report::panic_report(&h, &kmsg, &console).as_bytes());
            EXIT_INTERNAL
        }
        Outcome::Stopped(_) | Outcome::Corrupt(_) => {
            let why = match &outcome {
                Outcome::Corrupt(c) => format!("the LWK left a corrupt status ({c})"),
                _ => format!("the LWK stopped before {name} finished"),
            };
            let _ = writeln!(err, "margay: {why}; QEMU {qemu_status}");
            if !qemu_stderr.is_empty() {
                let _ = writeln!(
                    err,
                    "QEMU said:\n{}",
                    report::last_lines(&qemu_stderr, 20).trim_end()
                );
            }
            if !console.is_empty() && !debug {
                let _ = writeln!(
                    err,
                    "debug console (last lines):\n{}",
                    report::last_lines(&console, 20).trim_end()
                );
            }
            let _ = writeln!(
                err,
                "margay: rerun with MARGAY_DEBUG=1 and --kmsg for the kernel's log"
            );
            EXIT_INTERNAL
        }
    };
    Ok(status)
}
