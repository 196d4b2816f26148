//! The kernel's side of the shared area: reading the boot header and boot
//! data the host wrote, reporting state, exit status, faults and stats.
//!
//! The host reads the header while the kernel updates it (and writes some
//! words itself), so every update is a write of its own field (volatile, or
//! atomic for the words both sides touch), never a read-modify-write of the
//! whole header; the state word is published last, with release ordering.

use crate::arch::mem::{shared_area, Plain};
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::Ordering;
use wire::{Header, State, BOOTDATA_OFF, BOOTDATA_SIZE, HEADER_OFF, HEADER_STATE_OFF};

/// What the host asked for, copied out of the header once at boot.
pub use wire::BootParams;

/// The program to run: path, argv and envp.
pub struct BootData {
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
}

fn header() -> Header {
    shared_area().read_obj::<Header>(HEADER_OFF)
}

/// Write one header field at offset `field` (from `offset_of!(Header, ..)`).
fn set<T: Plain>(field: usize, v: T) {
    shared_area().write_obj(HEADER_OFF + field as u64, v);
}

/// Publish the state word (after the fields it makes valid).
fn publish_state(s: State) {
    shared_area()
        .atomic_u32(HEADER_OFF + HEADER_STATE_OFF)
        .store(s as u32, Ordering::Release);
}

/// Write `v` at offset `off` of the shared area (the `--stats` block).
pub fn write_obj<T: Plain>(off: u64, v: T) {
    shared_area().write_obj(off, v);
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
    shared_area().read(BOOTDATA_OFF, &mut buf);
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
    publish_state(s);
}

pub fn set_tsc_hz(hz: u64) {
    set(offset_of!(Header, tsc_hz), hz);
}

pub fn set_user_entry_ns(ns: u64) {
    set(offset_of!(Header, user_entry_ns), ns);
}

pub fn report_exit(code: u32) {
    set(offset_of!(Header, exit_code), code & 0xff);
    publish_state(State::Exited);
}

/// Fault address and registers (if known) of a death or panic.
fn set_fault(fault_addr: u64, regs: Option<[u64; 24]>) {
    set(offset_of!(Header, fault_addr), fault_addr);
    if let Some(r) = regs {
        set(offset_of!(Header, regs), r);
        set(offset_of!(Header, regs_valid), 1u32);
    }
}

pub fn report_killed(signal: u32, fault_addr: u64, regs: Option<[u64; 24]>) {
    set(offset_of!(Header, signal), signal);
    set_fault(fault_addr, regs);
    publish_state(State::Killed);
}

pub fn report_panic(regs: Option<[u64; 24]>, fault_addr: u64) {
    set_fault(fault_addr, regs);
    publish_state(State::Panicked);
}

pub fn set_cpus_online(n: u32) {
    set(offset_of!(Header, cpus_online), n);
}

pub fn set_total_bytes(total: u64) {
    set(offset_of!(Header, total_bytes), total);
}

/// Publish how much partition memory is free (for /proc/meminfo in the proxy).
pub fn publish_free_bytes(free: u64) {
    shared_area()
        .atomic_u64(HEADER_OFF + wire::HEADER_FREE_BYTES_OFF)
        .store(free, Ordering::Relaxed);
}
