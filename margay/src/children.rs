//! Keeping margay's children (QEMU and the proxy) from outliving it: every child is
//! registered while alive, killed and reaped by its guard's `Drop` on any path out,
//! killed by the signal thread when a terminal signal arrives, and killed by the
//! kernel (PR_SET_PDEATHSIG) if margay itself is SIGKILLed.
//!
//! A child's pid is only reaped while the registry lock is held, and the signal
//! thread only kills registered (so unreaped) pids: a pid is never reused under us.

use crate::guest_mem::GuestMem;
use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};

static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<u32>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running child that is killed and reaped when dropped.
pub struct Supervised {
    child: Child,
    reaped: Option<ExitStatus>,
}

impl Supervised {
    /// Spawn `cmd` (which should have `sys::die_with_parent` applied) and register it.
    pub fn spawn(cmd: &mut Command) -> io::Result<Supervised> {
        let mut live = live();
        let child = cmd.spawn()?;
        live.push(child.id());
        Ok(Supervised {
            child,
            reaped: None,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Reap the child, which must have exited (or will exit soon).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.reaped {
            return Ok(s);
        }
        let mut live = live();
        let s = self.child.wait()?;
        live.retain(|&p| p != self.child.id());
        self.reaped = Some(s);
        Ok(s)
    }

    /// SIGKILL the child (if it is still ours) and reap it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if self.reaped.is_none() {
            crate::sys::kill9(self.child.id());
        }
        self.wait()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Where a terminal signal goes while the application runs: the guest RAM
/// whose HOST_SIGNALS word takes it (unset until the partition exists).
static FORWARD_TO: std::sync::OnceLock<std::sync::Arc<GuestMem>> = std::sync::OnceLock::new();

/// From now on, terminal signals are posted to the LWK application (through
/// the HOST_SIGNALS word of `ram`, kept mapped for the rest of margay's life)
/// instead of ending the run.
pub fn forward_terminal_signals_to(ram: std::sync::Arc<GuestMem>) {
    let _ = FORWARD_TO.set(ram);
}

/// How long a forwarded terminal signal may sit unclaimed by the kernel
/// before margay decides the partition is wedged.
const UNCLAIMED_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Block the terminal and job-control signals in this (the main) thread,
/// before any other thread exists, and start the thread that handles them:
/// once the application runs, each one is forwarded to it (it may catch it;
/// a stop makes its proxy stop margay). A terminal signal that arrives before
/// the application runs, or that the kernel has not claimed two seconds after
/// it was forwarded (a wedged partition), ends everything with 128+signal.
pub fn handle_terminal_signals() -> io::Result<()> {
    use std::sync::atomic::Ordering;
    use wire::{signal_bit, HOST_SIGNALS_PHYS};
    crate::sys::block_terminal_signals()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| {
            // The oldest forwarded terminal signal the kernel has not taken.
            let mut unclaimed: Option<(i32, std::time::Instant)> = None;
            let sig = loop {
                let got = crate::sys::wait_terminal_signal(std::time::Duration::from_millis(200))
                    .unwrap_or(None);
                let ram = FORWARD_TO.get();
                if let (Some((s, since)), Some(ram)) = (unclaimed, ram) {
                    let word = ram.load_u64(HOST_SIGNALS_PHYS, Ordering::Acquire);
                    if word.unwrap_or(0) & signal_bit(s.unsigned_abs()) == 0 {
                        unclaimed = None;
                    } else if since.elapsed() >= UNCLAIMED_LIMIT {
                        break s;
                    }
                }
                let Some(s) = got else { continue };
                let job = crate::sys::JOB_SIGNALS.contains(&s);
                match ram {
                    // Nothing runs yet: job control has nothing to act on.
                    None if job => continue,
                    None => break s,
                    Some(ram) => {
                        let bit = signal_bit(s.unsigned_abs());
                        let _ = ram.fetch_or_u64(HOST_SIGNALS_PHYS, bit, Ordering::AcqRel);
                        if !job && unclaimed.is_none() {
                            unclaimed = Some((s, std::time::Instant::now()));
                        }
                    }
                }
            };
            // Holding the lock: no child can be reaped or registered meanwhile.
            let live = live();
            for &pid in live.iter() {
                crate::sys::kill9(pid);
            }
            for &pid in live.iter() {
                // Registered, hence not yet reaped.
                crate::sys::reap(pid, false);
            }
            std::process::exit(128 + sig);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_children_are_killed_and_reaped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let c = Supervised::spawn(&mut cmd).unwrap();
        let pid = c.id();
        assert!(live().contains(&pid));
        drop(c);
        assert!(!live().contains(&pid));
        // Reaped: not even a zombie is left.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn exit_status_is_kept() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let mut c = Supervised::spawn(&mut cmd).unwrap();
        assert_eq!(c.wait().unwrap().code(), Some(3));
        assert_eq!(c.kill().unwrap().code(), Some(3));
    }
}
