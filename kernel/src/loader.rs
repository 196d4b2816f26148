//! Loads the static ELF executable named in the boot data: its file is read
//! through the proxy (open/pread land directly in the new regions thanks to
//! the mirror), then the Linux initial stack is built.

use crate::aspace::{AddressSpace, RegionTable};
use crate::ikc;
use crate::process::{Process, SigAction};
use crate::shared::{BootData, BootParams};
use crate::uaccess::{copy_from_user, fill_user, zero_user};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use linux_abi::syscalls_gen::{SYS_CLOSE, SYS_LSEEK, SYS_OPENAT, SYS_PREAD64};
use lwk_core::elf::{self, ElfKind};
use lwk_core::region::{RegionKind, PROT_READ, PROT_WRITE};
use lwk_core::stack::{self, InitialStack};
use wire::{PIE_BASE, STACK_SIZE, STACK_TOP};

const AT_FDCWD: u64 = -100i64 as u64;
const O_RDONLY_CLOEXEC: u64 = 0o2000000;
const PREFIX: u64 = 64 * 1024;

pub struct Loaded {
    pub process: Process,
    pub entry: u64,
    pub sp: u64,
}

fn page_down(v: u64) -> u64 {
    v & !0xfff
}

fn page_up(v: u64) -> Option<u64> {
    v.checked_add(0xfff).map(|x| x & !0xfff)
}

fn off(nr: u32, args: [u64; 6]) -> i64 {
    ikc::syscall(u64::from(nr), args).ret
}

fn random16() -> [u8; 16] {
    let a = crate::arch::cpu::rdrand()
        .unwrap_or_else(|| crate::arch::cpu::rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = crate::arch::cpu::rdrand().unwrap_or_else(|| {
        crate::arch::cpu::rdtsc()
            .rotate_left(17)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9)
    });
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&a.to_le_bytes());
    r[8..].copy_from_slice(&b.to_le_bytes());
    r
}

/// Read `len` bytes of the file at `offset` straight into user memory at `va`.
fn pread_all(fd: u64, va: u64, len: u64, offset: u64) -> Result<(), String> {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(1 << 30);
        let r = off(SYS_PREAD64, [fd, va + done, n, offset + done, 0, 0]);
        if r <= 0 {
            return Err(format!(
                "reading the executable failed ({})",
                linux_abi::errno_name(-r as i32)
            ));
        }
        done += r as u64;
    }
    Ok(())
}

/// Load the program of `bd` into a new address space that publishes its
/// regions to the region table at `table`.
pub fn load(bd: &BootData, params: &BootParams, table: RegionTable) -> Result<Loaded, String> {
    let mut asp = AddressSpace::with_table(table)
        .map_err(|_| String::from("out of memory for page tables"))?;
    let stack_lo = STACK_TOP - STACK_SIZE;
    asp.map_anon(
        stack_lo,
        STACK_SIZE,
        PROT_READ | PROT_WRITE,
        RegionKind::Stack,
    )
    .map_err(|e| format!("cannot map the stack: {}", e.name()))?;

    // Scratch space at the bottom of the stack for the loader's own offloads.
    let mut path = bd.path.clone();
    path.push(0);
    fill_user(&asp, stack_lo, &path).map_err(|_| String::from("path too long"))?;
    let fd = off(SYS_OPENAT, [AT_FDCWD, stack_lo, O_RDONLY_CLOEXEC, 0, 0, 0]);
    if fd < 0 {
        return Err(format!(
            "cannot open the executable ({})",
            linux_abi::errno_name(-fd as i32)
        ));
    }
    let fd = fd as u64;
    let result = load_image(&mut asp, fd, stack_lo, None);
    let interp_path = match &result {
        Ok((info, _)) => info
            .interp
            .map(|(offset, len)| read_interp_path(&asp, fd, stack_lo, offset, len)),
        Err(_) => None,
    };
    off(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]);
    let (info, bias) = result?;
    // A dynamically linked program starts in its interpreter (ld.so), loaded
    // from the host's filesystem through the proxy like the program itself.
    let interp = match interp_path {
        Some(path) => {
            let mut p = path?;
            p.push(0);
            fill_user(&asp, stack_lo, &p).map_err(|_| String::from("interpreter path too long"))?;
            let ifd = off(SYS_OPENAT, [AT_FDCWD, stack_lo, O_RDONLY_CLOEXEC, 0, 0, 0]);
            if ifd < 0 {
                return Err(format!(
                    "cannot open the program interpreter {} ({})",
                    String::from_utf8_lossy(&p[..p.len() - 1]),
                    linux_abi::errno_name(-ifd as i32)
                ));
            }
            let r = load_image(&mut asp, ifd as u64, stack_lo, Some(wire::INTERP_BASE));
            off(SYS_CLOSE, [ifd as u64, 0, 0, 0, 0, 0]);
            let (iinfo, ibias) = r?;
            if iinfo.interp.is_some() {
                return Err(String::from(
                    "the program interpreter is itself dynamically linked",
                ));
            }
            Some((iinfo.entry + ibias, ibias))
        }
        None => None,
    };
    zero_user(&asp, stack_lo, PREFIX + 4096).map_err(|_| String::from("stack scratch"))?;

    let mut brk_start = 0;
    for s in &info.loads {
        brk_start = brk_start.max(page_up(s.vaddr + bias + s.memsz).unwrap_or(u64::MAX));
    }

    let (_, _, _, edx) = crate::arch::cpu::cpuid(1, 0);
    let mut auxv: Vec<(u64, u64)> = alloc::vec![
        (
            stack::AT_PHDR,
            info.phdr_vaddr.map(|p| p + bias).unwrap_or(0)
        ),
        (stack::AT_PHENT, u64::from(info.phentsize)),
        (stack::AT_PHNUM, u64::from(info.phnum)),
        (stack::AT_PAGESZ, 4096),
        (stack::AT_BASE, interp.map_or(0, |(_, base)| base)),
        (stack::AT_FLAGS, 0),
        (stack::AT_ENTRY, info.entry + bias),
        (stack::AT_UID, u64::from(params.uid)),
        (stack::AT_EUID, u64::from(params.euid)),
        (stack::AT_GID, u64::from(params.gid)),
        (stack::AT_EGID, u64::from(params.egid)),
        (stack::AT_SECURE, 0),
        (stack::AT_HWCAP, u64::from(edx)),
        (stack::AT_HWCAP2, 0),
        (stack::AT_CLKTCK, 100),
    ];
    auxv.retain(|&(k, v)| k != stack::AT_PHDR || v != 0);
    let argv: Vec<&[u8]> = bd.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = bd.envp.iter().map(|a| a.as_slice()).collect();
    let init = InitialStack {
        argv: &argv,
        envp: &envp,
        auxv: &auxv,
        random: random16(),
        execfn: &bd.path,
        platform: b"x86_64",
    };
    let (image, sp) = stack::build(STACK_TOP, &init, (STACK_SIZE / 2) as usize)
        .map_err(|_| String::from("arguments and environment too large for the stack"))?;
    fill_user(&asp, sp, &image).map_err(|_| String::from("initial stack"))?;

    let process = Process {
        aspace: asp,
        brk_start,
        brk: brk_start,
        heap_end: brk_start,
        pid: params.proxy_pid,
        sigactions: [SigAction::default(); 65],
        altstack: (0, 2, 0),
        name: name_of(&bd.path),
        exe: bd.path.clone(),
        sysv: alloc::vec::Vec::new(),
    };
    let entry = interp.map_or(info.entry + bias, |(e, _)| e);
    Ok(Loaded { process, entry, sp })
}

fn name_of(path: &[u8]) -> [u8; 16] {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let mut n = [0u8; 16];
    let l = base.len().min(15);
    n[..l].copy_from_slice(&base[..l]);
    n
}

/// Read the PT_INTERP path (without its NUL) from the open executable.
fn read_interp_path(
    asp: &AddressSpace,
    fd: u64,
    scratch: u64,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, String> {
    if len > 4096 {
        return Err(String::from(
            "program interpreter path longer than PATH_MAX",
        ));
    }
    let got = off(SYS_PREAD64, [fd, scratch, len, offset, 0, 0]);
    if got != len as i64 {
        return Err(String::from("cannot read the program interpreter's path"));
    }
    let mut buf = alloc::vec![0u8; len as usize];
    copy_from_user(asp, scratch, &mut buf).map_err(|_| String::from("scratch"))?;
    match buf.iter().position(|&b| b == 0) {
        Some(n) if n > 0 => {
            buf.truncate(n);
            Ok(buf)
        }
        _ => Err(String::from("malformed program interpreter path")),
    }
}

/// Load an ELF image from `fd`: ET_EXEC at its addresses, ET_DYN at `base`
/// (or PIE_BASE for the main program). Returns its info and load bias.
fn load_image(
    asp: &mut AddressSpace,
    fd: u64,
    scratch: u64,
    base: Option<u64>,
) -> Result<(elf::ElfInfo, u64), String> {
    let file_len = off(SYS_LSEEK, [fd, 0, 2, 0, 0, 0]);
    if file_len < 0 {
        return Err(String::from("cannot size the executable"));
    }
    let file_len = file_len as u64;
    let plen = file_len.min(PREFIX);
    let buf_va = scratch + 4096;
    let got = off(SYS_PREAD64, [fd, buf_va, plen, 0, 0, 0]);
    if got < 0 || (got as u64) < plen.min(64) {
        return Err(String::from("cannot read the executable header"));
    }
    let mut prefix = alloc::vec![0u8; got as usize];
    copy_from_user(asp, buf_va, &mut prefix).map_err(|_| String::from("scratch"))?;
    let info = elf::parse(&prefix, file_len).map_err(|e| format!("{e}"))?;
    let bias = match info.kind {
        ElfKind::Exec => 0,
        ElfKind::StaticPie => base.unwrap_or(PIE_BASE) - page_down(info.min_vaddr),
    };

    // Map every segment's pages read-write (pages shared by two segments once).
    for s in &info.loads {
        let start = page_down(s.vaddr + bias);
        let end = page_up(s.vaddr + bias + s.memsz).ok_or("segment overflows")?;
        if start < wire::USER_MIN || end > wire::USER_MAX {
            return Err(format!(
                "segment at {:#x} lies outside the LWK user window",
                s.vaddr + bias
            ));
        }
        let mut p = start;
        while p < end {
            if asp.is_free(p, 4096) {
                let mut q = p;
                while q < end && asp.is_free(q, 4096) {
                    q += 4096;
                }
                asp.map_anon(p, q - p, PROT_READ | PROT_WRITE, RegionKind::Image)
                    .map_err(|e| {
                        format!(
                            "not enough memory in the partition for the program ({})",
                            e.name()
                        )
                    })?;
                p = q;
            } else {
                p += 4096;
            }
        }
        if s.filesz > 0 {
            pread_all(fd, s.vaddr + bias, s.filesz, s.offset)?;
        }
    }
    // Final protections; a page shared by two segments gets both.
    for (i, s) in info.loads.iter().enumerate() {
        let start = page_down(s.vaddr + bias);
        let end = page_up(s.vaddr + bias + s.memsz).ok_or("segment overflows")?;
        asp.protect(start, end - start, s.prot)
            .map_err(|e| format!("mprotect: {}", e.name()))?;
        if i > 0 {
            let prev = &info.loads[i - 1];
            let prev_end = page_up(prev.vaddr + bias + prev.memsz).ok_or("segment overflows")?;
            if prev_end > start {
                asp.protect(start, 4096, s.prot | prev.prot)
                    .map_err(|e| format!("mprotect: {}", e.name()))?;
            }
        }
    }
    Ok((info, bias))
}
