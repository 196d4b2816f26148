//! The Margay lightweight kernel: boots from QEMU's PVH entry, reads its boot
//! header from the shared area, loads one static Linux executable and runs it,
//! serving memory, time and task syscalls locally and offloading the rest to
//! the proxy on Linux.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod arch;
mod aspace;
mod ikc;
mod kmsg;
mod loader;
mod mm;
mod panic;
mod process;
mod shared;
mod syscall;
mod time;
mod trap;
mod uaccess;

use wire::{State, SHARED_PHYS, SHARED_SIZE};

/// The kernel proper, entered from `arch` once the CPU is in long mode.
pub fn kernel_main(_start_info: u64) -> ! {
    let t_boot = arch::cpu::rdtsc();
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
    let mem_end = params.mem_size.min(arch::mem::DIRECT_MAP_SIZE) & !0xfff;
    let pm = mm::init(SHARED_PHYS + SHARED_SIZE, mem_end);
    kprintln!(
        "pmem: [{:#x}, {:#x}) {} free pages",
        pm.start,
        pm.end,
        pm.free_pages
    );
    let hz = time::calibrate(10_000_000);
    shared::set_tsc_hz(hz);
    kprintln!("tsc: {} kHz", hz / 1000);
    syscall::set_trace(params.flags & wire::FLAG_TRACE != 0);

    let bd = match shared::boot_data() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let loaded = match loader::load(&bd, &params) {
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
    *process::CURRENT.lock() = Some(loaded.process);
    syscall::set_boot_cycles(arch::cpu::rdtsc() - t_boot);
    shared::set_user_entry_ns(time::realtime_ns());
    shared::set_state(State::Running);
    arch::trap::jump_to_user(entry, sp)
}
