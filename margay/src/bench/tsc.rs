//! The host's TSC frequency, passed to the Linux guest as `tsc_early_khz=` so
//! that it never has to calibrate its TSC itself: under TCG on a busy host
//! that calibration can fail (`tsc: Fast TSC calibration failed`, `Unable to
//! calibrate against PIT`), and on a machine without another usable
//! clocksource the guest then never reaches init (issue 17).
//!
//! Under TCG and KVM the guest's TSC counts at the host's rate (QEMU reads
//! the host's TSC); under `-icount` it counts virtual nanoseconds, 1 GHz.
//! Sources, in order: CPUID leaf 0x15 (crystal and ratio: exact), the host
//! kernel's own log (`tsc: Refined TSC clocksource calibration` or `tsc:
//! Detected ... MHz processor`, from `dmesg` or `journalctl -k`), the
//! hypervisor's timing leaf 0x40000010, CPUID leaf 0x16 (base frequency),
//! and last margay's own calibration of the TSC against CLOCK_MONOTONIC_RAW
//! (a small C helper built like the probes).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::probes;

/// A TSC frequency and where it came from (recorded in results.json).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TscFreq {
    pub khz: u64,
    pub source: String,
}

/// Frequencies outside this range (kHz) are not believed.
const PLAUSIBLE: std::ops::RangeInclusive<u64> = 100_000..=10_000_000;

fn plausible(khz: u64, source: String) -> Option<TscFreq> {
    PLAUSIBLE.contains(&khz).then_some(TscFreq { khz, source })
}

/// CPUID leaf 0x15: TSC = crystal (ecx Hz) * ebx / eax, when all are given.
fn cpuid_15() -> Option<TscFreq> {
    use std::arch::x86_64::__cpuid;
    if __cpuid(0).eax < 0x15 {
        return None;
    }
    let r = __cpuid(0x15);
    if r.eax == 0 || r.ebx == 0 || r.ecx == 0 {
        return None;
    }
    let hz = u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax);
    plausible(hz / 1000, "cpuid 0x15".into())
}

/// CPUID leaf 0x16: the processor's base frequency in MHz (Intel; the TSC
/// runs at it on processors with an invariant TSC, to within a few MHz).
fn cpuid_16() -> Option<TscFreq> {
    use std::arch::x86_64::__cpuid;
    if __cpuid(0).eax < 0x16 {
        return None;
    }
    let mhz = u64::from(__cpuid(0x16).eax & 0xffff);
    plausible(mhz * 1000, "cpuid 0x16 (base frequency)".into())
}

/// The hypervisor's timing leaf (VMware's convention, also KVM's and
/// QEMU's with `-cpu ...,+vmware-cpuid-freq`): eax = TSC kHz.
fn cpuid_hypervisor() -> Option<TscFreq> {
    use std::arch::x86_64::__cpuid;
    let hv_present = __cpuid(1).ecx & (1 << 31) != 0;
    if !hv_present || __cpuid(0x4000_0000).eax < 0x4000_0010 {
        return None;
    }
    let khz = u64::from(__cpuid(0x4000_0010).eax);
    plausible(khz, "cpuid 0x40000010 (hypervisor)".into())
}

/// "1234.567" MHz -> kHz.
fn mhz_to_khz(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int: u64 = int.parse().ok()?;
    let mut f = frac.chars().take(3).collect::<String>();
    while f.len() < 3 {
        f.push('0');
    }
    Some(int * 1000 + f.parse::<u64>().ok()?)
}

/// The TSC frequency from a kernel log: the last refined calibration if
/// there is one, else the last "Detected ... MHz processor".
pub fn from_kernel_log(log: &str) -> Option<u64> {
    let value_after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        mhz_to_khz(rest.split_whitespace().next()?)
    };
    let mut refined = None;
    let mut detected = None;
    for line in log.lines() {
        if let Some(k) = value_after(line, "tsc: Refined TSC clocksource calibration: ") {
            refined = Some(k);
        } else if line.contains("MHz processor") {
            if let Some(k) = value_after(line, "tsc: Detected ") {
                detected = Some(k);
            }
        }
    }
    refined.or(detected)
}

fn kernel_log() -> Option<TscFreq> {
    let tries: [(&str, &[&str]); 2] = [
        ("dmesg", &[]),
        ("journalctl", &["-k", "-b", "-q", "--no-pager"]),
    ];
    for (prog, args) in tries {
        let mut cmd = Command::new(prog);
        cmd.args(args);
        let Ok(c) = super::watch::run_captured(cmd, Duration::from_secs(20)) else {
            continue;
        };
        if let Some(khz) = from_kernel_log(&c.stdout) {
            if let Some(f) = plausible(khz, format!("host kernel log ({prog})")) {
                return Some(f);
            }
        }
    }
    None
}

/// margay's own calibration: the helper counts TSC ticks against
/// CLOCK_MONOTONIC_RAW over about 0.2 s and prints `MARGAY-RESULT probe=tsckhz khz=N`.
fn own_calibration(build_dir: &Path) -> Result<TscFreq, String> {
    let p = &probes::TSCKHZ;
    let bin = p.build(build_dir).map_err(|e| format!("{e:#}"))?;
    let c = super::watch::run_captured(Command::new(bin), Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let m = super::parse::outcome(p, &c.stdout, c.exit.as_deref(), &c.stderr)?;
    let khz = m.get("khz").copied().unwrap_or(0.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let khz = khz.max(0.0).round() as u64;
    plausible(
        khz,
        "margay's calibration against CLOCK_MONOTONIC_RAW".into(),
    )
    .ok_or_else(|| format!("implausible TSC frequency {khz} kHz"))
}

/// The guest's TSC frequency. `icount`: virtual nanoseconds.
pub fn guest_tsc(icount: bool, build_dir: &Path) -> Result<TscFreq, String> {
    if icount {
        return Ok(TscFreq {
            khz: 1_000_000,
            source: "-icount (one tick per virtual nanosecond)".into(),
        });
    }
    if let Some(f) = cpuid_15()
        .or_else(kernel_log)
        .or_else(cpuid_hypervisor)
        .or_else(cpuid_16)
    {
        return Ok(f);
    }
    own_calibration(build_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_log_lines() {
        let log = "[    0.000000] [Firmware Bug]: TSC doesn't count with P0 frequency!\n\
                   [    0.000055] tsc: Detected 2596.132 MHz processor\n\
                   [    0.101247] TSC deadline timer available\n";
        assert_eq!(from_kernel_log(log), Some(2_596_132));
        let refined = format!("{log}[ 1.2] tsc: Refined TSC clocksource calibration: 2596.0 MHz\n");
        assert_eq!(from_kernel_log(&refined), Some(2_596_000));
        assert_eq!(
            from_kernel_log("tsc: Detected 3000 MHz processor"),
            Some(3_000_000)
        );
        assert_eq!(from_kernel_log("tsc: Fast TSC calibration failed"), None);
        assert_eq!(mhz_to_khz("2596.1329"), Some(2_596_132));
        assert!(plausible(5, "x".into()).is_none());
    }

    #[test]
    fn icount_is_one_ghz() {
        let f = guest_tsc(true, Path::new("/nonexistent")).unwrap();
        assert_eq!(f.khz, 1_000_000);
    }
}
