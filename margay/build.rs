//! Builds the Margay kernel with a nested cargo invocation (it needs its own
//! RUSTFLAGS: code-model=kernel, static relocation, a linker script) into
//! `target/kernel`, and hands its path to the host crate as MARGAY_KERNEL_ELF.

use std::path::{Path, PathBuf};
use std::process::Command;

fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if p.is_dir() {
            watch(&p);
        } else {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("margay/ lives in the workspace root")
        .to_path_buf();
    let kernel_dir = root.join("kernel");
    watch(&kernel_dir);
    watch(&root.join("crates"));

    // target/kernel beside the workspace's own target directory (a different
    // directory, so the nested cargo does not wait on the outer one's lock).
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("kernel");
    let linker_script = kernel_dir.join("linker.ld");
    let rustflags = [
        "-Ccode-model=kernel",
        "-Crelocation-model=static",
        "-Cno-redzone=yes",
        "-Cforce-frame-pointers=yes",
        &format!("-Clink-arg=-T{}", linker_script.display()),
        "-Clink-arg=-nostartfiles",
        "-Clink-arg=-nostdlib",
        "-Clink-arg=-static",
        "-Clink-arg=-no-pie",
        "-Clink-arg=-Wl,--build-id=none",
        "-Clink-arg=-Wl,-z,max-page-size=4096",
    ]
    .join("\x1f");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&kernel_dir)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("failed to run cargo for the kernel");
    if !status.success() {
        panic!("building the Margay kernel failed (see the errors above)");
    }
    let elf = target_dir.join("x86_64-unknown-linux-gnu/release/margay-kernel");
    println!("cargo:rustc-env=MARGAY_KERNEL_ELF={}", elf.display());
    build_qemu_shim(&manifest_dir);
}

/// The small library margay preloads into QEMU so that a file's last,
/// partial page can be plugged (see shim/qemu-plug.c); margay embeds it.
fn build_qemu_shim(manifest_dir: &Path) {
    let src = manifest_dir.join("shim/qemu-plug.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("qemu-plug.so");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("failed to run the C compiler for shim/qemu-plug.c (install gcc: tools/install-deps.sh)");
    if !status.success() {
        panic!("building shim/qemu-plug.c failed (see the errors above)");
    }
}
