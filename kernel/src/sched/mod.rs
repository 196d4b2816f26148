//! Tasks and per-core scheduling, Kitten style: one run queue per core,
//! round-robin among the runnable tasks of a core, and no periodic tick. A
//! core arms its one-shot LAPIC timer only for sleepers' deadlines, for time
//! slices while it holds more than one runnable task, to poll offloads of
//! blocked tasks while it runs others, and (core 0) for the earliest alarm.
//! Idle cores halt.
//!
//! Context switches happen only in kernel mode with interrupts off: from a
//! syscall (blocking, yielding, exiting) or from an interrupt that arrived in
//! user mode (preemption). Each task has its own kernel stack.
//!
//! | file | what |
//! | --- | --- |
//! | `task.rs` | `Task`, the task table, tids, `current()` and friends |
//! | `runqueue.rs` | per-core run queues: enqueue, wake, block, yield, migrate, the idle loop |
//! | `switch.rs` | the context switch and the per-core "current task" pointer: the scheduler's only `unsafe` |
//! | `smp.rs` | starting application processors, reschedule and TLB IPIs |
//! | `timer.rs` | the one-shot timer, sleeps, offload waits, alarm deadlines |
//! | `hooks.rs` | what the layers above register (signals, host signals, alarms) |
//!
//! The scheduler sits above `arch` and `mm` and below processes, signals and
//! the channel's requests; it reaches those only through `hooks`.

mod hooks;
mod runqueue;
mod smp;
#[allow(unsafe_code)]
mod switch;
mod task;
mod timer;

pub use hooks::{interrupted, set_hooks, Hooks};
pub use runqueue::{
    block, cpu_counters, enter_kernel, exit_current, leave_kernel, migrate_current, ncpus,
    online_mask, others_runnable, request_migration, start_thread, thread_cycles, wake, yield_now,
};
pub use smp::{init_bsp, on_resched, on_tlb_ipi, start_aps};
pub use switch::{current, finish_switch};
pub use task::{
    adopt_main, current_pid, current_slot, current_table, current_tid, find, kick_for_signal,
    kick_task_for_signal, leave_unless_last, reserve_thread, set_user_page_tables,
    spawn_thread_prepared, tasks_of, thread_count, CpuAccount, NewProcess, Task, TaskRef, NO_MASK,
};
pub use timer::{on_timer, poll_while_spinning, sleep_until, wait_offload, Alarm, Wakeup};
