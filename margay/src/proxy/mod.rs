//! The proxy: one Linux process per LWK process. It owns the application's Linux
//! side (fd table, cwd, identity), mirrors the application's memory at the same
//! virtual addresses, and serves the requests the LWK posts in its channel slots.
//!
//! One poller thread watches the doorbell bitmap, takes each posted slot and
//! hands the request to a pool of worker threads (`pool`), so that calls of
//! different LWK threads run in parallel and one blocked in Linux does not hold
//! up the others. Requests of one LWK thread are serialized by its slot: the
//! kernel waits for Done before it posts the next.
//!
//! Started by `margay run` as `margay __proxy ...` (see `spawn_args`); it never
//! exits by itself: margay kills it after the LWK is done, and PR_SET_PDEATHSIG
//! kills it if margay dies.

//!
//! Modules: `decode` (slot -> `Request`), `serve` (the threads that poll and
//! serve, `Shared`), `fork` (forking along with the LWK process), `doorbell`,
//! `leader` and `pool` (taking slots, who polls, worker threads), `mirror`,
//! `window` and `user_mem` (the application's memory), `exec` (running a
//! syscall), `views` (/proc files), `signals`.

mod decode;
mod doorbell;
mod exec;
mod files;
mod fork;
#[cfg(test)]
mod fuzz;
mod leader;
pub mod mirror;
mod pool;
mod serve;
pub(crate) mod signals;
mod user_mem;
mod views;
mod window;

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use wire::MAX_CPUS;

use crate::cli::ProxyArgs;
use crate::guest_mem::GuestMem;
use decode::Response;
use serve::Shared;
// The fuzz tests reach these as `super::X`.
use window::Window;
#[cfg(test)]
use {
    decode::{decode, Request},
    serve::Job,
};

/// Arguments `margay run` passes to `margay __proxy`.
pub fn spawn_args(
    ram: &std::path::Path,
    mem_size: u64,
    cpus: u32,
    exe: &std::path::Path,
    trace: bool,
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![
        "__proxy".into(),
        "--ram".into(),
        ram.into(),
        "--mem-size".into(),
        mem_size.to_string().into(),
        "--cpus".into(),
        cpus.to_string().into(),
        "--exe".into(),
        exe.into(),
    ];
    if trace {
        v.push("--trace".into());
    }
    v
}

/// Reserve the user window for an exec client (`margay exec`), before
/// anything else is mapped.
pub fn reserve_window() -> anyhow::Result<&'static window::Window> {
    Ok(Box::leak(Box::new(window::Window::reserve()?)))
}

/// `margay exec`: from now on this process is the proxy of the LWK process
/// whose region table is at guest-physical `table` in `ram` (mcexec-style):
/// its threads serve that process's offloaded calls, Linux signals sent to
/// this process are posted to it, and it ends as the LWK process ends.
pub fn serve_exec(
    window: &'static window::Window,
    ram: Arc<GuestMem>,
    table: u64,
    exe: &std::path::Path,
    cpus: u32,
    trace: bool,
) -> anyhow::Result<()> {
    crate::sys::ignore_signals(&[libc::SIGPIPE]).context("cannot set signal dispositions")?;
    let _ = crate::sys::set_timer_slack_ns(1_000);
    if cpus == 0 || cpus as usize > MAX_CPUS {
        bail!("{cpus} cores is out of range");
    }
    let app = exec::App {
        exe: exe.as_os_str().as_bytes().to_vec(),
        exe_id: views::FileId::of(exe).unwrap_or_default(),
        pid: std::process::id(),
        cpus,
    };
    signals::install(Arc::clone(&ram)).context("cannot install signal handlers")?;
    signals::retarget(&ram, table);
    let running = Shared::for_table(ram, app, trace, window, table, Vec::new(), Vec::new()).start();
    // Serves until the process ends.
    std::mem::forget(running);
    Ok(())
}

/// In a standing instance's host process: answer the requests the kernel
/// posts outside any spawned process (init's region table: the clock
/// samples of its boot and calibration) until `stop` is set. Anything but
/// a clock sample gets ENOSYS.
pub fn serve_kernel_requests(ram: &GuestMem, stop: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let table = wire::SHARED_PHYS + wire::REGIONS_OFF;
    let mut posted = Vec::new();
    let mut nap = Duration::from_micros(10);
    while !stop.load(Ordering::Acquire) {
        posted.clear();
        doorbell::take_own(ram, table, &mut posted);
        for &slot in &posted {
            let resp = match doorbell::claim(ram, slot) {
                doorbell::Claim::NotPosted => continue,
                doorbell::Claim::Taken(s)
                    if matches!(decode::decode(&s), Ok(decode::Request::Clock)) =>
                {
                    Response::clock()
                }
                _ => Response::err(linux_abi::Errno::ENOSYS),
            };
            doorbell::complete(ram, slot, &resp);
        }
        if posted.is_empty() {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        } else {
            nap = Duration::from_micros(10);
        }
    }
}

/// Entry point of `margay __proxy`. Returns only on a set-up error.
pub fn main(args: ProxyArgs) -> anyhow::Result<()> {
    // Terminal signals are margay's business; a write to a closed pipe must return
    // EPIPE to the application instead of killing the proxy.
    crate::sys::ignore_signals(&[libc::SIGPIPE]).context("cannot set signal dispositions")?;
    // Best effort: only makes idle wake-ups more punctual (inherited by workers).
    let _ = crate::sys::set_timer_slack_ns(1_000);
    let cpus = args.cpus;
    if cpus == 0 || cpus as usize > MAX_CPUS {
        bail!("--cpus {cpus} is out of range");
    }
    // Reserve the user window before anything else is mapped (worker stacks
    // included: they are created later, outside it).
    let window: &'static Window = Box::leak(Box::new(Window::reserve()?));
    let ram = {
        let f = File::options()
            .read(true)
            .write(true)
            .open(&args.ram)
            .with_context(|| format!("cannot open guest RAM {}", args.ram.display()))?;
        Arc::new(GuestMem::map_shared(f.as_fd(), args.mem_size).context("cannot map guest RAM")?)
        // `f` is closed here: the application's first open returns 3.
    };
    let app = exec::App {
        exe: args.exe.as_os_str().as_bytes().to_vec(),
        exe_id: views::FileId::of(&args.exe).unwrap_or_default(),
        pid: std::process::id(),
        cpus,
    };
    // Signals Linux sends the application arrive here: post them to the LWK.
    signals::install(Arc::clone(&ram)).context("cannot install signal handlers")?;
    crate::sys::remember_margay();
    let _proxy = Shared::new(ram, app, args.trace, window).start();
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_abi::Errno;
    use mirror::Mirror;
    use std::time::{Duration, Instant};
    use user_mem::UserMem;
    use wire::RequestKind;

    /// The user window, reserved once for this test binary (it stays reserved).
    pub(super) fn test_window() -> &'static Window {
        static W: std::sync::OnceLock<Window> = std::sync::OnceLock::new();
        W.get_or_init(|| Window::reserve().expect("user window already in use"))
    }

    /// Wait until `done` holds (or fail after a while).
    fn wait_until(mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Two LWK threads: one blocks in recvfrom on a socket, the other's sendto
    /// to it must still be served (a standby takes over from the blocked
    /// leader), and both complete. Garbage in the slots and stale doorbell bits
    /// are ignored or answered with EINVAL.
    #[test]
    fn calls_of_different_slots_run_in_parallel() {
        use doorbell::kernel::*;
        use linux_abi::syscalls_gen::{SYS_GETPPID, SYS_RECVFROM, SYS_SENDTO};
        use std::os::fd::AsRawFd as _;
        use wire::SlotState;

        let ram = GuestMem::anonymous(wire::MIN_MEM as usize);
        // An all-zero region table: generation 0, empty (nothing is mapped).
        let app = exec::App {
            exe: b"/x".to_vec(),
            exe_id: views::FileId::default(),
            pid: std::process::id(),
            cpus: 1,
        };
        let proxy = Shared::new(ram, app, false, test_window()).start();
        let ram = &proxy.shared.ram;
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let (a, b) = (a.as_raw_fd() as u64, b.as_raw_fd() as u64);
        let done = |i| state(ram, i) == SlotState::Done as u32;

        // Slot 5 blocks in recvfrom(a, NULL, 0): waits for a datagram.
        post_syscall(ram, 5, SYS_RECVFROM, [a, 0, 0, 0, 0, 0]);
        wait_until(|| state(ram, 5) == SlotState::Taken as u32);
        // Meanwhile, other slots are served: getppid, a clock sample, garbage.
        post_syscall(ram, 300, SYS_GETPPID, [0; 6]);
        post(ram, 64, RequestKind::Clock as u32, 0, [0; 6]);
        post(ram, 9, 0xdead, 0, [0; 6]);
        set_state(ram, 10, 0xbad);
        ring(ram, 10);
        ring(ram, 11); // a stale bit: slot 11 is Free
        wait_until(|| done(300) && done(64) && done(9));
        assert!(slot(ram, 300).ret > 0);
        assert!(slot(ram, 64).aux[1] > 0);
        assert_eq!(slot(ram, 9).ret, Errno::EINVAL.as_ret());
        wait_until(|| doorbell(ram) == [0; wire::DOORBELL_WORDS]);
        assert_eq!(state(ram, 10), 0xbad);
        assert_eq!(state(ram, 11), SlotState::Free as u32);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            state(ram, 5),
            SlotState::Taken as u32,
            "recvfrom returned early"
        );

        // Slot 7 sends the datagram (sendto(b, NULL, 0)): both complete.
        post_syscall(ram, 7, SYS_SENDTO, [b, 0, 0, 0, 0, 0]);
        wait_until(|| done(5) && done(7));
        assert_eq!((slot(ram, 5).ret, slot(ram, 7).ret), (0, 0));

        // Several requests posted at once are all served.
        for i in 100..140 {
            post_syscall(ram, i, SYS_GETPPID, [0; 6]);
        }
        wait_until(|| (100..140).all(done));
    }

    /// The real mechanism: reserve the user window, mirror guest RAM into it with
    /// mremap, and let Linux read and write the application's memory there.
    #[test]
    fn mirrored_memory_is_what_linux_sees() {
        use linux_abi::mman::{PROT_READ, PROT_WRITE};
        use linux_abi::syscalls_gen::{SYS_READ, SYS_WRITE};
        use mirror::tests::entry;
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;

        let window = test_window();
        let ram = crate::partition::Ram::create(wire::MIN_MEM).unwrap();
        let mem = ram.mem();
        let (rw, ro) = (0x40_0000, 0x50_0000);
        let table = Mirror::new(
            vec![
                entry(rw, 0x2000, 0x200_0000, PROT_READ | PROT_WRITE),
                entry(ro, 0x1000, 0x300_0000, PROT_READ),
            ],
            mem.size(),
        )
        .unwrap();
        for e in table.entries() {
            window.mirror(mem, e, &[]).unwrap();
        }
        let user = UserMem {
            mirror: &table,
            ram: mem,
        };
        let (mut r, mut w) = std::io::pipe().unwrap();
        let (rfd, wfd) = (r.as_raw_fd() as u64, w.as_raw_fd() as u64);

        // write(2) from mirrored pages, spanning into the second page.
        mem.write_bytes(0x200_0ffe, b"hello").unwrap();
        let n = exec::execute(
            u64::from(SYS_WRITE),
            &[wfd, rw + 0xffe, 5, 0, 0, 0],
            &user,
            b"/x",
            1,
        );
        assert_eq!(n, 5);
        let mut got = [0u8; 5];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        // read(2) into mirrored pages shows up in guest RAM.
        w.write_all(b"world").unwrap();
        let n = exec::execute(
            u64::from(SYS_READ),
            &[rfd, rw + 0x10, 5, 0, 0, 0],
            &user,
            b"/x",
            1,
        );
        assert_eq!(n, 5);
        assert_eq!(mem.read_bytes(0x200_0010, 5).unwrap(), b"world");

        // Read-only and unmirrored memory are refused before Linux runs.
        w.write_all(b"x").unwrap();
        let n = exec::execute(u64::from(SYS_READ), &[rfd, ro, 1, 0, 0, 0], &user, b"/x", 1);
        assert_eq!(n, Errno::EFAULT.as_ret());
        for e in table.entries() {
            window.release(e).unwrap();
        }
        let empty = Mirror::default();
        let user = UserMem {
            mirror: &empty,
            ram: mem,
        };
        let n = exec::execute(
            u64::from(SYS_WRITE),
            &[wfd, rw, 1, 0, 0, 0],
            &user,
            b"/x",
            1,
        );
        assert_eq!(n, Errno::EFAULT.as_ret());
    }

    #[test]
    fn spawn_args_round_trip_through_the_cli() {
        use clap::Parser as _;
        let args = spawn_args(
            std::path::Path::new("/proc/1/fd/3"),
            64 << 20,
            2,
            std::path::Path::new("/bin/true"),
            true,
        );
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once("margay".into()).chain(args)).unwrap();
        let crate::cli::Command::Proxy(p) = cli.command else {
            panic!("not the proxy subcommand");
        };
        use std::path::PathBuf;
        assert_eq!(p.ram, PathBuf::from("/proc/1/fd/3"));
        assert_eq!((p.mem_size, p.cpus, p.trace), (64 << 20, 2, true));
        assert_eq!(p.exe, PathBuf::from("/bin/true"));
    }
}
