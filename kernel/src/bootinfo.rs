//! The PVH start info QEMU hands the kernel: its memory map becomes the pmem map.

use crate::arch::mem::read_firmware;
use alloc::vec::Vec;
use lwk_core::pmem::FirmwareEntry;

const HVM_START_MAGIC: u32 = 0x336e_c578;
const MAX_ENTRIES: u32 = 128;

/// The fields of `struct hvm_start_info` the kernel uses.
struct StartInfo {
    magic: u32,
    version: u32,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

impl StartInfo {
    /// Read the start info at `phys` (56 bytes, layout of Xen's
    /// `hvm_start_info`).
    fn read(phys: u64) -> Option<Self> {
        let mut b = [0u8; 56];
        read_firmware(phys, &mut b).then(|| StartInfo {
            magic: u32_at(&b, 0),
            version: u32_at(&b, 4),
            rsdp_paddr: u64_at(&b, 32),
            memmap_paddr: u64_at(&b, 40),
            memmap_entries: u32_at(&b, 48),
        })
    }
}

/// Size of one `hvm_memmap_table_entry` (addr, size, type, reserved).
const MEMMAP_ENTRY_SIZE: u64 = 24;

/// The ACPI RSDP address from the start info (0 when absent).
pub fn rsdp(start_info: u64) -> u64 {
    if start_info == 0 || start_info >= 1 << 20 {
        return 0;
    }
    let Some(si) = StartInfo::read(start_info) else {
        return 0;
    };
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
    let si = StartInfo::read(start_info)?;
    if si.magic != HVM_START_MAGIC || si.version < 1 || si.memmap_entries == 0 {
        return None;
    }
    if si.memmap_paddr >= 1 << 32 || si.memmap_entries > MAX_ENTRIES {
        return None;
    }
    (0..u64::from(si.memmap_entries))
        .map(|i| {
            let mut e = [0u8; MEMMAP_ENTRY_SIZE as usize];
            read_firmware(si.memmap_paddr + i * MEMMAP_ENTRY_SIZE, &mut e).then(|| FirmwareEntry {
                addr: u64_at(&e, 0),
                size: u64_at(&e, 8),
                ram: u32_at(&e, 16) == 1,
            })
        })
        .collect()
}

/// Firmware memory (ACPI tables) read through the direct map, below 4 GiB.
pub struct PhysMem;

impl lwk_core::acpi::PhysRead for PhysMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        read_firmware(addr, buf)
    }
}
