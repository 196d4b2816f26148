//! The partition's memory: guest RAM as an anonymous memfd (no path anywhere, gone
//! when margay is), the boot header and boot data the kernel reads at start-up,
//! and the kernel image handed to QEMU through a second memfd.

use std::ffi::{CStr, OsString};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use std::sync::Arc;
use thiserror::Error;
use wire::{Header, BOOTDATA_OFF, BOOTDATA_SIZE, HEADER_OFF, SHARED_PHYS};

use crate::guest_mem::{GuestMem, GuestMemError};

#[derive(Debug, Error)]
pub enum PartitionError {
    #[error("cannot create the partition's memory file: {0}")]
    Memfd(std::io::Error),
    #[error("cannot size the partition's memory to {size} bytes: {err} (try a smaller --mem)")]
    Size { size: u64, err: std::io::Error },
    #[error(transparent)]
    Map(#[from] GuestMemError),
    #[error("argument list too long: the program's path, arguments and environment need more than {BOOTDATA_SIZE} bytes")]
    TooLong,
    #[error("cannot write the kernel image: {0}")]
    Kernel(std::io::Error),
}

/// `/proc/<margay pid>/fd/<fd>`: how QEMU and the proxy open a memfd of ours.
pub fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ))
}

/// Guest RAM: the memfd and margay's mapping of it.
pub struct Ram {
    fd: OwnedFd,
    mem: Arc<GuestMem>,
}

impl Ram {
    pub fn create(size: u64) -> Result<Ram, PartitionError> {
        let fd = crate::sys::memfd_create(c"margay-ram").map_err(PartitionError::Memfd)?;
        let file = File::from(fd);
        file.set_len(size)
            .map_err(|err| PartitionError::Size { size, err })?;
        let fd = OwnedFd::from(file);
        let mem = Arc::new(GuestMem::map_shared(fd.as_fd(), size)?);
        Ok(Ram { fd, mem })
    }

    pub fn path(&self) -> PathBuf {
        proc_fd_path(&self.fd)
    }

    pub fn mem(&self) -> &GuestMem {
        &self.mem
    }

    /// The mapping, for a thread that outlives this borrow.
    pub fn shared_mem(&self) -> Arc<GuestMem> {
        Arc::clone(&self.mem)
    }
}

/// A read-only copy of the embedded kernel ELF in its own memfd.
pub fn kernel_image(bytes: &[u8]) -> Result<OwnedFd, PartitionError> {
    let name: &CStr = c"margay-kernel";
    let fd = crate::sys::memfd_create(name).map_err(PartitionError::Kernel)?;
    let mut f = File::from(fd);
    f.write_all(bytes).map_err(PartitionError::Kernel)?;
    Ok(OwnedFd::from(f))
}

/// Everything the host tells the kernel at boot.
pub struct BootParams<'a> {
    pub ncpus: u32,
    pub mem_size: u64,
    pub flags: u32,
    pub proxy_pid: u32,
    pub ids: crate::sys::Ids,
    pub host_start_ns: u64,
    /// Canonical path of the executable.
    pub path: &'a [u8],
    pub argv: &'a [OsString],
    pub envp: &'a [OsString],
}

/// Boot data: the path, argv and envp strings, each NUL-terminated.
pub fn encode_bootdata(p: &BootParams<'_>) -> Result<Vec<u8>, PartitionError> {
    let mut buf = vec![0u8; BOOTDATA_SIZE as usize];
    let n = wire::encode_bootdata(
        &mut buf,
        p.path,
        p.argv.iter().map(|a| a.as_bytes()),
        p.envp.iter().map(|e| e.as_bytes()),
    )
    .ok_or(PartitionError::TooLong)?;
    buf.truncate(n);
    Ok(buf)
}

/// The host-written part of the boot header.
pub fn header(p: &BootParams<'_>, bootdata_len: usize) -> Result<Header, PartitionError> {
    let count = |n: usize| u32::try_from(n).map_err(|_| PartitionError::TooLong);
    Ok(Header {
        boot: wire::BootParams {
            magic: wire::MAGIC,
            version: wire::VERSION,
            ncpus: p.ncpus,
            mem_size: p.mem_size,
            flags: p.flags,
            proxy_pid: p.proxy_pid,
            uid: p.ids.uid,
            gid: p.ids.gid,
            euid: p.ids.euid,
            egid: p.ids.egid,
            argc: count(p.argv.len())?,
            envc: count(p.envp.len())?,
            bootdata_len: count(bootdata_len)?,
            host_start_ns: p.host_start_ns,
            ..wire::BootParams::default()
        },
        ..Header::default()
    })
}

/// Write the boot header and boot data into guest RAM.
pub fn write_boot(mem: &GuestMem, p: &BootParams<'_>) -> Result<(), PartitionError> {
    let data = encode_bootdata(p)?;
    let hdr = header(p, data.len())?;
    mem.write_bytes(SHARED_PHYS + BOOTDATA_OFF, &data)?;
    mem.write_obj(SHARED_PHYS + HEADER_OFF, &hdr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(argv: &'a [OsString], envp: &'a [OsString]) -> BootParams<'a> {
        BootParams {
            ncpus: 1,
            mem_size: 64 << 20,
            flags: wire::FLAG_STATS,
            proxy_pid: 1234,
            ids: crate::sys::ids(),
            host_start_ns: 42,
            path: b"/bin/prog",
            argv,
            envp,
        }
    }

    #[test]
    fn boot_data_and_header_are_written() {
        let argv = ["prog".into(), "a b".into()];
        let envp = ["X=1".into()];
        let p = params(&argv, &envp);
        let mem = GuestMem::anonymous(64 << 20);
        write_boot(&mem, &p).unwrap();
        let h: Header = mem.read_obj(SHARED_PHYS + HEADER_OFF).unwrap();
        assert_eq!(h.boot.check(), Ok(()));
        let b = h.boot;
        assert_eq!(
            (b.magic, b.version, b.argc, b.envc),
            (wire::MAGIC, wire::VERSION, 2, 1)
        );
        assert_eq!(
            (b.proxy_pid, b.flags, b.host_start_ns),
            (1234, wire::FLAG_STATS, 42)
        );
        assert_eq!(h.state, wire::State::Booting as u32);
        let data = mem
            .read_bytes(SHARED_PHYS + BOOTDATA_OFF, b.bootdata_len as usize)
            .unwrap();
        let parts: Vec<&[u8]> = wire::split_bootdata(&data, 4).unwrap().collect();
        assert_eq!(parts, [&b"/bin/prog"[..], b"prog", b"a b", b"X=1"]);
    }

    #[test]
    fn oversized_arguments_are_refused() {
        let argv = vec![OsString::from("x".repeat(BOOTDATA_SIZE as usize))];
        let p = params(&argv, &[]);
        let e = encode_bootdata(&p).unwrap_err();
        assert!(e.to_string().starts_with("argument list too long"));
    }

    #[test]
    fn ram_is_a_sized_memfd_reachable_through_proc() {
        let ram = Ram::create(64 << 20).unwrap();
        ram.mem().write_obj(0x1000, &0xabcdu64).unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .open(ram.path())
            .unwrap();
        assert_eq!(f.metadata().unwrap().len(), 64 << 20);
        let other = GuestMem::map_shared(f.as_fd(), 64 << 20).unwrap();
        assert_eq!(other.read_obj::<u64>(0x1000).unwrap(), 0xabcd);
    }
}
