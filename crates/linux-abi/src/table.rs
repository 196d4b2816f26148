//! The syscall table's types and lookups: `SYSCALLS` is generated from the one
//! declarative table in `syscalls.rs` (`for_each_syscall!`), from which the
//! kernel generates its dispatch too.

#[allow(unused_imports)] // the table's struct names resolve here
use crate::uapi::*;
use core::mem::size_of;

/// Where a syscall is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Handled inside the LWK.
    Local,
    /// Forwarded to the proxy process on Linux, which executes it on the
    /// application's mirrored memory.
    Offload,
    /// Refused with ENOSYS (and one kmsg line); the reason says why.
    Unsupported(&'static str),
}

/// Reasons shared by many unsupported calls.
pub const NOT_ON_LWK: &str = "not supported on the LWK";
pub const PROXY_MEMORY: &str = "would change the proxy's memory, not the LWK's";

/// What one syscall argument is, for printing and pointer validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A signed integer.
    Int,
    /// Flags or other bit sets, printed in hex.
    Hex,
    /// A file mode, printed in octal.
    Mode,
    /// A file descriptor (or AT_FDCWD).
    Fd,
    /// A NUL-terminated path the kernel reads.
    Path,
    /// A buffer the kernel reads, whose length is the argument at this index.
    InBuf(u8),
    /// A buffer the kernel writes, whose length is the argument at this index.
    OutBuf(u8),
    /// A fixed-size object the kernel writes (the table names its struct); may be NULL where the call allows.
    Out(u16),
    /// A fixed-size object the kernel reads (the table names its struct); may be NULL where the call allows.
    In(u16),
    /// An array the kernel reads: the count (an int) is the argument at this
    /// index, the second value is the element size.
    InArray(u8, u16),
    /// An iovec array the kernel reads data from; count at this index.
    IovIn(u8),
    /// An iovec array the kernel writes data into; count at this index.
    IovOut(u8),
    /// Any other pointer: printed, not validated beyond being non-kernel.
    Ptr,
}

/// Properties of a call that the kernel or the host acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs(u16);

impl Attrs {
    pub const NONE: Attrs = Attrs(0);
    /// Not restarted after a SA_RESTART handler: waits that always fail with
    /// EINTR, and sleeps (Linux's list).
    pub const NO_RESTART: Attrs = Attrs(1 << 0);
    /// `--trace` shows the input buffer's data.
    pub const SHOW_IN: Attrs = Attrs(1 << 1);
    /// `--trace` shows the output buffer's data (as many bytes as the result).
    pub const SHOW_OUT: Attrs = Attrs(1 << 2);
    /// Returns an address (printed in hex).
    pub const RET_ADDR: Attrs = Attrs(1 << 3);
    /// Local, but the kernel forwards it to the proxy for targets outside the
    /// LWK (kill of another Linux process or a process group).
    pub const FORWARDED: Attrs = Attrs(1 << 4);
    /// Reads a symbolic link: the proxy answers for /proc/self/exe (the
    /// application's path, not margay's).
    pub const EXE_LINK: Attrs = Attrs(1 << 5);
    /// Opens a path: the proxy answers for the LWK's /proc and /sys views.
    pub const OPENS: Attrs = Attrs(1 << 6);
    /// Changes credentials, which the application expects for the whole
    /// process: the proxy runs it through libc's all-threads wrapper.
    pub const CREDS: Attrs = Attrs(1 << 7);
    /// Raises SIGPIPE with EPIPE (unless its flags say MSG_NOSIGNAL).
    pub const SIGPIPE: Attrs = Attrs(1 << 8);
    /// Local, but the kernel forwards it to the proxy when it acts on memory
    /// shared with Linux (a plugged file): the proxy runs it on its mirror of
    /// the same pages, where Linux's own keys (futex) match every process's.
    pub const HOST_SHARED: Attrs = Attrs(1 << 9);

    pub const fn with(self, other: Attrs) -> Attrs {
        Attrs(self.0 | other.0)
    }

    pub const fn has(self, other: Attrs) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One line of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub nr: u32,
    pub name: &'static str,
    pub policy: Policy,
    /// For local calls: the kernel's handler family (file under kernel/src/syscall/).
    pub family: Option<&'static str>,
    /// Argument kinds in order (`None`: not described).
    pub args: Option<&'static [Arg]>,
    pub attrs: Attrs,
}

const fn size16<T>() -> u16 {
    let s = size_of::<T>();
    assert!(s <= u16::MAX as usize);
    s as u16
}

macro_rules! policy {
    (offload) => {
        (Policy::Offload, None)
    };
    (local($family:ident $(, frame)?)) => {
        (Policy::Local, Some(stringify!($family)))
    };
    (unsupported($why:expr)) => {
        (Policy::Unsupported($why), None)
    };
}

macro_rules! arg {
    (InBuf $i:literal) => {
        Arg::InBuf($i)
    };
    (OutBuf $i:literal) => {
        Arg::OutBuf($i)
    };
    (IovIn $i:literal) => {
        Arg::IovIn($i)
    };
    (IovOut $i:literal) => {
        Arg::IovOut($i)
    };
    (InArray $i:literal, $t:ty) => {
        Arg::InArray($i, size16::<$t>())
    };
    (Out $t:ty) => {
        Arg::Out(size16::<$t>())
    };
    (In $t:ty) => {
        Arg::In(size16::<$t>())
    };
    ($k:ident) => {
        Arg::$k
    };
}

macro_rules! args {
    () => {
        None
    };
    ([ $( $kind:ident $( ( $($kp:tt)* ) )? ),* ]) => {
        Some(&[ $( arg!($kind $( $($kp)* )?) ),* ])
    };
}

macro_rules! syscall_entries {
    ($(
        $nr:literal $name:ident $pol:ident $( ( $($pa:tt)* ) )?
        $( [ $( $kind:ident $( ( $($kp:tt)* ) )? ),* ] )?
        $( $attr:ident )* ;
    )*) => {
        /// Every syscall, sorted by number.
        pub static SYSCALLS: &[Syscall] = &[ $(
            {
                let (policy, family) = policy!($pol $( ( $($pa)* ) )?);
                Syscall {
                    nr: $nr,
                    name: stringify!($name),
                    policy,
                    family,
                    args: args!($( [ $( $kind $( ( $($kp)* ) )? ),* ] )?),
                    attrs: Attrs::NONE $( .with(Attrs::$attr) )*,
                }
            },
        )* ];

        /// Syscall numbers by their Linux names, as the table gives them.
        #[allow(non_upper_case_globals)]
        pub mod nr {
            $( pub const $name: u32 = $nr; )*
        }
    };
}

crate::for_each_syscall!(syscall_entries);

/// The number of the highest syscall Margay knows by name.
pub const MAX_SYSCALL: u32 = 511;

/// The table line of syscall `nr` (`None` for unassigned numbers).
pub fn syscall(nr: u64) -> Option<&'static Syscall> {
    let nr = u32::try_from(nr).ok()?;
    SYSCALLS
        .binary_search_by_key(&nr, |s| s.nr)
        .ok()
        .map(|i| &SYSCALLS[i])
}

/// Name of a syscall number (`None` for unassigned numbers).
pub fn name(nr: u64) -> Option<&'static str> {
    syscall(nr).map(|s| s.name)
}

/// Where syscall `nr` runs.
pub fn policy(nr: u64) -> Policy {
    syscall(nr).map_or(Policy::Unsupported("unknown syscall number"), |s| s.policy)
}

/// Argument kinds of syscall `nr`, in order (as many as the call takes).
/// Calls without them print as three hex arguments and are not validated.
pub fn signature(nr: u64) -> Option<&'static [Arg]> {
    syscall(nr)?.args
}

/// Attributes of syscall `nr` (none for unknown numbers).
pub fn attrs(nr: u64) -> Attrs {
    syscall(nr).map_or(Attrs::NONE, |s| s.attrs)
}

/// Whether syscall `nr`, cut short with EINTR, is restarted after a
/// SA_RESTART handler (or a stop).
pub fn restarts(nr: u64) -> bool {
    !attrs(nr).has(Attrs::NO_RESTART)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::syscalls_gen::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;
    use Arg::*;

    #[test]
    fn names_and_numbers_agree() {
        assert_eq!(name(0), Some("read"));
        assert_eq!(name(u64::from(SYS_EXIT_GROUP)), Some("exit_group"));
        assert_eq!(name(1000), None);
        assert_eq!(name(u64::MAX), None);
        assert!(SYSCALLS.windows(2).all(|w| w[0].nr < w[1].nr));
        assert!(SYSCALLS.iter().all(|s| s.nr <= MAX_SYSCALL));
        assert_eq!(nr::openat, SYS_OPENAT);
    }

    #[test]
    fn policies_of_core_calls() {
        assert_eq!(policy(u64::from(SYS_WRITE)), Policy::Offload);
        assert_eq!(policy(u64::from(SYS_OPENAT)), Policy::Offload);
        assert_eq!(policy(u64::from(SYS_BRK)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_MMAP)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_CLOCK_GETTIME)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_CLONE)), Policy::Local);
        assert_eq!(policy(u64::from(SYS_FORK)), Policy::Local);
        assert!(matches!(
            policy(u64::from(SYS_EXECVEAT)),
            Policy::Unsupported(_)
        ));
        assert!(matches!(policy(1000), Policy::Unsupported(_)));
    }

    #[test]
    fn nothing_that_changes_the_proxy_memory_is_offloaded() {
        for n in [
            SYS_MMAP,
            SYS_MUNMAP,
            SYS_MPROTECT,
            SYS_BRK,
            SYS_MREMAP,
            SYS_CLONE,
            SYS_FORK,
            SYS_EXECVE,
            SYS_EXIT,
            SYS_EXIT_GROUP,
            SYS_ARCH_PRCTL,
            SYS_RT_SIGRETURN,
            SYS_RT_SIGACTION,
            SYS_SHMAT,
            SYS_PTRACE,
            SYS_PRCTL,
            SYS_ALARM,
            SYS_SETITIMER,
        ] {
            assert_ne!(
                policy(u64::from(n)),
                Policy::Offload,
                "{:?}",
                name(u64::from(n))
            );
        }
    }

    #[test]
    fn every_local_call_has_a_family_and_arguments() {
        for s in SYSCALLS {
            assert_eq!(s.policy == Policy::Local, s.family.is_some(), "{}", s.name);
            if s.policy == Policy::Local {
                assert!(s.args.is_some(), "{}", s.name);
            }
        }
    }

    #[test]
    fn buffer_lengths_point_at_real_arguments() {
        for s in SYSCALLS {
            if let Some(sig) = s.args {
                assert!(sig.len() <= 6);
                for a in sig {
                    if let InBuf(i) | OutBuf(i) | IovIn(i) | IovOut(i) | InArray(i, _) = *a {
                        assert!(usize::from(i) < sig.len(), "{}", s.name);
                    }
                }
            }
        }
        assert_eq!(
            signature(u64::from(SYS_PREAD64)),
            Some(&[Fd, OutBuf(2), Int, Int][..])
        );
        // Struct sizes, once magic numbers.
        assert_eq!(signature(u64::from(SYS_FSTAT)), Some(&[Fd, Out(144)][..]));
        assert_eq!(signature(u64::from(SYS_UNAME)), Some(&[Out(390)][..]));
        assert_eq!(
            signature(u64::from(SYS_SETGROUPS)),
            Some(&[Int, InArray(0, 4)][..])
        );
    }

    #[test]
    fn restart_and_attributes() {
        assert!(restarts(u64::from(SYS_READ)));
        assert!(!restarts(u64::from(SYS_PAUSE)));
        assert!(!restarts(u64::from(SYS_EPOLL_PWAIT)));
        assert!(attrs(u64::from(SYS_MMAP)).has(Attrs::RET_ADDR));
        assert!(attrs(u64::from(SYS_KILL)).has(Attrs::FORWARDED));
        assert!(!attrs(u64::from(SYS_KILL)).has(Attrs::CREDS));
    }

    /// The README's list of local and unsupported calls, from the table.
    fn readme_list() -> String {
        let mut families: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in SYSCALLS {
            if let Some(f) = s.family {
                match families.iter_mut().find(|(n, _)| *n == f) {
                    Some((_, calls)) => calls.push(s.name),
                    None => families.push((f, std::vec![s.name])),
                }
            }
        }
        families.sort();
        let mut out =
            String::from("| family (kernel/src/syscall/...) | local calls |\n|---|---|\n");
        for (f, calls) in &families {
            out += &format!("| `{f}.rs` | {} |\n", calls.join(", "));
        }
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in SYSCALLS {
            if let Policy::Unsupported(r) = s.policy {
                match reasons.iter_mut().find(|(n, _)| *n == r) {
                    Some((_, calls)) => calls.push(s.name),
                    None => reasons.push((r, std::vec![s.name])),
                }
            }
        }
        out += "\nUnsupported (ENOSYS, one kmsg line):\n\n";
        for (r, calls) in &reasons {
            out += &format!("- {r}: {}\n", calls.join(", "));
        }
        out += "\nEvery other call is offloaded to the proxy.\n";
        out
    }

    #[test]
    fn readme_lists_the_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        let begin = "<!-- syscall table: generated, see crates/linux-abi/src/table.rs -->\n";
        let end = "<!-- end of syscall table -->";
        let want = readme_list();
        let (Some(b), Some(e)) = (readme.find(begin), readme.find(end)) else {
            panic!("README.md has no syscall table section; it should read:\n{begin}{want}{end}");
        };
        assert_eq!(
            &readme[b + begin.len()..e],
            want,
            "README.md's syscall table is out of date; it should read:\n{want}"
        );
    }
}
