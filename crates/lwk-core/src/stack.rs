//! Linux x86-64 initial process stack: owns the layout of argc/argv/envp/auxv and the strings they point to.
//!
//! From `stack_top` downwards (as Linux `create_elf_tables` lays it out):
//!
//! ```text
//! stack_top -  8   8 zero bytes (end marker)
//!                  execfn string
//!                  envp strings   (envp[0] lowest)
//!                  argv strings   (argv[0] lowest; argv then envp strings are contiguous)
//!                  platform string (if any)
//!                  16 AT_RANDOM bytes
//!                  padding to 16 bytes
//!                  auxv pairs ... AT_NULL, 0
//!                  envp pointers ... NULL
//!                  argv pointers ... NULL
//! sp ->            argc
//! ```

use alloc::vec;
use alloc::vec::Vec;

pub const AT_NULL: u64 = 0;
pub const AT_IGNORE: u64 = 1;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// What goes on the initial stack.
pub struct InitialStack<'a> {
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    /// The caller's auxv entries, without `AT_NULL`, `AT_RANDOM`, `AT_EXECFN` and
    /// `AT_PLATFORM` (the builder appends those; such keys given here are dropped).
    pub auxv: &'a [(u64, u64)],
    pub random: [u8; 16],
    pub execfn: &'a [u8],
    /// `AT_PLATFORM` string (e.g. `b"x86_64"`); empty means no `AT_PLATFORM` entry.
    pub platform: &'a [u8],
}

/// Errors from [`build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The image exceeds `max_bytes` (or does not fit below `stack_top`).
    TooBig,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("argument list too long for the initial stack")
    }
}

/// Addresses inside the built stack (useful for `/proc/self/cmdline`-like bookkeeping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackLayout {
    /// Initial `rsp`: points at argc, 16-byte aligned.
    pub sp: u64,
    /// `[argv_start, argv_end)`: the NUL-terminated argv strings.
    pub argv_start: u64,
    pub argv_end: u64,
    /// `[envp_start, envp_end)`: the NUL-terminated envp strings.
    pub envp_start: u64,
    pub envp_end: u64,
    /// Address of the execfn string (`AT_EXECFN`).
    pub execfn: u64,
    /// Address of the 16 random bytes (`AT_RANDOM`).
    pub random: u64,
    /// Address of the platform string (`AT_PLATFORM`), if any.
    pub platform: Option<u64>,
}

/// Lay out the stack ending at `stack_top` (exclusive). Returns the bytes to copy to
/// `[sp, stack_top)` and `sp` (pointing at argc, 16-byte aligned). At most `max_bytes`.
pub fn build(
    stack_top: u64,
    s: &InitialStack,
    max_bytes: usize,
) -> Result<(Vec<u8>, u64), StackError> {
    build_layout(stack_top, s, max_bytes).map(|(img, l)| (img, l.sp))
}

fn strings_len(v: &[&[u8]]) -> Option<u64> {
    v.iter().try_fold(0u64, |acc, s| {
        acc.checked_add(s.len() as u64)?.checked_add(1)
    })
}

/// Like [`build`], also returning where everything went.
pub fn build_layout(
    stack_top: u64,
    s: &InitialStack,
    max_bytes: usize,
) -> Result<(Vec<u8>, StackLayout), StackError> {
    const E: StackError = StackError::TooBig;
    let sub = |a: u64, b: u64| a.checked_sub(b).ok_or(E);

    let strings_top = sub(stack_top, 8)?;
    let execfn = sub(strings_top, s.execfn.len() as u64 + 1)?;
    let envp_end = execfn;
    let envp_start = sub(envp_end, strings_len(s.envp).ok_or(E)?)?;
    let argv_end = envp_start;
    let argv_start = sub(argv_end, strings_len(s.argv).ok_or(E)?)?;
    let (platform, below_platform) = if s.platform.is_empty() {
        (None, argv_start)
    } else {
        let p = sub(argv_start, s.platform.len() as u64 + 1)?;
        (Some(p), p)
    };
    let random = sub(below_platform, 16)?;

    let reserved = |k: u64| matches!(k, AT_NULL | AT_RANDOM | AT_EXECFN | AT_PLATFORM);
    let mut aux: Vec<(u64, u64)> = s
        .auxv
        .iter()
        .copied()
        .filter(|&(k, _)| !reserved(k))
        .collect();
    if let Some(p) = platform {
        aux.push((AT_PLATFORM, p));
    }
    aux.push((AT_RANDOM, random));
    aux.push((AT_EXECFN, execfn));
    aux.push((AT_NULL, 0));

    let argc = s.argv.len() as u64;
    let envc = s.envp.len() as u64;
    let words = argc
        .checked_add(envc)
        .and_then(|n| n.checked_add(3))
        .and_then(|n| n.checked_add(2 * aux.len() as u64))
        .and_then(|n| n.checked_mul(8))
        .ok_or(E)?;
    let sp = crate::align_down(sub(random, words)?, 16);
    let total = stack_top - sp;
    if total > max_bytes as u64 {
        return Err(E);
    }
    let mut img = vec![0u8; usize::try_from(total).map_err(|_| E)?];

    // All addresses below are in [sp, stack_top), so offsets are in bounds.
    let put = |img: &mut Vec<u8>, addr: u64, bytes: &[u8]| {
        let o = (addr - sp) as usize;
        img[o..o + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut img, execfn, s.execfn);
    if let Some(p) = platform {
        put(&mut img, p, s.platform);
    }
    put(&mut img, random, &s.random);

    let mut w = sp;
    let mut word = |img: &mut Vec<u8>, v: u64| {
        put(img, w, &v.to_le_bytes());
        w += 8;
    };
    word(&mut img, argc);
    let mut at = argv_start;
    for a in s.argv {
        word(&mut img, at);
        put(&mut img, at, a);
        at += a.len() as u64 + 1;
    }
    word(&mut img, 0);
    for e in s.envp {
        word(&mut img, at);
        put(&mut img, at, e);
        at += e.len() as u64 + 1;
    }
    word(&mut img, 0);
    for &(k, v) in &aux {
        word(&mut img, k);
        word(&mut img, v);
    }
    debug_assert_eq!(at, envp_end);
    Ok((
        img,
        StackLayout {
            sp,
            argv_start,
            argv_end,
            envp_start,
            envp_end,
            execfn,
            random,
            platform,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    struct Parsed {
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
        auxv: Vec<(u64, u64)>,
    }

    fn word(img: &[u8], sp: u64, addr: u64) -> u64 {
        let o = (addr - sp) as usize;
        u64::from_le_bytes(img[o..o + 8].try_into().unwrap())
    }

    fn cstr(img: &[u8], sp: u64, addr: u64) -> Vec<u8> {
        let o = (addr - sp) as usize;
        let n = img[o..].iter().position(|&b| b == 0).unwrap();
        img[o..o + n].to_vec()
    }

    fn parse(img: &[u8], sp: u64) -> Parsed {
        let argc = word(img, sp, sp);
        let mut p = sp + 8;
        let mut argv = Vec::new();
        for _ in 0..argc {
            argv.push(cstr(img, sp, word(img, sp, p)));
            p += 8;
        }
        assert_eq!(word(img, sp, p), 0);
        p += 8;
        let mut envp = Vec::new();
        loop {
            let q = word(img, sp, p);
            p += 8;
            if q == 0 {
                break;
            }
            envp.push(cstr(img, sp, q));
        }
        let mut auxv = Vec::new();
        loop {
            let k = word(img, sp, p);
            let v = word(img, sp, p + 8);
            p += 16;
            auxv.push((k, v));
            if k == AT_NULL {
                break;
            }
        }
        Parsed { argv, envp, auxv }
    }

    fn aux(p: &Parsed, k: u64) -> Option<u64> {
        p.auxv.iter().find(|e| e.0 == k).map(|e| e.1)
    }

    const TOP: u64 = 0x7fff_ffff_f000;

    #[test]
    fn round_trip() {
        let argv: [&[u8]; 3] = [b"/bin/busybox", b"sh", b"-c"];
        let envp: [&[u8]; 2] = [b"PATH=/bin", b"HOME=/"];
        let auxv = [(AT_PAGESZ, 4096), (AT_ENTRY, 0x401000), (AT_PHNUM, 10)];
        let random: [u8; 16] = core::array::from_fn(|i| i as u8 + 0xa0);
        let s = InitialStack {
            argv: &argv,
            envp: &envp,
            auxv: &auxv,
            random,
            execfn: b"/bin/busybox",
            platform: b"x86_64",
        };
        let (img, l) = build_layout(TOP, &s, 1 << 20).unwrap();
        let sp = l.sp;
        assert_eq!(sp % 16, 0);
        assert_eq!(img.len() as u64, TOP - sp);
        let p = parse(&img, sp);
        assert_eq!(p.argv, argv.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        assert_eq!(p.envp, envp.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        assert_eq!(aux(&p, AT_PAGESZ), Some(4096));
        assert_eq!(aux(&p, AT_ENTRY), Some(0x401000));
        assert_eq!(aux(&p, AT_PHNUM), Some(10));
        assert_eq!(p.auxv.last(), Some(&(AT_NULL, 0)));
        let r = aux(&p, AT_RANDOM).unwrap();
        assert_eq!(r, l.random);
        let o = (r - sp) as usize;
        assert_eq!(img[o..o + 16], random);
        assert_eq!(cstr(&img, sp, aux(&p, AT_EXECFN).unwrap()), b"/bin/busybox");
        assert_eq!(cstr(&img, sp, aux(&p, AT_PLATFORM).unwrap()), b"x86_64");
        // Strings are contiguous and at the top.
        assert_eq!(cstr(&img, sp, l.argv_start), b"/bin/busybox");
        assert_eq!(l.argv_end, l.envp_start);
        assert_eq!(l.envp_end - l.envp_start, 10 + 7);
        assert_eq!(img[img.len() - 8..], [0u8; 8]);
        assert!(l.execfn > l.envp_start && l.random < l.argv_start);
        // build() agrees.
        let (img2, sp2) = build(TOP, &s, 1 << 20).unwrap();
        assert_eq!((img2, sp2), (img, sp));
    }

    #[test]
    fn empty_and_reserved_keys_dropped() {
        let auxv = [(AT_NULL, 0), (AT_RANDOM, 1), (AT_UID, 1000), (AT_EXECFN, 5)];
        let s = InitialStack {
            argv: &[],
            envp: &[],
            auxv: &auxv,
            random: [7; 16],
            execfn: b"",
            platform: b"",
        };
        for top in [TOP, TOP - 8, TOP - 3] {
            let (img, sp) = build(top, &s, 4096).unwrap();
            assert_eq!(sp % 16, 0);
            assert_eq!(img.len() as u64, top - sp);
            let p = parse(&img, sp);
            assert!(p.argv.is_empty() && p.envp.is_empty());
            assert_eq!(aux(&p, AT_UID), Some(1000));
            assert_eq!(aux(&p, AT_PLATFORM), None);
            assert_eq!(p.auxv.iter().filter(|e| e.0 == AT_RANDOM).count(), 1);
            assert_eq!(p.auxv.iter().filter(|e| e.0 == AT_EXECFN).count(), 1);
            assert_eq!(p.auxv.len(), 4); // UID, RANDOM, EXECFN, NULL
            let r = (aux(&p, AT_RANDOM).unwrap() - sp) as usize;
            assert_eq!(img[r..r + 16], [7; 16]);
            assert_eq!(cstr(&img, sp, aux(&p, AT_EXECFN).unwrap()), b"");
        }
    }

    #[test]
    fn alignment_for_all_parities() {
        let strs: [&[u8]; 4] = [b"a", b"bb", b"ccc", b"dddd"];
        for na in 0..4 {
            for ne in 0..4 {
                for naux in 0..3 {
                    let auxv = [(AT_PAGESZ, 4096), (AT_CLKTCK, 100)];
                    let s = InitialStack {
                        argv: &strs[..na],
                        envp: &strs[..ne],
                        auxv: &auxv[..naux],
                        random: [1; 16],
                        execfn: strs[na % 4],
                        platform: if na % 2 == 0 { b"x86_64" } else { b"" },
                    };
                    let (img, sp) = build(TOP, &s, 4096).unwrap();
                    assert_eq!(sp % 16, 0);
                    let p = parse(&img, sp);
                    assert_eq!(p.argv.len(), na);
                    assert_eq!(p.envp.len(), ne);
                    assert_eq!(p.auxv.len(), naux + 3 + usize::from(na % 2 == 0));
                }
            }
        }
    }

    #[test]
    fn too_big() {
        let long = [b'x'; 3000];
        let argv: [&[u8]; 2] = [&long, &long];
        let s = InitialStack {
            argv: &argv,
            envp: &[],
            auxv: &[],
            random: [0; 16],
            execfn: b"/x",
            platform: b"x86_64",
        };
        assert_eq!(build(TOP, &s, 4096), Err(StackError::TooBig));
        let (img, _) = build(TOP, &s, 8192).unwrap();
        assert!(img.len() <= 8192);
        // Exact limit: fits at its own size, not one byte less.
        assert!(build(TOP, &s, img.len()).is_ok());
        assert_eq!(build(TOP, &s, img.len() - 1), Err(StackError::TooBig));
        // Does not fit below a tiny stack_top.
        assert_eq!(build(100, &s, 1 << 20), Err(StackError::TooBig));
        assert_eq!(build(0, &s, 1 << 20), Err(StackError::TooBig));
    }
}
