//! End-to-end tests of `margay run`: boot the LWK under QEMU, run static
//! programs, and compare their stdout and exit status with a native run.
//!
//! At most two QEMU instances run at once (see `common::qemu_permit`; set
//! MARGAY_TEST_JOBS to change it). Every run has a hard timeout.

mod common;

use common::*;
use std::fs;
use std::path::Path;

// ---------------------------------------------------------------------------
// C test programs compared with native runs.

#[test]
fn hello_matches_native() {
    let inv = Invocation::new(program("hello"))
        .args(["first arg", "second", ""])
        .env("MARGAY_TEST_VAR", "value with spaces = and symbols!");
    let (_, m) = compare_with_native_stderr(&inv);
    let out = stdout_str(&m);
    assert!(out.contains("hello from margay test"), "{out}");
    assert!(
        out.contains("MARGAY_TEST_VAR=value with spaces = and symbols!"),
        "{out}"
    );
    assert!(stderr_str(&m).contains("hello on stderr"));
}

#[test]
fn hello_without_args_or_var() {
    let prog = program("hello");
    // Make sure the variable is not inherited from the test's environment.
    let native = {
        let mut c = std::process::Command::new(&prog);
        c.env_remove("MARGAY_TEST_VAR");
        run_with_timeout(c, None, TIMEOUT, "native hello")
    };
    let margay = {
        let mut c = std::process::Command::new(MARGAY);
        c.args(["run", "--"])
            .arg(&prog)
            .env_remove("MARGAY_TEST_VAR");
        let _p = qemu_permit();
        run_with_timeout(c, None, TIMEOUT, "margay run -- hello")
    };
    assert_same(&native, &margay, "hello without args");
    assert!(stdout_str(&margay).contains("MARGAY_TEST_VAR=(unset)"));
}

#[test]
fn exit_codes() {
    for code in [0, 1, 42, 255] {
        let inv = Invocation::new(program("exitcode")).arg(code.to_string());
        let (_, m) = compare_with_native(&inv);
        assert_status(&m, code, &format!("exitcode {code}"));
    }
}

/// Runs a program that works inside a directory given as argv[1] ("work"),
/// natively and under margay, each in a fresh directory with the same
/// structure, with cwd set to that directory's parent.
fn compare_in_fresh_dirs(
    name: &str,
    extra_args: &[&str],
) -> (std::process::Output, std::process::Output) {
    let prog = program(name);
    let native_dir = TempDir::new(&format!("{name}-native"));
    let margay_dir = TempDir::new(&format!("{name}-margay"));
    fs::create_dir(native_dir.join("work")).unwrap();
    fs::create_dir(margay_dir.join("work")).unwrap();
    let inv = Invocation::new(&prog).arg("work").args(extra_args);
    let native = inv.clone().cwd(native_dir.path()).run_native();
    let margay = inv.cwd(margay_dir.path()).run_margay();
    assert_same(&native, &margay, name);
    assert_status(&margay, 0, name);
    // Both runs clean up after themselves: the same (empty) tree remains.
    let left: Vec<_> = fs::read_dir(margay_dir.join("work")).unwrap().collect();
    assert!(
        left.is_empty(),
        "{name} under margay left files behind: {left:?}"
    );
    (native, margay)
}

#[test]
fn files_match_native() {
    let (_, m) = compare_in_fresh_dirs("files", &[]);
    let out = stdout_str(&m);
    assert!(
        out.contains("first fd=3\n"),
        "first open must return fd 3:\n{out}"
    );
    assert!(out.contains("all ok\n"), "{out}");
}

#[test]
fn getdents_match_native() {
    let (_, m) = compare_in_fresh_dirs("getdents", &["300"]);
    let out = stdout_str(&m);
    assert!(out.contains("readdir: 303 entries"), "{out}");
    assert!(out.contains("getdents64: 303 entries"), "{out}");
    assert!(out.contains("cleaned up"), "{out}");
}

#[test]
fn malloc_matches_native() {
    let inv = Invocation::new(program("malloc"))
        .flag("--mem")
        .flag("512M");
    let (_, m) = compare_with_native(&inv);
    assert_status(&m, 0, "malloc");
    assert!(stdout_str(&m).contains("checksum="));
}

#[test]
fn bad_pointers_give_efault() {
    let inv = Invocation::new(program("efault"));
    let (_, m) = compare_with_native(&inv);
    assert_status(&m, 0, "efault");
    let out = stdout_str(&m);
    for call in [
        "write(1, 0x10, 10) = -1 EFAULT",
        "read(0, 0x1, 10) = -1 EFAULT",
        "open(0x1, O_RDONLY) = -1 EFAULT",
        "stat(\"/\", 0x10) = -1 EFAULT",
        "fstat(1, 0x10) = -1 EFAULT",
        "clock_gettime(CLOCK_MONOTONIC, 0x10) = -1 EFAULT",
        "gettimeofday(0x10, NULL) = -1 EFAULT",
        "write(1, kernel address, 10) = -1 EFAULT",
        "still alive, 0 unexpected results",
    ] {
        assert!(out.contains(call), "missing {call:?} in:\n{out}");
    }
}

#[test]
fn segfault_is_reported_as_sigsegv() {
    let inv = Invocation::new(program("segv"));
    let (_, m) = compare_with_native(&inv);
    assert_status(&m, 139, "segv");
    assert_eq!(stdout_str(&m), "before\n");
    let err = stderr_str(&m);
    assert!(
        err.contains("Segmentation fault"),
        "stderr should say Segmentation fault:\n{err}"
    );
}

#[test]
fn unknown_syscalls_give_enosys() {
    let inv = Invocation::new(program("enosys"));
    let (_, m) = compare_with_native(&inv);
    assert_status(&m, 0, "enosys");
    let out = stdout_str(&m);
    assert!(out.contains("syscall(1000) = -1 errno=ENOSYS"), "{out}");
    assert!(out.contains("syscall(500) = -1 errno=ENOSYS"), "{out}");
}

#[test]
fn allocation_beyond_partition_gives_enomem() {
    // No native comparison: Linux overcommits.
    let big = Invocation::new(program("enomem"))
        .arg("1024")
        .flag("--mem")
        .flag("256M")
        .run_margay();
    assert_status(&big, 0, "enomem 1024 with --mem 256M");
    let out = stdout_str(&big);
    assert!(
        out.contains("mmap: ENOMEM"),
        "mmap of 1 GiB in a 256 MiB partition must fail:\n{out}"
    );
    assert!(
        out.contains("malloc: NULL"),
        "malloc of 1 GiB must return NULL:\n{out}"
    );
    assert!(out.contains("small malloc: ok"), "{out}");

    // A size that fits works.
    let small = Invocation::new(program("enomem"))
        .arg("16")
        .flag("--mem")
        .flag("256M")
        .run_margay();
    assert_status(&small, 0, "enomem 16 with --mem 256M");
    let out = stdout_str(&small);
    assert!(
        out.contains("mmap: mapped") && out.contains("malloc: ok"),
        "{out}"
    );
}

#[test]
fn time_matches_native() {
    let inv = Invocation::new(program("time"));
    let (_, m) = compare_with_native(&inv);
    assert_status(&m, 0, "time");
    assert!(!stdout_str(&m).contains("FAIL"));
}

#[test]
fn stdin_piping_1mib() {
    let data = pseudo_random(1 << 20, 42);
    let inv = Invocation::new(program("stdin")).stdin(data);
    let (_, m) = compare_with_native(&inv);
    assert!(
        stdout_str(&m).contains("bytes=1048576\n"),
        "{}",
        stdout_str(&m)
    );
}

#[test]
fn stdin_empty() {
    let inv = Invocation::new(program("stdin"));
    let (_, m) = compare_with_native(&inv);
    assert!(stdout_str(&m).contains("bytes=0\n"));
}

#[test]
fn two_cpus_and_tcg() {
    let inv = Invocation::new(program("hello"))
        .arg("x")
        .env("MARGAY_TEST_VAR", "cpus")
        .flag("--cpus")
        .flag("2")
        .flag("--accel")
        .flag("tcg");
    compare_with_native(&inv);
}

// ---------------------------------------------------------------------------
// busybox-static applets compared with native runs.

fn busybox() -> &'static str {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install Debian's busybox-static"
    );
    BUSYBOX
}

/// A directory with a few files: text, a sortable list, a subdirectory.
/// It is `tree/` inside a private temporary directory, so that `..` (shown
/// by `ls -la`) does not change while other tests create temporary dirs.
struct Tree {
    _tmp: TempDir,
    root: std::path::PathBuf,
}

impl Tree {
    fn path(&self) -> &Path {
        &self.root
    }
    fn join(&self, p: &str) -> std::path::PathBuf {
        self.root.join(p)
    }
}

fn sample_tree() -> Tree {
    let tmp = TempDir::new("busybox");
    let d = Tree {
        root: tmp.join("tree"),
        _tmp: tmp,
    };
    fs::create_dir(d.path()).unwrap();
    let text = "The quick brown fox\njumps over\nthe lazy dog.\n\nlast line without newline";
    write_file(&d.join("text.txt"), text.as_bytes(), 0o644);
    let mut words = String::new();
    let mut x: u32 = 12345;
    for i in 0..2000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        words.push_str(&format!("w{:05} line {i}\n", (x >> 8) % 50_000));
    }
    write_file(&d.join("words.txt"), words.as_bytes(), 0o600);
    fs::create_dir(d.join("sub")).unwrap();
    write_file(&d.join("sub/inner.bin"), &pseudo_random(10_000, 7), 0o755);
    fs::create_dir(d.join("sub/empty")).unwrap();
    d
}

fn bb(args: &[&str]) -> Invocation {
    Invocation::new(busybox()).args(args)
}

#[test]
fn busybox_echo() {
    let (_, m) = compare_with_native(&bb(&["echo", "hello", "world"]));
    assert_eq!(stdout_str(&m), "hello world\n");
}

#[test]
fn busybox_false() {
    let (_, m) = compare_with_native(&bb(&["false"]));
    assert_status(&m, 1, "busybox false");
}

#[test]
fn busybox_cat() {
    let d = sample_tree();
    let f = d.join("text.txt");
    let (_, m) = compare_with_native(&bb(&["cat", f.to_str().unwrap()]));
    assert_eq!(m.stdout, fs::read(&f).unwrap());
}

#[test]
fn busybox_ls_la() {
    let d = sample_tree();
    let p = d.path().to_str().unwrap().to_string();
    compare_with_native(&bb(&["ls", "-la", &p]));
    compare_with_native(&bb(&["ls", "-la", &format!("{p}/sub")]));
}

#[test]
fn busybox_wc() {
    let d = sample_tree();
    let a = d.join("text.txt");
    let b = d.join("words.txt");
    compare_with_native(&bb(&["wc", a.to_str().unwrap(), b.to_str().unwrap()]));
}

#[test]
fn busybox_sort() {
    let d = sample_tree();
    let f = d.join("words.txt");
    compare_with_native(&bb(&["sort", f.to_str().unwrap()]));
    compare_with_native(&bb(&["sort", "-r", "-n", "-k", "3", f.to_str().unwrap()]));
}

#[test]
fn busybox_sha256sum() {
    let d = sample_tree();
    let f = d.join("sub/inner.bin");
    compare_with_native(&bb(&["sha256sum", f.to_str().unwrap()]));
}

#[test]
fn busybox_find() {
    let d = sample_tree();
    compare_with_native(&bb(&["find", d.path().to_str().unwrap()]));
}

#[test]
fn busybox_cwd_relative_paths() {
    let d = sample_tree();
    let inv = bb(&["cat", "text.txt", "sub/inner.bin"]).cwd(d.path());
    compare_with_native(&inv);
}

#[test]
fn busybox_dd_64mib() {
    let input = big_random_file();
    let d = TempDir::new("dd");
    let out = d.join("out.bin");
    let m = bb(&[
        "dd",
        &format!("if={}", input.display()),
        &format!("of={}", out.display()),
        "bs=1M",
    ])
    .run_margay();
    assert_status(&m, 0, "busybox dd");
    assert!(
        stderr_str(&m).contains("64+0 records"),
        "{}",
        stderr_str(&m)
    );
    assert_eq!(fs::metadata(&out).unwrap().len(), 64 << 20);
    assert_eq!(
        native_sha256(&out),
        native_sha256(&input),
        "dd copy differs from input"
    );
}

#[test]
fn busybox_sha256sum_64mib() {
    let input = big_random_file();
    let (_, m) = compare_with_native(&bb(&["sha256sum", input.to_str().unwrap()]));
    let expect = native_sha256(&input);
    assert!(stdout_str(&m).starts_with(&expect), "{}", stdout_str(&m));
}

// ---------------------------------------------------------------------------
// Bad programs and bad command lines.

#[test]
fn missing_program_is_127() {
    let name = "/nonexistent/margay-no-such-program";
    let o = run_margay(&["run", "--", name], None, &[]);
    assert_status(&o, 127, "missing program");
    assert!(
        stderr_str(&o).contains("margay-no-such-program"),
        "{}",
        stderr_str(&o)
    );
}

fn assert_rejected_126(path: &Path, what: &str) -> String {
    let o = run_margay(
        &["run".as_ref(), "--".as_ref(), path.as_os_str()],
        None,
        &[],
    );
    assert_status(&o, 126, what);
    let err = stderr_str(&o);
    assert!(!err.trim().is_empty(), "{what}: no reason given on stderr");
    err
}

#[test]
fn text_file_is_126() {
    let d = TempDir::new("notelf");
    let p = d.join("hello.txt");
    write_file(&p, b"hello\n", 0o755);
    assert_rejected_126(&p, "text file");

    let s = d.join("script.sh");
    write_file(&s, b"#!/bin/sh\necho hi\n", 0o755);
    assert_rejected_126(&s, "shell script");

    let e = d.join("empty");
    write_file(&e, b"", 0o755);
    assert_rejected_126(&e, "empty file");
}

/// A minimal ELF header (no program headers) with the given class and machine.
fn fake_elf(class64: bool, machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; if class64 { 64 } else { 52 }];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if class64 { 2 } else { 1 }; // EI_CLASS
    h[5] = 1; // little endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes()); // e_version
    if class64 {
        h[24..32].copy_from_slice(&0x400000u64.to_le_bytes()); // e_entry
        h[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        h[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    } else {
        h[24..28].copy_from_slice(&0x8048000u32.to_le_bytes());
        h[28..32].copy_from_slice(&52u32.to_le_bytes());
        h[40..42].copy_from_slice(&52u16.to_le_bytes());
        h[42..44].copy_from_slice(&32u16.to_le_bytes());
    }
    h
}

fn mentions_arch(err: &str) -> bool {
    let e = err.to_lowercase();
    e.contains("architecture") || e.contains("64")
}

#[test]
fn aarch64_elf_is_126() {
    let d = TempDir::new("aarch64");
    let p = d.join("arm64-prog");
    write_file(&p, &fake_elf(true, 183), 0o755);
    let err = assert_rejected_126(&p, "aarch64 ELF");
    assert!(
        mentions_arch(&err),
        "reason should mention the architecture: {err}"
    );
}

#[test]
fn elf32_is_126() {
    let d = TempDir::new("elf32");
    let p = d.join("i386-prog");
    write_file(&p, &fake_elf(false, 3), 0o755);
    let err = assert_rejected_126(&p, "32-bit ELF");
    assert!(
        mentions_arch(&err),
        "reason should mention the architecture or 64-bit: {err}"
    );
}

#[test]
fn dynamically_linked_program_runs_through_ld_so() {
    let inv = Invocation::new(dynamic_program("hello"))
        .args(["dyn", "x"])
        .env("MARGAY_TEST_VAR", "dynamic");
    let (_, m) = compare_with_native_stderr(&inv);
    assert!(
        stdout_str(&m).contains("MARGAY_TEST_VAR=dynamic"),
        "{}",
        stdout_str(&m)
    );
}

#[test]
fn debian_dynamic_programs_match_native() {
    let script = "import json,hashlib; print(json.dumps({'h': hashlib.sha256(b'margay').hexdigest(), 's': sum(range(100000))}))";
    compare_with_native(&Invocation::new("/usr/bin/python3").args(["-c", script]));
    let dir = TempDir::new("dynsort");
    let input = dir.path().join("in.txt");
    let lines: String = (0..5000)
        .map(|i| format!("{}\n", (i * 7919) % 5003))
        .collect();
    std::fs::write(&input, lines).expect("write input");
    compare_with_native(&Invocation::new("/usr/bin/sort").args(["-n".as_ref(), input.as_os_str()]));
    compare_with_native(&Invocation::new("/usr/bin/env").env("MARGAY_ENV_CHECK", "1"));
    // gzip round trip with a checksum, compressing under Margay.
    let gz = dir.path().join("in.txt.gz");
    let out = Invocation::new("/usr/bin/gzip")
        .args(["-k".as_ref(), "-9".as_ref(), input.as_os_str()])
        .run_margay();
    assert_status(&out, 0, "gzip under margay");
    let back = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .expect("gunzip");
    assert_eq!(
        back.stdout,
        std::fs::read(&input).expect("read input"),
        "gzip round trip differs"
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let hello = program("hello");
    let h = hello.to_str().unwrap();
    for args in [
        vec!["run", "--mem", "1K", "--", h],
        vec!["run", "--mem", "banana", "--", h],
        vec!["run", "--mem", "", "--", h],
        vec!["run", "--cpus", "0", "--", h],
        vec!["run", "--cpus", "many", "--", h],
        vec!["run", "--accel", "banana", "--", h],
    ] {
        let o = run_margay(&args, None, &[]);
        assert_status(&o, 2, &args.join(" "));
        assert!(
            o.stdout.is_empty(),
            "{}: program must not run",
            args.join(" ")
        );
    }
}

// ---------------------------------------------------------------------------
// Diagnostics.

#[test]
fn stats_table() {
    let inv = Invocation::new(program("hello")).flag("--stats");
    let (_, m) = compare_with_native(&inv);
    let err = stderr_str(&m);
    assert!(
        err.contains("offloaded"),
        "--stats must mention offloaded calls:\n{err}"
    );
    assert!(err.contains("write"), "--stats must list write:\n{err}");
}

#[test]
fn trace_lines() {
    let inv = Invocation::new(program("hello")).flag("--trace");
    let (_, m) = compare_with_native(&inv);
    let err = stderr_str(&m);
    assert!(
        err.lines().any(|l| l.trim_start().starts_with("write(1,")),
        "--trace must print a line starting with write(1,:\n{err}"
    );
}

#[test]
fn static_pie_matches_native() {
    let inv = Invocation::new(static_pie_program("hello"))
        .args(["pie", "arg"])
        .env("MARGAY_TEST_VAR", "pie");
    let (_, m) = compare_with_native_stderr(&inv);
    assert!(stdout_str(&m).contains("argv[1]=pie"), "{}", stdout_str(&m));
}

#[test]
fn big_bss_needs_enough_memory() {
    let p = program("bigbss");
    let small = run_margay(
        &["run", "--mem", "128M", "--", p.to_str().unwrap()],
        None,
        &[],
    );
    assert_status(&small, 2, "--mem too small for the image");
    assert!(
        stderr_str(&small).contains("too small"),
        "{}",
        stderr_str(&small)
    );
    let inv = Invocation::new(&p).flag("--mem").flag("512M");
    compare_with_native(&inv);
}

#[test]
fn kernel_page_fault_is_reported_with_registers() {
    let out = run_margay(
        &[
            "run",
            "--inject",
            "kernel-fault",
            "--",
            "/bin/busybox",
            "true",
        ],
        None,
        &[],
    );
    assert_status(&out, 70, "kernel panic");
    let err = stderr_str(&out);
    assert!(err.contains("kernel panic"), "{err}");
    assert!(err.contains("page fault"), "{err}");
    assert!(err.contains("cr2 0xffffc000deadb000"), "{err}");
    assert!(err.contains("rip 0xffffffff8"), "{err}");
}

#[test]
fn kernel_panic_message_reaches_the_host() {
    let out = run_margay(
        &[
            "run",
            "--inject",
            "kernel-panic",
            "--",
            "/bin/busybox",
            "true",
        ],
        None,
        &[],
    );
    assert_status(&out, 70, "kernel panic");
    let err = stderr_str(&out);
    assert!(err.contains("injected panic"), "{err}");
}

#[test]
fn fpu_state_survives_local_and_offloaded_syscalls() {
    let (_, m) = compare_with_native(&Invocation::new(program("fpu")));
    assert!(!stdout_str(&m).contains("CLOBBERED"), "{}", stdout_str(&m));
}

#[test]
fn execve_replaces_the_image_in_place() {
    // Self-exec chain with a close-on-exec descriptor, ENOENT for a missing
    // program, and a final exec of busybox: same output as natively.
    compare_with_native(&Invocation::new(program("execchain")));
}

#[test]
fn execve_of_a_dynamic_program_and_from_a_shell() {
    let out = Invocation::new("/bin/busybox")
        .args([
            "env",
            "/usr/bin/python3",
            "-c",
            "print('dyn after exec', 6*7)",
        ])
        .run_margay();
    assert_status(&out, 0, "busybox env python3");
    assert_eq!(stdout_str(&out), "dyn after exec 42\n");
    let sh =
        Invocation::new("/bin/busybox").args(["sh", "-c", "echo $0; exec /bin/busybox echo execd"]);
    compare_with_native(&sh);
}
