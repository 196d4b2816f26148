//! The shared-memory contract between the Margay kernel and the host: where the
//! shared area lives in guest-physical memory, and the layout of every structure
//! in it. Both sides access these only through the offsets defined here; every
//! struct has its size and field offsets pinned by compile-time assertions, the
//! kernel checks the contract's version at boot (`BootParams::check`), and the
//! host validates every value it reads back.
//!
//! | module     | owns                                                              |
//! |------------|-------------------------------------------------------------------|
//! | `layout`   | the guest-physical map, area offsets, user window, QEMU ports     |
//! | `header`   | the boot header: `BootParams` (host) then state and reports (kernel) |
//! | `channel`  | request/response slots, doorbell and interrupt bitmaps            |
//! | `regions`  | the mirror region table and `RegionKind`                          |
//! | `stats`    | syscall and per-core counters                                     |
//! | `kmsg`     | the kernel's log ring                                             |
//! | `signals`  | Linux signals posted to the LWK                                   |
//! | `bootdata` | the program's path, argv and envp                                 |
//! | `instance` | a standing instance's mailbox (spawn, kill) and init's system call |
//!
//! Everything is re-exported at the root (`wire::Slot`, `wire::SHARED_PHYS`).
#![no_std]
#![forbid(unsafe_code)]

pub mod bootdata;
pub mod channel;
pub mod header;
pub mod instance;
pub mod kmsg;
pub mod layout;
pub mod regions;
pub mod signals;
pub mod stats;

pub use bootdata::{encode_bootdata, split_bootdata};
pub use channel::{
    bitmap_word_phys, slot_bit, slot_off, slot_phys, RequestKind, Slot, SlotState, DOORBELL_WORDS,
    FILEMAP_ATTACH, FILEMAP_INFO, FILEMAP_PLUG, FILEMAP_SHMAT, FILEMAP_SHMDT, FILEMAP_SHM_ATTACH,
    FILEMAP_SHM_PLUG, SLOT_SIZE, SLOT_STATE_OFF, SLOT_TABLE_OFF, TRACE_LOCAL, TRACE_UNSUPPORTED,
};
pub use header::{
    BootParams, HandshakeError, Header, State, FLAG_INJECT_FAULT, FLAG_INJECT_PANIC, FLAG_INSTANCE,
    FLAG_KMSG_ECHO, FLAG_STATS, FLAG_TRACE, HEADER_FREE_BYTES_OFF, HEADER_KMSG_HEAD_OFF,
    HEADER_STATE_OFF, MAGIC, REG_NAMES, VERSION,
};
pub use instance::*;
pub use kmsg::{kmsg_phys, kmsg_spans};
pub use layout::*;
pub use regions::{
    region_entry_off, MirrorEntry, MirrorError, RegionKind, RegionTableHeader, MAX_REGIONS,
    REGION_ANON, REGION_COUNT_OFF, REGION_GEN_OFF, REGION_HEAP, REGION_IMAGE, REGION_SHARED,
    REGION_SIGNALS_OFF, REGION_STACK, REGION_TABLE_BYTES,
};
pub use signals::{signal_bit, signals_in, HOST_SIGNALS_PHYS, SIGNALS_POKE_PHYS};
pub use stats::{CpuStat, StatsHeader, SyscallStat, CPU_STATS_OFF, STATS_ENTRIES_OFF, STATS_NR};

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn layout_fits_in_the_shared_area() {
        assert_eq!(SLOT_STATE_OFF, 0);
        assert_eq!(REGION_GEN_OFF, 0);
        assert_eq!(HEADER_STATE_OFF % 4, 0);
        assert_eq!(HEADER_KMSG_HEAD_OFF % 8, 0);
    }

    #[test]
    fn minimum_memory_grows_with_the_image() {
        let small = min_mem_for(1 << 20, 512 << 20);
        assert!(small < MIN_MEM);
        assert!(min_mem_for(200 << 20, 128 << 20) > 128 << 20);
        assert!(min_mem_for(200 << 20, 512 << 20) < 512 << 20);
    }

    #[test]
    fn enums_round_trip_and_reject_garbage() {
        for s in [
            State::Booting,
            State::Running,
            State::Exited,
            State::Killed,
            State::Panicked,
        ] {
            assert_eq!(State::try_from(s as u32), Ok(s));
        }
        assert_eq!(State::try_from(99), Err(99));
        assert_eq!(SlotState::try_from(2), Ok(SlotState::Taken));
        assert!(SlotState::try_from(7).is_err());
        assert_eq!(RequestKind::try_from(3), Ok(RequestKind::Trace));
        assert!(RequestKind::try_from(0).is_err());
    }

    #[test]
    fn region_kinds_round_trip() {
        for k in [
            RegionKind::Anon,
            RegionKind::Image,
            RegionKind::Heap,
            RegionKind::Stack,
            RegionKind::Shared,
        ] {
            assert_eq!(RegionKind::try_from(u32::from(k)), Ok(k));
        }
        assert_eq!(RegionKind::try_from(5), Err(5));
        let e = MirrorEntry {
            kind: REGION_HEAP,
            ..MirrorEntry::default()
        };
        assert_eq!(e.region_kind(), Ok(RegionKind::Heap));
        assert_eq!(region_entry_off(0), 16);
        assert_eq!(region_entry_off(MAX_REGIONS), REGION_TABLE_BYTES);
    }

    #[test]
    fn slots_and_their_bits() {
        assert_eq!(slot_phys(0), SHARED_PHYS + CHANNEL_OFF);
        assert_eq!(slot_phys(3), SHARED_PHYS + CHANNEL_OFF + 3 * SLOT_SIZE);
        assert_eq!(
            slot_off(MAX_SLOTS) - slot_off(0),
            MAX_SLOTS as u64 * SLOT_SIZE
        );
        assert_eq!(slot_bit(DOORBELL_OFF, 0), (SHARED_PHYS + DOORBELL_OFF, 1));
        assert_eq!(
            slot_bit(INTERRUPT_OFF, 130),
            (SHARED_PHYS + INTERRUPT_OFF + 16, 1 << 2)
        );
    }

    #[test]
    fn signal_bits() {
        assert_eq!(signal_bit(1), 1);
        assert_eq!(signal_bit(64), 1 << 63);
        assert_eq!(signal_bit(0), 0);
        assert_eq!(signal_bit(65), 0);
        let v: Vec<u32> = signals_in(signal_bit(2) | signal_bit(15) | signal_bit(64)).collect();
        assert_eq!(v, [2, 15, 64]);
    }

    #[test]
    fn kmsg_ring_spans() {
        assert_eq!(kmsg_spans(0, 8), [(0, 0), (0, 0)]);
        assert_eq!(kmsg_spans(5, 8), [(0, 5), (0, 0)]);
        assert_eq!(kmsg_spans(8, 8), [(0, 8), (0, 0)]);
        assert_eq!(kmsg_spans(11, 8), [(3, 5), (0, 3)]);
        assert_eq!(kmsg_spans(16, 8), [(0, 8), (0, 0)]);
        assert_eq!(kmsg_spans(3, 0), [(0, 0), (0, 0)]);
        assert_eq!(kmsg_phys(KMSG_SIZE + 1), SHARED_PHYS + KMSG_OFF + 1);
    }

    #[test]
    fn handshake_checks_magic_and_version() {
        let ok = BootParams {
            magic: MAGIC,
            version: VERSION,
            ..BootParams::default()
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(
            BootParams { magic: 0, ..ok }.check(),
            Err(HandshakeError::BadMagic)
        );
        assert_eq!(
            BootParams {
                version: VERSION + 1,
                ..ok
            }
            .check(),
            Err(HandshakeError::VersionMismatch {
                host: VERSION + 1,
                kernel: VERSION
            })
        );
    }

    #[test]
    fn mirror_entries_are_validated() {
        let mem = 256 << 20;
        let ok = MirrorEntry {
            vaddr: 0x40_0000,
            len: 0x1000,
            file_off: 0x200_0000,
            prot: 5,
            kind: 0,
        };
        assert_eq!(ok.validate(mem), Ok(()));
        assert_eq!(
            MirrorEntry {
                vaddr: 0x40_0001,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::Unaligned)
        );
        assert_eq!(
            MirrorEntry { len: 0, ..ok }.validate(mem),
            Err(MirrorError::Unaligned)
        );
        assert_eq!(
            MirrorEntry { vaddr: 0, ..ok }.validate(mem),
            Err(MirrorError::OutsideUserWindow)
        );
        assert_eq!(
            MirrorEntry {
                vaddr: USER_MAX - 0x1000,
                len: 0x2000,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideUserWindow)
        );
        assert_eq!(
            MirrorEntry {
                vaddr: u64::MAX - 0xfff,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideUserWindow)
        );
        assert_eq!(
            MirrorEntry {
                file_off: mem,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideMemory)
        );
        assert_eq!(
            MirrorEntry {
                file_off: u64::MAX - 0xfff,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::OutsideMemory)
        );
        assert_eq!(
            MirrorEntry {
                file_off: SHARED_PHYS,
                ..ok
            }
            .validate(mem),
            Err(MirrorError::IntoSharedArea)
        );
        assert_eq!(
            MirrorEntry { prot: 8, ..ok }.validate(mem),
            Err(MirrorError::BadProt)
        );
    }

    #[test]
    fn bootdata_round_trip() {
        let mut buf = [0u8; 64];
        let argv: [&[u8]; 2] = [b"prog", b"arg one"];
        let envp: [&[u8]; 1] = [b"A=b"];
        let n = encode_bootdata(&mut buf, b"/bin/prog", argv, envp).unwrap();
        let parts: Vec<&[u8]> = split_bootdata(&buf[..n], 4).unwrap().collect();
        assert_eq!(parts, [&b"/bin/prog"[..], b"prog", b"arg one", b"A=b"]);
        assert!(split_bootdata(&buf[..n], 3).is_none());
        assert!(split_bootdata(&buf[..n - 1], 4).is_none());
        assert!(encode_bootdata(&mut buf[..8], b"/bin/prog", [], []).is_none());
        assert!(encode_bootdata(&mut buf, b"a\0b", [], []).is_none());
    }
}
