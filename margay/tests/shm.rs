//! Shared memory between LWK processes: `MAP_SHARED|MAP_ANONYMOUS` and shared
//! `/dev/zero` stay shared across fork (private mappings keep their copy),
//! process-shared mutexes and semaphores work between processes, and
//! madvise/mremap/mprotect/munmap of shared mappings behave as on Linux.
//! Every case is compared with a native run.

mod common;

use common::*;

fn shmanon(mode: &str, cpus: &str) {
    compare_with_native(
        &Invocation::new(program("shmanon"))
            .arg(mode)
            .flag("--cpus")
            .flag(cpus),
    );
}

#[test]
fn a_shared_counter_under_a_process_shared_mutex_is_exact_on_one_and_two_cores() {
    shmanon("counter", "1");
    shmanon("counter", "2");
}

#[test]
fn process_shared_semaphores_ping_pong_between_processes() {
    shmanon("sem", "1");
    shmanon("sem", "2");
}

#[test]
fn shared_dev_zero_is_anonymous_shared_memory() {
    shmanon("devzero", "1");
}

#[test]
fn madvise_of_shared_memory_keeps_or_removes_contents_as_linux() {
    shmanon("madvise", "1");
}

#[test]
fn mremap_and_partial_munmap_keep_a_mapping_shared() {
    shmanon("mremap", "1");
}

#[test]
fn mprotect_in_one_process_leaves_the_other_writable() {
    shmanon("mprotect", "2");
}

#[test]
fn proc_self_maps_shows_shared_mappings() {
    shmanon("maps", "1");
}

#[test]
fn large_shared_mappings_are_shared_page_by_page() {
    shmanon("big", "2");
}

/// 40 rounds of 32 MiB in a 512 MiB partition: the objects must be freed
/// when the last process unmaps them.
#[test]
fn shared_objects_are_freed_with_their_last_mapping() {
    shmanon("many", "1");
}

/// A 16 KiB file whose byte i is i & 0xff, in a fresh directory under
/// /dev/shm (tmpfs, as POSIX shared memory) or the test's temporary dir.
fn pattern_file(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.join("data");
    let bytes: Vec<u8> = (0..16384u32).map(|i| i as u8).collect();
    write_file(&path, &bytes, 0o600);
    path
}

fn shmfile(mode: &str, with_file: bool) {
    let dir = TempDir::new("shmfile");
    let mut inv = Invocation::new(program("shmfile")).arg(mode);
    if with_file {
        // Natively first, then on Margay: each on a fresh copy of the file.
        let native = {
            let f = pattern_file(&dir);
            Invocation::new(program("shmfile"))
                .arg(mode)
                .arg(&f)
                .run_native()
        };
        let f = pattern_file(&dir);
        inv = inv.arg(&f);
        let margay = inv.run_margay();
        assert_same(&native, &margay, mode);
    } else {
        compare_with_native(&inv);
    }
}

#[test]
fn shared_file_mappings_follow_the_descriptors_access_mode() {
    shmfile("access", true);
}

#[test]
fn private_file_mappings_keep_their_copy() {
    shmfile("private", true);
}

#[test]
fn a_process_shared_mutex_in_a_shared_file_mapping_works_across_fork() {
    shmfile("fork", true);
}

#[test]
fn memfd_mappings_and_read_write_see_the_same_bytes() {
    shmfile("memfd", false);
}

#[test]
fn shm_open_segments_are_shared_with_children_and_outlive_them() {
    shmfile("shmopen", false);
}

/// 100 files mapped and unmapped one after the other, in a partition with
/// 64 memory-device slots: each file's dimm is ejected and removed again.
#[test]
fn files_are_unplugged_when_their_last_mapping_goes() {
    shmfile("many", false);
}

/// The LWK and a Linux process see the same bytes: the program's stores
/// (after msync) are in the file for `read()` on the host, and the host's
/// `write()` to the file shows in the program's mapping.
#[test]
fn a_shared_file_mapping_is_coherent_with_linux_processes() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::os::unix::fs::FileExt as _;
    use std::process::{Command, Stdio};
    let dir = TempDir::new("coherent");
    let f = pattern_file(&dir);
    let _permit = qemu_permit();
    let mut child = Command::new(MARGAY)
        .args(["run", "--"])
        .arg(program("shmfile"))
        .arg("coherent")
        .arg(&f)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn margay");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).expect("read") == 0 {
            break;
        }
        let done = l.trim() == "stored";
        lines.push(l.trim().to_string());
        if done {
            break;
        }
    }
    // The program stored "lwk" at 8192 through its mapping: Linux reads it.
    let host = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    let mut seen = [0u8; 4];
    host.read_exact_at(&mut seen, 8192).unwrap();
    assert_eq!(&seen, b"lwk\0", "lines so far: {lines:?}");
    host.write_all_at(b"host\0", 12288).unwrap();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    lines.extend(rest.lines().map(str::to_string));
    assert!(child.wait().unwrap().success());
    assert_eq!(
        lines,
        [
            "initial bytes wrong: 0",
            "read() sees: lwk",
            "stored",
            "mapping sees: host"
        ]
    );
}

/// A file whose last page is partial (here its only page) is mapped whole,
/// as on Linux: stores reach read(), write() reaches the mapping, the file
/// keeps its size.
#[test]
fn a_file_smaller_than_a_page_is_mapped_whole_as_on_linux() {
    let dir = TempDir::new("subpage");
    compare_with_native(
        &Invocation::new(program("shmfile"))
            .arg("subpage")
            .arg(dir.path()),
    );
}

/// A shared mapping longer than its file: the pages past the end are
/// SIGBUS (BUS_ADRERR) and EFAULT for system calls, as on Linux.
#[test]
fn pages_past_the_end_of_a_file_are_sigbus() {
    let dir = TempDir::new("pasteof");
    compare_with_native(
        &Invocation::new(program("shmfile"))
            .arg("pasteof")
            .arg(dir.path()),
    );
}

/// A file truncated under a shared mapping: the partition survives an
/// access past the new end (QEMU would die of SIGBUS without the preloaded
/// shim's handler), and the rest of the mapping stays shared. The LWK
/// process reads zeros there where Linux sends it SIGBUS (a documented
/// difference).
#[test]
fn a_file_truncated_under_its_mapping_does_not_kill_the_partition() {
    let dir = TempDir::new("shrink");
    let out = Invocation::new(program("shmfile"))
        .arg("shrink")
        .arg(dir.path())
        .run_margay();
    assert_status(&out, 0, "shmfile shrink");
    assert!(
        stdout_str(&out).ends_with("first page still shared: 1\n"),
        "{}",
        stdout_str(&out)
    );
}

/// The same, from a dynamically linked program (its libraries are mapped
/// privately, its data file shared).
#[test]
fn a_dynamically_linked_program_maps_a_data_file_shared() {
    let dir = TempDir::new("dynshared");
    compare_with_native(
        &Invocation::new(dynamic_program("shmfile"))
            .arg("subpage")
            .arg(dir.path()),
    );
}

/// POSIX named semaphores (32-byte files in /dev/shm) between two processes,
/// with a counter in a 100-byte shm_open segment, on one and two cores.
#[test]
fn sem_open_ping_pong_between_two_processes() {
    for cpus in ["1", "2"] {
        compare_with_native(
            &Invocation::new(program("semping"))
                .arg("2000")
                .flag("--cpus")
                .flag(cpus),
        );
    }
}

/// Python's multiprocessing with the fork start method: a Pool.map, a
/// Queue fed by another process, and a Value under a Lock (POSIX
/// semaphores and shared arenas), compared with native.
#[test]
fn python_multiprocessing_pool_queue_and_lock() {
    let script = r#"
import multiprocessing as mp
def sq(x): return x * x
def producer(q):
    for i in range(100): q.put(i)
    q.put(None)
def inc(v, l):
    for _ in range(500):
        with l: v.value += 1
if __name__ == "__main__":
    mp.set_start_method("fork")
    with mp.Pool(2) as p:
        print("pool", sum(p.map(sq, range(1000))))
    q = mp.Queue()
    w = mp.Process(target=producer, args=(q,))
    w.start()
    tot = 0
    while (v := q.get()) is not None: tot += v
    w.join()
    print("queue", tot, w.exitcode)
    l = mp.Lock(); v = mp.Value("i", 0)
    ps = [mp.Process(target=inc, args=(v, l)) for _ in range(2)]
    for x in ps: x.start()
    for x in ps: x.join()
    print("value", v.value, [x.exitcode for x in ps])
"#;
    compare_with_native(
        &Invocation::new("/usr/bin/python3")
            .args(["-c", script])
            .flag("--cpus")
            .flag("2"),
    );
}

/// Processes on both sides of the LWK count under one process-shared mutex
/// in a /dev/shm file: `others` are started beside one `margay run`; the
/// total is exact and nobody sleeps forever on the mutex (waits and wakes of
/// its futex reach Linux's, whoever waits).
fn count_together(others: &[&[&str]]) {
    use std::process::{Command, Stdio};
    let dir = TempDir::new("count");
    let name = format!("/dev/shm/margay-test-count-{}", std::process::id());
    let path = std::path::PathBuf::from(&name);
    write_file(&path, &[0u8; 4096], 0o600);
    let n = "20000";
    let parties = (others.len() + 1).to_string();
    let _permit = qemu_permit();
    let spawn = |prefix: &[&str]| {
        let mut c = Command::new(prefix[0]);
        c.args(&prefix[1..])
            .arg(program("shmfile"))
            .args(["count", &name, n, &parties])
            .current_dir(dir.path())
            .stdout(Stdio::piped());
        c.spawn().expect("spawn")
    };
    let mut children: Vec<_> = others.iter().map(|p| spawn(p)).collect();
    children.push(spawn(&[MARGAY, "run", "--cpus", "1", "--"]));
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("added {n}\n"));
    }
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    // struct shared_page: a 40-byte pthread_mutex_t, then the count.
    let count = i64::from_le_bytes(bytes[40..48].try_into().unwrap());
    assert_eq!(count, 20000 * (others.len() as i64 + 1));
}

/// `lock xadd` on one word of a /dev/shm file from two one-core partitions
/// and a Linux process at once: no update is lost (QEMU emulates atomic
/// instructions atomically only for machines that may have two cores; see
/// `qemu::smp`).
#[test]
fn atomic_instructions_on_a_shared_file_are_atomic_across_partitions_and_linux() {
    use std::process::{Command, Stdio};
    let name = format!("/dev/shm/margay-test-atomic-{}", std::process::id());
    let path = std::path::PathBuf::from(&name);
    write_file(&path, &[0u8; 4096], 0o600);
    let n = "300000";
    let _permit = qemu_permit();
    let spawn = |prefix: &[&str]| {
        let mut c = Command::new(prefix[0]);
        c.args(&prefix[1..])
            .arg(program("atomadd"))
            .args([&name, n, "3"])
            .stdout(Stdio::piped());
        c.spawn().expect("spawn")
    };
    let lwk = [MARGAY, "run", "--cpus", "1", "--"];
    let children = [spawn(&lwk), spawn(&lwk), spawn(&["/usr/bin/env"])];
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("added {n}\n"));
    }
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let total = i64::from_le_bytes(bytes[0..8].try_into().unwrap());
    assert_eq!(total, 3 * 300_000);
}

#[test]
fn an_lwk_process_and_a_linux_process_share_a_mutex_in_a_dev_shm_file() {
    count_together(&[&["/usr/bin/env"]]);
}

#[test]
fn two_partitions_share_a_mutex_in_a_dev_shm_file() {
    count_together(&[&[MARGAY, "run", "--cpus", "1", "--"]]);
}

/// A futex wait and wake on a page of a /dev/shm file, one side on the LWK
/// (`on_lwk` says which) and the other natively or in a second partition:
/// the waker retries until Linux says it woke a waiter, so both end only when
/// the wake crossed between the kernels.
fn futex_across(wait_on_lwk: bool, wake_on_lwk: bool) {
    use std::process::{Command, Stdio};
    let name = format!(
        "/dev/shm/margay-test-futex-{}-{wait_on_lwk}-{wake_on_lwk}",
        std::process::id()
    );
    let path = std::path::PathBuf::from(&name);
    write_file(&path, &[0u8; 4096], 0o600);
    let _permit = qemu_permit();
    let spawn = |on_lwk: bool, mode: &str| {
        let mut c = if on_lwk {
            let mut c = Command::new(MARGAY);
            c.args(["run", "--cpus", "1", "--"]);
            c.arg(program("shmfile"));
            c
        } else {
            Command::new(program("shmfile"))
        };
        c.args([mode, &name]).stdout(Stdio::piped());
        c.spawn().expect("spawn")
    };
    let waiter = spawn(wait_on_lwk, "futexwait");
    let waker = spawn(wake_on_lwk, "futexwake");
    let w = waiter.wait_with_output().expect("waiter");
    let k = waker.wait_with_output().expect("waker");
    let _ = std::fs::remove_file(&path);
    assert_eq!(String::from_utf8_lossy(&w.stdout), "woken 0\n", "{w:?}");
    assert_eq!(
        String::from_utf8_lossy(&k.stdout),
        "woke a waiter\n",
        "{k:?}"
    );
}

#[test]
fn a_linux_process_wakes_an_lwk_futex_waiter_on_a_shared_file() {
    futex_across(true, false);
}

#[test]
fn an_lwk_process_wakes_a_linux_futex_waiter_on_a_shared_file() {
    futex_across(false, true);
}

#[test]
fn futex_wakes_cross_between_two_partitions() {
    futex_across(true, true);
}

/// SysV shared memory: attach counts, sharing across fork, SHM_RDONLY,
/// fixed and rounded addresses, IPC_RMID with attachments left, and the
/// errors, compared with native; on one and two cores.
#[test]
fn sysv_segments_attach_share_and_detach_as_on_linux() {
    for cpus in ["1", "2"] {
        compare_with_native(
            &Invocation::new(program("sysvshm"))
                .arg("basic")
                .flag("--cpus")
                .flag(cpus),
        );
    }
}

/// Six processes attach one segment at once on one core: the first plugs
/// it, the others wait for it without stopping the core from noticing the
/// proxy's answer (they once spun and hung the partition).
#[test]
fn concurrent_first_attaches_of_a_segment_do_not_hang() {
    compare_with_native(
        &Invocation::new(program("sysvshm"))
            .args(["concurrent", "6"])
            .flag("--cpus")
            .flag("1"),
    );
}

/// A SysV segment is Linux's own: made on the LWK, `ipcs` lists it and a
/// Linux process reads it; made by Linux, the LWK reads it.
#[test]
fn sysv_segments_are_shared_with_linux_processes() {
    use std::process::Command;
    let key = format!("{:#x}", 0x4d47_0000u32 | (std::process::id() & 0xffff));
    let out = Invocation::new(program("sysvshm"))
        .args(["put", &key, "made on the LWK"])
        .run_margay();
    assert_status(&out, 0, "put on the LWK");
    let ipcs = Command::new("ipcs").arg("-m").output().expect("ipcs");
    let listed = String::from_utf8_lossy(&ipcs.stdout).contains(&format!(
        "0x{:08x}",
        u32::from_str_radix(&key[2..], 16).unwrap()
    ));
    let native = Command::new(program("sysvshm"))
        .args(["take", &key])
        .output()
        .expect("native take");
    assert_eq!(
        String::from_utf8_lossy(&native.stdout),
        "took \"made on the LWK\"\n"
    );
    assert!(
        listed,
        "ipcs -m does not list {key}:\n{}",
        String::from_utf8_lossy(&ipcs.stdout)
    );
    let native = Command::new(program("sysvshm"))
        .args(["put", &key, "made by Linux"])
        .output()
        .expect("native put");
    assert!(native.status.success(), "{native:?}");
    let out = Invocation::new(program("sysvshm"))
        .args(["take", &key])
        .run_margay();
    assert_status(&out, 0, "take on the LWK");
    assert_eq!(stdout_str(&out), "took \"made by Linux\"\n");
}
