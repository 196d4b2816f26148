//! Executing one offloaded syscall on the application's behalf: refuse what is not
//! the proxy's to run, validate pointers against the mirror, answer readlink of
//! /proc/self/exe as Linux would for the application, and pass the rest to Linux.

use linux_abi::syscalls_gen::{SYS_READLINK, SYS_READLINKAT};
use linux_abi::{Errno, Policy};

use super::user_mem::{UserMem, PATH_MAX};

/// Execute syscall `nr(args)`; returns the result or `-errno`.
pub fn execute(nr: u64, args: &[u64; 6], user: &UserMem<'_>, exe: &[u8], pid: u32) -> i64 {
    if linux_abi::policy(nr) != Policy::Offload {
        return Errno::ENOSYS.as_ret();
    }
    if let Some(sig) = linux_abi::signature(nr) {
        if let Err(e) = user.validate(sig, args) {
            return e.as_ret();
        }
    }
    if let Some(r) = readlink_exe(nr, args, user, exe, pid) {
        return r;
    }
    // SAFETY: the policy table only offloads calls that do not map, unmap or
    // remap memory (asserted in linux-abi's tests), and every pointer argument the
    // signature declares was checked above to lie in mirrored guest RAM with the
    // needed permissions (untyped pointers: inside the reserved user window, where
    // unmirrored pages are PROT_NONE). The mirror is not changed until the call
    // returns, so Linux only touches guest pages, never the proxy's own memory.
    unsafe { crate::sys::raw_syscall(nr, args) }
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
