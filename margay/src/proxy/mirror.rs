//! The proxy's view of its LWK process's user regions: reading and validating the
//! region table the kernel publishes, and answering "is `[addr, addr+len)` mirrored
//! with these permissions, and where is it in guest RAM?".

use std::mem::size_of;
use std::sync::atomic::Ordering;

use thiserror::Error;
#[cfg(test)]
use wire::REGIONS_OFF;
use wire::{MirrorEntry, MirrorError, RegionTableHeader, MAX_REGIONS, SHARED_PHYS, SHARED_SIZE};

use super::files::{self, PluggedFile};
use crate::guest_mem::{GuestMem, GuestMemError};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TableError {
    #[error("region table claims {0} entries (at most {MAX_REGIONS})")]
    TooMany(u32),
    #[error("region table entry {index} {entry:x?} is invalid: {reason:?}")]
    BadEntry {
        index: usize,
        entry: MirrorEntry,
        reason: MirrorError,
    },
    #[error("region table entries {0:x?} and {1:x?} overlap")]
    Overlap(MirrorEntry, MirrorEntry),
    #[error("region table kept changing while it was read")]
    Unstable,
    #[error(transparent)]
    Guest(#[from] GuestMemError),
}

/// Validated user regions, sorted by address and non-overlapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirror {
    entries: Vec<MirrorEntry>,
    /// The plugged files some entry lies in (for /proc/self/maps).
    files: Vec<PluggedFile>,
}

impl Mirror {
    /// Validate `entries` (each one against the partition size, and pairwise for
    /// overlaps) and build the lookup structure.
    #[cfg(test)]
    pub fn new(entries: Vec<MirrorEntry>, mem_size: u64) -> Result<Self, TableError> {
        Self::new_with(entries, mem_size, &[])
    }

    /// `new`, also accepting entries that lie in the dimm of one of `files`
    /// (shared file mappings) instead of guest RAM.
    pub fn new_with(
        mut entries: Vec<MirrorEntry>,
        mem_size: u64,
        files: &[PluggedFile],
    ) -> Result<Self, TableError> {
        for (index, e) in entries.iter().enumerate() {
            let in_file = e.file_off >= mem_size && files::find(files, e.file_off, e.len).is_some();
            let checked = if in_file {
                // Validated as if the file's bytes were the start of memory.
                MirrorEntry {
                    file_off: SHARED_PHYS + SHARED_SIZE,
                    ..*e
                }
                .validate(SHARED_PHYS + SHARED_SIZE + e.len)
            } else {
                e.validate(mem_size)
            };
            checked.map_err(|reason| TableError::BadEntry {
                index,
                entry: *e,
                reason,
            })?;
        }
        entries.sort_by_key(|e| e.vaddr);
        for w in entries.windows(2) {
            // Validated entries cannot overflow.
            if w[0].vaddr + w[0].len > w[1].vaddr {
                return Err(TableError::Overlap(w[0], w[1]));
            }
        }
        let files = files
            .iter()
            .filter(|f| entries.iter().any(|e| f.holds(e.file_off, e.len)))
            .cloned()
            .collect();
        Ok(Mirror { entries, files })
    }

    /// Read the table from guest memory. Returns its generation and contents.
    #[cfg(test)]
    pub fn read(mem: &GuestMem) -> Result<(u64, Result<Mirror, TableError>), TableError> {
        Self::read_at(mem, SHARED_PHYS + REGIONS_OFF)
    }

    /// Read the region table at guest-physical `base` (a forked process's).
    #[cfg(test)]
    pub fn read_at(
        mem: &GuestMem,
        base: u64,
    ) -> Result<(u64, Result<Mirror, TableError>), TableError> {
        Self::read_at_with(mem, base, &[])
    }

    /// `read_at`, accepting regions in the dimms of `files`.
    pub fn read_at_with(
        mem: &GuestMem,
        base: u64,
        files: &[PluggedFile],
    ) -> Result<(u64, Result<Mirror, TableError>), TableError> {
        // The kernel's vCPU can be preempted in the middle of a rewrite (a
        // loaded host): wait for it, but not forever.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut tries = 0u32;
        loop {
            tries += 1;
            if tries > 8 && std::time::Instant::now() > deadline {
                return Err(TableError::Unstable);
            }
            if tries > 8 {
                std::thread::yield_now();
            }
            let gen = mem.load_u64(base + wire::REGION_GEN_OFF, Ordering::Acquire)?;
            let hdr: RegionTableHeader = mem.read_obj(base)?;
            // Generation 0 with entries: the kernel is rewriting the table
            // right now, and a table read then would be torn. (Generation 0
            // and no entries: a table never written, empty.)
            if gen == 0 && hdr.count != 0 {
                std::thread::yield_now();
                continue;
            }
            let entries = if hdr.count as usize > MAX_REGIONS {
                Err(TableError::TooMany(hdr.count))
            } else {
                let first = base + size_of::<RegionTableHeader>() as u64;
                (0..u64::from(hdr.count))
                    .map(|i| {
                        mem.read_obj::<MirrorEntry>(first + i * size_of::<MirrorEntry>() as u64)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(TableError::from)
            };
            if mem.load_u64(base + wire::REGION_GEN_OFF, Ordering::Acquire)? == gen {
                return Ok((
                    gen,
                    entries.and_then(|e| Mirror::new_with(e, mem.size(), files)),
                ));
            }
        }
    }

    pub fn entries(&self) -> &[MirrorEntry] {
        &self.entries
    }

    /// The plugged files the entries map.
    pub fn files(&self) -> &[PluggedFile] {
        &self.files
    }

    /// The region containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&MirrorEntry> {
        let i = self.entries.partition_point(|e| e.vaddr <= addr);
        let e = self.entries.get(i.checked_sub(1)?)?;
        (addr - e.vaddr < e.len).then_some(e)
    }

    /// Split `[addr, addr+len)` into `(file_off, len)` pieces of guest RAM, each in a
    /// region whose prot includes `need`. `None` if any byte is not mirrored so.
    pub fn translate(&self, addr: u64, len: u64, need: u32) -> Option<Vec<(u64, u64)>> {
        let end = addr.checked_add(len)?;
        let mut pieces = Vec::new();
        let mut cur = addr;
        while cur < end {
            let e = self.find(cur)?;
            // An inaccessible region has no memory behind it to translate.
            if e.prot & need != need || e.prot == 0 {
                return None;
            }
            let e_end = e.vaddr + e.len;
            let n = end.min(e_end) - cur;
            pieces.push((e.file_off + (cur - e.vaddr), n));
            cur += n;
        }
        Some(pieces)
    }

    /// Whether every byte of `[addr, addr+len)` is mirrored with prot `need`.
    /// An empty range is always accepted (Linux does not touch it).
    pub fn covers(&self, addr: u64, len: u64, need: u32) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let mut cur = addr;
        while cur < end {
            let Some(e) = self.find(cur) else {
                return false;
            };
            // An inaccessible region (PROT_NONE) covers nothing.
            if e.prot & need != need || e.prot == 0 {
                return false;
            }
            cur = e.vaddr + e.len;
        }
        true
    }
}

/// Regions to drop and to (re)map to go from `old` to `new`: entries are kept only
/// when they are identical in both.
pub fn diff<'a>(old: &'a Mirror, new: &'a Mirror) -> (Vec<MirrorEntry>, Vec<MirrorEntry>) {
    let removed = old
        .entries
        .iter()
        .filter(|e| !new.entries.contains(e))
        .copied()
        .collect();
    let added = new
        .entries
        .iter()
        .filter(|e| !old.entries.contains(e))
        .copied()
        .collect();
    (removed, added)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use linux_abi::mman::{PROT_READ, PROT_WRITE};

    pub const MEM: u64 = 128 << 20;

    pub fn entry(vaddr: u64, len: u64, file_off: u64, prot: u32) -> MirrorEntry {
        MirrorEntry {
            vaddr,
            len,
            file_off,
            prot,
            kind: 0,
        }
    }

    pub fn sample() -> Mirror {
        Mirror::new(
            vec![
                // Out of order on purpose.
                entry(0x40_2000, 0x2000, 0x210_0000, PROT_READ | PROT_WRITE),
                entry(0x40_0000, 0x2000, 0x200_0000, PROT_READ),
                entry(0x50_0000, 0x1000, 0x300_0000, PROT_READ | PROT_WRITE),
                entry(0x60_0000, 0x1000, 0x310_0000, 0),
            ],
            MEM,
        )
        .unwrap()
    }

    #[test]
    fn bad_entries_and_overlaps_are_rejected() {
        let ok = entry(0x40_0000, 0x1000, 0x200_0000, PROT_READ);
        assert!(Mirror::new(vec![ok], MEM).is_ok());
        assert!(Mirror::new(vec![], MEM).unwrap().entries().is_empty());
        assert!(matches!(
            Mirror::new(vec![ok, entry(0, 0x1000, 0x200_0000, 1)], MEM),
            Err(TableError::BadEntry {
                index: 1,
                reason: MirrorError::OutsideUserWindow,
                ..
            })
        ));
        assert!(matches!(
            Mirror::new(vec![entry(0x40_0000, 0x1000, MEM, 1)], MEM),
            Err(TableError::BadEntry {
                reason: MirrorError::OutsideMemory,
                ..
            })
        ));
        assert!(matches!(
            Mirror::new(vec![entry(0x40_0000, 0x1000, SHARED_PHYS, 1)], MEM),
            Err(TableError::BadEntry {
                reason: MirrorError::IntoSharedArea,
                ..
            })
        ));
        // Overlapping virtual ranges, given in either order.
        let over = entry(0x40_0000 - 0x1000, 0x2000, 0x220_0000, PROT_READ);
        assert!(matches!(
            Mirror::new(vec![ok, over], MEM),
            Err(TableError::Overlap(..))
        ));
        assert!(matches!(
            Mirror::new(vec![over, ok], MEM),
            Err(TableError::Overlap(..))
        ));
        // Adjacent is fine; sharing physical pages is fine.
        let adj = entry(0x40_1000, 0x1000, 0x200_0000, PROT_READ);
        assert!(Mirror::new(vec![adj, ok], MEM).is_ok());
    }

    #[test]
    fn lookups_span_adjacent_regions_and_check_prot() {
        let m = sample();
        assert_eq!(m.find(0x40_0000).unwrap().file_off, 0x200_0000);
        assert_eq!(m.find(0x40_1fff).unwrap().file_off, 0x200_0000);
        assert_eq!(m.find(0x40_2000).unwrap().file_off, 0x210_0000);
        assert!(m.find(0x40_4000).is_none());
        assert!(m.find(0x3f_ffff).is_none());
        assert!(m.find(0).is_none());
        assert!(m.find(u64::MAX).is_none());

        // Read across the two adjacent regions.
        assert!(m.covers(0x40_1ff0, 0x20, PROT_READ));
        assert_eq!(
            m.translate(0x40_1ff0, 0x20, PROT_READ).unwrap(),
            vec![(0x200_1ff0, 0x10), (0x210_0000, 0x10)]
        );
        // Writing needs PROT_WRITE in every piece.
        assert!(!m.covers(0x40_1ff0, 0x20, PROT_WRITE));
        assert!(m.covers(0x40_2000, 0x2000, PROT_WRITE));
        assert!(!m.covers(0x40_2000, 0x2001, PROT_WRITE));
        // A gap between regions.
        assert!(!m.covers(0x40_3000, 0x10_0000, PROT_READ));
        // PROT_NONE regions are not accessible.
        assert!(!m.covers(0x60_0000, 1, PROT_READ));
        // Overflow and empty ranges.
        assert!(!m.covers(u64::MAX - 4, 10, PROT_READ));
        assert!(m.translate(u64::MAX - 4, 10, PROT_READ).is_none());
        assert!(m.covers(0x1234, 0, PROT_WRITE));
    }

    #[test]
    fn diff_keeps_identical_entries() {
        let a = sample();
        let mut es = a.entries().to_vec();
        es[0].prot = PROT_READ | PROT_WRITE; // changed
        es.pop(); // removed
        es.push(entry(0x70_0000, 0x1000, 0x320_0000, PROT_READ)); // added
        let b = Mirror::new(es, MEM).unwrap();
        let (removed, added) = diff(&a, &b);
        assert_eq!(removed.len(), 2);
        assert_eq!(added.len(), 2);
        assert!(removed.iter().any(|e| e.vaddr == 0x40_0000));
        assert!(added.iter().any(|e| e.vaddr == 0x70_0000));
    }

    #[test]
    fn table_is_read_from_guest_memory_and_garbage_rejected() {
        let mem = GuestMem::anonymous(MEM as usize);
        let base = SHARED_PHYS + REGIONS_OFF;
        let hdr = RegionTableHeader {
            gen: 7,
            count: 2,
            signals: 0,
        };
        mem.write_obj(base, &hdr).unwrap();
        let e0 = entry(0x40_0000, 0x1000, 0x200_0000, PROT_READ);
        let e1 = entry(0x50_0000, 0x1000, 0x201_0000, PROT_READ);
        mem.write_obj(base + 16, &e0).unwrap();
        mem.write_obj(base + 48, &e1).unwrap();
        let (gen, m) = Mirror::read(&mem).unwrap();
        assert_eq!(gen, 7);
        assert_eq!(m.unwrap().entries(), &[e0, e1]);

        mem.write_obj(
            base,
            &RegionTableHeader {
                count: u32::MAX,
                ..hdr
            },
        )
        .unwrap();
        assert_eq!(
            Mirror::read(&mem).unwrap().1,
            Err(TableError::TooMany(u32::MAX))
        );

        mem.write_obj(base, &hdr).unwrap();
        mem.write_obj(base + 48, &entry(0x40_0000, 0x1000, 0x201_0000, PROT_READ))
            .unwrap();
        assert!(matches!(
            Mirror::read(&mem).unwrap().1,
            Err(TableError::Overlap(..))
        ));
    }
}
