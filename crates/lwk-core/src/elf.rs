//! ELF64 executable parsing for the loader: owns validation of untrusted x86-64 ELF headers and program headers.
//!
//! Only statically linked executables are accepted: `ET_EXEC`, or `ET_DYN` without
//! `PT_INTERP` (static PIE). Every offset and size is bounds- and overflow-checked; bad
//! input yields an [`ElfError`], never a panic.

use alloc::vec::Vec;
use core::fmt;

use crate::region::{PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::PAGE_SIZE;

/// `e_machine` for x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_type`: executable.
pub const ET_EXEC: u16 = 2;
/// `e_type`: shared object / PIE.
pub const ET_DYN: u16 = 3;
/// Loadable segment.
pub const PT_LOAD: u32 = 1;
/// Dynamic linking information.
pub const PT_DYNAMIC: u32 = 2;
/// Program interpreter path.
pub const PT_INTERP: u32 = 3;
/// The program header table itself.
pub const PT_PHDR: u32 = 6;
/// Thread-local storage template.
pub const PT_TLS: u32 = 7;
/// Stack executability.
pub const PT_GNU_STACK: u32 = 0x6474_e551;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;
/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Segments must end at or below this address (top of the canonical lower half).
pub const USER_LIMIT: u64 = 0x0000_8000_0000_0000;

/// Kind of executable.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ElfKind {
    /// `ET_EXEC`: loaded at its link addresses.
    Exec,
    /// `ET_DYN`: addresses are relative to a load bias (static PIE, a
    /// dynamically linked PIE, or a shared object such as ld.so itself).
    StaticPie,
}

/// A `PT_LOAD` (or `PT_TLS`) segment.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    pub offset: u64,
    /// `PROT_*` bits derived from `PF_R/W/X`.
    pub prot: u32,
}

/// Why an ELF file was rejected.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ElfError {
    TooShort,
    NotElf,
    Not64Bit,
    NotLittleEndian,
    WrongMachine(u16),
    NotExecutable(u16),
    Dynamic,
    PhdrsOutOfRange,
    BadSegment,
    NoLoadSegments,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::TooShort => f.write_str("file too short for an ELF header"),
            ElfError::NotElf => f.write_str("not an ELF file (bad magic)"),
            ElfError::Not64Bit => f.write_str("not a 64-bit ELF file"),
            ElfError::NotLittleEndian => f.write_str("not a little-endian ELF file"),
            ElfError::WrongMachine(m) => {
                write!(f, "wrong architecture (e_machine {m}, expected x86-64)")
            }
            ElfError::NotExecutable(t) => {
                write!(
                    f,
                    "not an executable (e_type {t}, expected ET_EXEC or ET_DYN)"
                )
            }
            ElfError::Dynamic => {
                f.write_str("dynamically linked (PT_INTERP) executables are not supported yet")
            }
            ElfError::PhdrsOutOfRange => {
                f.write_str("program headers missing, malformed or outside the file header area")
            }
            ElfError::BadSegment => f.write_str("malformed program segment"),
            ElfError::NoLoadSegments => f.write_str("no loadable segments"),
        }
    }
}

/// What the loader needs to know about an executable.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct ElfInfo {
    pub kind: ElfKind,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
    /// Non-empty `PT_LOAD` segments, sorted by `vaddr`, non-overlapping.
    pub loads: Vec<LoadSegment>,
    /// Virtual address of the program headers (for `AT_PHDR`), if they are mapped.
    pub phdr_vaddr: Option<u64>,
    /// The `PT_TLS` template, if any.
    pub tls: Option<LoadSegment>,
    /// `PT_GNU_STACK` asks for an executable stack.
    pub stack_exec: bool,
    /// Lowest load address, rounded down to a page.
    pub min_vaddr: u64,
    /// Highest load end (`vaddr + memsz`), rounded up to a page.
    pub max_vaddr: u64,
    /// `PT_INTERP`: file offset and size (NUL included) of the program
    /// interpreter's path, for dynamically linked executables.
    pub interp: Option<(u64, u64)>,
}

/// Longest `PT_INTERP` path accepted (Linux allows up to PATH_MAX).
pub const MAX_INTERP_LEN: u64 = 4096;

fn rd<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}
fn rd16(b: &[u8], off: usize) -> Option<u16> {
    rd(b, off).map(u16::from_le_bytes)
}
fn rd32(b: &[u8], off: usize) -> Option<u32> {
    rd(b, off).map(u32::from_le_bytes)
}
fn rd64(b: &[u8], off: usize) -> Option<u64> {
    rd(b, off).map(u64::from_le_bytes)
}

struct Phdr {
    ty: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn prot_of(flags: u32) -> u32 {
    let mut p = 0;
    if flags & PF_R != 0 {
        p |= PROT_READ;
    }
    if flags & PF_W != 0 {
        p |= PROT_WRITE;
    }
    if flags & PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

/// Validate a segment's file and memory ranges.
fn segment(ph: &Phdr, file_len: u64) -> Result<LoadSegment, ElfError> {
    let file_end = ph.offset.checked_add(ph.filesz);
    if ph.filesz > ph.memsz
        || file_end.is_none_or(|e| e > file_len)
        || ph.vaddr.checked_add(ph.memsz).is_none()
    {
        return Err(ElfError::BadSegment);
    }
    Ok(LoadSegment {
        vaddr: ph.vaddr,
        memsz: ph.memsz,
        filesz: ph.filesz,
        offset: ph.offset,
        prot: prot_of(ph.flags),
    })
}

/// Parse an executable. `prefix` is the beginning of the file (e.g. its first 64 KiB);
/// the program headers must lie inside it. `file_len` is the full file size, used to
/// check that every segment's file range is inside the file.
pub fn parse(prefix: &[u8], file_len: u64) -> Result<ElfInfo, ElfError> {
    // Identify the file (magic, class, byte order) before requiring a full
    // 64-bit header, so a short 32-bit ELF is reported as such.
    if prefix.len() < 4 || prefix[..4] != *b"\x7fELF" {
        return Err(if prefix.len() < 4 {
            ElfError::TooShort
        } else {
            ElfError::NotElf
        });
    }
    if prefix.get(4) != Some(&2) {
        return Err(ElfError::Not64Bit);
    }
    if prefix.get(5) != Some(&1) {
        return Err(ElfError::NotLittleEndian);
    }
    let h = prefix.get(..EHDR_SIZE).ok_or(ElfError::TooShort)?;
    if file_len < EHDR_SIZE as u64 {
        return Err(ElfError::TooShort);
    }
    let e_type = rd16(h, 16).ok_or(ElfError::TooShort)?;
    let machine = rd16(h, 18).ok_or(ElfError::TooShort)?;
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let kind = match e_type {
        ET_EXEC => ElfKind::Exec,
        ET_DYN => ElfKind::StaticPie,
        t => return Err(ElfError::NotExecutable(t)),
    };
    let entry = rd64(h, 24).ok_or(ElfError::TooShort)?;
    let phoff = rd64(h, 32).ok_or(ElfError::TooShort)?;
    let phentsize = rd16(h, 54).ok_or(ElfError::TooShort)?;
    let phnum = rd16(h, 56).ok_or(ElfError::TooShort)?;

    if phnum == 0 {
        return Err(ElfError::NoLoadSegments);
    }
    // 0xffff (PN_XNUM) would move the count into section 0; not supported.
    if usize::from(phentsize) < PHDR_SIZE || phnum == u16::MAX {
        return Err(ElfError::PhdrsOutOfRange);
    }
    let table_len = u64::from(phentsize) * u64::from(phnum);
    let table_end = phoff
        .checked_add(table_len)
        .ok_or(ElfError::PhdrsOutOfRange)?;
    if table_end > prefix.len() as u64 || table_end > file_len {
        return Err(ElfError::PhdrsOutOfRange);
    }
    let phdrs = (0..usize::from(phnum)).map(|i| {
        // In bounds: the whole table lies inside `prefix` (checked above).
        let o = phoff as usize + i * usize::from(phentsize);
        Phdr {
            ty: rd32(prefix, o).unwrap_or(0),
            flags: rd32(prefix, o + 4).unwrap_or(0),
            offset: rd64(prefix, o + 8).unwrap_or(0),
            vaddr: rd64(prefix, o + 16).unwrap_or(0),
            filesz: rd64(prefix, o + 32).unwrap_or(0),
            memsz: rd64(prefix, o + 40).unwrap_or(0),
        }
    });

    let mut interp = None;
    if let Some(p) = phdrs.clone().find(|p| p.ty == PT_INTERP) {
        let end = p.offset.checked_add(p.filesz).ok_or(ElfError::BadSegment)?;
        if p.filesz < 2 || p.filesz > MAX_INTERP_LEN || end > file_len {
            return Err(ElfError::BadSegment);
        }
        interp = Some((p.offset, p.filesz));
    }

    let mut loads: Vec<LoadSegment> = Vec::new();
    let mut tls = None;
    let mut pt_phdr = None;
    let mut stack_exec = false;
    for ph in phdrs {
        match ph.ty {
            PT_LOAD => {
                let seg = segment(&ph, file_len)?;
                if ph.vaddr.wrapping_sub(ph.offset) % PAGE_SIZE != 0
                    || ph.vaddr.saturating_add(ph.memsz) > USER_LIMIT
                {
                    return Err(ElfError::BadSegment);
                }
                if seg.memsz != 0 {
                    loads.push(seg);
                }
            }
            PT_TLS => {
                let seg = segment(&ph, file_len)?;
                tls = tls.or(Some(seg));
            }
            PT_PHDR => pt_phdr = pt_phdr.or(Some(ph.vaddr)),
            PT_GNU_STACK => stack_exec = ph.flags & PF_X != 0,
            _ => {}
        }
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    loads.sort_unstable_by_key(|s| s.vaddr);
    if loads
        .windows(2)
        .any(|w| w[0].vaddr + w[0].memsz > w[1].vaddr)
    {
        return Err(ElfError::BadSegment);
    }
    let phdr_vaddr = pt_phdr.or_else(|| {
        loads
            .iter()
            .find(|s| phoff >= s.offset && phoff - s.offset < s.filesz)
            .map(|s| s.vaddr + (phoff - s.offset))
    });
    let min_vaddr = crate::align_down(loads[0].vaddr, PAGE_SIZE);
    let last = loads[loads.len() - 1];
    // Below USER_LIMIT, so rounding up cannot overflow.
    let max_vaddr =
        crate::align_up(last.vaddr + last.memsz, PAGE_SIZE).ok_or(ElfError::BadSegment)?;
    Ok(ElfInfo {
        kind,
        entry,
        phoff,
        phentsize,
        phnum,
        loads,
        phdr_vaddr,
        tls,
        stack_exec,
        min_vaddr,
        max_vaddr,
        interp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    #[derive(Clone, Copy)]
    struct Ph {
        ty: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
    }

    fn ph(ty: u32, flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph {
            ty,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
        }
    }

    /// ELF header + program headers at offset 64, padded to `total` bytes.
    fn image(e_type: u16, machine: u16, entry: u64, phs: &[Ph], total: usize) -> Vec<u8> {
        image_stride(e_type, machine, entry, phs, total, 56)
    }

    fn image_stride(
        e_type: u16,
        machine: u16,
        entry: u64,
        phs: &[Ph],
        total: usize,
        stride: usize,
    ) -> Vec<u8> {
        let mut b = vec![0u8; total.max(64 + stride * phs.len())];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&(stride as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for (i, p) in phs.iter().enumerate() {
            let o = 64 + stride * i;
            b[o..o + 4].copy_from_slice(&p.ty.to_le_bytes());
            b[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
            b[o + 8..o + 16].copy_from_slice(&p.offset.to_le_bytes());
            b[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
            b[o + 24..o + 32].copy_from_slice(&p.vaddr.to_le_bytes());
            b[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
            b[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
            b[o + 48..o + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        b
    }

    fn typical() -> Vec<Ph> {
        vec![
            ph(PT_LOAD, PF_R, 0, 0x400000, 0x300, 0x300),
            ph(PT_LOAD, PF_R | PF_X, 0x1000, 0x401000, 0x2000, 0x2000),
            ph(PT_LOAD, PF_R | PF_W, 0x3100, 0x404100, 0x200, 0x1000),
            ph(PT_TLS, PF_R, 0x3100, 0x404100, 0x10, 0x40),
            ph(PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0),
        ]
    }

    fn parse_img(b: &[u8]) -> Result<ElfInfo, ElfError> {
        parse(b, b.len() as u64)
    }

    #[test]
    fn static_exec() {
        let b = image(ET_EXEC, EM_X86_64, 0x401000, &typical(), 0x4000);
        let i = parse_img(&b).unwrap();
        assert_eq!(i.kind, ElfKind::Exec);
        assert_eq!(i.entry, 0x401000);
        assert_eq!((i.phoff, i.phentsize, i.phnum), (64, 56, 5));
        assert_eq!(i.loads.len(), 3);
        assert_eq!(
            i.loads[1],
            LoadSegment {
                vaddr: 0x401000,
                memsz: 0x2000,
                filesz: 0x2000,
                offset: 0x1000,
                prot: PROT_READ | PROT_EXEC
            }
        );
        assert_eq!(i.loads[2].prot, PROT_READ | PROT_WRITE);
        assert_eq!(i.phdr_vaddr, Some(0x400040));
        assert_eq!(i.tls.unwrap().memsz, 0x40);
        assert!(!i.stack_exec);
        assert_eq!(i.min_vaddr, 0x400000);
        assert_eq!(i.max_vaddr, 0x406000);
    }

    #[test]
    fn static_pie_with_pt_phdr_and_exec_stack() {
        let mut phs = vec![ph(PT_PHDR, PF_R, 64, 0x40, 56 * 3, 56 * 3)];
        phs.push(ph(PT_LOAD, PF_R | PF_X, 0, 0, 0x1800, 0x1800));
        phs.push(ph(PT_GNU_STACK, PF_R | PF_W | PF_X, 0, 0, 0, 0));
        let b = image(ET_DYN, EM_X86_64, 0x1000, &phs, 0x1800);
        let i = parse_img(&b).unwrap();
        assert_eq!(i.kind, ElfKind::StaticPie);
        assert_eq!(i.phdr_vaddr, Some(0x40));
        assert!(i.stack_exec);
        assert_eq!(i.tls, None);
        assert_eq!((i.min_vaddr, i.max_vaddr), (0, 0x2000));
    }

    #[test]
    fn loads_sorted_and_phdr_not_mapped() {
        let phs = [
            ph(PT_LOAD, PF_R | PF_W, 0x2000, 0x602000, 0x100, 0x100),
            ph(PT_LOAD, PF_R | PF_X, 0x1000, 0x401000, 0x100, 0x100),
            ph(PT_LOAD, PF_R, 0x1000, 0x700000, 0, 0), // empty: dropped
        ];
        let b = image(ET_EXEC, EM_X86_64, 0x401000, &phs, 0x3000);
        let i = parse_img(&b).unwrap();
        assert_eq!(i.loads.len(), 2);
        assert_eq!(i.loads[0].vaddr, 0x401000);
        assert_eq!(i.phdr_vaddr, None);
        assert_eq!((i.min_vaddr, i.max_vaddr), (0x401000, 0x603000));
    }

    #[test]
    fn header_errors() {
        let good = image(ET_EXEC, EM_X86_64, 0x401000, &typical(), 0x4000);
        assert_eq!(parse_img(&good[..63]), Err(ElfError::TooShort));
        assert_eq!(parse(&good, 10), Err(ElfError::TooShort));
        let mut b = good.clone();
        b[1] = b'F';
        assert_eq!(parse_img(&b), Err(ElfError::NotElf));
        let mut b = good.clone();
        b[4] = 1;
        assert_eq!(parse_img(&b), Err(ElfError::Not64Bit));
        let mut b = good.clone();
        b[5] = 2;
        assert_eq!(parse_img(&b), Err(ElfError::NotLittleEndian));
        let b = image(ET_EXEC, 183, 0, &typical(), 0x4000);
        assert_eq!(parse_img(&b), Err(ElfError::WrongMachine(183)));
        let b = image(1, EM_X86_64, 0, &typical(), 0x4000);
        assert_eq!(parse_img(&b), Err(ElfError::NotExecutable(1)));
        let b = image(4, EM_X86_64, 0, &typical(), 0x4000);
        assert_eq!(parse_img(&b), Err(ElfError::NotExecutable(4)));
    }

    #[test]
    fn interpreter_is_reported() {
        for t in [ET_EXEC, ET_DYN] {
            let mut phs = typical();
            phs.insert(0, ph(PT_INTERP, PF_R, 0x200, 0x400200, 28, 28));
            let b = image(t, EM_X86_64, 0x401000, &phs, 0x4000);
            assert_eq!(parse_img(&b).map(|i| i.interp), Ok(Some((0x200, 28))));
            let mut bad = typical();
            bad.insert(0, ph(PT_INTERP, PF_R, 0x3ff0, 0x400200, 0x100, 0x100));
            let b = image(t, EM_X86_64, 0x401000, &bad, 0x4000);
            assert_eq!(parse_img(&b), Err(ElfError::BadSegment));
        }
    }

    #[test]
    fn phdr_errors() {
        let good = image(ET_EXEC, EM_X86_64, 0x401000, &typical(), 0x4000);
        // Table beyond the prefix.
        assert_eq!(
            parse(&good[..64 + 56 * 5 - 1], 0x4000),
            Err(ElfError::PhdrsOutOfRange)
        );
        let mut b = good.clone();
        b[54..56].copy_from_slice(&55u16.to_le_bytes());
        assert_eq!(parse_img(&b), Err(ElfError::PhdrsOutOfRange));
        let mut b = good.clone();
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_img(&b), Err(ElfError::PhdrsOutOfRange));
        let mut b = good.clone();
        b[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(parse_img(&b), Err(ElfError::PhdrsOutOfRange));
        let mut b = good.clone();
        b[56..58].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(parse_img(&b), Err(ElfError::NoLoadSegments));
        // Larger phentsize is fine (entries are strided).
        let b = image_stride(ET_EXEC, EM_X86_64, 0x401000, &typical(), 0x4000, 64);
        let i = parse_img(&b).unwrap();
        assert_eq!((i.phentsize, i.loads.len()), (64, 3));
        assert_eq!(i.tls.unwrap().vaddr, 0x404100);
        let only_stack = [ph(PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0)];
        let b = image(ET_EXEC, EM_X86_64, 0, &only_stack, 0x1000);
        assert_eq!(parse_img(&b), Err(ElfError::NoLoadSegments));
    }

    #[test]
    fn segment_errors() {
        let bad = [
            // filesz > memsz
            ph(PT_LOAD, PF_R, 0x1000, 0x401000, 0x200, 0x100),
            // file range beyond the file
            ph(PT_LOAD, PF_R, 0x1000, 0x401000, 0x4000, 0x4000),
            ph(PT_LOAD, PF_R, u64::MAX, 0x401000, 2, 2),
            // vaddr + memsz overflows
            ph(PT_LOAD, PF_R, 0x1000, u64::MAX - 0xfff, 0x10, 0x2000),
            // vaddr and offset not congruent mod 4096
            ph(PT_LOAD, PF_R, 0x1000, 0x401800, 0x10, 0x10),
            // beyond the user half
            ph(PT_LOAD, PF_R, 0x1000, USER_LIMIT - 0x1000, 0x10, 0x2000),
            // bad TLS
            ph(PT_TLS, PF_R, 0x1000, 0x401000, 0x20, 0x10),
        ];
        for p in bad {
            let mut phs = typical();
            phs.push(p);
            let b = image(ET_EXEC, EM_X86_64, 0x401000, &phs, 0x4000);
            assert_eq!(parse_img(&b), Err(ElfError::BadSegment));
        }
        // Overlapping loads.
        let phs = [
            ph(PT_LOAD, PF_R, 0x1000, 0x401000, 0x1000, 0x1000),
            ph(PT_LOAD, PF_R, 0x1000, 0x401000, 0x10, 0x10),
        ];
        let b = image(ET_EXEC, EM_X86_64, 0x401000, &phs, 0x4000);
        assert_eq!(parse_img(&b), Err(ElfError::BadSegment));
    }

    #[test]
    fn garbage_never_panics() {
        let good = image(ET_EXEC, EM_X86_64, 0x401000, &typical(), 0x400);
        let mut s = 0x1234_5678_9abc_def1u64;
        for _ in 0..20000 {
            let mut b = good.clone();
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let i = (s % b.len() as u64) as usize;
                b[i] = (s >> 32) as u8;
            }
            let cut = (s >> 40) as usize % (b.len() + 1);
            let _ = parse(&b[..cut], (s >> 20) % 0x800);
            let _ = parse(&b, b.len() as u64);
        }
    }

    #[test]
    fn display_messages() {
        assert_eq!(
            ElfError::Dynamic.to_string(),
            "dynamically linked (PT_INTERP) executables are not supported yet"
        );
        assert_eq!(
            ElfError::WrongMachine(40).to_string(),
            "wrong architecture (e_machine 40, expected x86-64)"
        );
        assert!(ElfError::NotExecutable(1).to_string().contains("e_type 1"));
    }

    #[test]
    fn real_busybox_if_present() {
        use std::io::Read;
        let Ok(mut f) = std::fs::File::open("/bin/busybox") else {
            return;
        };
        let Ok(meta) = f.metadata() else { return };
        let mut prefix = vec![0u8; 65536];
        let mut n = 0;
        while n < prefix.len() {
            match f.read(&mut prefix[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(_) => return,
            }
        }
        prefix.truncate(n);
        match parse(&prefix, meta.len()) {
            Ok(i) => {
                assert_eq!(i.kind, ElfKind::Exec);
                assert_ne!(i.entry, 0);
                assert!(i.loads.len() >= 2);
                assert!(i.loads.iter().any(|s| s.prot & PROT_EXEC != 0));
                assert!(i.min_vaddr < i.max_vaddr);
                assert!(i.phdr_vaddr.is_some());
            }
            Err(e) => panic!("busybox: {e}"),
        }
    }
}
