//! Tasks: one `Task` per thread of an LWK process, the table of all tasks by
//! tid, and what the running task is (`current()` and its cheaper cousins).

use super::runqueue::{self, wake};
use super::switch::{self, Context};
use crate::arch::gdt::this_cpu;
use crate::arch::mem::SpinLock;
use crate::arch::trap::{self, SyscallFrame, XMM_AREA};
use crate::ikc::slot;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const KSTACK_SIZE: usize = 64 * 1024;

pub(super) const RUNNING: u32 = 0;
pub(super) const RUNNABLE: u32 = 1;
pub(super) const BLOCKED: u32 = 2;
pub(super) const DEAD: u32 = 3;

pub type TaskRef = Arc<Task>;

/// One thread of an LWK process.
pub struct Task {
    pub tid: u32,
    /// The process this thread belongs to (its pid).
    pub pid: u32,
    /// That process's page-table root and region table (both change on exec).
    pub cr3: AtomicU64,
    pub table: AtomicU64,
    /// Channel slot this task offloads through.
    pub slot: usize,
    kstack: Box<[u8]>,
    /// Saved kernel context (stack pointer, FPU state) while switched out.
    pub(super) ctx: Context,
    pub fs_base: AtomicU64,
    pub gs_base: AtomicU64,
    pub(super) cpu: AtomicUsize,
    pub affinity: AtomicU64,
    pub(super) state: AtomicU32,
    pub(super) wake_pending: AtomicBool,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    /// Set by a futex wake that dequeued this task.
    pub futex_woken: AtomicBool,
    /// A CPU this task must move to at its next chance (NO_CPU when none).
    pub(super) migrate_to: AtomicUsize,
    /// Blocked signals (bit n-1 for signal n).
    pub sigmask: AtomicU64,
    /// Signals pending for this thread.
    pub pending: AtomicU64,
    /// Mask to put back when a handler returns (rt_sigsuspend), or NO_MASK.
    pub restore_mask: AtomicU64,
    /// Set while the task waits for the proxy (its slot may need interrupting).
    pub in_offload: AtomicBool,
    /// Signals the task waits for while they are blocked (rt_sigtimedwait,
    /// a signalfd read): posting one of them wakes it.
    pub sigwait: AtomicU64,
    /// CPU time in TSC cycles: spent in user mode, and in all (user and
    /// kernel), not counting the stint in progress.
    pub user_cycles: AtomicU64,
    pub(super) run_cycles: AtomicU64,
    /// The CPU time of the task's process, shared by its threads.
    pub account: Arc<CpuAccount>,
    /// TSC when the task last went on its CPU and last entered user mode
    /// (0: not running / not in user mode).
    pub(super) run_since: AtomicU64,
    pub(super) user_since: AtomicU64,
}

/// A process's CPU time (TSC cycles, charged by its threads at each kernel
/// entry, exit and switch) and its CPU-time interval timers: ITIMER_VIRTUAL
/// counts user time, ITIMER_PROF user and kernel time. A forked process
/// starts a new one; exec keeps it (as Linux keeps interval timers).
#[derive(Default)]
pub struct CpuAccount {
    pub user: AtomicU64,
    pub run: AtomicU64,
    /// The `user` (virtual) or `run` (profiling) value at which the timer
    /// fires next (0: disarmed), and its interval.
    pub virt_at: AtomicU64,
    pub virt_interval: AtomicU64,
    pub prof_at: AtomicU64,
    pub prof_interval: AtomicU64,
    /// The process has POSIX timers on CPU-time clocks
    /// (`hooks::cpu_posix_timers` checks them).
    pub cpu_posix: AtomicBool,
}

impl CpuAccount {
    pub fn armed(&self) -> bool {
        self.virt_at.load(Ordering::Acquire) != 0
            || self.prof_at.load(Ordering::Acquire) != 0
            || self.cpu_posix.load(Ordering::Acquire)
    }
}

/// `Task::restore_mask` when there is none.
pub const NO_MASK: u64 = u64::MAX;

pub(super) const NO_CPU: usize = usize::MAX;

impl Task {
    fn new(tid: u32, pid: u32, slot: usize, affinity: u64) -> Task {
        Task {
            tid,
            pid,
            cr3: AtomicU64::new(0),
            table: AtomicU64::new(wire::SHARED_PHYS + wire::REGIONS_OFF),
            slot,
            kstack: alloc::vec![0u8; KSTACK_SIZE].into_boxed_slice(),
            ctx: Context::new(),
            fs_base: AtomicU64::new(0),
            gs_base: AtomicU64::new(0),
            cpu: AtomicUsize::new(0),
            affinity: AtomicU64::new(affinity),
            state: AtomicU32::new(RUNNABLE),
            wake_pending: AtomicBool::new(false),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            futex_woken: AtomicBool::new(false),
            migrate_to: AtomicUsize::new(NO_CPU),
            sigmask: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            restore_mask: AtomicU64::new(NO_MASK),
            in_offload: AtomicBool::new(false),
            sigwait: AtomicU64::new(0),
            user_cycles: AtomicU64::new(0),
            run_cycles: AtomicU64::new(0),
            account: Arc::new(CpuAccount::default()),
            run_since: AtomicU64::new(0),
            user_since: AtomicU64::new(0),
        }
    }

    pub(super) fn kstack_top(&self) -> u64 {
        (self.kstack.as_ptr() as u64 + self.kstack.len() as u64) & !0xf
    }

    /// CPU time charged so far (cycles; see `runqueue::thread_cycles`).
    pub fn run_cycles(&self) -> u64 {
        self.run_cycles.load(Ordering::Acquire)
    }

    pub fn cpu(&self) -> usize {
        self.cpu.load(Ordering::Acquire)
    }
}

static TASKS: SpinLock<BTreeMap<u32, TaskRef>> = SpinLock::new(BTreeMap::new());
static NEXT_TID: AtomicU32 = AtomicU32::new(0);
/// Page-table root of the initial process.
static USER_CR3: AtomicU64 = AtomicU64::new(0);

/// Record the page tables of the (initial) process, or of the current task's
/// process after exec; a core loads its task's tables when it switches to it.
pub fn set_user_page_tables(root: u64) {
    USER_CR3.store(root, Ordering::Release);
    if let Some(t) = current() {
        t.cr3.store(root, Ordering::Release);
    }
}

use super::switch::current;

/// Channel slot of the running task.
pub fn current_slot() -> usize {
    switch::with_current(|t| t.slot).unwrap_or(0)
}

/// The pid of the running task's process (None in the idle loop / at boot).
pub fn current_pid() -> Option<u32> {
    switch::with_current(|t| t.pid)
}

/// The running task's region table (the initial process's at boot).
pub fn current_table() -> u64 {
    switch::with_current(|t| t.table.load(Ordering::Acquire))
        .unwrap_or(wire::SHARED_PHYS + wire::REGIONS_OFF)
}

pub fn current_tid() -> u32 {
    switch::with_current(|t| t.tid).unwrap_or(0)
}

pub fn find(tid: u32) -> Option<TaskRef> {
    TASKS.lock().get(&tid).cloned()
}

/// Threads of the current process.
pub fn thread_count() -> usize {
    let pid = current_pid();
    TASKS.lock().values().filter(|t| Some(t.pid) == pid).count()
}

/// The threads of process `pid`.
pub fn tasks_of(pid: u32) -> Vec<TaskRef> {
    TASKS
        .lock()
        .values()
        .filter(|t| t.pid == pid)
        .cloned()
        .collect()
}

/// Forget a task that has ended and left its CPU.
pub(super) fn reap(t: &Task) {
    TASKS.lock().remove(&t.tid);
    slot::free(t.slot);
}

/// Create the main thread (tid = the process's pid) and make it current on
/// this CPU; the caller then enters user mode on it.
pub fn adopt_main(tid: u32) -> TaskRef {
    NEXT_TID.store(tid + 1, Ordering::Relaxed);
    let slot = slot::alloc().unwrap_or(0);
    let t = Arc::new(Task::new(tid, tid, slot, runqueue::online_mask()));
    t.cr3
        .store(USER_CR3.load(Ordering::Acquire), Ordering::Release);
    t.state.store(RUNNING, Ordering::Release);
    TASKS.lock().insert(tid, t.clone());
    let cpu = this_cpu();
    runqueue::set_current(cpu, t.clone());
    switch::adopt(cpu, &t);
    crate::arch::smp::set_in_user(cpu, true);
    t
}

/// Create a thread that will start in user mode with registers `frame` (and
/// the creator's xmm state); `setup` runs before anyone can see it. Start it
/// with `start_thread`.
pub fn spawn_thread_prepared(
    frame: &SyscallFrame,
    fs_base: Option<u64>,
    affinity: u64,
    fork_of: Option<NewProcess>,
    setup: impl FnOnce(&Task),
) -> Option<TaskRef> {
    let slot = slot::alloc()?;
    let me = current();
    // A thread of the creator's process; `fork` passes the new process.
    let (tid, pid, cr3, table) = match fork_of {
        Some(f) => (f.pid, f.pid, f.cr3, f.table),
        None => {
            let Some(m) = me.as_ref() else {
                slot::free(slot);
                return None;
            };
            (
                NEXT_TID.fetch_add(1, Ordering::Relaxed),
                m.pid,
                m.cr3.load(Ordering::Acquire),
                m.table.load(Ordering::Acquire),
            )
        }
    };
    let mut t = Task::new(tid, pid, slot, affinity);
    t.cr3.store(cr3, Ordering::Release);
    t.table.store(table, Ordering::Release);
    // The creator runs on this CPU: its live segment bases are in the MSRs
    // (its Task copy is only refreshed when it is switched out).
    let (live_fs, live_gs) = crate::arch::user_segment_bases();
    t.fs_base
        .store(fs_base.unwrap_or(live_fs), Ordering::Relaxed);
    t.gs_base.store(live_gs, Ordering::Relaxed);
    if let Some(m) = &me {
        t.sigmask
            .store(m.sigmask.load(Ordering::Relaxed), Ordering::Relaxed);
        if fork_of.is_none() {
            t.account = m.account.clone();
        }
    }
    // The creator's xmm state, as its syscall entry saved it.
    let xmm: [u8; XMM_AREA as usize] = trap::saved_xmm();
    let rsp = trap::build_new_task_stack(&mut t.kstack, frame, &xmm);
    t.ctx.set_initial_rsp(rsp);
    setup(&t);
    Some(Arc::new(t))
}

/// The first thread of a forked process: its pid (= tid), page tables and
/// region table.
#[derive(Clone, Copy)]
pub struct NewProcess {
    pub pid: u32,
    pub cr3: u64,
    pub table: u64,
}

/// Enter a prepared thread in the task table (`start_thread` then queues it).
pub(super) fn insert(t: &TaskRef) {
    TASKS.lock().insert(t.tid, t.clone());
}

/// A signal was posted for the process: get a thread that does not block it
/// to notice (wake it, interrupt its offload, or poke its core).
pub fn kick_for_signal(pid: u32, accepts: impl Fn(&Task) -> bool) {
    let cur = current();
    if let Some(c) = &cur {
        if c.pid == pid && accepts(c) {
            return; // delivered when this syscall returns
        }
    }
    let target = TASKS
        .lock()
        .values()
        .find(|t| t.pid == pid && accepts(t))
        .cloned();
    if let Some(t) = target {
        kick_task_for_signal(&t);
    }
}

/// Make `t` notice a pending signal soon.
pub fn kick_task_for_signal(t: &TaskRef) {
    if current().is_some_and(|c| Arc::ptr_eq(&c, t)) {
        return;
    }
    if t.in_offload.load(Ordering::Acquire) {
        slot::interrupt(t.slot);
    }
    // `wake` also covers a task that is just about to block (it sets
    // wake_pending, which `schedule(Block)` checks after publishing BLOCKED),
    // so a signal posted while the task enters pause() is never lost.
    let running = t.state.load(Ordering::Acquire) == RUNNING;
    wake(t);
    if running {
        let cpu = t.cpu();
        if cpu != this_cpu() {
            crate::arch::smp::send_resched(cpu);
        }
    }
}
