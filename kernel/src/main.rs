//! The Margay lightweight kernel: boots from QEMU's PVH entry, reads its boot
//! header from the shared area, loads one static Linux executable and runs it,
//! serving memory, time and task syscalls locally and offloading the rest to
//! the proxy on Linux. A standing instance (`FLAG_INSTANCE`) loads no program
//! at boot: its init process spawns programs for exec clients (`instance`).
//!
//! Layers, each importing only those below it:
//!
//! | layer | modules |
//! | --- | --- |
//! | hardware, the only `unsafe` (with `sched/switch.rs`) | `arch` (boot, traps, page tables, `frames`: the page allocator, `mem`: bounded physical windows, `smp`: per-core state, IPIs, TLB shootdown) |
//! | shared area, logs, firmware | `shared`, `kmsg`, `bootinfo` |
//! | memory | `mm`, `shm`, `aspace` |
//! | tasks | `ikc::slot`, `sched` (tasks, run queues, switch, SMP, timers; upcalls through `sched::Hooks`) |
//! | channel, time, processes | `ikc`, `time`, `process`, `uaccess` (checked user pointers), `loader`, `instance` (a standing instance's init) |
//! | signals | `signal`, `alarm`, `host_signals`, `futex` |
//! | system calls and entry | `syscall`, `trap`, `panic`, `main` (registers `arch`'s entry points and the scheduler's hooks) |
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod alarm;
mod arch;
mod aspace;
mod bootinfo;
mod futex;
mod host_signals;
mod ikc;
mod instance;
mod kmsg;
mod loader;
mod mm;
mod panic;
mod process;
mod sched;
mod shared;
mod shm;
mod signal;
mod syscall;
mod time;
mod trap;
mod uaccess;

use lwk_core::pmem::{FirmwareEntry, PmemMap, PmemType};
use wire::{State, SHARED_PHYS, SHARED_SIZE};

/// Where `arch`'s entry stubs go.
static ENTRY_POINTS: arch::trap::EntryPoints = arch::trap::EntryPoints {
    trap: trap::handle,
    syscall: syscall::dispatch,
    new_task: sched::finish_switch,
};

/// The kernel proper, entered from `arch` once the CPU is in long mode.
pub fn kernel_main(start_info: u64) -> ! {
    let t_boot = arch::cpu::rdtsc();
    arch::trap::set_entry_points(&ENTRY_POINTS);
    arch::init_bsp();
    let params = match shared::boot_params() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    kmsg::set_echo(params.flags & wire::FLAG_KMSG_ECHO != 0);
    kprintln!(
        "Margay LWK booting: {} MiB, {} cpu(s)",
        params.mem_size >> 20,
        params.ncpus
    );
    if params.flags & wire::FLAG_INJECT_PANIC != 0 {
        panic!("injected panic (--inject kernel-panic)");
    }
    if params.flags & wire::FLAG_INJECT_FAULT != 0 {
        arch::touch_unmapped_kernel_address();
    }
    let limit = params.mem_size.min(arch::mem::DIRECT_MAP_SIZE);
    let firmware = bootinfo::memory_map(start_info).unwrap_or_else(|| {
        kprintln!("pmem: no PVH memory map; using the partition size from the host");
        alloc::vec![FirmwareEntry {
            addr: 0,
            size: limit,
            ram: true
        }]
    });
    let reserve = [
        (wire::KERNEL_PHYS, arch::kernel_phys_end(), PmemType::Kernel),
        (SHARED_PHYS, SHARED_PHYS + SHARED_SIZE, PmemType::Shared),
    ];
    let pmem = PmemMap::build(&firmware, limit, &reserve);
    for r in pmem.regions() {
        kprintln!("pmem: [{:#011x}, {:#011x}) {:?}", r.start, r.end, r.kind);
    }
    match mm::init(&pmem) {
        Ok(free) => kprintln!("pmem: {} MiB free for kmem and user regions", free >> 8),
        Err(e) => panic!("{e}"),
    }
    let hz = time::calibrate(10_000_000);
    shared::set_tsc_hz(hz);
    kprintln!("tsc: {} kHz", hz / 1000);
    arch::apic::map_uncached();
    arch::apic::init_local();
    arch::apic::calibrate_timer(hz / 200);
    kprintln!(
        "lapic timer: {} ticks per 1024 TSC cycles",
        arch::apic::ticks_per_kcycle()
    );
    sched::set_hooks(sched::Hooks {
        interrupted: signal::interrupted,
        take_host_signals: host_signals::take,
        fire_alarms: alarm::fire_due,
        cpu_timer_fired: alarm::cpu_timer_fired,
        cpu_posix_timers: alarm::cpu_posix_timers,
    });
    process::set_at_end(syscall::flush_stats);
    sched::init_bsp();
    if params.ncpus > 1 {
        let rsdp = bootinfo::rsdp(start_info);
        match lwk_core::acpi::find_madt(&bootinfo::PhysMem, rsdp) {
            Ok(madt) => {
                kprintln!("acpi: {} processor(s) in the MADT", madt.apic_ids.len());
                arch::smp::install_trampoline();
                sched::start_aps(&madt.apic_ids, params.ncpus as usize);
            }
            Err(e) => kprintln!("acpi: no usable MADT ({e:?}); running on one core"),
        }
    }
    kprintln!("smp: {} core(s) online", sched::ncpus());
    shared::set_cpus_online(sched::ncpus() as u32);
    syscall::init();
    syscall::set_trace(params.flags & wire::FLAG_TRACE != 0);
    syscall::set_boot_cycles(arch::cpu::rdtsc() - t_boot);
    if params.flags & wire::FLAG_INSTANCE != 0 {
        instance::start_init(&params);
    }

    let bd = match shared::boot_data() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let loaded = match loader::load(&bd, &params, aspace::RegionTable::Shared) {
        Ok(l) => l,
        Err(msg) => {
            kprintln!(
                "margay: {}: cannot execute: {msg}",
                core::str::from_utf8(&bd.path).unwrap_or("?")
            );
            shared::report_exit(126);
            syscall::flush_stats();
            arch::cpu::qemu_exit(wire::DEBUG_EXIT_DONE)
        }
    };
    kprintln!(
        "loaded {} entry {:#x} sp {:#x}",
        core::str::from_utf8(&bd.path).unwrap_or("?"),
        loaded.entry,
        loaded.sp
    );
    let (entry, sp) = (loaded.entry, loaded.sp);
    loaded.process.aspace.activate();
    sched::set_user_page_tables(loaded.process.aspace.root());
    let pid = loaded.process.pid;
    process::register(loaded.process);
    sched::adopt_main(pid);
    syscall::set_boot_cycles(arch::cpu::rdtsc() - t_boot);
    shared::set_user_entry_ns(time::realtime_ns());
    shared::set_state(State::Running);
    arch::trap::jump_to_user(entry, sp)
}
