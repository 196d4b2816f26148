//! The context switch, and the per-core pointer to the running task: the
//! scheduler's only `unsafe` code. Everything here runs in kernel mode with
//! interrupts off.
//!
//! A task switched out keeps its kernel stack pointer and FPU state in its
//! `Context`; `on_cpu` orders the next switch-in (maybe on another core)
//! after the switch-out that saved them. Each core's `CURRENT` points into
//! the `Arc` its run queue holds as `current`; `PREV` carries the task
//! switched away from into the next context, which releases it.

use super::runqueue;
use super::task::{Task, TaskRef};
use crate::arch::gdt::{set_kernel_stack, this_cpu};
use crate::arch::trap::{self, FpuArea};
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use wire::MAX_CPUS;

/// A task's kernel context while it is not running.
pub(super) struct Context {
    saved_rsp: AtomicU64,
    fpu: UnsafeCell<FpuArea>,
    /// Set while a core runs the task (or is still saving it).
    on_cpu: AtomicBool,
}

// SAFETY: `fpu` is touched only by the core that switches the task out or
// in, and `on_cpu` orders a switch-in after the switch-out that saved it.
unsafe impl Sync for Context {}
// SAFETY: as above; the context moves between cores only through run queues.
unsafe impl Send for Context {}

impl Context {
    pub(super) fn new() -> Self {
        Self {
            saved_rsp: AtomicU64::new(0),
            fpu: UnsafeCell::new(FpuArea::current()),
            on_cpu: AtomicBool::new(false),
        }
    }

    /// The stack pointer of a new task's first switch-in (built by
    /// `trap::build_new_task_stack` before the task is visible).
    pub(super) fn set_initial_rsp(&self, rsp: u64) {
        self.saved_rsp.store(rsp, Ordering::Release);
    }
}

/// The running task of each core (null in the idle loop).
static CURRENT: [AtomicPtr<Task>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// The task each core switched away from, released by `finish_switch`.
static PREV: [AtomicPtr<Task>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// Each core's idle context (its saved stack pointer).
static IDLE_RSP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The task running on this CPU (None in the idle loop).
pub fn current() -> Option<TaskRef> {
    let p = CURRENT[this_cpu()].load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: `CURRENT` points into an Arc that the run queue's `current`
    // field keeps alive while the task runs on this CPU (we are that task).
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Run `f` on the running task without taking a reference (None when idle).
pub(super) fn with_current<R>(f: impl FnOnce(&Task) -> R) -> Option<R> {
    let p = CURRENT[this_cpu()].load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `current`: the task stays alive while it runs here.
    Some(f(unsafe { &*p }))
}

/// Whether core `cpu` runs a task now (rather than its idle loop).
pub(super) fn is_busy(cpu: usize) -> bool {
    !CURRENT[cpu].load(Ordering::Acquire).is_null()
}

/// Record core `cpu`'s idle context (built before the core first switches).
pub(super) fn set_idle_context(cpu: usize, rsp: u64) {
    IDLE_RSP[cpu].store(rsp, Ordering::Release);
}

/// Make `t`, already its run queue's `current`, the running task of `cpu`
/// without a switch (the main thread at boot).
pub(super) fn adopt(cpu: usize, t: &TaskRef) {
    t.ctx.on_cpu.store(true, Ordering::Release);
    CURRENT[cpu].store(Arc::as_ptr(t) as *mut Task, Ordering::Release);
    // SAFETY: the task's own kernel stack, kept alive by the run queue's
    // `current` (and the task table) while it runs here.
    unsafe { set_kernel_stack(t.kstack_top()) };
}

/// Switch from `prev` (or the idle context) to `next` (or the idle context).
pub(super) fn switch(cpu: usize, prev: Option<TaskRef>, next: Option<TaskRef>) {
    let prev_rsp: *mut u64 = match &prev {
        Some(p) => {
            crate::arch::save_user_segment_bases(&p.fs_base, &p.gs_base);
            // SAFETY: this CPU runs `p`; nobody else touches its FPU area now.
            trap::fpu_save(unsafe { &mut *p.ctx.fpu.get() });
            p.ctx.saved_rsp.as_ptr()
        }
        None => IDLE_RSP[cpu].as_ptr(),
    };
    let next_rsp = match &next {
        Some(n) => {
            // Wait until the CPU that last ran `n` has finished saving it.
            while n.ctx.on_cpu.swap(true, Ordering::AcqRel) {
                core::hint::spin_loop();
            }
            CURRENT[cpu].store(Arc::as_ptr(n) as *mut Task, Ordering::Release);
            n.ctx.saved_rsp.load(Ordering::Acquire)
        }
        None => {
            CURRENT[cpu].store(core::ptr::null_mut(), Ordering::Release);
            IDLE_RSP[cpu].load(Ordering::Acquire)
        }
    };
    let prev_ptr = prev.map_or(core::ptr::null_mut(), |p| Arc::into_raw(p) as *mut Task);
    PREV[cpu].store(prev_ptr, Ordering::Release);
    drop(next);
    // SAFETY: `next_rsp` is a context saved by switch_to or built for a new
    // task/idle loop, not running anywhere (on_cpu handshake); `prev_rsp`
    // stays valid: the task's Arc is held in `PREV` until finish_switch, and
    // the idle slot is static.
    unsafe { trap::switch_to(prev_rsp, next_rsp) };
    finish_switch();
}

/// Complete a switch in the context that now runs: release the previous
/// task, and load this task's kernel stack, segment bases and FPU state.
pub fn finish_switch() {
    let cpu = this_cpu();
    let prev = PREV[cpu].swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !prev.is_null() {
        // SAFETY: `prev` came from Arc::into_raw in `switch` on this CPU.
        let p = unsafe { Arc::from_raw(prev) };
        p.ctx.on_cpu.store(false, Ordering::Release);
        runqueue::switched_out(&p);
        drop(p);
    }
    let cur = CURRENT[cpu].load(Ordering::Acquire);
    if !cur.is_null() {
        // SAFETY: the run queue's `current` keeps the task alive while it runs here.
        let t = unsafe { &*cur };
        crate::arch::activate_page_tables(t.cr3.load(Ordering::Acquire));
        // SAFETY: `t`'s own kernel stack, alive while it runs here.
        unsafe { set_kernel_stack(t.kstack_top()) };
        crate::arch::load_user_segment_bases(
            t.fs_base.load(Ordering::Relaxed),
            t.gs_base.load(Ordering::Relaxed),
        );
        // SAFETY: this CPU now runs `t`; its FPU area was saved by `switch`.
        trap::fpu_restore(unsafe { &*t.ctx.fpu.get() });
        runqueue::switched_in(cpu);
    }
}
