//! Decoding what the kernel posted in a channel slot into a `Request`, and the
//! proxy's `Response`. Anything the guest wrote is untrusted: an unknown kind is
//! an error (answered with EINVAL), never a panic.

use linux_abi::Errno;
use wire::{RequestKind, Slot};

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
    /// The application executed a new program, whose path is at `path`.
    Exec {
        path: u64,
    },
    /// The process forks; the child's region table is at `table`.
    Fork {
        table: u64,
    },
    /// The process ended with `status`, or of `signal` when non-zero.
    Exit {
        status: u64,
        signal: u64,
    },
    /// The process stopped on stop signal `signal`.
    Stop {
        signal: u64,
    },
    /// A step (`wire::FILEMAP_*`) of a shared mapping of descriptor `fd`.
    FileMap {
        op: u64,
        fd: u64,
        args: [u64; 4],
    },
}

/// The proxy's answer: `ret` and `aux` of the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub ret: i64,
    pub aux: Option<[u64; 4]>,
}

impl Response {
    pub(super) fn ret(ret: i64) -> Self {
        Response { ret, aux: None }
    }
    pub(super) fn err(e: Errno) -> Self {
        Response::ret(e.as_ret())
    }
    pub(super) fn clock() -> Self {
        Response {
            ret: 0,
            aux: Some([
                crate::sys::clock_ns(crate::sys::ClockId::Realtime),
                crate::sys::clock_ns(crate::sys::ClockId::Monotonic),
                0,
                0,
            ]),
        }
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
        RequestKind::Exec => Request::Exec { path: slot.args[0] },
        RequestKind::Fork => Request::Fork {
            table: slot.args[0],
        },
        RequestKind::Exit => Request::Exit {
            status: slot.args[0],
            signal: slot.args[1],
        },
        RequestKind::Stop => Request::Stop {
            signal: slot.args[0],
        },
        RequestKind::FileMap => Request::FileMap {
            op: slot.args[0],
            fd: slot.args[1],
            args: [slot.args[2], slot.args[3], slot.args[4], slot.args[5]],
        },
    })
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
        s.kind = RequestKind::Exec as u32;
        assert_eq!(decode(&s), Ok(Request::Exec { path: 1 }));
        s.kind = RequestKind::Exit as u32;
        assert_eq!(
            decode(&s),
            Ok(Request::Exit {
                status: 1,
                signal: 2
            })
        );
        s.kind = RequestKind::Stop as u32;
        s.args[0] = 20;
        assert_eq!(decode(&s), Ok(Request::Stop { signal: 20 }));
        s.kind = RequestKind::FileMap as u32;
        s.args = [1, 3, 8192, 0, 0, 0];
        assert_eq!(
            decode(&s),
            Ok(Request::FileMap {
                op: 1,
                fd: 3,
                args: [8192, 0, 0, 0]
            })
        );
        for kind in [0, 9, 0xdead_beef, u32::MAX] {
            s.kind = kind;
            assert_eq!(decode(&s), Err(kind));
        }
    }
}
