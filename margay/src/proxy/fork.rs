//! Forking the proxy along with an LWK process: the child proxy gets the
//! parent's locks in a state it can release, drops the parent's mirror, and
//! serves the child process's region table until margay ends.

use std::sync::{Arc, PoisonError};

use linux_abi::Errno;
use wire::SHARED_PHYS;

use super::decode::Response;
use super::exec;
use super::serve::Shared;
use super::signals;

impl Shared {
    /// Fork this proxy for a forked LWK process: the child serves the process
    /// whose region table is at `table` (checked to lie in guest RAM).
    pub(super) fn fork(&self, table: u64) -> Response {
        let end = table.saturating_add(wire::REGION_TABLE_BYTES);
        let clear_of_shared = end <= SHARED_PHYS || table >= SHARED_PHYS + wire::SHARED_SIZE;
        let aligned = table.is_multiple_of(4096) && table >= 1 << 20 && clear_of_shared;
        if !aligned || self.ram.host_addr(table, wire::REGION_TABLE_BYTES).is_err() {
            return Response::err(Errno::EINVAL);
        }
        // Hold both locks across fork(): the child gets them in a state this
        // very thread can release (no other thread is copied into it).
        let mut mirror = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
        let app = self.app.write().unwrap_or_else(PoisonError::into_inner);
        let pid = crate::sys::fork();
        if pid != 0 {
            drop(app);
            drop(mirror);
            return Response::ret(pid);
        }
        // The child proxy: forget the parent's mirror, then serve the child.
        for e in mirror.mirror.entries() {
            let _ = self.window.release(e);
        }
        // The child maps what the parent maps, plugged files included.
        let files = mirror.files.clone();
        // Linux's fork counted the child's SysV attachments (the proxy's).
        let sysv = std::mem::take(&mut mirror.sysv);
        let child_app = exec::App {
            exe: app.exe.clone(),
            exe_id: app.exe_id,
            pid: std::process::id(),
            cpus: app.cpus,
        };
        drop(app);
        drop(mirror);
        signals::retarget(&self.ram, table);
        let child = Shared::for_table(
            Arc::clone(&self.ram),
            child_app,
            self.trace,
            self.window,
            table,
            files,
            sysv,
        );
        let _running = child.start();
        crate::sys::exit_after_margay()
    }
}
