//! Executing one offloaded syscall on the application's behalf: refuse what is not
//! the proxy's to run, validate pointers against the mirror, answer readlink of
//! /proc/self/exe as Linux would for the application, open the LWK's views of
//! /proc and /sys (`views`), and pass the rest to Linux.
//!
//! Checking and running are separate steps (`check`, then `Checked::run`) so
//! that the mirror's lock is held only while pointers are validated, never
//! while Linux executes a call that may block for a long time.

use linux_abi::syscalls_gen::{
    SYS_SETGID, SYS_SETGROUPS, SYS_SETREGID, SYS_SETRESGID, SYS_SETRESUID, SYS_SETREUID, SYS_SETUID,
};
use linux_abi::{Arg, Attrs, Errno, Policy};
use wire::{Header, HEADER_FREE_BYTES_OFF, HEADER_OFF, MAX_CPUS, SHARED_PHYS};

use linux_abi::creds::NGROUPS_MAX;
use linux_abi::mman::PROT_READ;

use super::user_mem::{UserMem, PATH_MAX};
use super::views::{self, FileId, Pending, View};
use crate::sys::Creds;

/// The size of one group id (gid_t) in setgroups's list.
const GID_SIZE: usize = core::mem::size_of::<libc::gid_t>();

/// What the proxy knows of its application.
#[derive(Clone, Debug)]
pub struct App {
    /// The executable's absolute path, for /proc/self/exe and /proc/self/maps.
    pub exe: Vec<u8>,
    pub exe_id: FileId,
    /// The proxy's pid, which is the application's.
    pub pid: u32,
    /// The partition's cores (`--cpus`), when the kernel's count is unusable.
    pub cpus: u32,
}

/// A call whose pointer arguments were validated against the mirror: it may go
/// to Linux (or open an LWK view). Only `check` makes one.
#[derive(Debug)]
pub struct Checked(Op);

#[derive(Debug)]
enum Op {
    Linux { nr: u64, args: [u64; 6] },
    View(Box<Pending>),
    Creds(Creds),
}

/// Validate syscall `nr(args)`. `Err(result)` when it is answered without Linux
/// (not offloaded, a bad pointer, readlink of /proc/self/exe, a refused open of
/// an LWK view).
pub fn check(nr: u64, args: &[u64; 6], user: &UserMem<'_>, app: &App) -> Result<Checked, i64> {
    let (exe, pid) = (&app.exe[..], app.pid);
    let Some(call) = linux_abi::syscall(nr) else {
        return Err(Errno::ENOSYS.as_ret());
    };
    // A FORWARDED call (kill) is local for the LWK's own pids; the kernel
    // forwards it only for other Linux processes (other LWK processes are
    // their proxies), which the proxy may signal like any process of the
    // application's user.
    let target = args[0] as i32;
    let forwarded = (call.attrs.has(Attrs::FORWARDED) && target != 0 && target != -1)
        || call.attrs.has(Attrs::HOST_SHARED);
    if call.policy != Policy::Offload && !forwarded {
        return Err(Errno::ENOSYS.as_ret());
    }
    if let Some(sig) = call.args {
        if let Err(e) = user.validate(sig, args) {
            return Err(e.as_ret());
        }
    }
    if call.attrs.has(Attrs::EXE_LINK) {
        if let Some(r) = readlink_exe(call.args, args, user, exe, pid) {
            return Err(r);
        }
    }
    if call.attrs.has(Attrs::OPENS) {
        if let Some(view) = open_view(call.args, args, user, app) {
            return view.map(|p| Checked(Op::View(Box::new(p))));
        }
    }
    if call.attrs.has(Attrs::CREDS) {
        if let Some(creds) = creds(nr, args, user) {
            return creds.map(|c| Checked(Op::Creds(c)));
        }
    }
    Ok(Checked(Op::Linux { nr, args: *args }))
}

impl Checked {
    /// Execute the call in Linux; returns the result or `-errno`.
    pub fn run(self) -> i64 {
        match self.0 {
            Op::Linux { nr, args } => crate::sys::forward_syscall(nr, &args),
            Op::View(p) => p.open(),
            Op::Creds(c) => match crate::sys::set_creds(&c) {
                Ok(()) => 0,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EPERM)),
            },
        }
    }
}

/// Execute syscall `nr(args)` (check, then run); returns the result or `-errno`.
#[cfg(test)]
pub fn execute(nr: u64, args: &[u64; 6], user: &UserMem<'_>, exe: &[u8], pid: u32) -> i64 {
    let app = App {
        exe: exe.to_vec(),
        exe_id: FileId::default(),
        pid,
        cpus: 1,
    };
    match check(nr, args, user, &app) {
        Ok(c) => c.run(),
        Err(r) => r,
    }
}

/// The set*id calls change the credentials of the calling thread only; the
/// application expects them to apply to the whole process, as glibc's wrappers
/// (which signal every thread of the proxy to follow) do. setgroups's list is
/// copied out of application memory here. `None`: not such a call.
fn creds(nr: u64, args: &[u64; 6], user: &UserMem<'_>) -> Option<Result<Creds, i64>> {
    let nr = u32::try_from(nr).ok()?;
    // uid_t and gid_t are 32 bits: Linux ignores the upper half of the register.
    let id = |i: usize| args[i] as u32;
    Some(Ok(match nr {
        SYS_SETUID => Creds::Uid(id(0)),
        SYS_SETGID => Creds::Gid(id(0)),
        SYS_SETREUID => Creds::ReUid(id(0), id(1)),
        SYS_SETREGID => Creds::ReGid(id(0), id(1)),
        SYS_SETRESUID => Creds::ResUid(id(0), id(1), id(2)),
        SYS_SETRESGID => Creds::ResGid(id(0), id(1), id(2)),
        SYS_SETGROUPS => {
            // Linux takes an int count; a negative or too large one is EINVAL.
            let n = match usize::try_from(args[0] as i32) {
                Ok(n) if n <= NGROUPS_MAX => n,
                _ => return Some(Err(Errno::EINVAL.as_ret())),
            };
            let raw = if n == 0 {
                Vec::new()
            } else {
                match user.read(args[1], n * GID_SIZE, PROT_READ) {
                    Some(raw) => raw,
                    None => return Some(Err(Errno::EFAULT.as_ret())),
                }
            };
            let list = raw
                .chunks_exact(GID_SIZE)
                .map(|g| u32::from_ne_bytes([g[0], g[1], g[2], g[3]]))
                .collect();
            Creds::Groups(list)
        }
        _ => return None,
    }))
}

/// The value of the first argument of kind `kind` in `sig`.
fn arg_of(sig: Option<&[Arg]>, args: &[u64; 6], kind: fn(&Arg) -> bool) -> Option<u64> {
    let i = sig?.iter().position(kind)?;
    args.get(i).copied()
}

/// The application's view of `/proc/self/exe`: a call reading a link
/// (`Attrs::EXE_LINK`: readlink, readlinkat) of it (or of `/proc/<proxy
/// pid>/exe`, `/proc/thread-self/exe`) returns the program's path, not
/// margay's. The path, buffer and size are found by their kinds in `sig`.
fn readlink_exe(
    sig: Option<&[Arg]>,
    args: &[u64; 6],
    user: &UserMem<'_>,
    exe: &[u8],
    pid: u32,
) -> Option<i64> {
    let path = arg_of(sig, args, |a| *a == Arg::Path)?;
    let buf = arg_of(sig, args, |a| matches!(a, Arg::OutBuf(_)))?;
    let size = match sig?.iter().find(|a| matches!(a, Arg::OutBuf(_))) {
        Some(Arg::OutBuf(i)) => args.get(usize::from(*i)).copied()?,
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

/// An open (`Attrs::OPENS`: open, openat, creat) of one of the LWK's /proc and
/// /sys views (`views::classify`): `None` for any other path, else what to
/// open or the error Linux would give. The flags follow the path (creat has
/// none: it is O_CREAT|O_WRONLY|O_TRUNC).
fn open_view(
    sig: Option<&[Arg]>,
    args: &[u64; 6],
    user: &UserMem<'_>,
    app: &App,
) -> Option<Result<Pending, i64>> {
    let sig = sig?;
    let at = sig.iter().position(|a| *a == Arg::Path)?;
    let path = args.get(at).copied()?;
    let flags = match sig.get(at + 1) {
        Some(Arg::Hex) => args.get(at + 1).copied()?,
        _ => (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
    };
    if path == 0 {
        return None;
    }
    let p = user.read_cstr(path, PATH_MAX - 1).ok()?;
    let view = views::classify(&p, app.pid)?;
    let cloexec = match views::open_mode(flags)? {
        Ok(c) => c,
        Err(e) => return Some(Err(e.as_ret())),
    };
    let (cpus, total, free) = partition(user, app.cpus);
    let regions = match view {
        View::Status | View::Maps => user.mirror.entries().to_vec(),
        _ => Vec::new(),
    };
    let files = match view {
        View::Maps => user.mirror.files().to_vec(),
        _ => Vec::new(),
    };
    Some(Ok(Pending {
        view,
        cloexec,
        cpus,
        total,
        free,
        regions,
        files,
        exe: app.exe.clone(),
        exe_id: app.exe_id,
    }))
}

/// The partition as the kernel publishes it in the header: cores online, usable
/// and free bytes. Values out of range fall back to `--cpus` and the RAM size.
fn partition(user: &UserMem<'_>, cpus: u32) -> (u32, u64, u64) {
    let size = user.ram.size();
    let hdr: Header = user
        .ram
        .read_obj(SHARED_PHYS + HEADER_OFF)
        .unwrap_or_default();
    let online = hdr.cpus_online;
    let cpus = if (1..=MAX_CPUS as u32).contains(&online) {
        online
    } else {
        cpus.clamp(1, MAX_CPUS as u32)
    };
    let total = if (1..=size).contains(&hdr.total_bytes) {
        hdr.total_bytes
    } else {
        size
    };
    let free = user
        .ram
        .load_u64(
            SHARED_PHYS + HEADER_OFF + HEADER_FREE_BYTES_OFF,
            std::sync::atomic::Ordering::Relaxed,
        )
        .unwrap_or(hdr.free_bytes)
        .min(total);
    (cpus, total, free)
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
    use wire::{Header, HEADER_OFF, SHARED_PHYS};

    /// Guest RAM with one writable page mirrored at 0x40_0000 (RAM 0x200_0000).
    fn one_page() -> (GuestMem, Mirror) {
        let ram = GuestMem::anonymous(MEM as usize);
        let page = entry(0x40_0000, 0x1000, 0x200_0000, PROT_READ | PROT_WRITE);
        (ram, Mirror::new(vec![page], MEM).unwrap())
    }

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

    /// Opens of the LWK views go through `check`: the header's values (or the
    /// fallbacks for garbage), the access mode, and other paths left to Linux.
    #[test]
    fn opens_of_views_describe_the_partition() {
        let (ram, mirror) = one_page();
        let user = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        let app = App {
            exe: b"/bin/app".to_vec(),
            exe_id: FileId::default(),
            pid: 77,
            cpus: 3,
        };
        ram.write_bytes(0x200_0000, b"//sys/devices/system/cpu/online\0")
            .unwrap();
        ram.write_bytes(0x200_0100, b"/proc/77/maps\0").unwrap();
        ram.write_bytes(0x200_0200, b"/proc/meminfo\0").unwrap();
        ram.write_bytes(0x200_0300, b"sys/devices/system/cpu/online\0")
            .unwrap();
        let read = |nr: u32, args: [u64; 6]| -> Result<String, i64> {
            let fd = check(u64::from(nr), &args, &user, &app).map(Checked::run)?;
            assert!(fd >= 0, "{fd}");
            let s = std::fs::read_to_string(format!("/proc/self/fd/{fd}")).unwrap();
            let closed =
                crate::sys::forward_syscall(u64::from(SYS_CLOSE), &[fd as u64, 0, 0, 0, 0, 0]);
            assert_eq!(closed, 0);
            Ok(s)
        };
        let at = |path: u64, flags: i32| [(-100i64) as u64, path, flags as u64, 0, 0, 0];
        let rdonly = libc::O_RDONLY | libc::O_CLOEXEC;
        // Garbage in the header (all zero): --cpus and the RAM size.
        assert_eq!(read(SYS_OPENAT, at(0x40_0000, rdonly)), Ok("0-2\n".into()));
        let m = read(SYS_OPEN, [0x40_0200, 0, 0, 0, 0, 0]).unwrap();
        assert!(
            m.starts_with("MemTotal:         131072 kB\nMemFree:               0 kB\n"),
            "{m}"
        );
        // What the kernel publishes.
        let mut hdr = Header {
            cpus_online: 2,
            total_bytes: 100 << 20,
            free_bytes: 1 << 40,
            ..Header::default()
        };
        ram.write_obj(SHARED_PHYS + HEADER_OFF, &hdr).unwrap();
        assert_eq!(read(SYS_OPENAT, at(0x40_0000, rdonly)), Ok("0-1\n".into()));
        let m = read(SYS_OPEN, [0x40_0200, 0, 0, 0, 0, 0]).unwrap();
        assert!(
            m.starts_with("MemTotal:         102400 kB\nMemFree:          102400 kB\n"),
            "{m}"
        );
        hdr.cpus_online = 1000;
        ram.write_obj(SHARED_PHYS + HEADER_OFF, &hdr).unwrap();
        assert_eq!(read(SYS_OPENAT, at(0x40_0000, rdonly)), Ok("0-2\n".into()));
        // The mirror's regions.
        let maps = read(SYS_OPENAT, at(0x40_0100, rdonly)).unwrap();
        assert_eq!(maps, "00400000-00401000 rw-p 00000000 00:00 0 \n");
        // Writes are refused; relative paths and O_PATH go to Linux.
        assert_eq!(read(SYS_OPENAT, at(0x40_0000, libc::O_RDWR)), Err(-13));
        assert_eq!(read(SYS_CREAT, [0x40_0200, 0o644, 0, 0, 0, 0]), Err(-13));
        assert!(check(u64::from(SYS_OPENAT), &at(0x40_0300, 0), &user, &app).is_ok());
        let c = check(
            u64::from(SYS_OPENAT),
            &at(0x40_0000, libc::O_PATH),
            &user,
            &app,
        );
        assert!(matches!(c, Ok(Checked(Op::Linux { .. }))));
    }

    /// set*id calls become process-wide credential changes; setgroups's list
    /// is copied out of the mirror while it is checked.
    #[test]
    fn setgroups_reads_its_list_from_the_mirror() {
        let (ram, mirror) = one_page();
        let user = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        let app = App {
            exe: b"/x".to_vec(),
            exe_id: FileId::default(),
            pid: 1,
            cpus: 1,
        };
        ram.write_bytes(0x200_0000, &[7, 0, 0, 0, 0, 1, 0, 0])
            .unwrap();
        let op = |nr: u32, args: [u64; 6]| check(u64::from(nr), &args, &user, &app).map(|c| c.0);
        let groups = op(SYS_SETGROUPS, [2, 0x40_0000, 0, 0, 0, 0]);
        assert!(matches!(groups, Ok(Op::Creds(Creds::Groups(g))) if g == [7, 256]));
        let none = op(SYS_SETGROUPS, [0, 0, 0, 0, 0, 0]);
        assert!(matches!(none, Ok(Op::Creds(Creds::Groups(g))) if g.is_empty()));
        assert!(matches!(
            op(SYS_SETGROUPS, [-1i64 as u64, 0, 0, 0, 0, 0]),
            Err(-22)
        ));
        assert!(matches!(
            op(SYS_SETGROUPS, [0x1_0000, 0x40_0000, 0, 0, 0, 0]),
            Err(-14)
        ));
        let res = op(SYS_SETRESUID, [1, u64::MAX, 3, 0, 0, 0]);
        assert!(matches!(res, Ok(Op::Creds(Creds::ResUid(1, u32::MAX, 3)))));
    }

    #[test]
    fn readlink_of_proc_self_exe_names_the_application() {
        let (ram, mirror) = one_page();
        let user = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        ram.write_bytes(0x200_0000, b"/proc/self/exe\0").unwrap();
        ram.write_bytes(0x200_0100, b"/proc/77/exe\0").unwrap();
        let exe = b"/usr/bin/app";
        let r = readlink_exe(
            linux_abi::signature(u64::from(SYS_READLINK)),
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
                linux_abi::signature(u64::from(SYS_READLINKAT)),
                &[(-100i64) as u64, path, 0x40_0800, size, 0, 0],
                user,
                b"/usr/bin/app",
                77,
            )
        }
    }
}
