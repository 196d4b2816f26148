//! Executing one offloaded syscall on the application's behalf: refuse what is not
//! the proxy's to run, validate pointers against the mirror, answer readlink of
//! /proc/self/exe as Linux would for the application, and pass the rest to Linux.
//!
//! Checking and running are separate steps (`check`, then `Checked::run`) so
//! that the mirror's lock is held only while pointers are validated, never
//! while Linux executes a call that may block for a long time.

use linux_abi::mman::PROT_READ;
use linux_abi::syscalls_gen::{
    SYS_READLINK, SYS_READLINKAT, SYS_SETGID, SYS_SETGROUPS, SYS_SETREGID, SYS_SETRESGID,
    SYS_SETRESUID, SYS_SETREUID, SYS_SETUID,
};
use linux_abi::{Errno, Policy};

use super::user_mem::{UserMem, PATH_MAX};

/// A call whose pointer arguments were validated against the mirror: it may go
/// to Linux. Only `check` makes one.
#[derive(Debug)]
pub struct Checked {
    nr: u64,
    args: [u64; 6],
}

/// Validate syscall `nr(args)`. `Err(result)` when it is answered without Linux
/// (not offloaded, a bad pointer, readlink of /proc/self/exe).
pub fn check(
    nr: u64,
    args: &[u64; 6],
    user: &UserMem<'_>,
    exe: &[u8],
    pid: u32,
) -> Result<Checked, i64> {
    if linux_abi::policy(nr) != Policy::Offload {
        return Err(Errno::ENOSYS.as_ret());
    }
    if let Some(sig) = linux_abi::signature(nr) {
        if let Err(e) = user.validate(sig, args) {
            return Err(e.as_ret());
        }
    }
    if nr == u64::from(SYS_SETGROUPS) {
        // setgroups(size, list) has no signature in the table: its list is
        // `size` gid_t values.
        let len = u64::from(args[0] as u32).saturating_mul(4);
        if args[0] as i32 > 0 && !user.mirror.covers(args[1], len, PROT_READ) {
            return Err(Errno::EFAULT.as_ret());
        }
    }
    if let Some(r) = readlink_exe(nr, args, user, exe, pid) {
        return Err(r);
    }
    Ok(Checked { nr, args: *args })
}

impl Checked {
    /// Execute the call in Linux; returns the result or `-errno`.
    pub fn run(self) -> i64 {
        let Checked { nr, args } = self;
        if let Some(r) = setxid(nr, &args) {
            return r;
        }
        // SAFETY: the policy table only offloads calls that do not map, unmap or
        // remap memory (asserted in linux-abi's tests), and `check` verified that
        // every pointer argument the signature declares lies in mirrored guest RAM
        // (untyped pointers: inside the user window). The whole user window is
        // reserved by the proxy and holds nothing but mirrors of guest RAM and
        // PROT_NONE reservation, never a Rust object. Another worker may update
        // the mirror while this call runs; then Linux sees other guest pages or a
        // PROT_NONE hole (EFAULT), still never the proxy's own memory.
        unsafe { crate::sys::raw_syscall(nr, &args) }
    }
}

/// Execute syscall `nr(args)` (check, then run); returns the result or `-errno`.
#[cfg(test)]
pub fn execute(nr: u64, args: &[u64; 6], user: &UserMem<'_>, exe: &[u8], pid: u32) -> i64 {
    match check(nr, args, user, exe, pid) {
        Ok(c) => c.run(),
        Err(r) => r,
    }
}

/// The set*id calls change the credentials of the calling thread only; the
/// application expects them to apply to the whole process, as glibc's wrappers
/// (which signal every thread of the proxy to follow) do.
fn setxid(nr: u64, args: &[u64; 6]) -> Option<i64> {
    let nr = u32::try_from(nr).ok()?;
    // uid_t and gid_t are 32 bits: Linux ignores the upper half of the register.
    let id = |i: usize| args[i] as u32;
    // SAFETY: these wrappers take plain integers, except setgroups, whose list
    // `check` validated as a readable buffer in mirrored guest RAM (see `run`).
    let r = unsafe {
        match nr {
            SYS_SETUID => libc::setuid(id(0)),
            SYS_SETGID => libc::setgid(id(0)),
            SYS_SETREUID => libc::setreuid(id(0), id(1)),
            SYS_SETREGID => libc::setregid(id(0), id(1)),
            SYS_SETRESUID => libc::setresuid(id(0), id(1), id(2)),
            SYS_SETRESGID => libc::setresgid(id(0), id(1), id(2)),
            SYS_SETGROUPS => {
                // Linux takes an int count; a negative one is EINVAL there too.
                let Ok(n) = usize::try_from(args[0] as i32) else {
                    return Some(Errno::EINVAL.as_ret());
                };
                let list = if n == 0 {
                    std::ptr::null()
                } else {
                    args[1] as *const libc::gid_t
                };
                libc::setgroups(n, list)
            }
            _ => return None,
        }
    };
    Some(if r == 0 {
        0
    } else {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EPERM),
        )
    })
}

/// The application's view of `/proc/self/exe`: readlink and readlinkat of it (or of
/// `/proc/<proxy pid>/exe`, `/proc/thread-self/exe`) return the program's path,
/// not margay's.
fn readlink_exe(nr: u64, args: &[u64; 6], user: &UserMem<'_>, exe: &[u8], pid: u32) -> Option<i64> {
    let (path, buf, size) = match nr {
        n if n == u64::from(SYS_READLINK) => (args[0], args[1], args[2]),
        n if n == u64::from(SYS_READLINKAT) => (args[1], args[2], args[3]),
        _ => return None,
    };
    if path == 0 {
        return None;
    }
    let p = user.read_cstr(path, PATH_MAX - 1).ok()?;
    if !is_self_exe(&p, pid) {
        return None;
    }
    // bufsiz is an int; Linux refuses <= 0.
    let size = size as i32;
    if size <= 0 {
        return Some(Errno::EINVAL.as_ret());
    }
    let n = exe.len().min(size as usize);
    if n > 0 && user.write(buf, &exe[..n]).is_none() {
        return Some(Errno::EFAULT.as_ret());
    }
    Some(n as i64)
}

fn is_self_exe(path: &[u8], pid: u32) -> bool {
    path == b"/proc/self/exe"
        || path == b"/proc/thread-self/exe"
        || path == format!("/proc/{pid}/exe").as_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::mirror::tests::{entry, MEM};
    use super::super::mirror::Mirror;
    use super::*;
    use crate::guest_mem::GuestMem;
    use linux_abi::mman::{PROT_READ, PROT_WRITE};
    use linux_abi::syscalls_gen::*;

    #[test]
    fn only_offloaded_calls_run() {
        let ram = GuestMem::anonymous(MEM as usize);
        let mirror = Mirror::default();
        let user = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        for nr in [SYS_MMAP, SYS_MUNMAP, SYS_BRK, SYS_CLONE, SYS_EXIT_GROUP] {
            assert_eq!(execute(u64::from(nr), &[0; 6], &user, b"/x", 1), -38);
        }
        assert_eq!(execute(100_000, &[0; 6], &user, b"/x", 1), -38);
        // A real offloaded call, with a pointer outside the (empty) mirror.
        assert_eq!(
            execute(
                u64::from(SYS_UNAME),
                &[0x40_0000, 0, 0, 0, 0, 0],
                &user,
                b"/x",
                1
            ),
            -14
        );
        // And one without pointers.
        let pid = execute(u64::from(SYS_GETPPID), &[0; 6], &user, b"/x", 1);
        assert!(pid > 0);
    }

    #[test]
    fn readlink_of_proc_self_exe_names_the_application() {
        let ram = GuestMem::anonymous(MEM as usize);
        let mirror = Mirror::new(
            vec![entry(0x40_0000, 0x1000, 0x200_0000, PROT_READ | PROT_WRITE)],
            MEM,
        )
        .unwrap();
        let user = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        ram.write_bytes(0x200_0000, b"/proc/self/exe\0").unwrap();
        ram.write_bytes(0x200_0100, b"/proc/77/exe\0").unwrap();
        let exe = b"/usr/bin/app";
        let r = readlink_exe(
            u64::from(SYS_READLINK),
            &[0x40_0000, 0x40_0800, 64, 0, 0, 0],
            &user,
            exe,
            77,
        );
        assert_eq!(r, Some(12));
        assert_eq!(ram.read_bytes(0x200_0800, 12).unwrap(), exe);
        // Truncated to bufsiz, no NUL.
        ram.write_bytes(0x200_0800, &[0; 16]).unwrap();
        let r = readlinkat(&user, 0x40_0100, 4);
        assert_eq!(r, Some(4));
        assert_eq!(ram.read_bytes(0x200_0800, 5).unwrap(), b"/usr\0");
        assert_eq!(readlinkat(&user, 0x40_0100, 0), Some(-22));
        // Other paths go to Linux.
        ram.write_bytes(0x200_0200, b"/proc/78/exe\0").unwrap();
        assert_eq!(readlinkat(&user, 0x40_0200, 64), None);

        fn readlinkat(user: &UserMem<'_>, path: u64, size: u64) -> Option<i64> {
            readlink_exe(
                u64::from(SYS_READLINKAT),
                &[(-100i64) as u64, path, 0x40_0800, size, 0, 0],
                user,
                b"/usr/bin/app",
                77,
            )
        }
    }
}
