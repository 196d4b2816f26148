//! The LWK's views of /proc and /sys: what a program on the LWK reads about
//! its cores, its memory and its mappings describes the partition, not the host.

mod common;

use common::*;

fn busybox(cpus: &str, args: &[&str]) -> String {
    busybox_with(&["--cpus", cpus], args)
}

/// `margay run FLAGS -- busybox ARGS`; its stdout (it must succeed).
fn busybox_with(flags: &[&str], args: &[&str]) -> String {
    let out = flags
        .iter()
        .fold(Invocation::new(BUSYBOX).args(args), |inv, f| inv.flag(f))
        .run_margay();
    assert_status(&out, 0, &format!("busybox {args:?} with {flags:?}"));
    stdout_str(&out)
}

/// The value of a `KEY:   N kB` line.
fn kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().strip_suffix(" kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} line:\n{text}"))
}

#[test]
fn sys_cpu_lists_name_the_lwk_cores() {
    assert_eq!(
        busybox("2", &["cat", "/sys/devices/system/cpu/online"]),
        "0-1\n"
    );
    assert_eq!(
        busybox(
            "1",
            &[
                "cat",
                "/sys/devices/system/cpu/online",
                "/sys/devices/system/cpu/possible",
                "//sys/devices/system/cpu/present",
            ]
        ),
        "0\n0\n0\n"
    );
}

#[test]
fn cpuinfo_has_one_processor_per_lwk_core() {
    for cpus in ["1", "2", "3"] {
        let n = busybox(cpus, &["grep", "-c", "^processor", "/proc/cpuinfo"]);
        assert_eq!(n.trim(), cpus, "--cpus {cpus}");
    }
}

#[test]
fn maps_lists_the_lwk_regions() {
    let maps = busybox("1", &["cat", "/proc/self/maps"]);
    assert!(maps.contains("[stack]"), "{maps}");
    let image = maps
        .lines()
        .find(|l| l.ends_with(BUSYBOX))
        .unwrap_or_else(|| panic!("no line names {BUSYBOX}:\n{maps}"));
    assert!(image.starts_with("00400000-"), "{maps}");
    assert!(maps.lines().any(|l| l.contains(" r-xp ")), "{maps}");
    // Nothing of the proxy (margay itself, its libraries) shows.
    assert!(!maps.contains("margay") && !maps.contains(".so"), "{maps}");
}

#[test]
fn status_shows_the_lwk_affinity_and_sizes() {
    let s = busybox("2", &["cat", "/proc/self/status"]);
    assert!(s.starts_with("Name:\tbusybox\n"), "{s}");
    assert!(s.contains("Cpus_allowed_list:\t0-1\n"), "{s}");
    let mask = s
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed:\t"))
        .unwrap_or_else(|| panic!("no Cpus_allowed:\n{s}"));
    assert_eq!(mask.replace(',', "").trim_start_matches('0'), "3", "{s}");
    let kb = |key: &str| kb(&s, key);
    // The 8 MiB stack and busybox's image, far below the proxy's reservations.
    let size = kb("VmSize:");
    assert!((8 << 10..64 << 10).contains(&size), "{s}");
    assert_eq!(kb("VmRSS:"), size);
}

#[test]
fn meminfo_shows_the_partition_memory() {
    let m = busybox_with(&["--mem", "256M"], &["cat", "/proc/meminfo"]);
    let total = kb(&m, "MemTotal:");
    assert!((64 << 10..256 << 10).contains(&total), "{m}");
    let free = kb(&m, "MemFree:");
    assert!(free > 0 && free < total, "{m}");
    assert_eq!(kb(&m, "MemAvailable:"), free, "{m}");
    assert_eq!(kb(&m, "Cached:"), 0, "{m}");
    assert_eq!(kb(&m, "SwapTotal:"), 0, "{m}");
}

#[test]
fn sysconf_counts_the_lwk_cores() {
    for cpus in ["1", "2"] {
        let out = Invocation::new(program("nprocs"))
            .flag("--cpus")
            .flag(cpus)
            .run_margay();
        assert_status(&out, 0, &format!("nprocs on {cpus} core(s)"));
        let s = stdout_str(&out);
        assert!(s.contains(&format!("onln={cpus}\n")), "--cpus {cpus}:\n{s}");
        assert!(s.contains(&format!("conf={cpus}\n")), "--cpus {cpus}:\n{s}");
        assert!(
            s.contains(&format!("get_nprocs={cpus}\n")),
            "--cpus {cpus}:\n{s}"
        );
    }
}
