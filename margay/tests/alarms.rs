//! Alarms belong to their process: a parent's alarm wakes the parent while
//! its forked child computes, and the child starts without one.

mod common;

use common::*;

#[test]
fn parent_alarm_wakes_the_parent_while_its_child_computes() {
    let inv = Invocation::new(program("alarmfork"));
    let (_, margay) = compare_with_native(&inv);
    let out = stdout_str(&margay);
    assert!(out.contains("SIGALRM handled: 1"), "{out}");
    assert!(out.contains("child exited 0"), "{out}");
}
