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
    /// Boot a standing LWK instance in the background; prints its name once
    /// it is ready for programs.
    Boot(BootArgs),
    /// Run PROGRAM in a running instance, with this terminal, environment,
    /// directory and signals; exits with its status.
    Exec(ExecArgs),
    /// List the instances (or one): cores, memory, processes, uptime.
    Status(StatusArgs),
    /// Print an instance's kernel log.
    Kmsg(KmsgArgs),
    /// Stop an instance (its running programs are killed with SIGKILL).
    Shutdown(NameArgs),
    /// Restart an instance's kernel in the same partition (its running
    /// programs are killed with SIGKILL).
    Reboot(NameArgs),
    /// Internal: an instance's host process, started by `margay boot`.
    #[command(name = "__instance", hide = true)]
    Instance(InstanceArgs),
    /// Internal: the per-process offload proxy started by `margay run`.
    #[command(name = "__proxy", hide = true)]
    Proxy(ProxyArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// LWK cores in the partition (1 to 32).
    #[arg(long, default_value_t = 1, value_parser = crate::args::parse_cpus)]
    pub cpus: u32,
    /// Partition memory: bytes or with a K/M/G suffix, a multiple of 2 MiB, 64M to 3G.
    #[arg(long, default_value = "512M", value_name = "SIZE", value_parser = crate::args::parse_mem_size)]
    pub mem: u64,
    /// How QEMU runs the partition.
    #[arg(long, default_value = "auto", value_parser = crate::qemu::accel_parser())]
    pub accel: ::std::option::Option<crate::qemu::Accel>,
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
pub struct BootArgs {
    /// The instance's name (default: lwk0, lwk1, ...).
    #[arg(long, value_parser = |s: &str| crate::instance::check_name(s).map(|()| s.to_string()))]
    pub name: Option<String>,
    /// LWK cores in the partition.
    #[arg(long, default_value_t = 1, value_parser = crate::args::parse_cpus, conflicts_with = "host_cpus")]
    pub cpus: u32,
    /// Host cores for the vCPU threads, one per LWK core (a Linux cpulist);
    /// default: the last free cores (not used by another instance).
    #[arg(long, value_name = "LIST", value_parser = crate::pinning::parse_host_cpus)]
    pub host_cpus: Option<crate::pinning::CpuList>,
    /// Partition memory (as for `margay run`).
    #[arg(long, default_value = "512M", value_name = "SIZE", value_parser = crate::args::parse_mem_size)]
    pub mem: u64,
    /// How QEMU runs the partition.
    #[arg(long, default_value = "auto", value_parser = crate::qemu::accel_parser())]
    pub accel: ::std::option::Option<crate::qemu::Accel>,
}

impl BootArgs {
    /// Cores: --cpus, or one per --host-cpus core.
    pub fn ncpus(&self) -> u32 {
        self.host_cpus
            .as_ref()
            .map_or(self.cpus, |l| u32::try_from(l.0.len()).unwrap_or(u32::MAX))
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The instance (its name, or the path of its socket).
    pub name: String,
    /// The instance's cores the program may run on (a cpulist of LWK cores);
    /// default: all, the least loaded first.
    #[arg(long, value_name = "LIST", value_parser = crate::pinning::parse_host_cpus)]
    pub cpus_of_instance: Option<crate::pinning::CpuList>,
    /// Make the instance's kernel panic instead of starting the program
    /// (tests of the panic path).
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

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One instance (default: all of yours).
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KmsgArgs {
    pub name: String,
    /// Keep printing new lines as the kernel writes them.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long, value_parser = crate::args::parse_cpus)]
    pub cpus: u32,
    #[arg(long)]
    pub mem: u64,
    #[arg(long, value_parser = crate::pinning::parse_host_cpus)]
    pub host_cpus: Option<crate::pinning::CpuList>,
    #[arg(long, default_value = "auto", value_parser = crate::qemu::accel_parser())]
    pub accel: ::std::option::Option<crate::qemu::Accel>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.accel, None);
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
