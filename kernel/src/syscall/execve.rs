//! execve: replace the process's image in place. The new program is loaded
//! into a fresh address space while the old one still exists (so a program
//! that cannot be loaded leaves the caller intact), then the proxy closes
//! close-on-exec descriptors and learns the new /proc/self/exe, and the
//! thread leaves the kernel at the new entry point.

use crate::arch::trap::{self, FpuArea, UserRegs};
use crate::process::{self, SigAction};
use crate::shared::BootData;
use crate::uaccess::{self, UserPtr};
use alloc::vec::Vec;
use linux_abi::fs::{AT_FDCWD, PATH_MAX, X_OK};
use linux_abi::signal::SIG_IGN;
use linux_abi::syscalls_gen::SYS_FACCESSAT;
use linux_abi::{Errno, SysResult};

/// Linux's limits: MAX_ARG_STRINGS-ish count and the total size of strings.
const MAX_STRINGS: usize = 65536;
const MAX_TOTAL: usize = 2 << 20;

/// Read a NULL-terminated array of string pointers.
fn read_strings(array: UserPtr<u64>, total: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if array.is_null() {
        return Ok(out);
    }
    for i in 0..MAX_STRINGS as u64 {
        let ptr = UserPtr::<u8>::new(array.at(i).read()?);
        if ptr.is_null() {
            return Ok(out);
        }
        let s = ptr.read_cstring(MAX_TOTAL)?;
        *total += s.len() + 1;
        if *total > MAX_TOTAL {
            return Err(Errno::E2BIG);
        }
        out.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        out.push(s);
    }
    Err(Errno::E2BIG)
}

pub fn execve(path_ptr: UserPtr<u8>, argv: UserPtr<u64>, envp: UserPtr<u64>) -> SysResult {
    // Everything the load allocated is dropped before the thread leaves for
    // the new program (`resume` never returns, so nothing on this stack
    // would be).
    let regs = replace_image(path_ptr, argv, envp)?;
    trap::resume(&regs, &FpuArea::initial())
}

/// Load the new program and make it the process's image; the registers it
/// starts with.
fn replace_image(
    path_ptr: UserPtr<u8>,
    argv: UserPtr<u64>,
    envp: UserPtr<u64>,
) -> Result<UserRegs, Errno> {
    let mut path = path_ptr.read_cstring(PATH_MAX - 1)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    // /proc/self/exe is this program, not the proxy (busybox runs its applets so).
    let pid = process::with(|p| p.pid);
    let own = alloc::format!("/proc/{pid}/exe");
    let is_self =
        path == b"/proc/self/exe" || path == b"/proc/thread-self/exe" || path == own.as_bytes();
    if is_self {
        path = process::with(|p| p.exe.clone());
    }
    let mut total = path.len() + 1;
    let argv = read_strings(argv, &mut total)?;
    let envp = read_strings(envp, &mut total)?;
    // The program must exist and be executable: checked by Linux, on the
    // caller's own pointer (still mirrored), before anything is replaced.
    if !is_self {
        super::offload_result(
            u64::from(SYS_FACCESSAT),
            [AT_FDCWD as u64, path_ptr.addr(), u64::from(X_OK), 0, 0, 0],
        )
        .map_err(|e| if e == Errno::ELOOP { Errno::EACCES } else { e })?;
    }
    // The program is there: the other threads go (as on Linux) before the
    // image is replaced.
    process::other_threads_exit(true);
    let mut params = crate::shared::boot_params().map_err(|_| Errno::EINVAL)?;
    params.proxy_pid = process::with(|p| p.pid);
    let bd = BootData {
        path: path.clone(),
        argv,
        envp,
    };
    let loaded = match crate::loader::load(&bd, &params, process::with(|p| p.aspace.region_table()))
    {
        Ok(l) => l,
        Err(msg) => {
            // The old image stays: give the proxy its mirror back.
            process::with(|p| p.aspace.publish());
            crate::kprintln!(
                "execve {}: {msg}",
                core::str::from_utf8(&path).unwrap_or("?")
            );
            return Err(Errno::ENOEXEC);
        }
    };
    // Past this point the old image is gone. Tell the proxy (the path is
    // written at the bottom of the new stack, which the proxy now mirrors).
    let scratch = wire::STACK_TOP - wire::STACK_SIZE;
    let mut p0 = path.clone();
    p0.push(0);
    let _ = uaccess::fill_user(&loaded.process.aspace, scratch, &p0);
    crate::ikc::call(wire::RequestKind::Exec, 0, [scratch, 0, 0, 0, 0, 0], [0; 4]);
    let _ = uaccess::zero_user(&loaded.process.aspace, scratch, p0.len() as u64);
    // POSIX timers are deleted; signalfds closed on exec are forgotten.
    crate::alarm::on_exec();
    super::signalfd::on_exec();

    let (entry, sp) = (loaded.entry, loaded.sp);
    let new = loaded.process;
    let old = process::with(|p| {
        // Handlers are reset; ignored signals stay ignored (Linux).
        let mut actions = [SigAction::default(); 65];
        for (i, a) in p.sigactions.iter().enumerate() {
            if a.handler == SIG_IGN {
                actions[i].handler = SIG_IGN;
            }
        }
        let fresh = process::Process {
            pid: p.pid,
            sigactions: actions,
            ..new
        };
        core::mem::replace(p, fresh).aspace
    });
    let root = process::with(|p| {
        p.aspace.activate();
        p.aspace.root()
    });
    crate::sched::set_user_page_tables(root);
    old.destroy();
    if let Some(t) = crate::sched::current() {
        use core::sync::atomic::Ordering;
        t.clear_child_tid.store(0, Ordering::Release);
        t.robust_list.store(0, Ordering::Release);
    }
    crate::arch::load_user_segment_bases(0, 0);
    crate::sched::leave_kernel();
    Ok(UserRegs {
        rip: entry,
        rsp: sp,
        rflags: 0x202,
        ..UserRegs::default()
    })
}
