//! vCPU pinning: `margay run` pins each vCPU thread to its own host core (by
//! default the last --cpus cores margay may use, or those `--host-cpus` names)
//! and says so under `--stats`; an impossible `--host-cpus` is a usage error.

mod common;

use common::*;

/// The cores this test (and so margay, its child) may run on.
fn allowed_cores() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status")
        .trim();
    let mut cores = Vec::new();
    for item in list.split(',') {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        cores.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
    }
    cores
}

fn partition_line(out: &std::process::Output) -> String {
    let err = stderr_str(out);
    err.lines()
        .find(|l| l.starts_with("partition: "))
        .unwrap_or_else(|| panic!("no partition line under --stats:\n{err}"))
        .to_string()
}

/// The numbers in `line` between `prefix` and the next space.
fn list_after(line: &str, prefix: &str) -> Vec<u64> {
    let rest = line
        .split_once(prefix)
        .unwrap_or_else(|| panic!("no '{prefix}' in {line:?}"))
        .1;
    rest.split(' ')
        .next()
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("bad list in {line:?}")))
        .collect()
}

#[test]
fn two_cores_are_pinned_to_two_host_cores() {
    let out = run_margay(
        &["run", "--cpus", "2", "--stats", "--", BUSYBOX, "true"],
        None,
        &[],
    );
    assert_status(&out, 0, "margay run --cpus 2 --stats -- busybox true");
    let line = partition_line(&out);
    assert!(line.starts_with("partition: 2 LWK cores"), "{line}");
    assert!(
        line.ends_with(", accel tcg") || line.ends_with(", accel kvm"),
        "{line}"
    );
    let allowed = allowed_cores();
    if allowed.len() < 2 {
        assert!(line.contains("not pinned (oversubscribed"), "{line}");
        return;
    }
    let cores = list_after(&line, " on host cores ");
    let want: Vec<u64> = allowed[allowed.len() - 2..]
        .iter()
        .map(|&c| c as u64)
        .collect();
    assert_eq!(cores, want, "default: the last two allowed cores; {line}");
    let threads = list_after(&line, "(vCPU threads ");
    assert_eq!(threads.len(), 2, "{line}");
    assert_ne!(threads[0], threads[1], "{line}");
    assert!(line.contains(" pinned), accel "), "{line}");
}

#[test]
fn host_cpus_picks_the_cores() {
    let first = allowed_cores()[0];
    let out = run_margay(
        &[
            "run",
            "--host-cpus",
            &first.to_string(),
            "--stats",
            "--",
            BUSYBOX,
            "true",
        ],
        None,
        &[],
    );
    assert_status(&out, 0, "margay run --host-cpus FIRST --stats");
    let line = partition_line(&out);
    assert!(
        line.starts_with(&format!(
            "partition: 1 LWK core on host core {first} (vCPU thread "
        )),
        "{line}"
    );
}

#[test]
fn impossible_host_cpus_are_usage_errors() {
    let allowed = allowed_cores();
    let all = allowed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--host-cpus", "99"], "host core 99"),
        (vec!["--cpus", "2", "--host-cpus", "99"], "--cpus is 2"),
        (
            vec!["--host-cpus", &all, "--cpus", "1"],
            "one host core per LWK core",
        ),
        (vec!["--host-cpus", "1-0"], "reversed range"),
        (vec!["--host-cpus", "x"], "not a core list"),
        (vec!["--host-cpus", "1,1"], "twice"),
    ];
    for (flags, msg) in cases {
        let mut args = vec!["run"];
        args.extend(&flags);
        args.extend(["--", BUSYBOX, "true"]);
        // A single-core host has a valid "--host-cpus 0 --cpus 1" only.
        if flags.contains(&all.as_str()) && allowed.len() == 1 {
            continue;
        }
        let out = run_margay(&args, None, &[]);
        assert_status(&out, 2, &format!("margay {}", args.join(" ")));
        let err = stderr_str(&out);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}
