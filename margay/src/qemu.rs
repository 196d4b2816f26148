//! Driving QEMU: choosing the accelerator, building the `pc` machine's command line that
//! backs guest RAM with our memfd, starting it in its own process group, and
//! collecting its debug console and stderr in bounded buffers.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Read, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use thiserror::Error;

use crate::children::Supervised;

/// QEMU binary, unless MARGAY_QEMU names another.
pub const QEMU: &str = "qemu-system-x86_64";
/// How much of the debug console and of QEMU's stderr is kept.
pub const OUTPUT_LIMIT: usize = 64 << 10;

#[derive(Debug, Error)]
pub enum QemuError {
    #[error("--accel kvm: KVM is not usable here ({0}); use --accel tcg or --accel auto")]
    KvmUnavailable(String),
    #[error("cannot start {qemu}: {err}; install QEMU (Debian: apt-get install qemu-system-x86) or set MARGAY_QEMU to its path")]
    Spawn { qemu: String, err: io::Error },
}

/// How QEMU runs the guest. `--accel` takes `auto`, `kvm` or `tcg`; `auto`
/// (parsed as `None`) is resolved by `choose_accel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's instruction emulator.
    Tcg,
}

/// `-smp` for `cpus` cores. A one-core TCG guest is given room for a
/// second (hot-pluggable, absent, never started): QEMU emulates atomic
/// instructions with host atomics only when the machine can have more than
/// one core, and without them a `lock` instruction on memory shared with
/// Linux processes or another partition loses updates (measured: two
/// one-core partitions and a Linux process adding 2,000,000 each to one
/// word of a /dev/shm file with `lock xadd` ended at 3,001,245).
fn smp(cpus: u32) -> String {
    if cpus == 1 {
        "1,maxcpus=2".into()
    } else {
        cpus.to_string()
    }
}

/// The parser of `--accel`: `auto` (None), `kvm` or `tcg`.
pub fn accel_parser() -> impl clap::builder::TypedValueParser<Value = Option<Accel>> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new([
        PossibleValue::new("auto").help("KVM when the CPU and /dev/kvm allow it, else TCG"),
        PossibleValue::new("kvm").help("Hardware virtualization (fails if unavailable)"),
        PossibleValue::new("tcg").help("QEMU's instruction emulator"),
    ])
    .map(|s| match s.as_str() {
        "kvm" => Some(Accel::Kvm),
        "tcg" => Some(Accel::Tcg),
        _ => None,
    })
}

/// Why KVM cannot be used, or `None` if it can: the CPU must advertise vmx or svm
/// and /dev/kvm must open read-write.
fn kvm_problem(cpuinfo: &str, dev_kvm: impl FnOnce() -> io::Result<()>) -> Option<String> {
    let virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !virt {
        return Some("the CPU does not advertise vmx or svm".into());
    }
    dev_kvm().err().map(|e| format!("/dev/kvm: {e}"))
}

/// The accelerator to use for `--accel` `req` (None: auto).
pub fn choose_accel(req: Option<Accel>) -> Result<Accel, QemuError> {
    if req == Some(Accel::Tcg) {
        return Ok(Accel::Tcg);
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let problem = kvm_problem(&cpuinfo, || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(drop)
    });
    match (req, problem) {
        (_, None) => Ok(Accel::Kvm),
        (Some(Accel::Kvm), Some(why)) => Err(QemuError::KvmUnavailable(why)),
        _ => Ok(Accel::Tcg),
    }
}

/// The guest hardware that Margay and `margay bench`'s Linux guest share: the
/// same machine type and options, CPU model, cores, memory and accelerator.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub mem: u64,
    pub cpus: u32,
    pub accel: Accel,
    /// QEMU's deterministic instruction counting (TCG only), see `ICOUNT`.
    pub icount: bool,
}

use wire::{HOTPLUG_SLOTS, HOTPLUG_SPACE};
/// The firmware: qboot, which Debian's qemu-system-data ships.
pub const FIRMWARE: &str = "/usr/share/qemu/qboot.rom";

/// `-icount` options: one virtual nanosecond per guest instruction, and no
/// real-time sleeping while the guest idles, so virtual time depends only on
/// the instructions executed.
pub const ICOUNT: &str = "shift=0,sleep=off";

impl Machine {
    /// `-M` with the shared machine options: QEMU's i440FX `pc` (it can plug
    /// host files into guest-physical memory while the guest runs, which
    /// shared file mappings need; `microvm` cannot) without the devices
    /// neither guest uses. The PIT, PIC and HPET stay: Linux calibrates its
    /// timers against them.
    pub fn machine_opt(&self) -> String {
        "pc,memory-backend=ram,sata=off,smbus=off,usb=off,vmport=off,smm=off,i8042=off".into()
    }

    /// Memory size (with the hot-plug slots and address space for shared
    /// file mappings), cores, qboot as firmware (it boots PVH and Linux
    /// kernels in a few milliseconds; SeaBIOS takes about 100 ms more) and
    /// the options that keep QEMU self-contained.
    pub fn sizing_args(&self) -> Vec<OsString> {
        let mib = self.mem >> 20;
        [
            "-m".to_string(),
            format!(
                "{mib}M,slots={HOTPLUG_SLOTS},maxmem={}M",
                mib + (HOTPLUG_SPACE >> 20)
            ),
            "-smp".into(),
            smp(self.cpus),
            "-bios".into(),
            FIRMWARE.into(),
            "-nodefaults".into(),
            "-nographic".into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
        ]
        .map(OsString::from)
        .into()
    }

    /// Accelerator, CPU model and (under TCG) instruction counting.
    pub fn accel_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = match self.accel {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
        .map(OsString::from)
        .into();
        if self.icount && self.accel == Accel::Tcg {
            v.extend(["-icount", ICOUNT].map(OsString::from));
        }
        v
    }
}

/// What QEMU needs to know.
pub struct Config<'a> {
    pub mem: u64,
    pub cpus: u32,
    pub accel: Accel,
    pub icount: bool,
    pub ram_path: &'a Path,
    pub kernel_path: &'a Path,
}

/// The QEMU command line (without the binary).
pub fn args(c: &Config<'_>) -> Vec<OsString> {
    let m = Machine {
        mem: c.mem,
        cpus: c.cpus,
        accel: c.accel,
        icount: c.icount,
    };
    let mib = c.mem >> 20;
    let mut ram_obj = OsString::from(format!("memory-backend-file,id=ram,size={mib}M,mem-path="));
    ram_obj.push(c.ram_path);
    ram_obj.push(",share=on");
    let mut v: Vec<OsString> = vec!["-M".into(), m.machine_opt().into(), "-object".into()];
    v.push(ram_obj);
    v.extend(m.sizing_args());
    v.extend(
        [
            "-device".to_string(),
            format!(
                "isa-debug-exit,iobase={:#x},iosize=4",
                wire::DEBUG_EXIT_PORT
            ),
            "-debugcon".into(),
            "stdio".into(),
        ]
        .map(OsString::from),
    );
    v.push("-kernel".into());
    v.push(c.kernel_path.into());
    v.extend(m.accel_args());
    v
}

/// Start the guest stopped (`-S`) with a QMP monitor on the inherited socket `fd`,
/// so that its vCPU threads can be pinned before the first guest instruction.
pub fn qmp_args(fd: RawFd) -> Vec<OsString> {
    [
        "-S".to_string(),
        "-chardev".into(),
        format!("socket,id=qmp,fd={fd}"),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ]
    .map(OsString::from)
    .into()
}

/// The last `limit` bytes of a stream, read by a thread (optionally echoed to our
/// stderr as they arrive).
pub struct Tail(JoinHandle<Vec<u8>>);

impl Tail {
    pub fn collect<R: Read + Send + 'static>(
        mut r: R,
        limit: usize,
        echo: bool,
    ) -> io::Result<Tail> {
        let h = std::thread::Builder::new()
            .name("qemu-output".into())
            .spawn(move || {
                let mut keep = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    if echo {
                        let _ = io::stderr().write_all(&buf[..n]);
                    }
                    keep.extend_from_slice(&buf[..n]);
                    if keep.len() > 2 * limit {
                        keep.drain(..keep.len() - limit);
                    }
                }
                if keep.len() > limit {
                    keep.drain(..keep.len() - limit);
                }
                keep
            })?;
        Ok(Tail(h))
    }

    /// Wait for the end of the stream and return what was kept.
    pub fn finish(self) -> Vec<u8> {
        self.0.join().unwrap_or_default()
    }
}

/// A running QEMU with its output collectors.
pub struct Qemu {
    pub process: Supervised,
    pub console: Option<Tail>,
    pub stderr: Option<Tail>,
}

/// Start QEMU. With `monitor` (one end of a socketpair), QEMU starts the guest
/// stopped and serves QMP on it (see `qmp_args`); the socket is closed here once
/// QEMU has its copy.
pub fn spawn(
    c: &Config<'_>,
    echo_console: bool,
    monitor: Option<OwnedFd>,
) -> Result<Qemu, QemuError> {
    let qemu = std::env::var_os("MARGAY_QEMU").map_or_else(|| PathBuf::from(QEMU), PathBuf::from);
    let mut cmd = Command::new(&qemu);
    cmd.args(args(c));
    // With a monitor, margay may plug files: QEMU gets the preload that lets
    // a file's last partial page be plugged (kept open until QEMU has it).
    let mut _shim = None;
    if let Some(fd) = &monitor {
        cmd.args(qmp_args(fd.as_raw_fd()));
        crate::sys::inherit_fd(&mut cmd, fd.as_raw_fd());
        _shim = Some(
            crate::hotplug::preload_shim(&mut cmd).map_err(|err| QemuError::Spawn {
                qemu: qemu.display().to_string(),
                err,
            })?,
        );
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches margay, not QEMU.
        .process_group(0);
    crate::sys::die_with_parent(&mut cmd);
    let spawn_err = |err| QemuError::Spawn {
        qemu: qemu.display().to_string(),
        err,
    };
    let mut process = Supervised::spawn(&mut cmd).map_err(spawn_err)?;
    drop(monitor);
    let child = process.child_mut();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let console = out
        .map(|o| Tail::collect(o, OUTPUT_LIMIT, echo_console))
        .transpose()
        .map_err(spawn_err)?;
    let stderr = err
        .map(|e| Tail::collect(e, OUTPUT_LIMIT, false))
        .transpose()
        .map_err(spawn_err)?;
    Ok(Qemu {
        process,
        console,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_cpu_flags_and_dev_kvm() {
        let vmx = "processor : 0\nflags\t\t: fpu vme vmx sse\n";
        let plain = "processor : 0\nflags\t\t: fpu vme sse\n";
        assert_eq!(kvm_problem(vmx, || Ok(())), None);
        assert!(kvm_problem("flags : svm", || Ok(())).is_none());
        assert!(kvm_problem(plain, || Ok(()))
            .unwrap()
            .contains("vmx or svm"));
        // "vmx" as part of another word does not count.
        assert!(kvm_problem("flags : vmxfoo", || Ok(())).is_some());
        let no_dev = kvm_problem(vmx, || Err(io::Error::from_raw_os_error(libc::ENOENT))).unwrap();
        assert!(no_dev.starts_with("/dev/kvm"), "{no_dev}");
        assert_eq!(choose_accel(Some(Accel::Tcg)).unwrap(), Accel::Tcg);
    }

    #[test]
    fn command_line() {
        let c = Config {
            mem: 512 << 20,
            cpus: 2,
            accel: Accel::Tcg,
            icount: false,
            ram_path: Path::new("/proc/10/fd/3"),
            kernel_path: Path::new("/proc/10/fd/4"),
        };
        let a: Vec<String> = args(&c)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let s = a.join(" ");
        assert!(
            s.contains(
                "-object memory-backend-file,id=ram,size=512M,mem-path=/proc/10/fd/3,share=on"
            ),
            "{s}"
        );
        assert!(
            s.contains("-m 512M,slots=64,maxmem=262656M -smp 2 -bios /usr/share/qemu/qboot.rom"),
            "{s}"
        );
        assert!(
            s.contains("-device isa-debug-exit,iobase=0xf4,iosize=4"),
            "{s}"
        );
        assert!(s.contains("-kernel /proc/10/fd/4"), "{s}");
        assert!(s.ends_with("-accel tcg -cpu max"), "{s}");
        let kvm = args(&Config {
            accel: Accel::Kvm,
            ..c
        });
        assert_eq!(kvm[kvm.len() - 3..], ["kvm", "-cpu", "host"]);
        assert!(s.starts_with("-M pc,memory-backend=ram,"), "{s}");
        let icount = args(&Config { icount: true, ..c });
        assert_eq!(icount[icount.len() - 2..], ["-icount", ICOUNT]);
        // Instruction counting is a TCG feature.
        let kvm = args(&Config {
            accel: Accel::Kvm,
            icount: true,
            ..c
        });
        assert!(!kvm.contains(&OsString::from("-icount")));
        assert_eq!(
            qmp_args(7),
            [
                "-S",
                "-chardev",
                "socket,id=qmp,fd=7",
                "-mon",
                "chardev=qmp,mode=control"
            ]
        );
    }

    #[test]
    fn tails_keep_the_end() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let t = Tail::collect(io::Cursor::new(data.clone()), 1000, false).unwrap();
        assert_eq!(t.finish(), &data[data.len() - 1000..]);
        let t = Tail::collect(io::Cursor::new(b"short".to_vec()), 1000, false).unwrap();
        assert_eq!(t.finish(), b"short");
    }
}
