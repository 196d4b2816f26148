//! The kernel's side of the shared area: reading the boot header and boot
//! data the host wrote, reporting state, exit status, faults and stats.

use crate::arch::mem::{phys_atomic_u32, read_phys, read_phys_obj, write_phys_obj};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use wire::{Header, State, BOOTDATA_OFF, BOOTDATA_SIZE, HEADER_OFF, HEADER_STATE_OFF, SHARED_PHYS};

const HEADER: u64 = SHARED_PHYS + HEADER_OFF;

/// What the host asked for, copied out of the header once at boot.
pub use wire::BootParams;

/// The program to run: path, argv and envp.
pub struct BootData {
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
}

fn header() -> Header {
    read_phys_obj::<Header>(HEADER)
}

fn update(f: impl FnOnce(&mut Header)) {
    let mut h = header();
    f(&mut h);
    // Write back everything but the state word, which is published last.
    let state = h.state;
    write_phys_obj::<Header>(
        HEADER,
        Header {
            state: header().state,
            ..h
        },
    );
    phys_atomic_u32(HEADER + HEADER_STATE_OFF).store(state, Ordering::Release);
}

pub fn boot_params() -> Result<BootParams, &'static str> {
    let boot = header().boot;
    boot.check().map_err(|e| match e {
        wire::HandshakeError::BadMagic => "boot header missing (bad magic)",
        wire::HandshakeError::VersionMismatch { .. } => {
            "boot header version mismatch between margay and its kernel"
        }
    })?;
    Ok(boot)
}

pub fn boot_data() -> Result<BootData, &'static str> {
    let h = header();
    let len = u64::from(h.boot.bootdata_len);
    if len > BOOTDATA_SIZE {
        return Err("boot data too long");
    }
    let mut buf = alloc::vec![0u8; len as usize];
    read_phys(SHARED_PHYS + BOOTDATA_OFF, &mut buf);
    let argc = h.boot.argc as usize;
    let envc = h.boot.envc as usize;
    let total = 1 + argc + envc;
    let mut parts = wire::split_bootdata(&buf, total).ok_or("malformed boot data")?;
    let path = parts.next().ok_or("boot data without a path")?.to_vec();
    let argv = parts.by_ref().take(argc).map(|s| s.to_vec()).collect();
    let envp = parts.map(|s| s.to_vec()).collect();
    Ok(BootData { path, argv, envp })
}

pub fn set_state(s: State) {
    update(|h| h.state = s as u32);
}

pub fn set_tsc_hz(hz: u64) {
    update(|h| h.tsc_hz = hz);
}

pub fn set_user_entry_ns(ns: u64) {
    update(|h| h.user_entry_ns = ns);
}

pub fn report_exit(code: u32) {
    update(|h| {
        h.exit_code = code & 0xff;
        h.state = State::Exited as u32;
    });
}

pub fn report_killed(signal: u32, fault_addr: u64, regs: Option<[u64; 24]>) {
    update(|h| {
        h.signal = signal;
        h.fault_addr = fault_addr;
        if let Some(r) = regs {
            h.regs = r;
            h.regs_valid = 1;
        }
        h.state = State::Killed as u32;
    });
}

pub fn report_panic(regs: Option<[u64; 24]>, fault_addr: u64) {
    update(|h| {
        h.fault_addr = fault_addr;
        if let Some(r) = regs {
            h.regs = r;
            h.regs_valid = 1;
        }
        h.state = State::Panicked as u32;
    });
}

pub fn set_cpus_online(n: u32) {
    update(|h| h.cpus_online = n);
}

pub fn set_total_bytes(total: u64) {
    update(|h| h.total_bytes = total);
}

/// Publish how much partition memory is free (for /proc/meminfo in the proxy).
pub fn publish_free_bytes(free: u64) {
    crate::arch::mem::phys_atomic_u64(HEADER + wire::HEADER_FREE_BYTES_OFF)
        .store(free, Ordering::Relaxed);
}
