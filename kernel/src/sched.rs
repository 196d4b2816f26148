//! Tasks and per-core scheduling, Kitten style: one run queue per core,
//! round-robin among the runnable tasks of a core, and no periodic tick. A
//! core arms its one-shot LAPIC timer only for sleepers' deadlines, for time
//! slices while it holds more than one runnable task, and to poll offloads
//! of blocked tasks while it runs others. Idle cores halt.
//!
//! Context switches happen only in kernel mode with interrupts off: from a
//! syscall (blocking, yielding, exiting) or from an interrupt that arrived in
//! user mode (preemption). Each task has its own kernel stack.

use crate::arch::apic;
use crate::arch::cpu::rdtsc;
use crate::arch::gdt::{set_kernel_stack, this_cpu};
use crate::arch::mem::SpinLock;
use crate::arch::trap::{self, FpuArea, SyscallFrame, XMM_AREA};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use wire::MAX_CPUS;

const KSTACK_SIZE: usize = 64 * 1024;
/// Time slice when a core holds several runnable tasks.
const SLICE_NS: u64 = 5_000_000;
/// How often a core that runs other tasks checks its blocked offloads.
const OFFLOAD_POLL_NS: u64 = 200_000;

const RUNNING: u32 = 0;
const RUNNABLE: u32 = 1;
const BLOCKED: u32 = 2;
const DEAD: u32 = 3;

pub type TaskRef = Arc<Task>;

/// One thread of the LWK process.
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
    saved_rsp: UnsafeCell<u64>,
    fpu: UnsafeCell<FpuArea>,
    pub fs_base: AtomicU64,
    pub gs_base: AtomicU64,
    cpu: AtomicUsize,
    pub affinity: AtomicU64,
    state: AtomicU32,
    wake_pending: AtomicBool,
    on_cpu: AtomicBool,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    /// Set by a futex wake that dequeued this task.
    pub futex_woken: AtomicBool,
    /// A CPU this task must move to at its next chance (NO_CPU when none).
    migrate_to: AtomicUsize,
    /// Blocked signals (bit n-1 for signal n).
    pub sigmask: AtomicU64,
    /// Signals pending for this thread.
    pub pending: AtomicU64,
    /// Mask to put back when a handler returns (rt_sigsuspend), or NO_MASK.
    pub restore_mask: AtomicU64,
    /// Set while the task waits for the proxy (its slot may need interrupting).
    pub in_offload: AtomicBool,
}

/// `Task::restore_mask` when there is none.
pub const NO_MASK: u64 = u64::MAX;

const NO_CPU: usize = usize::MAX;

// SAFETY: the UnsafeCell fields (saved stack pointer, FPU area) are touched
// only by the CPU that switches the task out or in, and `on_cpu` orders a
// switch-in after the switch-out that saved them.
unsafe impl Sync for Task {}
// SAFETY: as above; the task moves between CPUs only through run queues.
unsafe impl Send for Task {}

impl Task {
    fn new(tid: u32, pid: u32, slot: usize, affinity: u64) -> Task {
        Task {
            tid,
            pid,
            cr3: AtomicU64::new(0),
            table: AtomicU64::new(wire::SHARED_PHYS + wire::REGIONS_OFF),
            slot,
            kstack: alloc::vec![0u8; KSTACK_SIZE].into_boxed_slice(),
            saved_rsp: UnsafeCell::new(0),
            fpu: UnsafeCell::new(FpuArea::current()),
            fs_base: AtomicU64::new(0),
            gs_base: AtomicU64::new(0),
            cpu: AtomicUsize::new(0),
            affinity: AtomicU64::new(affinity),
            state: AtomicU32::new(RUNNABLE),
            wake_pending: AtomicBool::new(false),
            on_cpu: AtomicBool::new(false),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            futex_woken: AtomicBool::new(false),
            migrate_to: AtomicUsize::new(NO_CPU),
            sigmask: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            restore_mask: AtomicU64::new(NO_MASK),
            in_offload: AtomicBool::new(false),
        }
    }

    fn kstack_top(&self) -> u64 {
        (self.kstack.as_ptr() as u64 + self.kstack.len() as u64) & !0xf
    }

    pub fn cpu(&self) -> usize {
        self.cpu.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct RunQueue {
    queue: VecDeque<TaskRef>,
    current: Option<TaskRef>,
    /// (TSC deadline, task) of tasks sleeping on this core.
    sleepers: Vec<(u64, TaskRef)>,
    /// (slot, task) of tasks waiting for an offload while the core runs others.
    waiters: Vec<(usize, TaskRef)>,
}

struct Cpu {
    rq: SpinLock<Option<RunQueue>>,
    queued: AtomicUsize,
    online: AtomicBool,
    in_user: AtomicBool,
    apic_id: AtomicU32,
    idle_rsp: UnsafeCell<u64>,
    /// The task switched away from, finished by `finish_switch` in the next context.
    prev: AtomicPtr<Task>,
    current: AtomicPtr<Task>,
    timer_irqs: AtomicU64,
    ipis: AtomicU64,
    switches: AtomicU64,
    tlb_ack: AtomicU64,
    /// Set when this core's queue, sleepers or waiters changed: the timer
    /// must be re-armed before returning to user mode.
    timer_dirty: AtomicBool,
}

// SAFETY: `idle_rsp` is touched only by its own CPU with interrupts off.
unsafe impl Sync for Cpu {}

static CPUS: [Cpu; MAX_CPUS] = [const {
    Cpu {
        rq: SpinLock::new(None),
        queued: AtomicUsize::new(0),
        online: AtomicBool::new(false),
        in_user: AtomicBool::new(false),
        apic_id: AtomicU32::new(0),
        idle_rsp: UnsafeCell::new(0),
        prev: AtomicPtr::new(core::ptr::null_mut()),
        current: AtomicPtr::new(core::ptr::null_mut()),
        timer_irqs: AtomicU64::new(0),
        ipis: AtomicU64::new(0),
        switches: AtomicU64::new(0),
        tlb_ack: AtomicU64::new(0),
        timer_dirty: AtomicBool::new(false),
    }
}; MAX_CPUS];

static NCPUS: AtomicUsize = AtomicUsize::new(1);
static TASKS: SpinLock<BTreeMap<u32, TaskRef>> = SpinLock::new(BTreeMap::new());
static SLOTS: SpinLock<[u64; wire::DOORBELL_WORDS]> = SpinLock::new([0; wire::DOORBELL_WORDS]);
static NEXT_TID: AtomicU32 = AtomicU32::new(0);
static TLB_GEN: AtomicU64 = AtomicU64::new(0);
/// Page-table root of the process every task belongs to.
static USER_CR3: AtomicU64 = AtomicU64::new(0);

/// Record the page tables of the (initial) process, or of the current task's
/// process after exec; a core loads its task's tables when it switches to it.
pub fn set_user_page_tables(root: u64) {
    USER_CR3.store(root, Ordering::Release);
    if let Some(t) = current() {
        t.cr3.store(root, Ordering::Release);
    }
}

fn ns_to_cycles(ns: u64) -> u64 {
    ((u128::from(ns) * u128::from(crate::time::tsc_hz())) / 1_000_000_000) as u64
}

pub fn ncpus() -> usize {
    NCPUS.load(Ordering::Acquire)
}

pub fn online_mask() -> u64 {
    (0..ncpus())
        .filter(|&c| CPUS[c].online.load(Ordering::Acquire))
        .fold(0, |m, c| m | 1 << c)
}

/// Per-core counters for `--stats`: (timer interrupts, IPIs, context switches).
pub fn cpu_counters(cpu: usize) -> (u64, u64, u64) {
    let c = &CPUS[cpu];
    (
        c.timer_irqs.load(Ordering::Relaxed),
        c.ipis.load(Ordering::Relaxed),
        c.switches.load(Ordering::Relaxed),
    )
}

fn alloc_slot() -> Option<usize> {
    let mut s = SLOTS.lock();
    for (w, word) in s.iter_mut().enumerate() {
        if *word != u64::MAX {
            let bit = (!*word).trailing_zeros() as usize;
            *word |= 1 << bit;
            return Some(w * 64 + bit);
        }
    }
    None
}

fn free_slot(slot: usize) {
    SLOTS.lock()[slot / 64] &= !(1 << (slot % 64));
}

/// The task running on this CPU (None in the idle loop).
pub fn current() -> Option<TaskRef> {
    let p = CPUS[this_cpu()].current.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: `current` points into an Arc that the run queue's `current`
    // field keeps alive while the task runs on this CPU (we are that task).
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Channel slot of the running task.
pub fn current_slot() -> usize {
    let p = CPUS[this_cpu()].current.load(Ordering::Acquire);
    if p.is_null() {
        return 0;
    }
    // SAFETY: as in `current`.
    unsafe { (*p).slot }
}

/// The pid of the running task's process (None in the idle loop / at boot).
pub fn current_pid() -> Option<u32> {
    let p = CPUS[this_cpu()].current.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `current`.
    Some(unsafe { (*p).pid })
}

/// The running task's region table (the initial process's at boot).
pub fn current_table() -> u64 {
    let p = CPUS[this_cpu()].current.load(Ordering::Acquire);
    if p.is_null() {
        return wire::SHARED_PHYS + wire::REGIONS_OFF;
    }
    // SAFETY: as in `current`.
    unsafe { (*p).table.load(Ordering::Acquire) }
}

pub fn current_tid() -> u32 {
    let p = CPUS[this_cpu()].current.load(Ordering::Acquire);
    if p.is_null() {
        return 0;
    }
    // SAFETY: as in `current`.
    unsafe { (*p).tid }
}

pub fn find(tid: u32) -> Option<TaskRef> {
    TASKS.lock().get(&tid).cloned()
}

/// Threads of the current process.
pub fn thread_count() -> usize {
    let pid = current_pid();
    TASKS.lock().values().filter(|t| Some(t.pid) == pid).count()
}

/// Set up the boot CPU's scheduler state.
pub fn init_bsp() {
    *CPUS[0].rq.lock() = Some(RunQueue::default());
    CPUS[0].online.store(true, Ordering::Release);
    CPUS[0].apic_id.store(apic::id(), Ordering::Relaxed);
    // The boot CPU's idle context runs `idle_loop` on its idle stack.
    let top = crate::arch::gdt::idle_stack_top(crate::arch::gdt::bsp_tables());
    let rsp = trap::build_kernel_thread_stack(top, idle_entry);
    // SAFETY: only this CPU touches its idle_rsp, with interrupts off.
    unsafe { *CPUS[0].idle_rsp.get() = rsp };
}

extern "C" fn idle_entry() -> ! {
    finish_switch();
    idle_loop()
}

/// Bring up the application processors listed by the firmware, up to `want` cores in all.
pub fn start_aps(apic_ids: &[u32], want: usize) {
    let me = apic::id();
    let cycles_per_ms = crate::time::tsc_hz() / 1000;
    for (cpu, &id) in (1..).zip(apic_ids.iter().filter(|&&id| id != me)) {
        if cpu >= want.min(MAX_CPUS) {
            break;
        }
        *CPUS[cpu].rq.lock() = Some(RunQueue::default());
        CPUS[cpu].apic_id.store(id, Ordering::Relaxed);
        NCPUS.store(cpu + 1, Ordering::Release);
        if crate::arch::start_cpu(cpu, id, ap_entry, cycles_per_ms).is_none() {
            crate::kprintln!("smp: no memory for cpu {cpu}'s tables");
            NCPUS.store(cpu, Ordering::Release);
            break;
        }
        let t0 = rdtsc();
        while !CPUS[cpu].online.load(Ordering::Acquire) && rdtsc() - t0 < cycles_per_ms * 500 {
            core::hint::spin_loop();
        }
        if !CPUS[cpu].online.load(Ordering::Acquire) {
            crate::kprintln!("smp: cpu {cpu} (apic {id}) did not come up");
            NCPUS.store(cpu, Ordering::Release);
            break;
        }
    }
}

extern "C" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    crate::arch::init_ap(cpu, crate::arch::ap_tables(cpu));
    CPUS[cpu].online.store(true, Ordering::Release);
    crate::kprintln!("smp: cpu {cpu} online (apic {})", apic::id());
    idle_loop()
}

/// Create the main thread (tid = the process's pid) and make it current on
/// this CPU; the caller then enters user mode on it.
pub fn adopt_main(tid: u32) -> TaskRef {
    NEXT_TID.store(tid + 1, Ordering::Relaxed);
    let slot = alloc_slot().unwrap_or(0);
    let t = Arc::new(Task::new(tid, tid, slot, online_mask()));
    t.cr3
        .store(USER_CR3.load(Ordering::Acquire), Ordering::Release);
    t.state.store(RUNNING, Ordering::Release);
    t.on_cpu.store(true, Ordering::Release);
    TASKS.lock().insert(tid, t.clone());
    let cpu = this_cpu();
    if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
        rq.current = Some(t.clone());
    }
    CPUS[cpu]
        .current
        .store(Arc::as_ptr(&t) as *mut Task, Ordering::Release);
    set_kernel_stack(t.kstack_top());
    CPUS[cpu].in_user.store(true, Ordering::Release);
    t
}

/// The least loaded online CPU allowed by `mask`.
fn pick_cpu(mask: u64) -> usize {
    let mut best = (usize::MAX, 0);
    for (c, cpu) in CPUS.iter().enumerate().take(ncpus()) {
        if mask & (1 << c) == 0 || !cpu.online.load(Ordering::Acquire) {
            continue;
        }
        let busy = usize::from(!cpu.current.load(Ordering::Acquire).is_null());
        let load = cpu.queued.load(Ordering::Acquire) + busy;
        if load < best.0 {
            best = (load, c);
        }
    }
    best.1
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
    let slot = alloc_slot()?;
    let me = current();
    // A thread of the creator's process; `fork` passes the new process.
    let (tid, pid, cr3, table) = match fork_of {
        Some(f) => (f.pid, f.pid, f.cr3, f.table),
        None => {
            let m = me.as_ref()?;
            (
                NEXT_TID.fetch_add(1, Ordering::Relaxed),
                m.pid,
                m.cr3.load(Ordering::Acquire),
                m.table.load(Ordering::Acquire),
            )
        }
    };
    let t = Task::new(tid, pid, slot, affinity);
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
    }
    let xmm: [u8; XMM_AREA as usize] = trap::saved_xmm(frame);
    let rsp = trap::build_new_task_stack(t.kstack_top(), frame, &xmm);
    // SAFETY: the task is not visible to any CPU yet.
    unsafe { *t.saved_rsp.get() = rsp };
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

/// Make a prepared thread known and queue it on the least loaded allowed CPU.
pub fn start_thread(t: TaskRef) {
    TASKS.lock().insert(t.tid, t.clone());
    let cpu = pick_cpu(t.affinity.load(Ordering::Acquire));
    t.cpu.store(cpu, Ordering::Release);
    enqueue(cpu, t);
}

/// Move another task to `cpu`: at once if it is queued or blocked; if it is
/// running, its CPU moves it at its next reschedule IPI.
pub fn request_migration(t: &TaskRef, cpu: usize) {
    let from = t.cpu();
    let mut moved = false;
    if let Some(rq) = CPUS[from].rq.lock().as_mut() {
        if let Some(i) = rq.queue.iter().position(|q| Arc::ptr_eq(q, t)) {
            rq.queue.remove(i);
            CPUS[from].queued.store(rq.queue.len(), Ordering::Release);
            moved = true;
        } else if t.state.load(Ordering::Acquire) == BLOCKED {
            // Woken later on its new CPU.
            t.cpu.store(cpu, Ordering::Release);
            return;
        }
    }
    if moved {
        t.cpu.store(cpu, Ordering::Release);
        enqueue(cpu, t.clone());
    } else {
        t.migrate_to.store(cpu, Ordering::Release);
        apic::send_ipi(
            CPUS[from].apic_id.load(Ordering::Relaxed),
            apic::RESCHED_VECTOR,
        );
    }
}

/// Honour a pending migration request of the running task.
fn check_migration() {
    if let Some(me) = current() {
        let to = me.migrate_to.swap(NO_CPU, Ordering::AcqRel);
        if to != NO_CPU {
            migrate_current(to);
        }
    }
}

/// Put a runnable task on `cpu`'s queue and make sure that CPU notices.
fn enqueue(cpu: usize, t: TaskRef) {
    t.state.store(RUNNABLE, Ordering::Release);
    if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
        rq.queue.push_back(t);
        CPUS[cpu].queued.store(rq.queue.len(), Ordering::Release);
    }
    CPUS[cpu].timer_dirty.store(true, Ordering::Release);
    if cpu != this_cpu() {
        apic::send_ipi(
            CPUS[cpu].apic_id.load(Ordering::Relaxed),
            apic::RESCHED_VECTOR,
        );
    }
}

/// Make a blocked task runnable again (or make its next block return at once).
pub fn wake(t: &TaskRef) {
    t.wake_pending.store(true, Ordering::SeqCst);
    if t.state
        .compare_exchange(BLOCKED, RUNNABLE, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        t.wake_pending.store(false, Ordering::SeqCst);
        enqueue(t.cpu(), t.clone());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Switch {
    /// Stay runnable, go to the back of the queue.
    Yield,
    /// Wait for `wake`.
    Block,
    /// The task has ended.
    Exit,
    /// Move to another CPU's queue.
    Migrate(usize),
}

/// Give up the CPU (interrupts off, kernel mode).
fn schedule(how: Switch) {
    let cpu = this_cpu();
    let c = &CPUS[cpu];
    let (prev, next) = {
        let mut guard = c.rq.lock();
        let Some(rq) = guard.as_mut() else { return };
        let prev = rq.current.take();
        if let Some(p) = &prev {
            match how {
                Switch::Yield => {
                    if rq.queue.is_empty() {
                        rq.current = prev;
                        return;
                    }
                    p.state.store(RUNNABLE, Ordering::Release);
                    rq.queue.push_back(p.clone());
                }
                Switch::Block => {
                    p.state.store(BLOCKED, Ordering::SeqCst);
                    if p.wake_pending.swap(false, Ordering::SeqCst)
                        && p.state
                            .compare_exchange(BLOCKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok()
                    {
                        rq.current = prev;
                        return;
                    }
                    // A waker already queued it: switch away; it runs again from the queue.
                }
                Switch::Exit => p.state.store(DEAD, Ordering::Release),
                Switch::Migrate(_) => p.state.store(RUNNABLE, Ordering::Release),
            }
        }
        let next = rq.queue.pop_front();
        c.queued.store(rq.queue.len(), Ordering::Release);
        if let Some(n) = &next {
            n.state.store(RUNNING, Ordering::Release);
            rq.current = Some(n.clone());
        }
        (prev, next)
    };
    if let (Some(p), Switch::Migrate(to)) = (&prev, how) {
        p.cpu.store(to, Ordering::Release);
        enqueue(to, p.clone());
    }
    switch(cpu, prev, next);
}

/// Switch from `prev` (or the idle context) to `next` (or the idle context).
fn switch(cpu: usize, prev: Option<TaskRef>, next: Option<TaskRef>) {
    let c = &CPUS[cpu];
    let prev_rsp: *mut u64 = match &prev {
        Some(p) => {
            crate::arch::save_user_segment_bases(&p.fs_base, &p.gs_base);
            // SAFETY: this CPU runs `p`; nobody else touches its FPU area now.
            trap::fpu_save(unsafe { &mut *p.fpu.get() });
            p.saved_rsp.get()
        }
        None => c.idle_rsp.get(),
    };
    let next_rsp = match &next {
        Some(n) => {
            // Wait until the CPU that last ran `n` has finished saving it.
            while n.on_cpu.swap(true, Ordering::AcqRel) {
                core::hint::spin_loop();
            }
            c.current
                .store(Arc::as_ptr(n) as *mut Task, Ordering::Release);
            // SAFETY: `on_cpu` was false: the saved rsp is complete.
            unsafe { *n.saved_rsp.get() }
        }
        None => {
            c.current.store(core::ptr::null_mut(), Ordering::Release);
            // SAFETY: only this CPU touches its idle context.
            unsafe { *c.idle_rsp.get() }
        }
    };
    if prev.is_some() || next.is_some() {
        c.switches.fetch_add(1, Ordering::Relaxed);
    }
    let prev_ptr = prev.map_or(core::ptr::null_mut(), |p| Arc::into_raw(p) as *mut Task);
    c.prev.store(prev_ptr, Ordering::Release);
    drop(next);
    // SAFETY: `next_rsp` is a context saved by switch_to or built for a new
    // task/idle loop, not running anywhere (on_cpu handshake); `prev_rsp`
    // stays valid: the task's Arc is held in `c.prev` until finish_switch.
    unsafe { trap::switch_to(prev_rsp, next_rsp) };
    finish_switch();
}

/// Complete a switch in the context that now runs: release the previous
/// task, and load this task's kernel stack, segment bases and FPU state.
pub fn finish_switch() {
    let cpu = this_cpu();
    let c = &CPUS[cpu];
    let prev = c.prev.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !prev.is_null() {
        // SAFETY: `prev` came from Arc::into_raw in `switch` on this CPU.
        let p = unsafe { Arc::from_raw(prev) };
        p.on_cpu.store(false, Ordering::Release);
        if p.state.load(Ordering::Acquire) == DEAD {
            TASKS.lock().remove(&p.tid);
            free_slot(p.slot);
        }
        drop(p);
    }
    let cur = c.current.load(Ordering::Acquire);
    if !cur.is_null() {
        // SAFETY: the run queue's `current` keeps the task alive while it runs here.
        let t = unsafe { &*cur };
        crate::arch::activate_page_tables(t.cr3.load(Ordering::Acquire));
        set_kernel_stack(t.kstack_top());
        crate::arch::load_user_segment_bases(
            t.fs_base.load(Ordering::Relaxed),
            t.gs_base.load(Ordering::Relaxed),
        );
        // SAFETY: this CPU now runs `t`; its FPU area was saved by `switch`.
        trap::fpu_restore(unsafe { &*t.fpu.get() });
        c.in_user.store(true, Ordering::Release);
        c.timer_dirty.store(false, Ordering::Release);
        rearm(cpu);
    }
}

/// Whether this CPU has other runnable tasks (a waiting task should then block).
pub fn others_runnable() -> bool {
    CPUS[this_cpu()].queued.load(Ordering::Acquire) > 0
}

pub fn yield_now() {
    schedule(Switch::Yield);
}

/// Block the current task until `wake`.
pub fn block() {
    schedule(Switch::Block);
}

/// End the current task (never returns).
pub fn exit_current() -> ! {
    schedule(Switch::Exit);
    unreachable!("a dead task was scheduled again")
}

/// Move the current task to `cpu` now.
pub fn migrate_current(cpu: usize) {
    if cpu != this_cpu() {
        schedule(Switch::Migrate(cpu));
    }
}

/// How a sleep ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wakeup {
    Deadline,
    Woken,
    Signal,
}

/// Sleep until the TSC reaches `deadline`, until `until_woken` is set, or
/// until a signal can be delivered.
pub fn sleep_until(deadline: u64, until_woken: Option<&AtomicBool>) -> Wakeup {
    let Some(me) = current() else {
        while rdtsc() < deadline {}
        return Wakeup::Deadline;
    };
    loop {
        if rdtsc() >= deadline {
            return Wakeup::Deadline;
        }
        if until_woken.is_some_and(|w| w.load(Ordering::Acquire)) {
            return Wakeup::Woken;
        }
        if crate::signal::interrupted() {
            return Wakeup::Signal;
        }
        let cpu = this_cpu();
        if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
            rq.sleepers.push((deadline, me.clone()));
        }
        rearm(cpu);
        block();
        if let Some(rq) = CPUS[this_cpu()].rq.lock().as_mut() {
            rq.sleepers.retain(|(_, t)| !Arc::ptr_eq(t, &me));
        }
    }
}

/// Wait for the proxy to answer on `slot` without holding the CPU.
pub fn wait_offload(slot: usize, done: impl Fn() -> bool) {
    let Some(me) = current() else { return };
    while !done() {
        if crate::signal::interrupted() {
            crate::ikc::interrupt(slot);
        }
        let cpu = this_cpu();
        if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
            rq.waiters.push((slot, me.clone()));
        }
        rearm(cpu);
        block();
    }
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

/// The threads of process `pid`.
pub fn tasks_of(pid: u32) -> Vec<TaskRef> {
    TASKS
        .lock()
        .values()
        .filter(|t| t.pid == pid)
        .cloned()
        .collect()
}

/// Make `t` notice a pending signal soon.
pub fn kick_task_for_signal(t: &TaskRef) {
    if current().is_some_and(|c| Arc::ptr_eq(&c, t)) {
        return;
    }
    if t.in_offload.load(Ordering::Acquire) {
        crate::ikc::interrupt(t.slot);
    }
    // `wake` also covers a task that is just about to block (it sets
    // wake_pending, which `schedule(Block)` checks after publishing BLOCKED),
    // so a signal posted while the task enters pause() is never lost.
    let running = t.state.load(Ordering::Acquire) == RUNNING;
    wake(t);
    if running {
        let cpu = t.cpu();
        if cpu != this_cpu() {
            apic::send_ipi(
                CPUS[cpu].apic_id.load(Ordering::Relaxed),
                apic::RESCHED_VECTOR,
            );
        }
    }
}

/// ITIMER_REAL / alarm: TSC deadline (0 = off) and interval in cycles.
static ALARM_DEADLINE: AtomicU64 = AtomicU64::new(0);
static ALARM_INTERVAL: AtomicU64 = AtomicU64::new(0);

/// Set the process's real-time timer; returns the previous (remaining, interval) in cycles.
pub fn set_alarm(after: u64, interval: u64) -> (u64, u64) {
    let now = rdtsc();
    let old = ALARM_DEADLINE.swap(
        if after == 0 {
            0
        } else {
            now.saturating_add(after)
        },
        Ordering::AcqRel,
    );
    let old_interval = ALARM_INTERVAL.swap(interval, Ordering::AcqRel);
    CPUS[0].timer_dirty.store(true, Ordering::Release);
    if this_cpu() != 0 {
        apic::send_ipi(
            CPUS[0].apic_id.load(Ordering::Relaxed),
            apic::RESCHED_VECTOR,
        );
    }
    (
        if old == 0 {
            0
        } else {
            old.saturating_sub(now).max(1)
        },
        old_interval,
    )
}

pub fn alarm_remaining() -> (u64, u64) {
    let d = ALARM_DEADLINE.load(Ordering::Acquire);
    let now = rdtsc();
    (
        if d == 0 {
            0
        } else {
            d.saturating_sub(now).max(1)
        },
        ALARM_INTERVAL.load(Ordering::Acquire),
    )
}

fn check_alarm(now: u64) {
    let d = ALARM_DEADLINE.load(Ordering::Acquire);
    if d != 0 && d <= now {
        let interval = ALARM_INTERVAL.load(Ordering::Acquire);
        let next = if interval == 0 { 0 } else { now + interval };
        if ALARM_DEADLINE
            .compare_exchange(d, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            crate::signal::post_process(14, crate::signal::SI_KERNEL, 0);
        }
    }
}

/// Work a core must not miss while it spins in the kernel with interrupts
/// off (waiting for the proxy): host signals, the alarm, and other tasks'
/// completed offloads and expired sleeps (no timer interrupt can arrive).
pub fn poll_while_spinning() {
    take_host_signals();
    // Tasks of this core blocked on their own offloads or sleeps: wake the
    // ready ones (the spinning task then blocks and lets them run).
    poll_wakeups(this_cpu());
}

/// Take signals Linux sent to the application (the host sets them and
/// raises an NMI); the NMI handler only pokes this core with an IPI.
pub fn take_host_signals() {
    // Until the initial process exists, leave them for later.
    let pid = crate::process::initial_pid();
    if pid == 0 {
        return;
    }
    let word = crate::arch::mem::phys_atomic_u64(wire::SHARED_PHYS + wire::HOST_SIGNALS_OFF);
    let sigs = word.swap(0, Ordering::AcqRel);
    for sig in 1..=64u32 {
        if sigs & (1 << (sig - 1)) != 0 {
            crate::signal::post_to(pid, sig, crate::signal::SI_USER, 0);
        }
    }
    // Each process's own word (in its region table), set by its proxy, which
    // then sets the poke word: cleared first, so a later post pokes again.
    crate::arch::mem::phys_atomic_u64(wire::SHARED_PHYS + wire::SIGNALS_POKE_OFF)
        .store(0, Ordering::Release);
    for (p, table) in crate::process::tables() {
        let word = crate::arch::mem::phys_atomic_u32(table + wire::REGION_SIGNALS_OFF);
        let sigs = word.swap(0, Ordering::AcqRel);
        for sig in 1..=32u32 {
            if sigs & (1 << (sig - 1)) != 0 {
                crate::signal::post_to(p, sig, crate::signal::SI_USER, 0);
            }
        }
    }
}

/// NMI from the host: a signal may be waiting. Nothing here may take a lock
/// (the NMI can interrupt any kernel code); the self-IPI is taken as soon as
/// interrupts are enabled, i.e. in user mode or the idle loop.
pub fn on_nmi() {
    let word = crate::arch::mem::phys_atomic_u64(wire::SHARED_PHYS + wire::HOST_SIGNALS_OFF);
    let poke = crate::arch::mem::phys_atomic_u64(wire::SHARED_PHYS + wire::SIGNALS_POKE_OFF);
    if word.load(Ordering::Acquire) != 0 || poke.load(Ordering::Acquire) != 0 {
        apic::send_ipi(apic::id(), apic::RESCHED_VECTOR);
    }
}

/// Wake sleepers whose deadline passed and tasks whose offload completed.
fn poll_wakeups(cpu: usize) {
    let now = rdtsc();
    if cpu == 0 {
        check_alarm(now);
    }
    let mut ready: Vec<TaskRef> = Vec::new();
    if let Some(rq) = CPUS[cpu].rq.lock().as_mut() {
        rq.sleepers.retain(|(d, t)| {
            if *d <= now {
                ready.push(t.clone());
                false
            } else {
                true
            }
        });
        rq.waiters.retain(|(slot, t)| {
            if crate::ikc::slot_done(*slot) {
                ready.push(t.clone());
                false
            } else {
                true
            }
        });
    }
    for t in &ready {
        wake(t);
    }
}

/// Arm this CPU's one-shot timer for the next thing it must do, or stop it.
fn rearm(cpu: usize) {
    let now = rdtsc();
    let mut deadline = u64::MAX;
    if cpu == 0 {
        let a = ALARM_DEADLINE.load(Ordering::Acquire);
        if a != 0 {
            deadline = deadline.min(a);
        }
    }
    if let Some(rq) = CPUS[cpu].rq.lock().as_ref() {
        for (d, _) in &rq.sleepers {
            deadline = deadline.min(*d);
        }
        if !rq.waiters.is_empty() && rq.current.is_some() {
            deadline = deadline.min(now + ns_to_cycles(OFFLOAD_POLL_NS));
        }
        if !rq.queue.is_empty() && rq.current.is_some() {
            deadline = deadline.min(now + ns_to_cycles(SLICE_NS));
        }
    }
    if deadline == u64::MAX {
        apic::timer_stop();
    } else {
        apic::timer_oneshot_cycles(deadline.saturating_sub(now).max(1));
    }
}

/// The timer fired (in user mode or in the idle loop).
pub fn on_timer(from_user: bool) {
    let cpu = this_cpu();
    CPUS[cpu].timer_irqs.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    poll_wakeups(cpu);
    if from_user {
        CPUS[cpu].in_user.store(false, Ordering::Release);
        yield_now();
        rearm(this_cpu());
        CPUS[this_cpu()].in_user.store(true, Ordering::Release);
    }
}

/// A reschedule IPI arrived: another CPU queued work here.
pub fn on_resched(from_user: bool) {
    let cpu = this_cpu();
    CPUS[cpu].ipis.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    take_host_signals();
    if cpu == 0 {
        check_alarm(rdtsc());
    }
    if from_user {
        CPUS[cpu].in_user.store(false, Ordering::Release);
        check_migration();
        // Give the newcomer a time slice rather than preempting at once.
        rearm(this_cpu());
        CPUS[this_cpu()].in_user.store(true, Ordering::Release);
    }
}

/// Every CPU runs this when it has nothing to do.
fn idle_loop() -> ! {
    loop {
        let cpu = this_cpu();
        CPUS[cpu].in_user.store(false, Ordering::Release);
        take_host_signals();
        poll_wakeups(cpu);
        if CPUS[cpu].queued.load(Ordering::Acquire) > 0 {
            schedule(Switch::Yield);
            continue;
        }
        let waiting = CPUS[cpu]
            .rq
            .lock()
            .as_ref()
            .is_some_and(|rq| !rq.waiters.is_empty());
        if waiting {
            // Offloads in flight: poll their slots rather than sleep.
            for _ in 0..256 {
                core::hint::spin_loop();
            }
            continue;
        }
        rearm(cpu);
        crate::arch::idle_halt();
    }
}

/// Kernel entry from user mode (syscall or interrupt): this CPU no longer
/// runs user code until `leave_kernel`.
pub fn enter_kernel() {
    CPUS[this_cpu()].in_user.store(false, Ordering::Release);
}

/// About to return to user mode: re-arm the timer for this core's situation.
pub fn leave_kernel() {
    let cpu = this_cpu();
    if CPUS[cpu].timer_dirty.swap(false, Ordering::AcqRel) {
        rearm(cpu);
    }
    CPUS[cpu].in_user.store(true, Ordering::Release);
}

/// Make every other CPU drop stale user translations before memory is reused.
pub fn tlb_shootdown() {
    let n = ncpus();
    if n <= 1 {
        return;
    }
    let gen = TLB_GEN.fetch_add(1, Ordering::AcqRel) + 1;
    let me = this_cpu();
    for (c, cpu) in CPUS.iter().enumerate().take(n) {
        if c != me && cpu.online.load(Ordering::Acquire) {
            apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), apic::TLB_VECTOR);
        }
    }
    // A CPU in the kernel takes the IPI before it next runs user code, and
    // the kernel reaches user memory only through the direct map: only CPUs
    // running user code now must confirm.
    for (c, cpu) in CPUS.iter().enumerate().take(n) {
        if c == me || !cpu.online.load(Ordering::Acquire) {
            continue;
        }
        while cpu.tlb_ack.load(Ordering::Acquire) < gen && cpu.in_user.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
}

/// TLB shootdown IPI handler.
pub fn on_tlb_ipi() {
    let cpu = this_cpu();
    crate::arch::cpu::flush_tlb();
    CPUS[cpu]
        .tlb_ack
        .store(TLB_GEN.load(Ordering::Acquire), Ordering::Release);
    CPUS[cpu].ipis.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
}
