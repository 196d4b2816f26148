//! `margay`: the host side of the Margay LWK. `margay run` partitions memory, boots
//! the kernel under QEMU, starts the offload proxy, and exits with the program's
//! status; `margay boot`, `exec`, `status`, `kmsg`, `shutdown` and `reboot`
//! manage standing instances (`instance`); `margay bench` compares it with a
//! Linux guest; `margay __proxy` is the proxy itself.
//!
//! Module map: `cli` (arguments; `args`: value parsers shared with `bench`), `program` (PATH search, ELF check), `partition`
//! (memfds, boot header/data), `guest_mem` (all guest RAM access), `qemu` (QEMU
//! command line and output), `pinning` and `qmp` (vCPU threads to host cores), `children` (child supervision, signals), `instance` (standing instances), `proxy`
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
mod hotplug;
mod instance;
mod partition;
mod pinning;
mod program;
mod proxy;
mod qemu;
mod qmp;
mod report;
mod run;
#[allow(unsafe_code)]
mod sys;
mod trace;

use std::process::ExitCode;

use clap::Parser as _;

use cli::Cli;
use report::EXIT_INTERNAL;

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
        cli::Command::Run(args) => run::run(args, start_ns),
        cli::Command::Bench(args) => bench::main(&args).or_exit(1),
        cli::Command::Boot(args) => instance::boot(args),
        cli::Command::Exec(args) => instance::exec(args),
        cli::Command::Status(args) => instance::status(args),
        cli::Command::Kmsg(args) => instance::kmsg(args),
        cli::Command::Shutdown(args) => instance::shutdown(args),
        cli::Command::Reboot(args) => instance::reboot(args),
        cli::Command::Instance(args) => instance::host(args),
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
