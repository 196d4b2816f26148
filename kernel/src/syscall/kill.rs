//! kill, tgkill, tkill, rt_sigqueueinfo, rt_tgsigqueueinfo: signals a process sends (to itself, another LWK
//! process, or through the proxy to any Linux process), and SIGPIPE after
//! an offloaded write that hit a pipe without readers.

use crate::process;
use crate::uaccess::UserPtr;
use linux_abi::net::MSG_NOSIGNAL;
use linux_abi::signal::{NSIG, SIGCONT, SIGKILL, SIGPIPE, SI_TKILL, SI_USER};
use linux_abi::syscalls_gen::{SYS_KILL, SYS_RT_SIGQUEUEINFO, SYS_SENDMSG, SYS_SENDTO};
use linux_abi::table::Attrs;
use linux_abi::uapi::siginfo;
use linux_abi::{Errno, SysResult};

pub fn kill(pid: i32, sig: i32) -> SysResult {
    let sig = u32::try_from(sig).map_err(|_| Errno::EINVAL)?;
    if sig > NSIG {
        return Err(Errno::EINVAL);
    }
    let me = process::with(|p| p.pid);
    let mine = me as i32;
    if pid == 0 || pid == -1 || pid == mine || pid == -mine {
        if sig != 0 {
            crate::signal::post_process(sig, SI_USER, u64::from(me));
        }
        return Ok(0);
    }
    // Another LWK process: posted here, so that stop signals stop it (Linux
    // would stop only its proxy) and nothing waits for the proxies. SIGCONT
    // goes through Linux: it continues the target's proxy, which passes it
    // on; SIGKILL goes both ways, so the proxy dies even while stopped.
    // (Only a stopped one's: a running proxy takes its process's Exit and
    // dies with SIGKILL itself; killed by Linux first, it would leave that
    // Exit posted for nobody, holding its slot and region table.)
    if let Ok(target) = u32::try_from(pid) {
        if let Some(e) = process::entry(target).filter(|_| sig != 0 && sig != SIGCONT) {
            crate::signal::post_to(target, sig, SI_USER, u64::from(me));
            if sig != SIGKILL || !e.stopped.load(core::sync::atomic::Ordering::Acquire) {
                return Ok(0);
            }
        }
    }
    // Another Linux process (or a process group): the proxy sends it (the
    // table marks kill FORWARDED).
    super::offload_result(
        u64::from(SYS_KILL),
        [pid as u64, u64::from(sig), 0, 0, 0, 0],
    )
}

pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> SysResult {
    let me = process::with(|p| p.pid);
    if tgid != 0 && u32::try_from(tgid) != Ok(me) {
        return Err(Errno::ESRCH);
    }
    let tid = u32::try_from(tid).map_err(|_| Errno::ESRCH)?;
    let sig = u32::try_from(sig).map_err(|_| Errno::EINVAL)?;
    crate::signal::send_to_thread(tid, sig, SI_TKILL)
}

pub fn tkill(tid: i32, sig: i32) -> SysResult {
    tgkill(0, tid, sig)
}

/// The process `id` names for rt_sigqueueinfo: a process, or (as Linux
/// accepts) a thread of the caller's own process. (LWK thread ids and Linux
/// pids share one number space, so another process's thread id is taken as
/// the Linux pid it may also be.)
fn lwk_process_of(id: u32) -> u32 {
    if process::entry(id).is_some() {
        return id;
    }
    let me = process::with(|p| p.pid);
    match crate::sched::find(id) {
        Some(t) if t.pid == me => me,
        _ => id,
    }
}

/// The siginfo of rt_sigqueueinfo/rt_tgsigqueueinfo: the caller's, with
/// `sig` as its number. Codes the kernel itself sends (si_code >= 0, and
/// SI_TKILL) may not be forged for another process (EPERM, as Linux).
fn queued_info(sig: i32, uinfo: UserPtr<siginfo>, to_self: bool) -> Result<siginfo, Errno> {
    let sig = u32::try_from(sig).map_err(|_| Errno::EINVAL)?;
    if sig > NSIG {
        return Err(Errno::EINVAL);
    }
    let mut info = uinfo.read()?;
    if (info.si_code >= 0 || info.si_code == SI_TKILL) && !to_self {
        return Err(Errno::EPERM);
    }
    info.si_signo = sig as i32;
    Ok(info)
}

/// rt_sigqueueinfo: `sig` with the caller's siginfo (sigqueue's value) to a
/// process; each instance of a real-time signal is queued.
pub fn rt_sigqueueinfo(pid: i32, sig: i32, uinfo: UserPtr<siginfo>) -> SysResult {
    let me = process::with(|p| p.pid);
    let target = lwk_process_of(u32::try_from(pid).map_err(|_| Errno::ESRCH)?);
    let info = queued_info(sig, uinfo, target == me)?;
    if process::entry(target).is_none() {
        // A Linux process: the proxy sends it (the table marks the call FORWARDED).
        return super::offload_result(
            u64::from(SYS_RT_SIGQUEUEINFO),
            [pid as u64, sig as u64, uinfo.addr(), 0, 0, 0],
        );
    }
    if info.si_signo != 0 {
        crate::signal::post_info(target, None, info, None, true)?;
    }
    Ok(0)
}

/// rt_tgsigqueueinfo: the same to one thread of the calling process.
pub fn rt_tgsigqueueinfo(tgid: i32, tid: i32, sig: i32, uinfo: UserPtr<siginfo>) -> SysResult {
    let me = process::with(|p| p.pid);
    if u32::try_from(tgid) != Ok(me) {
        return Err(Errno::ESRCH);
    }
    let info = queued_info(sig, uinfo, true)?;
    let tid = u32::try_from(tid).map_err(|_| Errno::EINVAL)?;
    let t = crate::sched::find(tid)
        .filter(|t| t.pid == me)
        .ok_or(Errno::ESRCH)?;
    if info.si_signo != 0 {
        crate::signal::post_info(me, Some(&t), info, None, true)?;
    }
    Ok(0)
}

/// Linux raises SIGPIPE when a write hits a pipe without readers (calls
/// marked SIGPIPE in the table; sends unless their flags say MSG_NOSIGNAL).
pub fn after_offload(nr: u64, args: [u64; 6], ret: u64) {
    if Errno::from_ret(ret as i64) != Some(Errno::EPIPE)
        || !linux_abi::attrs(nr).has(Attrs::SIGPIPE)
    {
        return;
    }
    let flags = match u32::try_from(nr) {
        Ok(SYS_SENDTO) => args[3],
        Ok(SYS_SENDMSG) => args[2],
        _ => 0,
    };
    if flags & u64::from(MSG_NOSIGNAL) != 0 {
        return;
    }
    if let Some(me) = crate::sched::current() {
        let pid = process::with(|p| p.pid);
        crate::signal::post_thread(&me, SIGPIPE, SI_USER, u64::from(pid));
    }
}
