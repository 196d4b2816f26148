//! Host files plugged into the partition's guest-physical memory, for shared
//! file mappings: the pages the LWK maps are then Linux's own page-cache pages
//! of the file, so `read()`, `write()` and every Linux process see the same
//! bytes.
//!
//! A proxy asks margay to plug a file over a Unix socket in the abstract
//! namespace (nothing in the file system); margay adds a
//! `memory-backend-file` (`share=on`) and a `pc-dimm` at a 2 MiB-aligned
//! address of the hot-plug window through QMP, and answers with the slot and
//! the guest-physical address. The kernel ejects a dimm itself (ACPI memory
//! hot-plug registers) when the last mapping of it goes, and marks the slot in
//! the shared area's eject word; margay then removes the backend object.
//!
//! Limits: `qemu::HOTPLUG_SLOTS` files at once, and QEMU 7.2 maps a file
//! from offset 0. QEMU refuses a backend larger than its file, so a file
//! whose last page is partial is plugged with a small preloaded library
//! (`shim/qemu-plug.c`) that rounds the size QEMU asks up to a whole page.

use std::io::{self, BufRead as _, BufReader, Write as _};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use crate::qmp::{Qmp, QmpError};

/// Alignment of every plugged file (2 MiB pages fit).
pub const ALIGN: u64 = 2 << 20;
const PAGE: u64 = 4096;
/// Longest request or answer line.
const MAX_LINE: usize = 512;

#[derive(Debug, Error)]
pub enum PlugError {
    #[error("all {0} memory-device slots are in use")]
    NoSlot(u32),
    #[error("no room for {0} bytes in the hot-plug window")]
    NoSpace(u64),
    #[error("{path}: {why}")]
    BadFile { path: String, why: String },
    #[error("QEMU refused to plug the file: {0}")]
    Qmp(#[from] QmpError),
    #[error("malformed request: {0}")]
    Request(String),
}

impl PlugError {
    /// The errno the application's mmap gets.
    pub fn errno(&self) -> i32 {
        match self {
            PlugError::NoSlot(_) | PlugError::NoSpace(_) => libc::ENOMEM,
            PlugError::BadFile { .. } | PlugError::Request(_) => libc::EINVAL,
            PlugError::Qmp(_) => libc::ENODEV,
        }
    }
}

/// One plugged file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimm {
    /// The ACPI memory hot-plug slot (what the kernel ejects).
    pub slot: u32,
    pub gpa: u64,
    pub size: u64,
    /// Suffix of the QOM ids (`mgf<n>` backend, `mgd<n>` device).
    pub id: u64,
    /// margay's descriptor of the file (QEMU opened it through
    /// `/proc/<margay>/fd/<n>`; proxies mirror it the same way).
    pub host_fd: u32,
}

/// Where plugged files live in the hot-plug window: first fit, 2 MiB aligned.
#[derive(Debug)]
pub struct Window {
    base: u64,
    len: u64,
    slots: u32,
    dimms: Vec<Dimm>,
    next_id: u64,
}

impl Window {
    pub fn new(base: u64, len: u64, slots: u32) -> Window {
        Window {
            base,
            len,
            slots,
            dimms: Vec::new(),
            next_id: 1,
        }
    }

    /// The lowest 2 MiB-aligned free address for `size` bytes.
    pub fn place(&self, size: u64) -> Result<u64, PlugError> {
        if self.dimms.len() >= self.slots as usize {
            return Err(PlugError::NoSlot(self.slots));
        }
        let span = size.div_ceil(ALIGN) * ALIGN;
        let mut used: Vec<(u64, u64)> = self.dimms.iter().map(|d| (d.gpa, d.size)).collect();
        used.sort_unstable();
        let mut at = self.base;
        for (gpa, len) in used {
            if at.saturating_add(span) <= gpa {
                break;
            }
            at = at.max((gpa + len).div_ceil(ALIGN) * ALIGN);
        }
        if at.saturating_add(span) > self.base + self.len {
            return Err(PlugError::NoSpace(size));
        }
        Ok(at)
    }

    /// A fresh QOM id suffix.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn add(&mut self, d: Dimm) {
        self.dimms.push(d);
    }

    pub fn by_slot(&self, slot: u32) -> Option<&Dimm> {
        self.dimms.iter().find(|d| d.slot == slot)
    }

    pub fn remove(&mut self, slot: u32) -> Option<Dimm> {
        let i = self.dimms.iter().position(|d| d.slot == slot)?;
        Some(self.dimms.remove(i))
    }
}

/// The library QEMU preloads so that the last, partial page of a file can be
/// plugged (QEMU refuses a backend larger than its file): `shim/qemu-plug.c`.
static QEMU_SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qemu-plug.so"));

/// Have QEMU, started by `cmd`, preload the shim from a memfd (nothing in the
/// file system); the returned descriptor must stay open until QEMU started.
pub fn preload_shim(cmd: &mut std::process::Command) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd as _;
    let fd = crate::sys::memfd_create(c"margay-qemu-plug")?;
    std::fs::File::from(fd.try_clone()?).write_all(QEMU_SHIM)?;
    crate::sys::inherit_fd(cmd, fd.as_raw_fd());
    let mut preload = std::ffi::OsString::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    cmd.env("LD_PRELOAD", preload);
    Ok(fd)
}

/// The abstract socket name of margay `pid`'s plug service.
fn socket_name(pid: u32) -> Vec<u8> {
    format!("margay-{pid}-plug").into_bytes()
}

/// margay's side: the listening socket and the plugged files.
pub struct Service {
    listener: UnixListener,
    window: Window,
    /// The files of the plugged dimms, by QOM id suffix.
    files: Vec<(u64, std::fs::File)>,
}

impl Service {
    /// Listen on this margay's abstract socket.
    pub fn listen(window: Window) -> io::Result<Service> {
        let addr = SocketAddr::from_abstract_name(socket_name(std::process::id()))?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(Service {
            listener,
            window,
            files: Vec::new(),
        })
    }

    /// Serve every waiting request (each connection carries one), then
    /// remove the backends of the dimms the kernel ejected (`ejected` bits,
    /// by slot); returns the bits it cleared.
    pub fn serve(&mut self, qmp: &mut Qmp, ejected: u64) -> u64 {
        let mut cleared = 0u64;
        for slot in 0..64u32 {
            if ejected & (1 << slot) == 0 {
                continue;
            }
            match self.window.by_slot(slot).cloned() {
                Some(d) => {
                    // "in use" until QEMU has finished the guest's eject: retried later.
                    if qmp
                        .execute_args("object-del", json!({ "id": format!("mgf{}", d.id) }))
                        .is_ok()
                    {
                        self.window.remove(slot);
                        self.files.retain(|(id, _)| *id != d.id);
                        cleared |= 1 << slot;
                    }
                }
                None => cleared |= 1 << slot,
            }
        }
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = self.answer(qmp, stream);
        }
        cleared
    }

    fn answer(&mut self, qmp: &mut Qmp, stream: UnixStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let line = read_line(&stream).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let reply = match self.plug(qmp, &line) {
            Ok(d) => format!("ok {} {} {} {}\n", d.slot, d.gpa, d.size, d.host_fd),
            Err(e) => format!("err {} {}\n", e.errno(), e.to_string().replace('\n', " ")),
        };
        (&stream).write_all(reply.as_bytes())
    }

    fn plug(&mut self, qmp: &mut Qmp, line: &str) -> Result<Dimm, PlugError> {
        let bad = || PlugError::Request(line.trim_end().to_string());
        let mut it = line.trim_end().splitn(3, ' ');
        let (Some("plug"), Some(size), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        let size: u64 = size.parse().map_err(|_| bad())?;
        if size == 0 || !size.is_multiple_of(PAGE) {
            return Err(bad());
        }
        let bad_file = |why: String| PlugError::BadFile {
            path: path.into(),
            why,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| bad_file(e.to_string()))?;
        // A memfd sealed against writes can only be mapped read-only (the
        // kernel maps it so: writable mappings of it are EPERM).
        let readonly = crate::sys::write_sealed(std::os::fd::AsRawFd::as_raw_fd(&file));
        if readonly {
            file = std::fs::File::open(path).map_err(|e| bad_file(e.to_string()))?;
        }
        let meta = file.metadata().map_err(|e| bad_file(e.to_string()))?;
        // The file's last page may be partial (QEMU then maps it whole
        // thanks to the preloaded shim, as Linux maps a file's last page).
        if !meta.is_file() || meta.size().div_ceil(PAGE) * PAGE < size {
            return Err(bad_file(format!(
                "not a regular file with {size} bytes of pages"
            )));
        }
        let host_fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&file))
            .map_err(|_| bad_file("descriptor out of range".into()))?;
        let path = &format!("/proc/{}/fd/{host_fd}", std::process::id());
        let gpa = self.window.place(size)?;
        let id = self.window.next_id();
        let (obj, dev) = (format!("mgf{id}"), format!("mgd{id}"));
        qmp.execute_args(
            "object-add",
            json!({ "qom-type": "memory-backend-file", "id": obj, "mem-path": path,
                    "size": size, "share": true, "readonly": readonly }),
        )?;
        let added = qmp.execute_args(
            "device_add",
            json!({ "driver": "pc-dimm", "id": dev, "memdev": obj, "addr": gpa }),
        );
        let slot = added.and_then(|_| {
            let v = qmp.execute("query-memory-devices")?;
            slot_of(&v, &dev).ok_or_else(|| QmpError::Command {
                cmd: "query-memory-devices".into(),
                desc: format!("no slot for {dev}"),
            })
        });
        let slot = match slot {
            Ok(s) => s,
            Err(e) => {
                let _ = qmp.execute_args("object-del", json!({ "id": obj }));
                return Err(e.into());
            }
        };
        let d = Dimm {
            slot,
            gpa,
            size,
            id,
            host_fd,
        };
        self.window.add(d.clone());
        self.files.push((id, file));
        Ok(d)
    }
}

/// The slot of memory device `id` in a `query-memory-devices` answer.
pub fn slot_of(v: &Value, id: &str) -> Option<u32> {
    v.as_array()?
        .iter()
        .filter_map(|d| d.get("data"))
        .find(|d| d.get("id").and_then(Value::as_str) == Some(id))
        .and_then(|d| d.get("slot")?.as_u64())
        .and_then(|s| u32::try_from(s).ok())
        .filter(|&s| s < 64)
}

/// One `\n`-terminated line of at most `MAX_LINE` bytes.
fn read_line(r: impl io::Read) -> Result<String, String> {
    let mut buf = Vec::new();
    BufReader::new(r.take(MAX_LINE as u64))
        .read_until(b'\n', &mut buf)
        .map_err(|e| e.to_string())?;
    if !buf.ends_with(b"\n") {
        return Err("line too long or cut short".into());
    }
    String::from_utf8(buf).map_err(|e| e.to_string())
}

/// A file plugged for a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plugged {
    pub slot: u32,
    pub gpa: u64,
    pub size: u64,
    pub host_fd: u32,
}

/// The proxy's side: ask margay `margay_pid` to plug the first `size` bytes
/// of the file at `path` (the proxy's `/proc/<pid>/fd/<n>`). An error is the
/// errno for the application and margay's message.
pub fn request(margay_pid: u32, path: &str, size: u64) -> Result<Plugged, (i32, String)> {
    let io_err = |e: io::Error| (libc::ENODEV, format!("margay's plug service: {e}"));
    let addr = SocketAddr::from_abstract_name(socket_name(margay_pid)).map_err(io_err)?;
    let mut s = UnixStream::connect_addr(&addr).map_err(io_err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io_err)?;
    s.write_all(format!("plug {size} {path}\n").as_bytes())
        .map_err(io_err)?;
    let line = read_line(&s).map_err(|e| (libc::ENODEV, format!("margay's plug service: {e}")))?;
    parse_reply(&line)
}

fn parse_reply(line: &str) -> Result<Plugged, (i32, String)> {
    let bad = || (libc::ENODEV, format!("bad answer from margay: {line:?}"));
    let mut it = line.trim_end().splitn(5, ' ');
    match it.next() {
        Some("ok") => {
            let mut n = || {
                it.next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(bad)
            };
            let slot = u32::try_from(n()?).map_err(|_| bad())?;
            let (gpa, size) = (n()?, n()?);
            let host_fd = u32::try_from(n()?).map_err(|_| bad())?;
            Ok(Plugged {
                slot,
                gpa,
                size,
                host_fd,
            })
        }
        Some("err") => {
            let errno = it
                .next()
                .and_then(|v| v.parse::<i32>().ok())
                .ok_or_else(bad)?;
            let rest: Vec<&str> = it.collect();
            Err((errno, rest.join(" ")))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB2: u64 = 2 << 20;

    fn dimm(slot: u32, gpa: u64, size: u64) -> Dimm {
        Dimm {
            slot,
            gpa,
            size,
            id: u64::from(slot) + 1,
            host_fd: 9,
        }
    }

    #[test]
    fn files_are_placed_first_fit_on_2_mib_boundaries() {
        let mut w = Window::new(wire::HOTPLUG_BASE, 16 * MB2, 4);
        assert_eq!(w.place(4096).unwrap(), wire::HOTPLUG_BASE);
        w.add(dimm(0, wire::HOTPLUG_BASE, 4096));
        assert_eq!(w.place(3 * MB2).unwrap(), wire::HOTPLUG_BASE + MB2);
        w.add(dimm(1, wire::HOTPLUG_BASE + MB2, 3 * MB2));
        w.add(dimm(2, wire::HOTPLUG_BASE + 4 * MB2, MB2));
        // The gap left by a removed dimm is reused when it fits.
        w.remove(1).unwrap();
        assert_eq!(w.place(2 * MB2).unwrap(), wire::HOTPLUG_BASE + MB2);
        assert_eq!(w.place(4 * MB2).unwrap(), wire::HOTPLUG_BASE + 5 * MB2);
        assert!(matches!(w.place(16 * MB2), Err(PlugError::NoSpace(_))));
        w.add(dimm(3, wire::HOTPLUG_BASE + 5 * MB2, MB2));
        w.add(dimm(4, wire::HOTPLUG_BASE + 6 * MB2, MB2));
        w.add(dimm(5, wire::HOTPLUG_BASE + 7 * MB2, MB2));
        assert!(matches!(w.place(4096), Err(PlugError::NoSlot(4))));
        assert_eq!(
            w.by_slot(3).map(|d| d.gpa),
            Some(wire::HOTPLUG_BASE + 5 * MB2)
        );
        assert!(w.by_slot(9).is_none());
    }

    #[test]
    fn slots_come_from_query_memory_devices() {
        let v = serde_json::json!([
            {"type": "dimm", "data": {"id": "mgd1", "slot": 0, "addr": 4294967296u64}},
            {"type": "dimm", "data": {"id": "mgd2", "slot": 3}},
            {"type": "dimm", "data": {"id": "mgd9", "slot": 99}}
        ]);
        assert_eq!(slot_of(&v, "mgd1"), Some(0));
        assert_eq!(slot_of(&v, "mgd2"), Some(3));
        assert_eq!(slot_of(&v, "mgd9"), None);
        assert_eq!(slot_of(&v, "mgd4"), None);
        assert_eq!(slot_of(&serde_json::json!({}), "mgd1"), None);
    }

    #[test]
    fn replies_parse_or_fail_cleanly() {
        assert_eq!(
            parse_reply("ok 3 4296015872 8192 17\n"),
            Ok(Plugged {
                slot: 3,
                gpa: 4296015872,
                size: 8192,
                host_fd: 17
            })
        );
        assert_eq!(
            parse_reply("err 12 all 64 memory-device slots are in use\n"),
            Err((12, "all 64 memory-device slots are in use".into()))
        );
        for bad in [
            "",
            "ok",
            "ok 1 2 3",
            "ok x 1 2 3",
            "ok 99999999999 1 2 3",
            "what\n",
            "err x",
        ] {
            assert_eq!(parse_reply(bad).unwrap_err().0, libc::ENODEV, "{bad:?}");
        }
    }
}
