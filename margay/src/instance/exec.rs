//! `margay exec NAME -- PROGRAM [ARGS]`: run a program in a standing
//! instance. This process becomes the program's proxy (as mcexec is
//! McKernel's): the program's descriptors, cwd, environment, identity and
//! signals are this process's, and this process ends as the program ends
//! (its exit status, or death by the same signal).

use std::ffi::OsString;
use std::io::BufReader;
use std::os::fd::AsFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};

use super::{answer_error, connect, recv, send, Request};
use crate::cli::ExecArgs;
use crate::guest_mem::GuestMem;
use crate::report::EXIT_INTERNAL;
use crate::{program, sys, Fatal, OrExit as _};

/// Descriptor numbers below this stay free for the program.
const SOCKET_FD_MIN: i32 = 100;

/// This process's environment, as `KEY=value` strings.
fn environment() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv.as_bytes().to_vec()
        })
        .collect()
}

/// End now (proxy threads may hold locks): with `status`.
fn leave(status: i32) -> ! {
    sys::exit_like(status as u64, 0)
}

pub fn exec(args: ExecArgs) -> Result<i32, Fatal> {
    // Before anything else is mapped: the program's addresses are mirrored here.
    let window = crate::proxy::reserve_window().or_exit(EXIT_INTERNAL)?;
    let (typed, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow!("no program given"))
        .or_exit(2)?;
    let prog = program::prepare(typed, std::env::var_os("PATH").as_deref()).map_err(|e| Fatal {
        status: e.exit_status(),
        error: e.into(),
    })?;
    let argv: Vec<OsString> = std::iter::once(prog.typed.clone())
        .chain(rest.iter().cloned())
        .collect();
    let cpus = args.cpus_of_instance.as_ref().map_or(0u64, |l| {
        l.0.iter()
            .fold(0, |m, &c| m | 1u64.checked_shl(c as u32).unwrap_or(0))
    });
    let stream = connect(&args.name).or_exit(1)?;
    // Out of the program's way: its first open returns 3, as under Linux.
    let high = rustix::io::fcntl_dupfd_cloexec(stream.as_fd(), SOCKET_FD_MIN)
        .context("cannot move the instance's socket")
        .or_exit(1)?;
    drop(stream);
    let mut stream = UnixStream::from(high);
    let ids = sys::ids();
    send(
        &mut stream,
        &Request::Exec {
            path: prog.path.as_os_str().as_bytes().to_vec(),
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            envp: environment(),
            ids: [ids.uid, ids.gid, ids.euid, ids.egid],
            cpus,
            inject_panic: args.inject.is_some(),
        },
    )
    .or_exit(1)?;
    let name = prog.typed.to_string_lossy().into_owned();
    let mut reader = BufReader::new(stream.try_clone().context("socket").or_exit(1)?);
    let first = recv(&mut reader)
        .or_exit(1)?
        .ok_or_else(|| anyhow!("instance {} went away", args.name))
        .or_exit(EXIT_INTERNAL)?;
    if let Some(e) = answer_error(&first) {
        return Err(anyhow!(e)).or_exit(1);
    }
    if let Some(report) = first.get("panic").and_then(|r| r.as_str()) {
        eprint!("{report}");
        return Ok(EXIT_INTERNAL);
    }
    if let Some(why) = first.get("failed").and_then(|w| w.as_str()) {
        return Err(anyhow!("{name}: cannot execute: {why}")).or_exit(126);
    }
    let field = |k: &str| first.get(k).and_then(|v| v.as_u64());
    let (Some(mem_size), Some(ncpus), Some(table), Some(host_pid), Some(ram_path)) = (
        field("mem"),
        field("cpus"),
        field("table"),
        field("host_pid"),
        first.get("ram").and_then(|v| v.as_str()),
    ) else {
        return Err(anyhow!("instance {}: a malformed answer", args.name)).or_exit(EXIT_INTERNAL);
    };
    let ram = {
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(ram_path)
            .with_context(|| format!("cannot open the instance's memory {ram_path}"))
            .or_exit(EXIT_INTERNAL)?;
        Arc::new(
            GuestMem::map_shared(f.as_fd(), mem_size)
                .context("cannot map the instance's memory")
                .or_exit(EXIT_INTERNAL)?,
        )
    };
    sys::set_margay_pid(u32::try_from(host_pid).unwrap_or(0));
    crate::proxy::serve_exec(
        window,
        ram,
        table,
        &prog.path,
        u32::try_from(ncpus).unwrap_or(0),
        false,
    )
    .or_exit(EXIT_INTERNAL)?;
    // From here on the proxy's threads run: leave with _exit only.
    loop {
        let msg = match recv(&mut reader) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                eprintln!(
                    "margay: instance {} ended while {name} was running",
                    args.name
                );
                leave(EXIT_INTERNAL);
            }
        };
        if let Some(why) = msg.get("failed").and_then(|w| w.as_str()) {
            eprintln!("margay: {name}: cannot execute: {why}");
            leave(126);
        }
        if let Some(e) = answer_error(&msg) {
            eprintln!("margay: {e}");
            leave(EXIT_INTERNAL);
        }
        if let Some(report) = msg.get("panic").and_then(|r| r.as_str()) {
            eprint!("{report}");
            leave(EXIT_INTERNAL);
        }
    }
}
