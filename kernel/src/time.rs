//! Time from the TSC, calibrated at boot against the host's clocks through the
//! channel (so LWK time matches Linux time), and busy-wait sleeping.

use crate::arch::cpu::{pause, rdtsc};
use crate::ikc;
use core::sync::atomic::{AtomicU64, Ordering};
use wire::RequestKind;

static TSC0: AtomicU64 = AtomicU64::new(0);
static REAL0: AtomicU64 = AtomicU64::new(0);
static MONO0: AtomicU64 = AtomicU64::new(0);

/// One host clock sample bracketed by TSC reads: (tsc midpoint, realtime, monotonic, round trip).
fn sample() -> (u64, u64, u64, u64) {
    let t0 = rdtsc();
    let r = ikc::call(RequestKind::Clock, 0, [0; 6], [0; 4]);
    let t1 = rdtsc();
    (t0 + (t1 - t0) / 2, r.aux[0], r.aux[1], t1 - t0)
}

/// The best (shortest round trip) of a few samples.
fn best_sample() -> (u64, u64, u64) {
    let mut best = sample();
    for _ in 0..4 {
        let s = sample();
        if s.3 < best.3 {
            best = s;
        }
    }
    (best.0, best.1, best.2)
}

/// Calibrate the TSC over about `window_ns` of host monotonic time.
pub fn calibrate(window_ns: u64) -> u64 {
    let (ta, ra, ma) = best_sample();
    loop {
        let (_, _, m, _) = sample();
        if m.saturating_sub(ma) >= window_ns {
            break;
        }
        for _ in 0..1000 {
            pause();
        }
    }
    let (tb, _, mb) = best_sample();
    let dt_ns = mb.saturating_sub(ma).max(1);
    let hz = ((u128::from(tb - ta) * 1_000_000_000) / u128::from(dt_ns)) as u64;
    let hz = hz.max(1_000_000);
    crate::arch::cpu::set_tsc_hz(hz);
    TSC0.store(ta, Ordering::Relaxed);
    REAL0.store(ra, Ordering::Relaxed);
    MONO0.store(ma, Ordering::Relaxed);
    hz
}

pub use crate::arch::cpu::tsc_hz;

fn since_anchor_ns() -> u64 {
    let d = rdtsc().saturating_sub(TSC0.load(Ordering::Relaxed));
    ((u128::from(d) * 1_000_000_000) / u128::from(tsc_hz())) as u64
}

/// CLOCK_MONOTONIC, in ns (the host's monotonic clock at calibration, advanced by the TSC).
pub fn monotonic_ns() -> u64 {
    MONO0.load(Ordering::Relaxed) + since_anchor_ns()
}

/// CLOCK_REALTIME, in ns.
pub fn realtime_ns() -> u64 {
    REAL0.load(Ordering::Relaxed) + since_anchor_ns()
}

/// The TSC value `ns` nanoseconds from now.
pub fn deadline_after_ns(ns: u64) -> u64 {
    let cycles = ((u128::from(ns) * u128::from(tsc_hz())) / 1_000_000_000)
        .min(u128::from(u64::MAX / 2)) as u64;
    rdtsc().saturating_add(cycles)
}

/// Sleep until CLOCK_MONOTONIC reaches `deadline_ns` (the task blocks; its
/// core runs others or halts until its one-shot timer fires). Returns false
/// when a signal cut the sleep short.
pub fn sleep_until_monotonic(deadline_ns: u64) -> bool {
    let now = monotonic_ns();
    if deadline_ns > now {
        return crate::sched::sleep_until(deadline_after_ns(deadline_ns - now), None)
            != crate::sched::Wakeup::Signal;
    }
    true
}
