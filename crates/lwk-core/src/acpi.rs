//! The few ACPI tables the LWK reads to find its cores: RSDP -> RSDT/XSDT ->
//! MADT (local APIC and x2APIC entries). Input is firmware memory, read
//! through a caller-supplied function, and is validated (signatures,
//! checksums, lengths) before use.

use alloc::vec::Vec;

/// Reads `buf.len()` bytes of physical memory at an address; false if out of range.
pub trait PhysRead {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum AcpiError {
    BadRsdp,
    BadTable,
    NoMadt,
}

/// What the MADT says about the machine's cores.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Madt {
    pub lapic_base: u64,
    /// APIC ids of enabled processors, in table order (the boot CPU first on QEMU).
    pub apic_ids: Vec<u32>,
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Read a whole SDT (header + body) at `addr`, checking its length and checksum.
fn read_table(mem: &dyn PhysRead, addr: u64, max_len: u32) -> Result<Vec<u8>, AcpiError> {
    let mut hdr = [0u8; 36];
    if !mem.read(addr, &mut hdr) {
        return Err(AcpiError::BadTable);
    }
    let len = le32(&hdr, 4).ok_or(AcpiError::BadTable)?;
    if !(36..=max_len).contains(&len) {
        return Err(AcpiError::BadTable);
    }
    let mut t = alloc::vec![0u8; len as usize];
    if !mem.read(addr, &mut t) || !checksum_ok(&t) {
        return Err(AcpiError::BadTable);
    }
    Ok(t)
}

/// Find and parse the MADT starting from the RSDP at `rsdp_addr`.
pub fn find_madt(mem: &dyn PhysRead, rsdp_addr: u64) -> Result<Madt, AcpiError> {
    let mut rsdp = [0u8; 36];
    if !mem.read(rsdp_addr, &mut rsdp[..20])
        || &rsdp[..8] != b"RSD PTR "
        || !checksum_ok(&rsdp[..20])
    {
        return Err(AcpiError::BadRsdp);
    }
    let revision = rsdp[15];
    let (root, entry_size) = if revision >= 2 {
        if !mem.read(rsdp_addr, &mut rsdp) || !checksum_ok(&rsdp) {
            return Err(AcpiError::BadRsdp);
        }
        (le64(&rsdp, 24).ok_or(AcpiError::BadRsdp)?, 8)
    } else {
        (u64::from(le32(&rsdp, 16).ok_or(AcpiError::BadRsdp)?), 4)
    };
    let root = read_table(mem, root, 64 * 1024)?;
    for off in (36..root.len()).step_by(entry_size) {
        let addr = if entry_size == 8 {
            le64(&root, off)
        } else {
            le32(&root, off).map(u64::from)
        };
        let Some(addr) = addr else { break };
        let mut sig = [0u8; 4];
        if !mem.read(addr, &mut sig) || &sig != b"APIC" {
            continue;
        }
        return parse_madt(&read_table(mem, addr, 64 * 1024)?);
    }
    Err(AcpiError::NoMadt)
}

/// Parse a MADT (whole table, header included).
pub fn parse_madt(t: &[u8]) -> Result<Madt, AcpiError> {
    if t.get(..4) != Some(b"APIC") {
        return Err(AcpiError::BadTable);
    }
    let mut lapic_base = u64::from(le32(t, 36).ok_or(AcpiError::BadTable)?);
    let mut apic_ids = Vec::new();
    let mut off = 44;
    while off + 2 <= t.len() {
        let kind = t[off];
        let len = usize::from(t[off + 1]);
        if len < 2 || off + len > t.len() {
            return Err(AcpiError::BadTable);
        }
        let e = &t[off..off + len];
        match kind {
            // Processor local APIC: flags bit 0 enabled, bit 1 online-capable.
            0 if len >= 8 => {
                let flags = le32(e, 4).ok_or(AcpiError::BadTable)?;
                if flags & 1 != 0 {
                    apic_ids.push(u32::from(e[3]));
                }
            }
            // Local APIC address override.
            5 if len >= 12 => lapic_base = le64(e, 4).ok_or(AcpiError::BadTable)?,
            // Processor local x2APIC.
            9 if len >= 16 => {
                let id = le32(e, 4).ok_or(AcpiError::BadTable)?;
                let flags = le32(e, 8).ok_or(AcpiError::BadTable)?;
                if flags & 1 != 0 && !apic_ids.contains(&id) {
                    apic_ids.push(id);
                }
            }
            _ => {}
        }
        off += len;
    }
    Ok(Madt {
        lapic_base,
        apic_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Mem(BTreeMap<u64, Vec<u8>>);

    impl PhysRead for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            for (&base, bytes) in &self.0 {
                if addr >= base && addr + buf.len() as u64 <= base + bytes.len() as u64 {
                    let o = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[o..o + buf.len()]);
                    return true;
                }
            }
            false
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        let s = t.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        t[at] = 0u8.wrapping_sub(s);
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = alloc::vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut t, 9);
        t
    }

    fn madt(cpus: &[(u8, u32)]) -> Vec<u8> {
        let mut body = alloc::vec![];
        body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        for &(id, flags) in cpus {
            body.extend_from_slice(&[0, 8, id, id]);
            body.extend_from_slice(&flags.to_le_bytes());
        }
        body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]); // an I/O APIC entry
        sdt(b"APIC", &body)
    }

    fn machine(madt: Vec<u8>, rev2: bool) -> Mem {
        let mut m = BTreeMap::new();
        let mut rsdp = alloc::vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        if rev2 {
            rsdp[15] = 2;
            rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
            rsdp[24..32].copy_from_slice(&0x2000u64.to_le_bytes());
            m.insert(0x2000, sdt(b"XSDT", &0x3000u64.to_le_bytes()));
        } else {
            rsdp[16..20].copy_from_slice(&0x2000u32.to_le_bytes());
            m.insert(0x2000, sdt(b"RSDT", &0x3000u32.to_le_bytes()));
        }
        fix_checksum(&mut rsdp[..20], 8);
        if rev2 {
            fix_checksum(&mut rsdp, 32);
        }
        m.insert(0x1000, rsdp);
        m.insert(0x3000, madt);
        Mem(m)
    }

    #[test]
    fn finds_enabled_cpus_through_rsdt_and_xsdt() {
        for rev2 in [false, true] {
            let mem = machine(madt(&[(0, 1), (1, 1), (2, 0), (3, 1)]), rev2);
            let m = find_madt(&mem, 0x1000).unwrap();
            assert_eq!(m.apic_ids, [0, 1, 3]);
            assert_eq!(m.lapic_base, 0xfee0_0000);
        }
    }

    #[test]
    fn rejects_corrupt_tables() {
        let mut bad = madt(&[(0, 1)]);
        bad[40] ^= 0xff;
        assert_eq!(
            find_madt(&machine(bad, true), 0x1000),
            Err(AcpiError::BadTable)
        );
        assert_eq!(
            find_madt(&machine(madt(&[(0, 1)]), true), 0x1008),
            Err(AcpiError::BadRsdp)
        );
        let mut truncated = madt(&[(0, 1)]);
        truncated[45] = 200; // entry length past the end
        assert_eq!(parse_madt(&truncated), Err(AcpiError::BadTable));
        let mut zero = madt(&[(0, 1)]);
        zero[45] = 0;
        assert_eq!(parse_madt(&zero), Err(AcpiError::BadTable));
    }
}
