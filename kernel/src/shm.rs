//! The partition's shared memory objects (anonymous shared mappings, shared
//! `/dev/zero`): one table for every process, since a fork gives the child the
//! same physical pages. The bookkeeping is `lwk_core::shm`; this module owns
//! the lock and returns an object's memory to the page allocator when the last
//! mapping of it goes.

use crate::arch::mem::SpinLock;
use crate::mm;
use alloc::vec::Vec;
use linux_abi::Errno;
use lwk_core::shm::{Chunk, ObjectId, ObjectTable, ShmError};

static OBJECTS: SpinLock<ObjectTable> = SpinLock::new(ObjectTable::new());

fn free_chunks(chunks: &[Chunk]) {
    for c in chunks {
        mm::free_user(c.phys, c.len);
    }
}

/// A new object made of `chunks` (zeroed user memory from `mm::alloc_user`),
/// nothing mapped yet. On failure the chunks are freed.
pub fn create(chunks: Vec<Chunk>) -> Result<ObjectId, Errno> {
    let copy: Vec<Chunk> = chunks.clone();
    let r = OBJECTS.lock().create(chunks);
    r.map_err(|e| {
        free_chunks(&copy);
        match e {
            ShmError::NoMemory => Errno::ENOMEM,
            _ => Errno::EINVAL,
        }
    })
}

/// Remove an object that nothing maps (its first mapping failed) and free it.
pub fn discard(id: ObjectId) {
    let r = OBJECTS.lock().discard(id);
    match r {
        Ok(o) => free_chunks(o.chunks()),
        Err(e) => crate::kprintln!("shm: discard of object {id} failed: {e:?}"),
    }
}

/// `bytes` more of object `id` are mapped.
pub fn mapped(id: ObjectId, bytes: u64) -> Result<(), Errno> {
    OBJECTS.lock().map(id, bytes).map_err(|e| {
        crate::kprintln!("shm: mapping {bytes} bytes of object {id} failed: {e:?}");
        Errno::EINVAL
    })
}

/// `bytes` of object `id` were unmapped; the last ones free its memory.
pub fn unmapped(id: ObjectId, bytes: u64) {
    let r = OBJECTS.lock().unmap(id, bytes);
    match r {
        Ok(Some(o)) => free_chunks(o.chunks()),
        Ok(None) => {}
        Err(e) => crate::kprintln!("shm: unmapping {bytes} bytes of object {id} failed: {e:?}"),
    }
}

/// The physical pieces `(offset, phys, len)` of object bytes `[off, off + len)`;
/// `None` when the range is not inside the object.
pub fn pieces(id: ObjectId, off: u64, len: u64) -> Option<Vec<(u64, u64, u64)>> {
    let t = OBJECTS.lock();
    let p = t.get(id)?.pieces(off, len);
    (!p.is_empty()).then_some(p)
}

/// The object offset of physical address `phys`, which must lie in object `id`.
pub fn offset_of(id: ObjectId, phys: u64) -> Option<u64> {
    OBJECTS.lock().get(id)?.offset_of(phys)
}
