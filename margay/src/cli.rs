//! The command line: `margay run [OPTIONS] -- PROGRAM [ARGS...]` and the hidden
//! `margay __proxy` that `run` starts for each LWK process.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "margay",
    version,
    about = "Run unmodified static Linux programs on the Margay lightweight kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot an LWK partition, run PROGRAM on it, and exit with its status.
    Run(RunArgs),
    /// Run the benchmark probes on a Linux guest and on Margay with the same
    /// QEMU configuration, and compare them.
    Bench(crate::bench::BenchArgs),
    /// Internal: the per-process offload proxy started by `margay run`.
    #[command(name = "__proxy", hide = true)]
    Proxy(ProxyArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when the CPU and /dev/kvm allow it, else TCG.
    Auto,
    /// Hardware virtualization (fails if unavailable).
    Kvm,
    /// QEMU's instruction emulator.
    Tcg,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// LWK cores in the partition (1 to 32).
    #[arg(long, default_value_t = 1, value_parser = parse_cpus)]
    pub cpus: u32,
    /// Partition memory: bytes or with a K/M/G suffix, a multiple of 2 MiB, 64M to 3G.
    #[arg(long, default_value = "512M", value_name = "SIZE", value_parser = parse_mem_size)]
    pub mem: u64,
    /// How QEMU runs the partition.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Host cores for the vCPU threads, one per LWK core (a Linux cpulist: 3,
    /// 2-5, 0,2,4-6); default: the last --cpus cores margay may run on.
    #[arg(long, value_name = "LIST", value_parser = crate::pinning::parse_host_cpus)]
    pub host_cpus: Option<crate::pinning::CpuList>,
    /// Print per-syscall statistics (local / offloaded) to stderr at exit.
    #[arg(long)]
    pub stats: bool,
    /// Print the kernel's log ring to stderr at exit.
    #[arg(long)]
    pub kmsg: bool,
    /// Print every system call, strace-style, to stderr.
    #[arg(long)]
    pub trace: bool,
    /// Run QEMU with deterministic instruction counting (TCG only; see `margay bench --icount`).
    #[arg(long, hide = true)]
    pub icount: bool,
    /// Make the kernel fail on purpose before starting the program (tests of
    /// the panic path).
    #[arg(long, value_enum, hide = true)]
    pub inject: Option<InjectArg>,
    /// The program (searched in $PATH unless it contains a '/') and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]"
    )]
    pub command: Vec<OsString>,
}

/// Kernel failures `--inject` can provoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InjectArg {
    /// A page fault in kernel mode (exception path, registers).
    KernelFault,
    /// A Rust panic in the kernel (panic handler path).
    KernelPanic,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Path of the guest RAM file (/proc/<margay pid>/fd/<memfd>).
    #[arg(long)]
    pub ram: PathBuf,
    #[arg(long)]
    pub mem_size: u64,
    #[arg(long)]
    pub cpus: u32,
    /// Absolute path of the application, for /proc/self/exe.
    #[arg(long)]
    pub exe: PathBuf,
    #[arg(long)]
    pub trace: bool,
}

const TWO_MIB: u64 = 2 << 20;

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// Parse a memory size: plain bytes, or a number with K, M or G (powers of 1024;
/// an optional trailing "B" or "iB" is accepted). Must be a multiple of 2 MiB in
/// `wire::MIN_MEM..=wire::MAX_MEM`.
pub fn parse_mem_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => return Err(format!("unknown unit in '{s}' (use K, M or G, e.g. 512M)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a size (e.g. 512M, 1G, 1048576)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is too large"))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if !(wire::MIN_MEM..=wire::MAX_MEM).contains(&bytes) {
        return Err(format!(
            "{s} is outside the supported range {} to {}",
            human(wire::MIN_MEM),
            human(wire::MAX_MEM)
        ));
    }
    if bytes % TWO_MIB != 0 {
        return Err(format!("{s} is not a multiple of 2 MiB (e.g. 512M)"));
    }
    Ok(bytes)
}

pub fn parse_cpus(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of cores"))?;
    if n == 0 || n as usize > wire::MAX_CPUS {
        return Err(format!(
            "{n} is outside the supported range 1 to {}",
            wire::MAX_CPUS
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mem_size("64M"), Ok(64 << 20));
        assert_eq!(parse_mem_size("1G"), Ok(1 << 30));
        assert_eq!(parse_mem_size("3G"), Ok(3 << 30));
        assert_eq!(parse_mem_size("65536K"), Ok(64 << 20));
        assert_eq!(parse_mem_size("512m"), Ok(512 << 20));
        assert_eq!(parse_mem_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_mem_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_mem_size("134217728"), Ok(128 << 20));
        for bad in [
            "",
            "M",
            "12X",
            "-64M",
            "64.5M",
            "0x4000000",
            "1 G",
            "4G",
            "32M",
            "63M",
            "65M",
            "1024K",
            "99999999999999999999",
            "18014398509481984K",
        ] {
            assert!(parse_mem_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_mem_size("65M").unwrap_err().contains("2 MiB"));
        assert!(parse_mem_size("4G").unwrap_err().contains("64M to 3G"));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1"), Ok(1));
        assert_eq!(parse_cpus("32"), Ok(32));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("33").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("two").is_err());
    }

    #[test]
    fn run_command_line() {
        let cli = Cli::try_parse_from([
            "margay", "run", "--mem", "1G", "--stats", "--", "ls", "-l", "--color",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run");
        };
        assert_eq!(r.mem, 1 << 30);
        assert!(r.stats && !r.kmsg && !r.trace);
        assert_eq!(r.cpus, 1);
        assert_eq!(r.accel, AccelArg::Auto);
        assert_eq!(r.command, ["ls", "-l", "--color"]);
        // Without "--", options after PROGRAM belong to it.
        let cli = Cli::try_parse_from(["margay", "run", "prog", "--trace"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run");
        };
        assert!(!r.trace);
        assert_eq!(r.command, ["prog", "--trace"]);
        assert!(Cli::try_parse_from(["margay", "run"]).is_err());
        assert!(Cli::try_parse_from(["margay", "run", "--cpus", "0", "--", "x"]).is_err());
        assert!(Cli::try_parse_from(["margay", "run", "--mem", "7", "--", "x"]).is_err());
        assert_eq!(r.host_cpus, None);
        let cli =
            Cli::try_parse_from(["margay", "run", "--host-cpus", "0,2-3", "--", "x"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run");
        };
        assert_eq!(r.host_cpus, Some(crate::pinning::CpuList(vec![0, 2, 3])));
        assert!(Cli::try_parse_from(["margay", "run", "--host-cpus", "3-1", "--", "x"]).is_err());
    }
}
