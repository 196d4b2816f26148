//! MPI ranks on Margay: Debian's Open MPI launches `margay run` per rank
//! (one partition each), and the ranks' output matches a native run.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `tests/programs/NAME.c` built with `mpicc -O2` (dynamically linked, as
/// MPI programs are), into the test's temporary directory.
fn mpi_program(name: &str) -> PathBuf {
    let src = programs_dir().join(format!("{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mpi-{name}"));
    let o = Command::new("mpicc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("mpicc (tools/install-deps.sh installs Open MPI)");
    assert!(o.status.success(), "mpicc {name}: {o:?}");
    out
}

/// The ranks' stdout lines, sorted, and stderr.
fn mpirun(n: usize, prefix: &[&str], prog: &PathBuf) -> (Vec<String>, String) {
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-n",
        &n.to_string(),
    ])
    .args(prefix)
    .arg(prog);
    let o = run_with_timeout(cmd, None, Duration::from_secs(300), "mpirun");
    assert!(o.status.success(), "mpirun {prefix:?}: {o:?}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    (lines, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `mpirun -n 2 margay run -- ./mpi_hello`: two partitions, MPI_Init's
/// wire-up through the proxies, an allreduce and a ring exchange.
#[test]
fn mpirun_launches_one_partition_per_rank() {
    let prog = mpi_program("mpi_hello");
    let (native, _) = mpirun(2, &[], &prog);
    let _permit = qemu_permit();
    let (lwk, errors) = mpirun(2, &[MARGAY, "run", "--cpus", "1", "--"], &prog);
    assert_eq!(lwk, native);
    assert_eq!(native.len(), 2, "{native:?}");
    // Neither margay nor Open MPI (PMIx) complained.
    assert!(
        !errors.contains("margay:") && !errors.contains("[warn]") && !errors.contains("rror"),
        "{errors}"
    );
}
