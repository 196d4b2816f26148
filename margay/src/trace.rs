//! `--trace` lines: one strace-style line per system call, formatted from the
//! syscall table's argument kinds, e.g. `write(1, "hello\n", 6) = 6` or
//! `brk(0) = 0x4c9000 <lwk>`.

use std::fmt::Write as _;

use linux_abi::{Arg, Attrs};
use wire::{TRACE_LOCAL, TRACE_UNSUPPORTED};

/// Longest path printed before "...".
pub const PATH_CHARS: usize = 64;
/// Bytes of a data buffer printed before "...".
pub const DATA_CHARS: usize = 32;
const AT_FDCWD: i32 = -100;

/// Read access to the traced application's memory (fallible: any pointer may be bad).
pub trait UserRead {
    /// The NUL-terminated string at `addr`, at most `max` bytes; the flag says it
    /// was cut at `max`. `None` if unreadable.
    fn read_cstr(&self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)>;
    /// `len` bytes at `addr`, or `None` if any is unreadable.
    fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

/// Quote `bytes` as a C string literal.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    s
}

fn hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".into()
    } else {
        format!("{v:#x}")
    }
}

fn data(mem: &dyn UserRead, addr: u64, len: u64) -> String {
    let shown = len.min(DATA_CHARS as u64) as usize;
    match mem.read_bytes(addr, shown) {
        Some(b) => {
            let mut s = quote(&b);
            if len > shown as u64 {
                s.push_str("...");
            }
            s
        }
        None => ptr(addr),
    }
}

/// Format one argument of kind `kind` and value `v` (`args` for length lookups;
/// `attrs` say whether its data is worth showing).
fn arg(
    attrs: Attrs,
    kind: Arg,
    v: u64,
    args: &[u64; 6],
    result: i64,
    mem: &dyn UserRead,
) -> String {
    let len_of = |i: u8| args.get(usize::from(i)).copied().unwrap_or(0);
    match kind {
        Arg::Int => (v as i64).to_string(),
        Arg::Hex => hex(v),
        Arg::Mode => format!("{v:#o}"),
        Arg::Fd => {
            let fd = v as i32;
            if fd == AT_FDCWD {
                "AT_FDCWD".into()
            } else {
                fd.to_string()
            }
        }
        Arg::Path if v != 0 => match mem.read_cstr(v, PATH_CHARS) {
            Some((s, cut)) => {
                let mut q = quote(&s);
                if cut {
                    q.push_str("...");
                }
                q
            }
            None => ptr(v),
        },
        Arg::InBuf(i) if v != 0 && attrs.has(Attrs::SHOW_IN) => data(mem, v, len_of(i)),
        Arg::OutBuf(_) if v != 0 && result > 0 && attrs.has(Attrs::SHOW_OUT) => {
            data(mem, v, result as u64)
        }
        _ => ptr(v),
    }
}

/// Format the result: `-1 ENOENT` for errors, hex for addresses, else decimal.
pub fn result(attrs: Attrs, r: i64) -> String {
    if (-4095..=-1).contains(&r) {
        let errno = i32::try_from(-r).unwrap_or(0);
        format!("-1 {}", linux_abi::errno_name(errno))
    } else if attrs.has(Attrs::RET_ADDR) {
        hex(r as u64)
    } else {
        r.to_string()
    }
}

/// One trace line (without the newline) for syscall `nr(args) = result`, with the
/// `TRACE_*` `flags` shown as a trailing marker.
pub fn format_line(
    nr: u64,
    args: &[u64; 6],
    result_raw: u64,
    flags: u64,
    mem: &dyn UserRead,
) -> String {
    let r = result_raw as i64;
    let call = linux_abi::syscall(nr);
    let attrs = call.map_or(Attrs::NONE, |c| c.attrs);
    let mut line = match call {
        Some(c) => c.name.to_string(),
        None => format!("syscall_{nr}"),
    };
    line.push('(');
    let shown: Vec<String> = match call.and_then(|c| c.args) {
        Some(sig) => sig
            .iter()
            .zip(args.iter())
            .map(|(&k, &v)| arg(attrs, k, v, args, r, mem))
            .collect(),
        None => args[..3].iter().map(|&v| hex(v)).collect(),
    };
    line.push_str(&shown.join(", "));
    line.push_str(") = ");
    line.push_str(&result(attrs, r));
    if flags & TRACE_UNSUPPORTED != 0 {
        line.push_str(" <unsupported>");
    } else if flags & TRACE_LOCAL != 0 {
        line.push_str(" <lwk>");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_abi::syscalls_gen::*;
    use std::collections::BTreeMap;

    /// Fake memory: strings and buffers at fixed addresses.
    struct Fake(BTreeMap<u64, Vec<u8>>);

    impl UserRead for Fake {
        fn read_cstr(&self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
            let b = self.0.get(&addr)?;
            let s: Vec<u8> = b.iter().copied().take_while(|&c| c != 0).collect();
            if s.len() > max {
                Some((s[..max].to_vec(), true))
            } else {
                Some((s, false))
            }
        }
        fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            self.0.get(&addr)?.get(..len).map(<[u8]>::to_vec)
        }
    }

    fn mem() -> Fake {
        let mut m = BTreeMap::new();
        m.insert(0x1000, b"hello\n".to_vec());
        m.insert(0x2000, b"/etc/passwd\0".to_vec());
        m.insert(0x3000, vec![b'x'; 100]);
        m.insert(0x4000, b"a\"b\\c\x01\xff\0".to_vec());
        Fake(m)
    }

    fn line(nr: u32, args: [u64; 6], r: i64, flags: u64) -> String {
        format_line(u64::from(nr), &args, r as u64, flags, &mem())
    }

    #[test]
    fn common_calls() {
        assert_eq!(
            line(SYS_WRITE, [1, 0x1000, 6, 0, 0, 0], 6, 0),
            r#"write(1, "hello\n", 6) = 6"#
        );
        assert_eq!(
            line(SYS_BRK, [0; 6], 0x4c9000, TRACE_LOCAL),
            "brk(0) = 0x4c9000 <lwk>"
        );
        assert_eq!(
            line(
                SYS_OPENAT,
                [(-100i64) as u64, 0x2000, 0x80000, 0o644, 0, 0],
                -2,
                0
            ),
            r#"openat(AT_FDCWD, "/etc/passwd", 0x80000, 0o644) = -1 ENOENT"#
        );
        assert_eq!(line(SYS_CLOSE, [3, 0, 0, 0, 0, 0], 0, 0), "close(3) = 0");
        assert_eq!(
            line(SYS_FSTAT, [1, 0x7fff_0000, 0, 0, 0, 0], 0, 0),
            "fstat(1, 0x7fff0000) = 0"
        );
        assert_eq!(
            line(SYS_GETPID, [9; 6], 42, TRACE_LOCAL),
            "getpid() = 42 <lwk>"
        );
        assert_eq!(
            line(SYS_EXECVEAT, [0x11, 0, 0, 0, 0, 0], -38, TRACE_UNSUPPORTED),
            "execveat(0x11, 0, 0) = -1 ENOSYS <unsupported>"
        );
        assert_eq!(
            line(SYS_CLONE, [0x11, 0, 0, 0, 0, 0], 7, TRACE_LOCAL),
            "clone(0x11, NULL, NULL, NULL, 0) = 7 <lwk>"
        );
        assert_eq!(
            line(SYS_READ, [0, 0x1000, 4096, 0, 0, 0], 6, 0),
            r#"read(0, "hello\n", 4096) = 6"#
        );
        assert_eq!(
            line(SYS_READ, [0, 0x1000, 4096, 0, 0, 0], 0, 0),
            "read(0, 0x1000, 4096) = 0"
        );
    }

    #[test]
    fn long_bad_and_odd_arguments() {
        // Long paths and buffers are cut; unreadable pointers print as addresses.
        let l = line(SYS_STAT, [0x3000, 0, 0, 0, 0, 0], -2, 0);
        assert_eq!(
            l,
            format!("stat(\"{}\"..., NULL) = -1 ENOENT", "x".repeat(PATH_CHARS))
        );
        let l = line(SYS_WRITE, [1, 0x3000, 100, 0, 0, 0], 100, 0);
        assert_eq!(
            l,
            format!("write(1, \"{}\"..., 100) = 100", "x".repeat(DATA_CHARS))
        );
        assert_eq!(
            line(SYS_WRITE, [1, 0xbad0, 5, 0, 0, 0], -14, 0),
            "write(1, 0xbad0, 5) = -1 EFAULT"
        );
        assert_eq!(
            line(SYS_UNLINK, [0x4000, 0, 0, 0, 0, 0], 0, 0),
            r#"unlink("a\"b\\c\x01\xff") = 0"#
        );
        // Unknown numbers and calls without a signature.
        assert_eq!(
            line(600, [1, 2, 3, 4, 5, 6], -38, 0),
            "syscall_600(0x1, 0x2, 0x3) = -1 ENOSYS"
        );
        // Results outside the errno range are plain numbers.
        assert_eq!(
            line(SYS_LSEEK, [3, 0, 2, 0, 0, 0], -4096, 0),
            "lseek(3, 0, 2) = -4096"
        );
        assert_eq!(
            result(linux_abi::attrs(u64::from(SYS_MMAP)), -12),
            "-1 ENOMEM"
        );
        assert_eq!(
            line(
                SYS_MMAP,
                [0, 4096, 3, 0x22, u64::MAX, 0],
                0x7f00_0000,
                TRACE_LOCAL
            ),
            "mmap(0, 4096, 0x3, 0x22, -1, 0) = 0x7f000000 <lwk>"
        );
    }
}
