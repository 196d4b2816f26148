//! The proxy: one Linux process per LWK process. It owns the application's Linux
//! side (fd table, cwd, identity), mirrors the application's memory at the same
//! virtual addresses, and serves the requests the LWK posts in its channel slots.
//!
//! Started by `margay run` as `margay __proxy ...` (see `spawn_args`); it never
//! exits by itself: margay kills it after the LWK is done, and PR_SET_PDEATHSIG
//! kills it if margay dies.

mod exec;
pub mod mirror;
mod user_mem;
mod window;

use std::fs::File;
use std::io::Write as _;
use std::mem::offset_of;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use linux_abi::Errno;
use wire::{RequestKind, Slot, SlotState, CHANNEL_OFF, MAX_CPUS, SHARED_PHYS, SLOT_SIZE};

use crate::cli::ProxyArgs;
use crate::guest_mem::GuestMem;
use mirror::{Mirror, TableError};
use user_mem::UserMem;
use window::Window;

/// Spin this long after the last request before sleeping, then nap with growing
/// sleeps from MIN_NAP to MAX_NAP. Under TCG the guest often runs for a few ms
/// between offloaded calls (translating new code); with 100 µs / 1 ms a `busybox sh`
/// start-up waited ~3.9 ms in total for the proxy, with 2 ms / 200 µs ~0.5 ms. Idle
/// cost: at most 5000 wake-ups a second.
const SPIN: Duration = Duration::from_millis(2);
const MIN_NAP: Duration = Duration::from_micros(10);
const MAX_NAP: Duration = Duration::from_micros(200);

/// A request decoded from a posted slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Syscall {
        nr: u64,
        args: [u64; 6],
    },
    Clock,
    Trace {
        nr: u64,
        args: [u64; 6],
        result: u64,
        flags: u64,
    },
}

/// The proxy's answer: `ret` and `aux` of the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub ret: i64,
    pub aux: Option<[u64; 4]>,
}

impl Response {
    fn ret(ret: i64) -> Self {
        Response { ret, aux: None }
    }
    fn err(e: Errno) -> Self {
        Response::ret(e.as_ret())
    }
}

/// Decode a slot the guest posted; any garbage is an error (answered with EINVAL).
pub fn decode(slot: &Slot) -> Result<Request, u32> {
    Ok(match RequestKind::try_from(slot.kind)? {
        RequestKind::Syscall => Request::Syscall {
            nr: slot.nr,
            args: slot.args,
        },
        RequestKind::Clock => Request::Clock,
        RequestKind::Trace => Request::Trace {
            nr: slot.nr,
            args: slot.args,
            result: slot.aux[0],
            flags: slot.aux[1],
        },
    })
}

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

/// State of the mirror relative to the kernel's table.
enum MirrorState {
    /// Mirrors the table of this generation.
    Current(u64),
    /// The table of this generation was invalid: every offloaded call fails.
    Poisoned(u64),
    /// Nothing mirrored yet (or a mapping failed): read the table again.
    Unknown,
}

pub struct Proxy {
    ram: GuestMem,
    cpus: u32,
    exe: Vec<u8>,
    trace: bool,
    window: Window,
    mirror: Mirror,
    state: MirrorState,
    pid: u32,
    complained: bool,
}

/// Entry point of `margay __proxy`. Returns only on a set-up error.
pub fn main(args: ProxyArgs) -> anyhow::Result<()> {
    // Terminal signals are margay's business; a write to a closed pipe must return
    // EPIPE to the application instead of killing the proxy.
    crate::sys::ignore_signals(&[libc::SIGPIPE, libc::SIGINT, libc::SIGQUIT])
        .context("cannot set signal dispositions")?;
    // Best effort: only makes idle wake-ups more punctual.
    let _ = crate::sys::set_timer_slack_ns(1_000);
    let cpus = args.cpus;
    if cpus == 0 || cpus as usize > MAX_CPUS {
        bail!("--cpus {cpus} is out of range");
    }
    // Reserve the user window before anything else is mapped.
    let window = Window::reserve()?;
    let ram = {
        let f = File::options()
            .read(true)
            .write(true)
            .open(&args.ram)
            .with_context(|| format!("cannot open guest RAM {}", args.ram.display()))?;
        GuestMem::map_shared(f.as_fd(), args.mem_size).context("cannot map guest RAM")?
        // `f` is closed here: the application's first open returns 3.
    };
    let exe = args.exe.as_os_str().as_bytes().to_vec();
    let mut p = Proxy {
        ram,
        cpus,
        exe,
        trace: args.trace,
        window,
        mirror: Mirror::default(),
        state: MirrorState::Unknown,
        pid: std::process::id(),
        complained: false,
    };
    p.serve_forever();
}

impl Proxy {
    fn serve_forever(&mut self) -> ! {
        let mut last = Instant::now();
        let mut nap = MIN_NAP;
        loop {
            let mut busy = false;
            for cpu in 0..self.cpus {
                busy |= self.poll_slot(cpu);
            }
            if busy {
                last = Instant::now();
                nap = MIN_NAP;
            } else if last.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(nap);
                nap = (nap * 2).min(MAX_NAP);
            }
        }
    }

    /// Serve slot `cpu` if a request is posted there; returns whether one was.
    fn poll_slot(&mut self, cpu: u32) -> bool {
        let off = SHARED_PHYS + CHANNEL_OFF + u64::from(cpu) * SLOT_SIZE;
        let state_off = off + wire::SLOT_STATE_OFF;
        match self.ram.load_u32(state_off, Ordering::Acquire) {
            Ok(s) if s == SlotState::Posted as u32 => {}
            _ => return false,
        }
        match self.ram.compare_exchange_u32(
            state_off,
            SlotState::Posted as u32,
            SlotState::Taken as u32,
        ) {
            Ok(Ok(_)) => {}
            _ => return false,
        }
        let resp = match self.ram.read_obj::<Slot>(off) {
            Ok(slot) => match decode(&slot) {
                Ok(req) => self.handle(req),
                Err(_) => Response::err(Errno::EINVAL),
            },
            Err(_) => Response::err(Errno::EFAULT),
        };
        // The slot lies inside RAM (we just read it), so these writes cannot fail.
        let _ = self
            .ram
            .write_obj(off + offset_of!(Slot, ret) as u64, &resp.ret);
        if let Some(aux) = resp.aux {
            let _ = self.ram.write_obj(off + offset_of!(Slot, aux) as u64, &aux);
        }
        let _ = self
            .ram
            .store_u32(state_off, SlotState::Done as u32, Ordering::Release);
        true
    }

    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Clock => Response {
                ret: 0,
                aux: Some([
                    crate::sys::clock_ns(libc::CLOCK_REALTIME),
                    crate::sys::clock_ns(libc::CLOCK_MONOTONIC),
                    0,
                    0,
                ]),
            },
            Request::Syscall { nr, args } => {
                if let Err(e) = self.refresh_mirror() {
                    return Response::err(e);
                }
                let user = UserMem {
                    mirror: &self.mirror,
                    ram: &self.ram,
                };
                Response::ret(exec::execute(nr, &args, &user, &self.exe, self.pid))
            }
            Request::Trace {
                nr,
                args,
                result,
                flags,
            } => {
                if self.trace {
                    // A stale or poisoned mirror only makes pointers print as hex.
                    let _ = self.refresh_mirror();
                    let user = UserMem {
                        mirror: &self.mirror,
                        ram: &self.ram,
                    };
                    let mut line = crate::trace::format_line(nr, &args, result, flags, &user);
                    line.push('\n');
                    // fd 2 is the application's stderr; if it closed it, so be it.
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
                Response::ret(0)
            }
        }
    }

    /// Bring the mirror up to date with the kernel's region table.
    fn refresh_mirror(&mut self) -> Result<(), Errno> {
        let gen = self
            .ram
            .load_u64(
                SHARED_PHYS + wire::REGIONS_OFF + wire::REGION_GEN_OFF,
                Ordering::Acquire,
            )
            .map_err(|_| Errno::EFAULT)?;
        match self.state {
            MirrorState::Current(g) if g == gen => return Ok(()),
            MirrorState::Poisoned(g) if g == gen => return Err(Errno::EFAULT),
            _ => {}
        }
        let (gen, table) = match Mirror::read(&self.ram) {
            Ok(t) => t,
            Err(e) => {
                self.complain(&e);
                return Err(Errno::EFAULT);
            }
        };
        let new = match table {
            Ok(m) => m,
            Err(e) => {
                self.complain(&e);
                self.unmap_all();
                self.state = MirrorState::Poisoned(gen);
                return Err(Errno::EFAULT);
            }
        };
        let (removed, added) = mirror::diff(&self.mirror, &new);
        let result = removed
            .iter()
            .try_for_each(|e| self.window.release(e))
            .and_then(|()| {
                added
                    .iter()
                    .try_for_each(|e| self.window.mirror(&self.ram, e))
            });
        match result {
            Ok(()) => {
                self.mirror = new;
                self.state = MirrorState::Current(gen);
                Ok(())
            }
            Err(e) => {
                eprintln!("margay: proxy: {e}");
                // Start from a clean slate: every mapping of both tables goes.
                for e in new.entries() {
                    let _ = self.window.release(e);
                }
                self.unmap_all();
                self.state = MirrorState::Unknown;
                Err(Errno::ENOMEM)
            }
        }
    }

    fn unmap_all(&mut self) {
        for e in self.mirror.entries() {
            let _ = self.window.release(e);
        }
        self.mirror = Mirror::default();
    }

    fn complain(&mut self, e: &TableError) {
        if !self.complained {
            self.complained = true;
            eprintln!("margay: proxy: rejecting the LWK's region table: {e}; offloaded calls fail with EFAULT until it is fixed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_slots_are_rejected() {
        let mut s = Slot {
            kind: RequestKind::Syscall as u32,
            nr: 1,
            args: [1, 2, 3, 4, 5, 6],
            ..Slot::default()
        };
        assert_eq!(
            decode(&s),
            Ok(Request::Syscall {
                nr: 1,
                args: [1, 2, 3, 4, 5, 6]
            })
        );
        s.kind = RequestKind::Trace as u32;
        s.aux = [7, wire::TRACE_LOCAL, 0, 0];
        assert_eq!(
            decode(&s),
            Ok(Request::Trace {
                nr: 1,
                args: [1, 2, 3, 4, 5, 6],
                result: 7,
                flags: wire::TRACE_LOCAL
            })
        );
        s.kind = RequestKind::Clock as u32;
        assert_eq!(decode(&s), Ok(Request::Clock));
        for kind in [0, 4, 0xdead_beef, u32::MAX] {
            s.kind = kind;
            assert_eq!(decode(&s), Err(kind));
        }
    }

    /// The real mechanism: reserve the user window, mirror guest RAM into it with
    /// mremap, and let Linux read and write the application's memory there. The
    /// only test in this binary that reserves the window (it stays reserved).
    #[test]
    fn mirrored_memory_is_what_linux_sees() {
        use linux_abi::mman::{PROT_READ, PROT_WRITE};
        use linux_abi::syscalls_gen::{SYS_READ, SYS_WRITE};
        use mirror::tests::entry;
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;

        let window = Window::reserve().expect("user window already in use");
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
            window.mirror(mem, e).unwrap();
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
