//! Linux errno values, and the one conversion from `Errno` to a syscall's `-errno` return.

/// An error a syscall returns, with its Linux number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[allow(clippy::upper_case_acronyms)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    EMFILE = 24,
    ENOTTY = 25,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EPIPE = 32,
    ERANGE = 34,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ETIMEDOUT = 110,
    EOPNOTSUPP = 95,
    EOVERFLOW = 75,
}

impl Errno {
    /// The value a syscall returns in `rax` for this error.
    pub const fn as_ret(self) -> i64 {
        -(self as i32 as i64)
    }

    /// The symbolic name, as strace prints it.
    pub const fn name(self) -> &'static str {
        errno_name(self as i32)
    }
}

/// Symbolic name of an errno number (as strace prints it), or "E?" if unknown.
pub const fn errno_name(n: i32) -> &'static str {
    match n {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        32 => "EPIPE",
        34 => "ERANGE",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        61 => "ENODATA",
        75 => "EOVERFLOW",
        88 => "ENOTSOCK",
        95 => "EOPNOTSUPP",
        98 => "EADDRINUSE",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        115 => "EINPROGRESS",
        _ => "E?",
    }
}

/// Result type of syscall handlers: a non-negative return value or an errno.
pub type SysResult = Result<u64, Errno>;

/// Convert a handler result into the raw `rax` value. This is the only place
/// where an `Errno` becomes `-errno`.
pub const fn to_raw(r: SysResult) -> u64 {
    match r {
        Ok(v) => v,
        Err(e) => e.as_ret() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_conversion() {
        assert_eq!(to_raw(Ok(5)), 5);
        assert_eq!(to_raw(Err(Errno::EFAULT)) as i64, -14);
        assert_eq!(Errno::ENOSYS.name(), "ENOSYS");
        assert_eq!(errno_name(9999), "E?");
    }
}
