//! The partition's shared memory objects (anonymous shared mappings, shared
//! `/dev/zero`): one table for every process, since a fork gives the child the
//! same physical pages. The bookkeeping is `lwk_core::shm`; this module owns
//! the lock and the objects' `Frames`, which go back to the page allocator
//! when the last mapping of an object goes.

use crate::arch::mem::SpinLock;
use crate::mm::{self, Frames};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use linux_abi::Errno;
use lwk_core::shm::{Chunk, Object, ObjectId, ObjectTable, ShmError};

struct Objects {
    table: ObjectTable,
    /// The memory of every object's chunks, by physical start.
    frames: BTreeMap<u64, Frames>,
}

static OBJECTS: SpinLock<Objects> = SpinLock::new(Objects {
    table: ObjectTable::new(),
    frames: BTreeMap::new(),
});

/// Give an object's memory back (outside the lock).
fn free_object(o: &Object) {
    let frames: Vec<Frames> = {
        let mut objs = OBJECTS.lock();
        o.chunks()
            .iter()
            .filter_map(|c| objs.frames.remove(&c.phys))
            .collect()
    };
    for f in frames {
        mm::free_user(f);
    }
}

/// A new object made of `chunks` (zeroed user memory from `mm::alloc_user`),
/// nothing mapped yet. On failure the chunks are freed.
pub fn create(chunks: Vec<Frames>) -> Result<ObjectId, Errno> {
    let descr: Vec<Chunk> = chunks
        .iter()
        .map(|f| Chunk {
            phys: f.phys(),
            len: f.len(),
        })
        .collect();
    let mut objs = OBJECTS.lock();
    match objs.table.create(descr) {
        Ok(id) => {
            for f in chunks {
                objs.frames.insert(f.phys(), f);
            }
            Ok(id)
        }
        Err(e) => {
            drop(objs);
            for f in chunks {
                mm::free_user(f);
            }
            Err(match e {
                ShmError::NoMemory => Errno::ENOMEM,
                _ => Errno::EINVAL,
            })
        }
    }
}

/// Remove an object that nothing maps (its first mapping failed) and free it.
pub fn discard(id: ObjectId) {
    let r = OBJECTS.lock().table.discard(id);
    match r {
        Ok(o) => free_object(&o),
        Err(e) => crate::kprintln!("shm: discard of object {id} failed: {e:?}"),
    }
}

/// `bytes` more of object `id` are mapped.
pub fn mapped(id: ObjectId, bytes: u64) -> Result<(), Errno> {
    OBJECTS.lock().table.map(id, bytes).map_err(|e| {
        crate::kprintln!("shm: mapping {bytes} bytes of object {id} failed: {e:?}");
        Errno::EINVAL
    })
}

/// `bytes` of object `id` were unmapped; the last ones free its memory.
pub fn unmapped(id: ObjectId, bytes: u64) {
    let r = OBJECTS.lock().table.unmap(id, bytes);
    match r {
        Ok(Some(o)) => free_object(&o),
        Ok(None) => {}
        Err(e) => crate::kprintln!("shm: unmapping {bytes} bytes of object {id} failed: {e:?}"),
    }
}

/// The physical pieces `(offset, phys, len)` of object bytes `[off, off + len)`;
/// `None` when the range is not inside the object.
pub fn pieces(id: ObjectId, off: u64, len: u64) -> Option<Vec<(u64, u64, u64)>> {
    let t = OBJECTS.lock();
    let p = t.table.get(id)?.pieces(off, len);
    (!p.is_empty()).then_some(p)
}

/// The object offset of physical address `phys`, which must lie in object `id`.
pub fn offset_of(id: ObjectId, phys: u64) -> Option<u64> {
    OBJECTS.lock().table.get(id)?.offset_of(phys)
}

/// Run `f` on the frames of a shared object holding `[phys, phys+len)` and
/// the offset of `phys` in them (None when no object's memory holds it).
pub fn with_frames<R>(phys: u64, len: u64, f: impl FnOnce(&Frames, u64) -> R) -> Option<R> {
    let objs = OBJECTS.lock();
    let (&k, fr) = objs.frames.range(..=phys).next_back()?;
    fr.contains(phys, len).then(|| f(fr, phys - k))
}
