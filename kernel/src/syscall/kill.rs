//! kill, tgkill, tkill: signals a process sends (to itself, another LWK
//! process, or through the proxy to any Linux process), and SIGPIPE after
//! an offloaded write that hit a pipe without readers.

use crate::process;
use linux_abi::net::MSG_NOSIGNAL;
use linux_abi::signal::{NSIG, SIGCONT, SIGKILL, SIGPIPE, SI_TKILL, SI_USER};
use linux_abi::syscalls_gen::{SYS_KILL, SYS_SENDMSG, SYS_SENDTO};
use linux_abi::table::Attrs;
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
