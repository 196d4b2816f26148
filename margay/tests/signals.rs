//! Signals on the LWK: handlers with Linux-compatible frames, masks, timers,
//! interrupted calls and default actions, compared with native runs.

mod common;

use common::*;

fn same_as_native(test: &str) {
    let inv = Invocation::new(program("signals")).arg(test);
    compare_with_native(&inv);
}

#[test]
fn segv_handler_recovers_with_siglongjmp() {
    same_as_native("segv");
}

#[test]
fn raise_and_kill_run_the_handler_with_siginfo() {
    same_as_native("raise");
}

#[test]
fn blocked_signal_stays_pending_until_unblocked() {
    same_as_native("mask");
}

#[test]
fn alarm_interrupts_pause() {
    same_as_native("alarm");
}

#[test]
fn itimer_interrupts_nanosleep_with_remaining_time() {
    same_as_native("sleep");
}

#[test]
fn alarm_interrupts_a_read_blocked_in_the_proxy() {
    same_as_native("readeintr");
}

#[test]
fn sa_restart_restarts_the_interrupted_offloaded_read() {
    same_as_native("readrestart");
}

#[test]
fn handler_does_not_clobber_interrupted_fpu_state() {
    same_as_native("fpu");
}

#[test]
fn ignored_sigpipe_gives_epipe() {
    same_as_native("pipe");
}

#[test]
fn cpu_exceptions_become_signals_with_linux_siginfo() {
    same_as_native("faults");
}

#[test]
fn default_action_terminates_with_128_plus_signal() {
    let out = Invocation::new(program("signals"))
        .arg("default")
        .run_margay();
    assert_status(&out, 143, "raise(SIGTERM)");
    assert!(!stdout_str(&out).contains("still alive"));
    assert!(
        stderr_str(&out).contains("Terminated"),
        "{}",
        stderr_str(&out)
    );
}

#[test]
fn unhandled_sigpipe_kills_quietly_like_a_shell() {
    // `yes | head -1`: the writer dies of SIGPIPE (141) once the reader is gone.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} run -- /bin/busybox yes | head -1; exit ${{PIPESTATUS[0]}}",
            env!("CARGO_BIN_EXE_margay")
        ))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n");
    assert_eq!(
        out.status.code(),
        Some(141),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
