//! The PVH start info QEMU hands the kernel: its memory map becomes the pmem map.

use crate::arch::mem::{read_phys, read_phys_obj};
use alloc::vec::Vec;
use lwk_core::pmem::FirmwareEntry;

const HVM_START_MAGIC: u32 = 0x336e_c578;
const MAX_ENTRIES: u32 = 128;

#[derive(Clone, Copy)]
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// The ACPI RSDP address from the start info (0 when absent).
pub fn rsdp(start_info: u64) -> u64 {
    if start_info == 0 || start_info >= 1 << 20 {
        return 0;
    }
    let si: StartInfo = read_phys_obj(start_info);
    if si.magic != HVM_START_MAGIC {
        return 0;
    }
    si.rsdp_paddr
}

/// The firmware memory map, or `None` when the start info has none (then the
/// caller falls back to the size the host gave).
pub fn memory_map(start_info: u64) -> Option<Vec<FirmwareEntry>> {
    if start_info == 0 || start_info >= 1 << 20 {
        return None;
    }
    let si: StartInfo = read_phys_obj(start_info);
    if si.magic != HVM_START_MAGIC || si.version < 1 || si.memmap_entries == 0 {
        return None;
    }
    if si.memmap_paddr >= 1 << 32 || si.memmap_entries > MAX_ENTRIES {
        return None;
    }
    let size = core::mem::size_of::<MemmapEntry>() as u64;
    Some(
        (0..u64::from(si.memmap_entries))
            .map(|i| {
                let e: MemmapEntry = read_phys_obj(si.memmap_paddr + i * size);
                FirmwareEntry {
                    addr: e.addr,
                    size: e.size,
                    ram: e.kind == 1,
                }
            })
            .collect(),
    )
}

/// Firmware memory (ACPI tables) read through the direct map, below 4 GiB.
pub struct PhysMem;

impl lwk_core::acpi::PhysRead for PhysMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let ok = addr
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= crate::arch::mem::DIRECT_MAP_SIZE);
        if ok {
            read_phys(addr, buf);
        }
        ok
    }
}
