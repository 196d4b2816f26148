//! The local APIC (xAPIC, memory mapped through the direct map, uncached):
//! identity, end of interrupt, IPIs, and the one-shot timer.

use super::mem::PHYS_OFFSET;
use core::sync::atomic::{AtomicU64, Ordering};

pub const LAPIC_PHYS: u64 = 0xfee0_0000;
/// Vectors used by the kernel.
pub const TIMER_VECTOR: u8 = 0x40;
pub const RESCHED_VECTOR: u8 = 0x41;
pub const TLB_VECTOR: u8 = 0x42;
pub const SPURIOUS_VECTOR: u8 = 0xff;

const ID: u64 = 0x20;
const EOI: u64 = 0xb0;
const SVR: u64 = 0xf0;
const ICR_LOW: u64 = 0x300;
const ICR_HIGH: u64 = 0x310;
const LVT_TIMER: u64 = 0x320;
const LVT_LINT1: u64 = 0x360;
const TIMER_INIT: u64 = 0x380;
const TIMER_CUR: u64 = 0x390;
const TIMER_DIV: u64 = 0x3e0;

/// LAPIC timer ticks per 1024 TSC cycles (calibrated on the boot CPU).
static TICKS_PER_KCYCLE: AtomicU64 = AtomicU64::new(0);

fn read(reg: u64) -> u32 {
    // SAFETY: the LAPIC page is mapped (uncached) in the direct map; reads of
    // its registers have no memory-safety effect.
    unsafe { core::ptr::read_volatile((PHYS_OFFSET + LAPIC_PHYS + reg) as *const u32) }
}

fn write(reg: u64, v: u32) {
    // SAFETY: as for `read`; the kernel programs only its own LAPIC.
    unsafe { core::ptr::write_volatile((PHYS_OFFSET + LAPIC_PHYS + reg) as *mut u32, v) }
}

/// Make the direct-map 2 MiB page holding the LAPIC uncached (boot tables).
pub fn map_uncached() {
    super::boot::set_direct_map_uncached(LAPIC_PHYS);
}

/// Enable this core's LAPIC with the timer masked.
pub fn init_local() {
    write(SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    // Timer clock: the bus clock divided by 16.
    write(TIMER_DIV, 0x3);
    // QEMU delivers a monitor NMI (`inject-nmi`) through LINT1: make it an
    // unmasked NMI, as the firmware would on a PC. The host uses it to get a
    // core's attention for a signal.
    write(LVT_LINT1, 0x400);
    write(LVT_TIMER, 1 << 16);
    write(TIMER_INIT, 0);
}

pub fn id() -> u32 {
    read(ID) >> 24
}

pub fn eoi() {
    write(EOI, 0);
}

fn wait_icr() {
    while read(ICR_LOW) & (1 << 12) != 0 {
        core::hint::spin_loop();
    }
}

/// Send a fixed interrupt `vector` to the core with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    write(ICR_HIGH, apic_id << 24);
    write(ICR_LOW, u32::from(vector) | (1 << 14));
    wait_icr();
}

pub fn send_init(apic_id: u32) {
    write(ICR_HIGH, apic_id << 24);
    write(ICR_LOW, 0x4500);
    wait_icr();
}

pub fn send_startup(apic_id: u32, page: u32) {
    write(ICR_HIGH, apic_id << 24);
    write(ICR_LOW, 0x4600 | (page & 0xff));
    wait_icr();
}

/// Measure the timer rate against the TSC over `cycles` TSC cycles.
pub fn calibrate_timer(cycles: u64) {
    write(LVT_TIMER, 1 << 16);
    write(TIMER_INIT, u32::MAX);
    let t0 = super::cpu::rdtsc();
    while super::cpu::rdtsc() - t0 < cycles {
        core::hint::spin_loop();
    }
    let elapsed = u64::from(u32::MAX - read(TIMER_CUR));
    write(TIMER_INIT, 0);
    TICKS_PER_KCYCLE.store((elapsed * 1024 / cycles).max(1), Ordering::Relaxed);
}

/// Calibrated LAPIC timer ticks per 1024 TSC cycles.
pub fn ticks_per_kcycle() -> u64 {
    TICKS_PER_KCYCLE.load(Ordering::Relaxed)
}

/// Fire TIMER_VECTOR once after about `cycles` TSC cycles.
pub fn timer_oneshot_cycles(cycles: u64) {
    let ticks = (cycles.saturating_mul(TICKS_PER_KCYCLE.load(Ordering::Relaxed)) / 1024)
        .clamp(1, u64::from(u32::MAX));
    write(LVT_TIMER, u32::from(TIMER_VECTOR));
    write(TIMER_INIT, ticks as u32);
}

pub fn timer_stop() {
    write(TIMER_INIT, 0);
}
