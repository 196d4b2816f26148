//! Deadlines for every step of `margay bench`, scaled to the machine.
//!
//! Each step has a base time for an unloaded host under TCG (generous: a
//! deadline only matters when something hangs), multiplied by a factor:
//! `max(1, guest cores / host cores)` (vCPUs share host cores), `1 + load
//! average / host cores` at the start, at most 5 (a busy host runs
//! everything slower, but a deadline stays a deadline),
//! 4 under `-icount` (vCPUs run one after the other) and `--timeout-scale`.
//!
//! | step | base |
//! |---|---|
//! | boot of the Linux guest, to its init script's first line | 60 s |
//! | boot of Margay (`margay run` until the probe's result line, without the probe's own time) | 20 s |
//! | one probe run, full scale | 120 s (pystart, memory: 300 s) |
//! | one probe run, `--scale tiny` | 30 s |
//! | the test-only `hang` probe | 1 s |
//! | shutdown: after the last result, until the guest has exited | 20 s |
//! | the host's watchdog after the Linux guest's own `timeout`, and between two jobs | 3 s |

use std::time::Duration;

use crate::qemu::Machine;

use super::probes::{Probe, Scale};

/// The most the host's load stretches a deadline.
const MAX_LOAD_FACTOR: f64 = 5.0;

#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    pub factor: f64,
    pub scale: Scale,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.1))
}

impl Deadlines {
    pub fn new(m: &Machine, host_cpus: usize, load1: f64, user_scale: f64) -> Deadlines {
        let host = host_cpus.max(1) as f64;
        let load = (1.0 + load1.max(0.0) / host).min(MAX_LOAD_FACTOR);
        let mut factor = (f64::from(m.cpus) / host).max(1.0) * load;
        if m.icount {
            factor *= 4.0;
        }
        Deadlines {
            factor: factor * user_scale,
            scale: Scale::Full,
        }
    }

    pub fn linux_boot(&self) -> Duration {
        secs(60.0 * self.factor)
    }

    pub fn margay_boot(&self) -> Duration {
        secs(20.0 * self.factor)
    }

    pub fn shutdown(&self) -> Duration {
        secs(20.0 * self.factor)
    }

    /// How long the host waits beyond the Linux guest's own `timeout`.
    pub fn grace(&self) -> Duration {
        secs(3.0 * self.factor)
    }

    /// One run of probe `p`.
    pub fn job(&self, p: &Probe) -> Duration {
        let base = match (p.name, self.scale) {
            ("hang", _) => 1.0,
            (_, Scale::Tiny) => 30.0,
            ("pystart" | "memory", Scale::Full) => 300.0,
            (_, Scale::Full) => 120.0,
        };
        secs(base * self.factor)
    }

    /// A description for results.json.
    pub fn describe(&self) -> String {
        format!(
            "factor {:.2}: Linux boot {}s, Margay boot {}s, shutdown {}s, host grace {}s, probe run {}s ({} scale)",
            self.factor,
            self.linux_boot().as_secs(),
            self.margay_boot().as_secs(),
            self.shutdown().as_secs(),
            self.grace().as_secs(),
            secs(if self.scale == Scale::Tiny { 30.0 } else { 120.0 } * self.factor).as_secs(),
            if self.scale == Scale::Tiny { "tiny" } else { "full" },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::probes::{by_name, HANG};
    use crate::qemu::Accel;

    #[test]
    fn scaled_to_the_machine() {
        let m = Machine {
            mem: 1 << 30,
            cpus: 4,
            accel: Accel::Tcg,
            icount: false,
        };
        let d = Deadlines::new(&m, 2, 2.0, 1.0);
        // 4 vCPUs on 2 cores, load 2 on 2 cores: 2 * 2.
        assert!((d.factor - 4.0).abs() < 1e-9, "{}", d.factor);
        assert_eq!(d.linux_boot(), Duration::from_secs(240));
        let quiet = Deadlines::new(&Machine { cpus: 1, ..m }, 2, 0.0, 1.0);
        assert_eq!(
            quiet.job(by_name("pystart").unwrap()),
            Duration::from_secs(300)
        );
        assert_eq!(quiet.job(&HANG), Duration::from_secs(1));
        let tiny = Deadlines {
            scale: Scale::Tiny,
            ..quiet
        };
        assert_eq!(tiny.job(by_name("fwq").unwrap()), Duration::from_secs(30));
        // A load of 50 on 2 cores stretches by 5, not 26.
        let loaded = Deadlines::new(&Machine { cpus: 1, ..m }, 2, 50.0, 1.0);
        assert!((loaded.factor - 5.0).abs() < 1e-9);
        let ic = Deadlines::new(
            &Machine {
                icount: true,
                cpus: 1,
                ..m
            },
            2,
            0.0,
            0.5,
        );
        assert!((ic.factor - 2.0).abs() < 1e-9);
    }
}
