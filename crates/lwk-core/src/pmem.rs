//! Physical memory map (Kitten's pmem): the partition's RAM as a list of typed,
//! non-overlapping regions built from the firmware memory map and the ranges
//! the kernel reserves for itself (image, shared area). What is left is free
//! memory for the page allocator.

use alloc::vec::Vec;

/// What a physical range is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmemType {
    /// Firmware, legacy low memory, or anything not RAM.
    Reserved,
    /// The kernel image.
    Kernel,
    /// The shared area (boot header, channels, kmsg, boot data).
    Shared,
    /// Usable by the page allocator (kernel objects and user regions).
    Free,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmemRegion {
    pub start: u64,
    pub end: u64,
    pub kind: PmemType,
}

/// One entry of the firmware (E820-style) memory map; `ram` is type 1.
#[derive(Clone, Copy, Debug)]
pub struct FirmwareEntry {
    pub addr: u64,
    pub size: u64,
    pub ram: bool,
}

/// The typed map. Regions are sorted, non-overlapping and page aligned.
#[derive(Debug, Default)]
pub struct PmemMap {
    regions: Vec<PmemRegion>,
}

use crate::PAGE_SIZE as PAGE;

impl PmemMap {
    /// Build the map: RAM entries (page-rounded inwards, clipped to `limit`)
    /// become Free, then each `(start, end, kind)` reservation is carved out.
    /// Memory below 1 MiB is always Reserved (firmware, PVH start info).
    pub fn build(firmware: &[FirmwareEntry], limit: u64, reserve: &[(u64, u64, PmemType)]) -> Self {
        let mut free: Vec<(u64, u64)> = Vec::new();
        for e in firmware.iter().filter(|e| e.ram) {
            let start = e.addr.max(1 << 20).saturating_add(PAGE - 1) & !(PAGE - 1);
            let end = e.addr.saturating_add(e.size).min(limit) & !(PAGE - 1);
            if end > start {
                free.push((start, end));
            }
        }
        free.sort_unstable();
        // Merge overlapping or touching RAM entries.
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in free {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut regions: Vec<PmemRegion> = merged
            .into_iter()
            .map(|(start, end)| PmemRegion {
                start,
                end,
                kind: PmemType::Free,
            })
            .collect();
        for &(rs, re, kind) in reserve {
            let rs = rs & !(PAGE - 1);
            let re = re.saturating_add(PAGE - 1) & !(PAGE - 1);
            let mut out = Vec::with_capacity(regions.len() + 2);
            for r in regions {
                if r.kind != PmemType::Free || re <= r.start || rs >= r.end {
                    out.push(r);
                    continue;
                }
                if r.start < rs {
                    out.push(PmemRegion {
                        start: r.start,
                        end: rs,
                        kind: PmemType::Free,
                    });
                }
                out.push(PmemRegion {
                    start: rs.max(r.start),
                    end: re.min(r.end),
                    kind,
                });
                if re < r.end {
                    out.push(PmemRegion {
                        start: re,
                        end: r.end,
                        kind: PmemType::Free,
                    });
                }
            }
            regions = out;
        }
        PmemMap { regions }
    }

    pub fn regions(&self) -> &[PmemRegion] {
        &self.regions
    }

    pub fn free(&self) -> impl Iterator<Item = &PmemRegion> {
        self.regions.iter().filter(|r| r.kind == PmemType::Free)
    }

    /// Lowest start and highest end of all Free regions (the page allocator's span).
    pub fn free_span(&self) -> Option<(u64, u64)> {
        let lo = self.free().map(|r| r.start).min()?;
        let hi = self.free().map(|r| r.end).max()?;
        Some((lo, hi))
    }

    pub fn free_bytes(&self) -> u64 {
        self.free().map(|r| r.end - r.start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(addr: u64, size: u64) -> FirmwareEntry {
        FirmwareEntry {
            addr,
            size,
            ram: true,
        }
    }

    #[test]
    fn reservations_are_carved_out_of_ram() {
        let fw = [
            ram(0, 0x9fc00),
            FirmwareEntry {
                addr: 0x9fc00,
                size: 0x400,
                ram: false,
            },
            ram(0x10_0000, 0x7f0_0000),
        ];
        let m = PmemMap::build(
            &fw,
            u64::MAX,
            &[
                (0x10_0000, 0x13_2000, PmemType::Kernel),
                (0x100_0000, 0x140_0000, PmemType::Shared),
            ],
        );
        let kinds: Vec<(u64, u64, PmemType)> = m
            .regions()
            .iter()
            .map(|r| (r.start, r.end, r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (0x10_0000, 0x13_2000, PmemType::Kernel),
                (0x13_2000, 0x100_0000, PmemType::Free),
                (0x100_0000, 0x140_0000, PmemType::Shared),
                (0x140_0000, 0x800_0000, PmemType::Free),
            ]
        );
        assert_eq!(m.free_span(), Some((0x13_2000, 0x800_0000)));
        assert_eq!(
            m.free_bytes(),
            (0x100_0000 - 0x13_2000) + (0x800_0000 - 0x140_0000)
        );
    }

    #[test]
    fn low_memory_holes_and_limits() {
        let fw = [
            ram(0, 0x8000_0000),
            ram(0x1_0000_0000, 0x4000_0000),
            ram(0x7000_0000, 0x2000_0001),
        ];
        let m = PmemMap::build(&fw, 0x1_0000_0000, &[]);
        // Below 1 MiB is never free; overlapping RAM entries merge; the limit clips.
        assert_eq!(m.free_span(), Some((0x10_0000, 0x9000_0000)));
        assert_eq!(m.free().count(), 1);
        let none = PmemMap::build(
            &[FirmwareEntry {
                addr: 0,
                size: 1 << 30,
                ram: false,
            }],
            u64::MAX,
            &[],
        );
        assert_eq!(none.free_span(), None);
    }

    #[test]
    fn unaligned_entries_round_inwards() {
        let m = PmemMap::build(&[ram(0x10_0123, 0x2000)], u64::MAX, &[]);
        assert_eq!(
            m.regions(),
            &[PmemRegion {
                start: 0x10_1000,
                end: 0x10_2000,
                kind: PmemType::Free
            }]
        );
    }
}
