//! Per-process timers and queued signals, each program's output compared
//! with a native run: POSIX timers (periodic with overruns, SI_TIMER
//! siginfo to a handler and to sigwaitinfo, SIGEV_NONE, SIGEV_THREAD_ID to
//! one thread, none in a forked child, deleted by exec while ITIMER_REAL
//! stays), ITIMER_VIRTUAL/ITIMER_PROF counting only CPU time, sigqueue
//! values queued in order, signalfd (read, poll, epoll, blocking read and
//! poll woken by a signal, fork) and timerfd with the LWK's blocking.

mod common;

use common::*;

fn same_as_native(name: &str, must: &[&str]) {
    let inv = Invocation::new(program(name));
    let (_, margay) = compare_with_native(&inv);
    let out = stdout_str(&margay);
    assert!(!out.contains("FAILED"), "{out}");
    for m in must {
        assert!(out.contains(m), "missing {m:?} in:\n{out}");
    }
}

#[test]
fn posix_timers_overrun_thread_id_fork_and_exec() {
    same_as_native(
        "timers",
        &[
            "periodic: si_code SI_TIMER 1, value 42, overrun >= 5 1",
            "handler: SI_TIMER 1, value 7, timer id matches 1",
            "thread: pending in main 0",
            "thread: pending in worker 1, took it 1, SI_TIMER 1, value 99",
            "fork child: timer EINVAL 1, itimer cleared 1",
            "after exec: timer EINVAL 1, itimer kept 1",
        ],
    );
}

#[test]
fn cpu_time_timers_count_only_running_time() {
    same_as_native(
        "cputimers",
        &[
            "virtual: fired while sleeping 0",
            "virtual: fired while computing 1",
            "prof: periodic fired 3 more times 1",
            "process cpu timer: fired while sleeping 0, still armed 1",
            "thread cpu timer: fired while computing 1",
        ],
    );
}

#[test]
fn sigqueue_values_queue_in_order() {
    same_as_native(
        "sigqueue",
        &[
            "took SIGRTMIN value 3 code SI_QUEUE 1 pid ok 1",
            "handler: count 5, last value 103",
            "thread: value 55, code SI_QUEUE 1",
        ],
    );
}

#[test]
fn signalfd_read_poll_epoll_and_blocking() {
    same_as_native(
        "signalfd",
        &[
            "empty read: EAGAIN 1",
            "poll pending: 1, POLLIN 1",
            "read: 3 records: 41(SI_QUEUE 1) 42(SI_QUEUE 1) 43(SI_QUEUE 1)",
            "timer: 128 bytes, SI_TIMER 1, tid matches 1, value 9",
            "blocking read: 128 bytes, SIGUSR2 1",
            "blocking poll: 1, POLLIN 1",
            "child: 128 bytes, SIGUSR1 1",
        ],
    );
}

#[test]
fn timerfd_blocks_in_read_poll_and_epoll() {
    same_as_native("timerfd", &["poll: 1, POLLIN 1", "epoll: 1"]);
}
