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
    /// Set (under the task table's lock) once this thread is on its way out
    /// through exit(2): it no longer counts as one of its process's threads.
    leaving: AtomicBool,
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

/// A zeroed kernel stack, or None when memory is short (the heap takes a
/// stack out of the page allocator's bounded pool, so a thread bomb fails
/// with EAGAIN instead of starving the kernel).
fn new_kstack() -> Option<Box<[u8]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(KSTACK_SIZE).ok()?;
    v.resize(KSTACK_SIZE, 0u8);
    Some(v.into_boxed_slice())
}

impl Task {
    fn new(tid: u32, pid: u32, slot: usize, affinity: u64, kstack: Box<[u8]>) -> Task {
        Task {
            tid,
            pid,
            cr3: AtomicU64::new(0),
            table: AtomicU64::new(wire::SHARED_PHYS + wire::REGIONS_OFF),
            slot,
            kstack,
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
            leaving: AtomicBool::new(false),
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
/// Thread ids of threads beyond a process's first (whose tid is its pid, a
/// Linux pid of its proxy) come from `[TID_BASE, TID_END)`: above any pid
/// Linux hands out (PID_MAX_LIMIT is 2^22), so a thread never takes the tid
/// a later fork's process gets from the host, and below the 2^30 limit of
/// futex owner words (FUTEX_TID_MASK).
const TID_BASE: u32 = 1 << 22;
const TID_END: u32 = 1 << 30;
static NEXT_TID: AtomicU32 = AtomicU32::new(TID_BASE);

/// A thread id no task has, from `[TID_BASE, TID_END)` (cycling).
fn alloc_tid() -> u32 {
    let tasks = TASKS.lock();
    loop {
        let t = NEXT_TID.fetch_add(1, Ordering::Relaxed);
        if !(TID_BASE..TID_END).contains(&t) {
            let _ =
                NEXT_TID.compare_exchange(t + 1, TID_BASE, Ordering::Relaxed, Ordering::Relaxed);
            continue;
        }
        if !tasks.contains_key(&t) {
            return t;
        }
    }
}
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

/// exit(2) of the running thread: true when it is the last thread of its
/// process not already leaving (the caller then ends the process); else it
/// is marked leaving and the caller ends just the thread. Decided under the
/// task table's lock, so of threads exiting together exactly one is last.
pub fn leave_unless_last() -> bool {
    let Some(me) = current() else {
        return true;
    };
    let tasks = TASKS.lock();
    let others = tasks
        .values()
        .any(|t| t.pid == me.pid && t.tid != me.tid && !t.leaving.load(Ordering::Acquire));
    if others {
        me.leaving.store(true, Ordering::Release);
    }
    !others
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
    let slot = slot::alloc().unwrap_or(0);
    let Some(kstack) = new_kstack() else {
        panic!("no memory for the initial thread's kernel stack");
    };
    let t = Arc::new(Task::new(tid, tid, slot, runqueue::online_mask(), kstack));
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

/// What a new thread needs that can run out (its kernel stack and channel
/// slot), taken before anything that cannot be undone (fork asks its proxy
/// to fork only once it holds one). Dropped unused, it gives both back.
pub struct Reserved {
    kstack: Box<[u8]>,
    slot: Option<usize>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(s) = self.slot.take() {
            slot::free(s);
        }
    }
}

/// Slots of ended threads whose last request (a dying process's Exit,
/// posted without waiting) the proxy has not taken yet: reused only once
/// it has. Reusing one earlier let the next thread's request overwrite it,
/// so one process's proxy exited with another's status (a child killed
/// with SIGKILL reported exit 0, and the next child died of SIGKILL).
static DRAINING: SpinLock<Vec<usize>> = SpinLock::new(Vec::new());

fn still_posted(s: usize) -> bool {
    slot::state(s).load(Ordering::Acquire) == wire::SlotState::Posted as u32
}

/// A channel slot for a new thread: never one whose previous owner's last
/// request is still waiting for the proxy.
fn take_slot() -> Option<usize> {
    DRAINING.lock().retain(|&s| {
        let keep = still_posted(s);
        if !keep {
            slot::free(s);
        }
        keep
    });
    loop {
        let s = slot::alloc()?;
        if !still_posted(s) {
            return Some(s);
        }
        let mut d = DRAINING.lock();
        // Without room to remember it, the slot just stays taken.
        if d.try_reserve(1).is_ok() {
            d.push(s);
        }
    }
}

/// Reserve a kernel stack and a channel slot for a new thread (None: out
/// of memory or slots, which the caller reports as EAGAIN).
pub fn reserve_thread() -> Option<Reserved> {
    let kstack = new_kstack()?;
    let slot = take_slot()?;
    Some(Reserved {
        kstack,
        slot: Some(slot),
    })
}

/// Create a thread that will start in user mode with registers `frame` (and
/// the creator's xmm state), on resources `res` from `reserve_thread`;
/// `setup` runs before anyone can see it. Start it with `start_thread`.
/// None when the creator has no task (at boot).
pub fn spawn_thread_prepared(
    res: Reserved,
    frame: &SyscallFrame,
    fs_base: Option<u64>,
    affinity: u64,
    fork_of: Option<NewProcess>,
    setup: impl FnOnce(&Task),
) -> Option<TaskRef> {
    let me = current();
    // A thread of the creator's process; `fork` passes the new process.
    let (tid, pid, cr3, table) = match fork_of {
        Some(f) => (f.pid, f.pid, f.cr3, f.table),
        None => {
            let m = me.as_ref()?;
            (
                alloc_tid(),
                m.pid,
                m.cr3.load(Ordering::Acquire),
                m.table.load(Ordering::Acquire),
            )
        }
    };
    let mut res = res;
    let slot = res.slot.take()?;
    let kstack = core::mem::take(&mut res.kstack);
    let mut t = Task::new(tid, pid, slot, affinity, kstack);
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
