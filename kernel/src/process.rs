//! The LWK process: its address space, heap, identity and signal bookkeeping,
//! and the ways it ends (exit, or death by a signal).

use crate::arch::mem::SpinLock;
use crate::aspace::AddressSpace;
use crate::shared;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// One `struct kernel_sigaction` (handler, flags, restorer, mask).
#[derive(Clone, Copy, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

pub use linux_abi::signal::SIG_IGN;

pub struct Process {
    pub aspace: AddressSpace,
    /// Start of the heap (end of the loaded image).
    pub brk_start: u64,
    /// Current program break.
    pub brk: u64,
    /// End of the memory actually mapped for the heap (>= brk).
    pub heap_end: u64,
    /// Linux pid as seen by the application (the proxy's pid).
    pub pid: u32,
    pub sigactions: [SigAction; 65],
    pub altstack: (u64, u64, u64),
    pub name: [u8; 16],
    /// Absolute path of the program (what /proc/self/exe names).
    pub exe: alloc::vec::Vec<u8>,
    /// SysV shared memory segments attached (shmat): a fork copies them, an
    /// exec drops them.
    pub sysv: alloc::vec::Vec<SysvAttach>,
}

/// One shmat: where the segment is mapped, and the handle of the proxy's own
/// attachment of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysvAttach {
    pub va: u64,
    pub len: u64,
    pub handle: u64,
}

/// A process as the registry holds it: its signals pending for the whole
/// process live outside the lock (they are posted from interrupt paths).
pub struct Entry {
    pub pending: AtomicU64,
    /// Stopped by a stop signal, until SIGCONT (or SIGKILL).
    pub stopped: AtomicBool,
    /// Non-zero: the thread (tid) that is ending the process or executing a
    /// new program; every other thread of the process must exit.
    pub reaper: AtomicU32,
    /// ITIMER_REAL / alarm(): cleared in a forked child, kept across exec.
    pub alarm: crate::sched::Alarm,
    /// Details of pending signals (siginfo, queued real-time signals).
    pub sigq: crate::signal::SigQueue,
    /// POSIX timers, ITIMER_VIRTUAL/ITIMER_PROF and CPU time of ended threads.
    pub timers: crate::alarm::ProcTimers,
    /// The process that created it (0 for the first): a standing instance
    /// kills a gone exec client's process with its descendants.
    pub parent: u32,
    /// Its proxy is gone (a standing instance's exec client was killed):
    /// nothing more is posted for it, and its waits for answers end.
    pub orphaned: AtomicBool,
    pub inner: SpinLock<Process>,
}

/// Every LWK process, by pid (each pid is its proxy's).
static PROCS: SpinLock<BTreeMap<u32, Arc<Entry>>> = SpinLock::new(BTreeMap::new());
/// The process margay started (its exit ends the partition).
static INITIAL: AtomicU32 = AtomicU32::new(0);

/// Register a process; the first one registered is the initial process.
pub fn register(p: Process) -> Arc<Entry> {
    let pid = p.pid;
    let e = Arc::new(Entry {
        pending: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
        reaper: AtomicU32::new(0),
        alarm: crate::sched::Alarm::new(),
        sigq: crate::signal::SigQueue::new(),
        timers: crate::alarm::ProcTimers::new(),
        parent: crate::sched::current_pid().unwrap_or(0),
        orphaned: AtomicBool::new(false),
        inner: SpinLock::new(p),
    });
    let _ = INITIAL.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire);
    PROCS.lock().insert(pid, e.clone());
    e
}

pub fn unregister(pid: u32) -> Option<Arc<Entry>> {
    PROCS.lock().remove(&pid)
}

/// (pid, region table) of every process.
pub fn tables() -> alloc::vec::Vec<(u32, crate::aspace::RegionTable)> {
    let entries: alloc::vec::Vec<(u32, Arc<Entry>)> =
        PROCS.lock().iter().map(|(&p, e)| (p, e.clone())).collect();
    entries
        .into_iter()
        .map(|(p, e)| (p, e.inner.lock().aspace.region_table()))
        .collect()
}

/// Set the current process's real-time timer (ITIMER_REAL, alarm) to fire
/// `after` TSC cycles from now (0: disarm), then every `interval`; returns
/// the previous (remaining, interval) in cycles.
pub fn set_alarm(after: u64, interval: u64) -> (u64, u64) {
    current_entry().alarm.set(after, interval)
}

/// The current process's real-time timer: (remaining, interval) in cycles.
pub fn alarm_remaining() -> (u64, u64) {
    current_entry().alarm.remaining()
}

/// Every process, by pid.
pub fn entries() -> alloc::vec::Vec<(u32, Arc<Entry>)> {
    PROCS.lock().iter().map(|(&p, e)| (p, e.clone())).collect()
}

/// What runs when the partition ends, before QEMU exits (the syscall
/// layer's statistics flush), registered at boot.
static AT_END: SpinLock<fn()> = SpinLock::new(|| {});

/// Register what runs when the partition ends.
pub fn set_at_end(f: fn()) {
    *AT_END.lock() = f;
}

pub fn initial_pid() -> u32 {
    INITIAL.load(Ordering::Acquire)
}

/// The process of the running task (the initial process before any task runs).
pub fn current_entry() -> Arc<Entry> {
    let pid = crate::sched::current_pid().unwrap_or_else(initial_pid);
    match PROCS.lock().get(&pid) {
        Some(e) => e.clone(),
        None => panic!("no process {pid}"),
    }
}

pub fn entry(pid: u32) -> Option<Arc<Entry>> {
    PROCS.lock().get(&pid).cloned()
}

/// Whether the current process's proxy is gone.
pub fn current_orphaned() -> bool {
    crate::sched::current_pid()
        .and_then(entry)
        .is_some_and(|e| e.orphaned.load(Ordering::Acquire))
}

/// Run `f` on the current process.
pub fn with<R>(f: impl FnOnce(&mut Process) -> R) -> R {
    let e = current_entry();
    let mut g = e.inner.lock();
    f(&mut g)
}

fn finish(code: u32) -> ! {
    let at_end = *AT_END.lock();
    at_end();
    crate::mm::report_usage();
    crate::arch::cpu::qemu_exit(code)
}

/// Whether thread `t` must exit because another thread is ending its
/// process or executing a new program.
pub fn must_exit(t: &crate::sched::Task) -> bool {
    entry(t.pid).is_some_and(|e| {
        let r = e.reaper.load(Ordering::Acquire);
        r != 0 && r != t.tid
    })
}

/// Make every other thread of the current process exit, and wait until they
/// have left (they are poked out of user mode, sleeps, futexes and proxy
/// calls, and exit on their way back to user mode). With `keep`, the process
/// goes on with the current thread alone (execve); otherwise it is ending.
pub fn other_threads_exit(keep: bool) {
    let Some(me) = crate::sched::current() else {
        return;
    };
    let Some(e) = entry(me.pid) else {
        return;
    };
    // One thread ends or replaces the process; any other that tries at
    // the same time (exit_group and execve racing) just leaves.
    if e.reaper
        .compare_exchange(0, me.tid, Ordering::AcqRel, Ordering::Acquire)
        .is_err_and(|r| r != me.tid)
    {
        drop((me, e));
        crate::sched::exit_current();
    }
    loop {
        let others: alloc::vec::Vec<_> = crate::sched::tasks_of(me.pid)
            .into_iter()
            .filter(|t| !Arc::ptr_eq(t, &me))
            .collect();
        if others.is_empty() {
            break;
        }
        for t in &others {
            crate::sched::kick_task_for_signal(t);
        }
        drop(others);
        crate::sched::yield_now();
        let soon = crate::arch::cpu::rdtsc() + crate::time::tsc_hz() / 20_000;
        let _ = crate::sched::sleep_until(soon, None);
    }
    if keep {
        e.reaper.store(0, Ordering::Release);
    }
}

/// A forked process ends: its other threads exit, its proxy exits the same
/// way (so Linux tells the parent), its memory goes back, and its last
/// thread leaves the CPU.
fn end_child(status: u64, signal: u32) -> ! {
    other_threads_exit(false);
    let pid = crate::sched::current_pid().unwrap_or(0);
    // A gone proxy gets no Exit: the slot would stay posted, for whichever
    // proxy later serves a region table at the same address.
    if !current_orphaned() {
        crate::ikc::post_only(
            wire::RequestKind::Exit,
            [status & 0xff, u64::from(signal), 0, 0, 0, 0],
        );
    }
    if let Some(e) = unregister(pid) {
        crate::arch::activate_page_tables(crate::arch::boot::boot_pml4_phys());
        if let Ok(inner) = Arc::try_unwrap(e).map(|e| e.inner.into_inner()) {
            // Its region table goes with the address space.
            inner.aspace.destroy();
        }
    }
    crate::sched::exit_current()
}

/// exit_group: report the status and stop the partition (the initial
/// process), or end a forked process.
pub fn exit(status: u64) -> ! {
    if crate::sched::current_pid().is_some_and(|p| p != initial_pid()) {
        end_child(status, 0);
    }
    shared::report_exit((status & 0xff) as u32);
    finish(wire::DEBUG_EXIT_DONE)
}

/// The process dies of `signal`.
pub fn kill(signal: u32, fault_addr: u64, regs: Option<[u64; 24]>) -> ! {
    crate::kprintln!("process killed by signal {signal} (fault address {fault_addr:#x})");
    if crate::sched::current_pid().is_some_and(|p| p != initial_pid()) {
        end_child(0, signal);
    }
    shared::report_killed(signal, fault_addr, regs);
    finish(wire::DEBUG_EXIT_DONE)
}
