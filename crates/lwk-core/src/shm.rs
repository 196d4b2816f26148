//! Partition-wide shared memory objects: physical memory that several address spaces map
//! at once (`MAP_SHARED|MAP_ANONYMOUS`, shared `/dev/zero`), kept alive while any mapping
//! of it remains, as Linux keeps a shmem object alive while a VMA refers to it.
//!
//! An object is a list of physically contiguous chunks. Its reference count is the number
//! of bytes mapped across every address space, so splitting or protecting a mapping
//! changes nothing, and only the removal of mapped bytes (munmap, exit, exec) can release
//! it. The table only does the bookkeeping; the caller owns the physical memory and frees
//! the chunks of an object [`ObjectTable::unmap`] hands back.

use alloc::vec::Vec;

use crate::PAGE_SIZE;

/// Identifies a shared object within a partition (never 0, so it fits in a tag).
pub type ObjectId = u32;

/// One physically contiguous piece of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Physical start (page aligned).
    pub phys: u64,
    /// Length in bytes (page multiple, nonzero).
    pub len: u64,
}

/// A shared object: its chunks in object-offset order and how many bytes of it are mapped.
#[derive(Debug, PartialEq, Eq)]
pub struct Object {
    chunks: Vec<Chunk>,
    len: u64,
    mapped: u64,
}

impl Object {
    /// Total size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object has no memory (never true for an object in a table).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes currently mapped, summed over every address space.
    pub fn mapped(&self) -> u64 {
        self.mapped
    }

    /// The chunks, in object-offset order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The object offset of physical address `phys`, if it lies in the object.
    pub fn offset_of(&self, phys: u64) -> Option<u64> {
        let mut base = 0u64;
        for c in &self.chunks {
            if phys >= c.phys && phys - c.phys < c.len {
                return Some(base + (phys - c.phys));
            }
            base += c.len;
        }
        None
    }

    /// The physical pieces of object bytes `[off, off + len)`, as `(offset, phys, len)`
    /// triples in offset order; empty when the range does not lie inside the object.
    pub fn pieces(&self, off: u64, len: u64) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        let Some(end) = off.checked_add(len) else {
            return out;
        };
        if end > self.len || len == 0 {
            return out;
        }
        let mut base = 0u64;
        for c in &self.chunks {
            let (cs, ce) = (base, base + c.len);
            let (s, e) = (cs.max(off), ce.min(end));
            if s < e {
                out.push((s, c.phys + (s - cs), e - s));
            }
            base = ce;
        }
        out
    }
}

/// Why a table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmError {
    /// The table could not grow (kernel memory exhausted) or ids ran out.
    NoMemory,
    /// A chunk is empty, unaligned or the chunks overflow.
    BadChunk,
    /// No object has this id.
    NoSuchObject,
    /// More bytes unmapped than were mapped (a bookkeeping bug in the caller).
    Underflow,
}

/// The partition's shared objects, indexed by id.
#[derive(Debug, Default)]
pub struct ObjectTable {
    /// Slot `i` holds object id `i + 1`.
    slots: Vec<Option<Object>>,
}

impl ObjectTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self { slots: Vec::new() }
    }

    /// Record a new object made of `chunks` (nothing mapped yet). Fallible: the table's
    /// growth uses `try_reserve`, so kernel memory exhaustion is an error, not a panic.
    pub fn create(&mut self, chunks: Vec<Chunk>) -> Result<ObjectId, ShmError> {
        let mut len = 0u64;
        for c in &chunks {
            if c.len == 0 || (c.phys | c.len) % PAGE_SIZE != 0 {
                return Err(ShmError::BadChunk);
            }
            len = len.checked_add(c.len).ok_or(ShmError::BadChunk)?;
        }
        if len == 0 {
            return Err(ShmError::BadChunk);
        }
        let obj = Object {
            chunks,
            len,
            mapped: 0,
        };
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.try_reserve(1).map_err(|_| ShmError::NoMemory)?;
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let id = ObjectId::try_from(i + 1).map_err(|_| ShmError::NoMemory)?;
        self.slots[i] = Some(obj);
        Ok(id)
    }

    fn slot(&mut self, id: ObjectId) -> Result<&mut Option<Object>, ShmError> {
        let i = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .ok_or(ShmError::NoSuchObject)?;
        match self.slots.get_mut(i) {
            Some(s @ Some(_)) => Ok(s),
            _ => Err(ShmError::NoSuchObject),
        }
    }

    /// The object with this id.
    pub fn get(&self, id: ObjectId) -> Option<&Object> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.slots.get(i)?.as_ref()
    }

    /// `bytes` more of the object are now mapped (a new mapping, or a fork's copy of one).
    pub fn map(&mut self, id: ObjectId, bytes: u64) -> Result<(), ShmError> {
        let o = self.slot(id)?.as_mut().ok_or(ShmError::NoSuchObject)?;
        o.mapped = o.mapped.checked_add(bytes).ok_or(ShmError::Underflow)?;
        Ok(())
    }

    /// `bytes` of the object were unmapped. When nothing of it stays mapped, the object
    /// leaves the table and is returned so the caller frees its chunks.
    pub fn unmap(&mut self, id: ObjectId, bytes: u64) -> Result<Option<Object>, ShmError> {
        let slot = self.slot(id)?;
        let o = slot.as_mut().ok_or(ShmError::NoSuchObject)?;
        o.mapped = o.mapped.checked_sub(bytes).ok_or(ShmError::Underflow)?;
        if o.mapped == 0 {
            return Ok(slot.take());
        }
        Ok(None)
    }

    /// Remove an object nothing maps (e.g. when setting up its first mapping failed).
    pub fn discard(&mut self, id: ObjectId) -> Result<Object, ShmError> {
        let slot = self.slot(id)?;
        if slot.as_ref().is_some_and(|o| o.mapped != 0) {
            return Err(ShmError::Underflow);
        }
        slot.take().ok_or(ShmError::NoSuchObject)
    }

    /// Number of live objects.
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn chunk(phys: u64, len: u64) -> Chunk {
        Chunk { phys, len }
    }

    #[test]
    fn an_object_lives_while_any_byte_is_mapped() {
        let mut t = ObjectTable::new();
        let id = t.create(vec![chunk(0x20_0000, 0x4000)]).unwrap();
        assert_ne!(id, 0);
        t.map(id, 0x4000).unwrap(); // the parent's mapping
        t.map(id, 0x4000).unwrap(); // a fork's copy
        assert_eq!(t.unmap(id, 0x1000).unwrap(), None); // partial munmap in the child
        assert_eq!(t.unmap(id, 0x4000).unwrap(), None); // the parent exits
        let o = t.unmap(id, 0x3000).unwrap().expect("last bytes release it");
        assert_eq!(o.chunks(), &[chunk(0x20_0000, 0x4000)]);
        assert_eq!(t.count(), 0);
        assert_eq!(t.map(id, 1), Err(ShmError::NoSuchObject));
    }

    #[test]
    fn ids_are_reused_and_never_zero() {
        let mut t = ObjectTable::new();
        let a = t.create(vec![chunk(0, 0x1000)]).unwrap();
        let b = t.create(vec![chunk(0x1000, 0x1000)]).unwrap();
        assert_ne!(a, b);
        t.discard(a).unwrap();
        let c = t.create(vec![chunk(0x2000, 0x1000)]).unwrap();
        assert_eq!(c, a);
        assert!(t.get(0).is_none());
        assert!(t.get(u32::MAX).is_none());
    }

    #[test]
    fn bad_chunks_and_underflow_are_errors() {
        let mut t = ObjectTable::new();
        assert_eq!(t.create(vec![]), Err(ShmError::BadChunk));
        assert_eq!(t.create(vec![chunk(0x10, 0x1000)]), Err(ShmError::BadChunk));
        assert_eq!(t.create(vec![chunk(0, 0)]), Err(ShmError::BadChunk));
        assert_eq!(
            t.create(vec![chunk(0, !0xfff), chunk(0, 0x1000)]),
            Err(ShmError::BadChunk)
        );
        let id = t.create(vec![chunk(0, 0x1000)]).unwrap();
        t.map(id, 0x1000).unwrap();
        assert_eq!(t.unmap(id, 0x2000), Err(ShmError::Underflow));
        assert_eq!(t.discard(id), Err(ShmError::Underflow));
    }

    #[test]
    fn pieces_follow_the_chunks() {
        let mut t = ObjectTable::new();
        let id = t
            .create(vec![chunk(0x10_0000, 0x2000), chunk(0x50_0000, 0x3000)])
            .unwrap();
        let o = t.get(id).unwrap();
        assert_eq!(o.len(), 0x5000);
        assert_eq!(
            o.pieces(0x1000, 0x3000),
            vec![(0x1000, 0x10_1000, 0x1000), (0x2000, 0x50_0000, 0x2000)]
        );
        assert_eq!(o.pieces(0, 0x5000).len(), 2);
        assert!(o.pieces(0x4000, 0x2000).is_empty());
        assert!(o.pieces(u64::MAX, 2).is_empty());
        assert!(o.pieces(0, 0).is_empty());
        assert_eq!(o.offset_of(0x10_1000), Some(0x1000));
        assert_eq!(o.offset_of(0x50_2fff), Some(0x4fff));
        assert_eq!(o.offset_of(0x50_3000), None);
        assert_eq!(o.offset_of(0), None);
    }
}
