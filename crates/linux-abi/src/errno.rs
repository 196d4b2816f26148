//! Linux errno values (from `linux-raw-sys`), and the one conversion from
//! `Errno` to a syscall's `-errno` return.

use linux_raw_sys::errno as raw;

macro_rules! errnos {
    ($($name:ident)*) => {
        /// An error a syscall returns, with its Linux number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(i32)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno {
            $($name = raw::$name as i32,)*
        }

        impl TryFrom<i32> for Errno {
            type Error = UnknownErrno;

            /// The `Errno` with Linux number `n` (positive).
            fn try_from(n: i32) -> Result<Self, UnknownErrno> {
                $(if n == Errno::$name as i32 {
                    return Ok(Errno::$name);
                })*
                Err(UnknownErrno(n))
            }
        }

        /// Symbolic name of an errno number (as strace prints it), or "E?" if unknown.
        pub const fn errno_name(n: i32) -> &'static str {
            $(if n == Errno::$name as i32 {
                return stringify!($name);
            })*
            "E?"
        }
    };
}

// Every Linux errno except the aliases EWOULDBLOCK (EAGAIN) and EDEADLOCK (EDEADLK).
errnos! {
    EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES
    EFAULT ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY
    ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE EDOM ERANGE EDEADLK ENAMETOOLONG ENOLCK
    ENOSYS ENOTEMPTY ELOOP ENOMSG EIDRM ECHRNG EL2NSYNC EL3HLT EL3RST ELNRNG EUNATCH ENOCSI
    EL2HLT EBADE EBADR EXFULL ENOANO EBADRQC EBADSLT EBFONT ENOSTR ENODATA ETIME ENOSR
    ENONET ENOPKG EREMOTE ENOLINK EADV ESRMNT ECOMM EPROTO EMULTIHOP EDOTDOT EBADMSG
    EOVERFLOW ENOTUNIQ EBADFD EREMCHG ELIBACC ELIBBAD ELIBSCN ELIBMAX ELIBEXEC EILSEQ
    ERESTART ESTRPIPE EUSERS ENOTSOCK EDESTADDRREQ EMSGSIZE EPROTOTYPE ENOPROTOOPT
    EPROTONOSUPPORT ESOCKTNOSUPPORT EOPNOTSUPP EPFNOSUPPORT EAFNOSUPPORT EADDRINUSE
    EADDRNOTAVAIL ENETDOWN ENETUNREACH ENETRESET ECONNABORTED ECONNRESET ENOBUFS EISCONN
    ENOTCONN ESHUTDOWN ETOOMANYREFS ETIMEDOUT ECONNREFUSED EHOSTDOWN EHOSTUNREACH EALREADY
    EINPROGRESS ESTALE EUCLEAN ENOTNAM ENAVAIL EISNAM EREMOTEIO EDQUOT ENOMEDIUM
    EMEDIUMTYPE ECANCELED ENOKEY EKEYEXPIRED EKEYREVOKED EKEYREJECTED EOWNERDEAD
    ENOTRECOVERABLE ERFKILL EHWPOISON
}

/// A number that is not a Linux errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownErrno(pub i32);

impl Errno {
    /// The value a syscall returns in `rax` for this error.
    pub const fn as_ret(self) -> i64 {
        -(self as i32 as i64)
    }

    /// The error a raw syscall return value (`-errno`) stands for; `None` for
    /// successes and values outside Linux's error range.
    pub fn from_ret(r: i64) -> Option<Errno> {
        if !(-4095..=-1).contains(&r) {
            return None;
        }
        i32::try_from(-r).ok().and_then(|n| Errno::try_from(n).ok())
    }

    /// The symbolic name, as strace prints it.
    pub const fn name(self) -> &'static str {
        errno_name(self as i32)
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
        assert_eq!(errno_name(11), "EAGAIN");
        assert_eq!(errno_name(115), "EINPROGRESS");
    }

    #[test]
    fn every_number_round_trips() {
        for n in (1..=133).filter(|n| ![41, 58].contains(n)) {
            let e = Errno::try_from(n).unwrap();
            assert_eq!(e as i32, n);
            assert_eq!(Errno::from_ret(-i64::from(n)), Some(e));
        }
        assert_eq!(Errno::try_from(0), Err(UnknownErrno(0)));
        assert_eq!(Errno::try_from(134), Err(UnknownErrno(134)));
        assert_eq!(Errno::from_ret(3), None);
        assert_eq!(Errno::from_ret(-4096), None);
        assert_eq!(Errno::EIO.as_ret(), -5);
    }
}
