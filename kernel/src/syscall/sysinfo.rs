//! sysinfo: the LWK partition's memory and threads.

use crate::sched;
use crate::uaccess::UserPtr;
use linux_abi::uapi::sysinfo as Sysinfo;
use linux_abi::SysResult;

pub fn sysinfo(info: UserPtr<Sysinfo>) -> SysResult {
    let (free, total) = crate::mm::memory_summary();
    let v = Sysinfo {
        uptime: (crate::time::monotonic_ns() / 1_000_000_000) as i64,
        totalram: total,
        freeram: free,
        procs: u16::try_from(sched::thread_count()).unwrap_or(u16::MAX),
        mem_unit: 1,
        ..Sysinfo::default()
    };
    info.write(&v)?;
    Ok(0)
}
