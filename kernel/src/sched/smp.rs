//! Bringing up the cores (the boot CPU's scheduler state, then the
//! application processors) and the handlers of the scheduler's IPIs.

use super::runqueue::{self, CPUS};
use super::{hooks, switch, timer};
use crate::arch::apic;
use crate::arch::cpu::rdtsc;
use crate::arch::gdt::this_cpu;
use crate::arch::smp as cores;
use core::sync::atomic::Ordering;
use wire::MAX_CPUS;

/// Set up the boot CPU's scheduler state.
pub fn init_bsp() {
    runqueue::init_cpu(0);
    cores::set_apic_id(0, apic::id());
    cores::set_online(0);
    // The boot CPU's idle context runs `idle_loop` on its idle stack.
    switch::set_idle_context(0, crate::arch::bsp_idle_context(idle_entry));
}

extern "C" fn idle_entry() -> ! {
    switch::finish_switch();
    runqueue::idle_loop()
}

/// Bring up the application processors listed by the firmware, up to `want` cores in all.
pub fn start_aps(apic_ids: &[u32], want: usize) {
    let me = apic::id();
    let cycles_per_ms = crate::arch::cpu::tsc_hz() / 1000;
    for (cpu, &id) in (1..).zip(apic_ids.iter().filter(|&&id| id != me)) {
        if cpu >= want.min(MAX_CPUS) {
            break;
        }
        runqueue::init_cpu(cpu);
        cores::set_apic_id(cpu, id);
        runqueue::set_ncpus(cpu + 1);
        if crate::arch::start_cpu(cpu, id, ap_entry, cycles_per_ms).is_none() {
            crate::kprintln!("smp: no memory for cpu {cpu}'s tables");
            runqueue::set_ncpus(cpu);
            break;
        }
        let t0 = rdtsc();
        while !cores::is_online(cpu) && rdtsc() - t0 < cycles_per_ms * 500 {
            core::hint::spin_loop();
        }
        if !cores::is_online(cpu) {
            crate::kprintln!("smp: cpu {cpu} (apic {id}) did not come up");
            runqueue::set_ncpus(cpu);
            break;
        }
    }
}

extern "C" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    crate::arch::init_ap(cpu);
    cores::set_online(cpu);
    crate::kprintln!("smp: cpu {cpu} online (apic {})", apic::id());
    runqueue::idle_loop()
}

/// A reschedule IPI arrived: another CPU queued work here, or a signal or
/// alarm is waiting.
pub fn on_resched(from_user: bool) {
    let cpu = this_cpu();
    CPUS[cpu].ipis.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    (hooks::get().take_host_signals)();
    if cpu == 0 {
        timer::check_alarms(rdtsc());
    }
    if from_user {
        cores::set_in_user(cpu, false);
        runqueue::check_migration();
        // Give the newcomer a time slice rather than preempting at once.
        timer::rearm(this_cpu());
        cores::set_in_user(this_cpu(), true);
    }
}

/// TLB shootdown IPI handler.
pub fn on_tlb_ipi() {
    CPUS[this_cpu()].ipis.fetch_add(1, Ordering::Relaxed);
    cores::on_tlb_ipi();
}
