//! The partition's shared memory objects: anonymous shared mappings and
//! shared `/dev/zero` (memory of the partition), and shared file mappings
//! (a host file that margay plugged into guest-physical memory, so its bytes
//! are Linux's page cache). One table for every process, since a fork gives
//! the child the same physical pages. The bookkeeping is `lwk_core::shm`;
//! this module owns the lock and the objects' `Frames`: when the last mapping
//! of an object goes, partition memory returns to the page allocator and a
//! plugged file is ejected (margay then removes it from QEMU).

use crate::arch::mem::SpinLock;
use crate::mm::{self, Frames};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use linux_abi::Errno;
use lwk_core::shm::{Chunk, Object, ObjectId, ObjectTable, ShmError};

/// A host file plugged into guest memory: file bytes `[0, size)` at
/// guest-physical `gpa`, in memory-device `slot`; margay holds it as
/// `host_fd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plugged {
    pub slot: u32,
    pub gpa: u64,
    pub size: u64,
    pub host_fd: u64,
    pub dev: u64,
    pub ino: u64,
}

struct Objects {
    table: ObjectTable,
    /// The memory of every object's chunks, by physical start.
    frames: BTreeMap<u64, Frames>,
    /// The objects that are plugged files.
    plugged: BTreeMap<ObjectId, Plugged>,
}

static OBJECTS: SpinLock<Objects> = SpinLock::new(Objects {
    table: ObjectTable::new(),
    frames: BTreeMap::new(),
    plugged: BTreeMap::new(),
});

/// Give an object's memory back (outside the lock): partition memory to the
/// page allocator; a plugged file is ejected from its memory-device slot
/// (nothing maps it any more: the unmap that got here shot down every TLB).
fn free_object(id: ObjectId, o: &Object) {
    let (frames, plugged) = {
        let mut objs = OBJECTS.lock();
        let frames: Vec<Frames> = o
            .chunks()
            .iter()
            .filter_map(|c| objs.frames.remove(&c.phys))
            .collect();
        (frames, objs.plugged.remove(&id))
    };
    for f in frames {
        mm::free_user(f);
    }
    if let Some(p) = plugged {
        eject(p.slot);
    }
}

/// Eject memory device `slot` (QEMU's ACPI memory hot-plug registers, as a
/// guest's _EJ0 method does) and tell margay, which removes its backend.
fn eject(slot: u32) {
    use crate::arch::cpu::{outb, outl};
    outl(wire::HOTPLUG_SELECT_PORT, slot);
    outb(wire::HOTPLUG_CONTROL_PORT, wire::HOTPLUG_EJECT);
    crate::arch::mem::shared_area()
        .atomic_u64(wire::HOTPLUG_EJECTED_OFF)
        .fetch_or(1 << (slot % 64), core::sync::atomic::Ordering::AcqRel);
}

/// Whether object `id` is a plugged file (memory shared with Linux).
pub fn is_plugged(id: ObjectId) -> bool {
    OBJECTS.lock().plugged.contains_key(&id)
}

/// The object of plugged file (`dev`, `ino`) whose dimm holds at least
/// `need` bytes, with `len` more of its bytes counted as mapped for the
/// caller (who maps them, or gives them back with `unmapped`).
pub fn hold_file(dev: u64, ino: u64, need: u64, len: u64) -> Option<(ObjectId, Plugged)> {
    let mut objs = OBJECTS.lock();
    let (id, p) = objs
        .plugged
        .iter()
        .find(|(_, p)| p.dev == dev && p.ino == ino && p.size >= need)
        .map(|(&id, &p)| (id, p))?;
    objs.table.map(id, len).ok()?;
    Some((id, p))
}

/// A new object for a file just plugged, with `len` of its bytes counted as
/// mapped for the caller. On failure the file is ejected again.
pub fn create_plugged(p: Plugged, len: u64) -> Result<ObjectId, Errno> {
    let Some(frames) = Frames::plugged(p.gpa, p.size) else {
        eject(p.slot);
        return Err(Errno::EIO);
    };
    let mut objs = OBJECTS.lock();
    let created = objs.table.create(alloc::vec![Chunk {
        phys: p.gpa,
        len: p.size,
    }]);
    let id = match created.and_then(|id| objs.table.map(id, len).map(|()| id)) {
        Ok(id) => id,
        Err(_) => {
            drop(objs);
            eject(p.slot);
            return Err(Errno::ENOMEM);
        }
    };
    objs.frames.insert(p.gpa, frames);
    objs.plugged.insert(id, p);
    Ok(id)
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
        Ok(o) => free_object(id, &o),
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
        Ok(Some(o)) => free_object(id, &o),
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

/// The size of object `id` in bytes.
pub fn len(id: ObjectId) -> Option<u64> {
    OBJECTS.lock().table.get(id).map(|o| o.len())
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
