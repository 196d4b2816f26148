//! Deterministic randomized tests of everything the proxy reads from guest
//! shared memory: the slot decoder, the doorbell and interrupt bitmaps, claiming
//! and answering slots, the mirror region table, pointer validation and the
//! pre-syscall check. The guest is hostile: whatever it writes, these must
//! return an error or a valid result, never panic or touch memory out of bounds,
//! and what they accept must be consistent (checked against simple models).
//!
//! A xorshift generator with fixed seeds makes every run the same; a failing
//! case prints its seed and iteration. Nothing here executes an application's
//! syscall: `exec::check` is called, `Checked::run` never.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use linux_abi::mman::{PROT_READ, PROT_WRITE};
use linux_abi::syscalls_gen::{SYS_CREAT, SYS_OPEN, SYS_OPENAT, SYS_READLINK, SYS_READLINKAT};
use linux_abi::{Arg, Attrs, Errno, Policy};
use wire::{
    bitmap_word_phys, slot_phys, Header, MirrorEntry, RegionTableHeader, RequestKind, Slot,
    SlotState, DOORBELL_OFF, DOORBELL_WORDS, HEADER_OFF, INTERP_BASE, INTERRUPT_OFF, MAX_MEM,
    MAX_REGIONS, MAX_SLOTS, MIN_MEM, MMAP_TOP, PIE_BASE, REGIONS_OFF, SHARED_PHYS, SHARED_SIZE,
    SLOT_SIZE, STACK_TOP, USER_MAX, USER_MIN,
};

use super::doorbell::{self, Claim};
use super::mirror::{Mirror, TableError};
use super::user_mem::{CStrError, UserMem, IOV_MAX, PATH_MAX};
use super::{decode, exec, signals, views, Job, Request, Response, Shared};
use crate::guest_mem::GuestMem;

/// Guest RAM of the tests that need a partition (the smallest `margay run` takes).
const MEM: u64 = MIN_MEM;
const PAGE: u64 = linux_abi::PAGE_SIZE;
const TABLE: u64 = SHARED_PHYS + REGIONS_OFF;

/// xorshift64* (Vigna): small, fast, and good enough to pick test cases.
struct Rng(u64);

/// Values a hostile guest is likely to hit edges with.
const EDGES: [u64; 22] = [
    0,
    1,
    PAGE - 1,
    PAGE,
    USER_MIN,
    USER_MAX,
    PIE_BASE,
    INTERP_BASE,
    MMAP_TOP,
    STACK_TOP,
    SHARED_PHYS,
    SHARED_PHYS + SHARED_SIZE,
    MEM,
    MAX_MEM,
    i32::MAX as u64,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - PAGE,
    u64::MAX - 1,
    u64::MAX,
];

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// A value a hostile guest might write: random bits, a small number, an
    /// edge, or an edge give or take a page.
    fn word(&mut self) -> u64 {
        match self.below(4) {
            0 => self.next(),
            1 => self.below(1024),
            2 => self.pick(&EDGES),
            _ => self
                .pick(&EDGES)
                .wrapping_add(self.below(2 * PAGE))
                .wrapping_sub(PAGE),
        }
    }

    /// A u32 field: mostly small, sometimes anything.
    fn small_u32(&mut self, usual: u64) -> u32 {
        if self.one_in(4) {
            self.word() as u32
        } else {
            self.below(usual) as u32
        }
    }
}

/// Run `case` `iters` times on one generator seeded with `seed`; a panic is
/// reported with the seed and iteration that caused it.
fn cases(seed: u64, iters: usize, mut case: impl FnMut(&mut Rng)) {
    let mut rng = Rng::new(seed);
    for i in 0..iters {
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| case(&mut rng))) {
            eprintln!("fuzz case failed: seed {seed:#x}, iteration {i}");
            std::panic::resume_unwind(p);
        }
    }
}

fn random_slot(rng: &mut Rng) -> Slot {
    Slot {
        state: rng.small_u32(6),
        kind: rng.small_u32(5),
        seq: rng.word(),
        nr: rng.word(),
        args: std::array::from_fn(|_| rng.word()),
        ret: rng.word() as i64,
        aux: std::array::from_fn(|_| rng.word()),
        tid: rng.word(),
        table: rng.word(),
    }
}

/// Every field of a slot, for comparisons (`Slot` is not `PartialEq`).
type SlotFields = (u32, u32, u64, u64, [u64; 6], i64, [u64; 4], u64, u64);

fn fields(s: &Slot) -> SlotFields {
    (
        s.state, s.kind, s.seq, s.nr, s.args, s.ret, s.aux, s.tid, s.table,
    )
}

/// A doorbell or interrupt word: empty, a few bits, or dense.
fn bitmap_word(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => 0,
        1 => 1 << rng.below(64),
        2 => rng.next() & rng.next() & rng.next(),
        _ => rng.next(),
    }
}

fn set_bits(words: &[u64]) -> Vec<usize> {
    let mut out = Vec::new();
    for (w, &v) in words.iter().enumerate() {
        let mut rest = v;
        while rest != 0 {
            out.push(w * 64 + rest.trailing_zeros() as usize);
            rest &= rest - 1;
        }
    }
    out
}

#[test]
fn decode_accepts_exactly_the_known_kinds() {
    cases(0xdec0_de01, 100_000, |rng| {
        let s = random_slot(rng);
        match (decode(&s), RequestKind::try_from(s.kind)) {
            (Ok(Request::Syscall { nr, args }), Ok(RequestKind::Syscall)) => {
                assert_eq!((nr, args), (s.nr, s.args));
            }
            (Ok(Request::Clock), Ok(RequestKind::Clock)) => {}
            (
                Ok(Request::Trace {
                    nr,
                    args,
                    result,
                    flags,
                }),
                Ok(RequestKind::Trace),
            ) => assert_eq!(
                (nr, args, result, flags),
                (s.nr, s.args, s.aux[0], s.aux[1])
            ),
            (Ok(Request::Exec { path }), Ok(RequestKind::Exec)) => assert_eq!(path, s.args[0]),
            (Ok(Request::Fork { table }), Ok(RequestKind::Fork)) => assert_eq!(table, s.args[0]),
            (Ok(Request::Stop { signal }), Ok(RequestKind::Stop)) => assert_eq!(signal, s.args[0]),
            (Ok(Request::FileMap { op, fd, args }), Ok(RequestKind::FileMap)) => {
                assert_eq!((op, fd, &args[..]), (s.args[0], s.args[1], &s.args[2..]))
            }
            (Ok(Request::Exit { status, signal }), Ok(RequestKind::Exit)) => {
                assert_eq!((status, signal), (s.args[0], s.args[1]))
            }
            (Err(kind), Err(_)) => assert_eq!(kind, s.kind),
            (got, kind) => panic!("kind {:#x} ({kind:?}) decoded as {got:?}", s.kind),
        }
    });
}

#[test]
fn doorbell_take_names_exactly_the_bits_set_and_clears_them() {
    let ram = GuestMem::anonymous(MEM as usize);
    cases(0xd00be11, 100_000, |rng| {
        let words: [u64; DOORBELL_WORDS] = std::array::from_fn(|_| bitmap_word(rng));
        for (w, &v) in words.iter().enumerate() {
            ram.store_u64(bitmap_word_phys(DOORBELL_OFF, w), v, Ordering::Release)
                .unwrap();
        }
        // `take` appends: what was in the vector stays.
        let mut got = vec![usize::MAX];
        doorbell::take(&ram, &mut got);
        assert_eq!(got[0], usize::MAX);
        assert_eq!(got[1..], set_bits(&words));
        assert!(got[1..].iter().all(|&s| s < MAX_SLOTS));
        for w in 0..DOORBELL_WORDS {
            let v = ram
                .load_u64(bitmap_word_phys(DOORBELL_OFF, w), Ordering::Acquire)
                .unwrap();
            assert_eq!(v, 0, "doorbell word {w} not cleared");
        }
        // Any word, however reached, names only slots in range.
        let word = if rng.one_in(2) {
            rng.below(DOORBELL_WORDS as u64 + 4) as usize
        } else {
            rng.next() as usize
        };
        let bits = rng.next();
        let named: Vec<usize> = doorbell::slots_in_word(word, bits).collect();
        assert!(named.iter().all(|&s| s < MAX_SLOTS));
        assert!(named.windows(2).all(|w| w[0] < w[1]));
        if word < DOORBELL_WORDS {
            assert_eq!(named.len(), bits.count_ones() as usize);
        }
    });
}

#[test]
fn interrupt_requests_name_exactly_the_bits_set() {
    let ram = GuestMem::anonymous(MEM as usize);
    cases(0x1e7e_4409, 100_000, |rng| {
        let words: [u64; DOORBELL_WORDS] = std::array::from_fn(|_| bitmap_word(rng));
        for (w, &v) in words.iter().enumerate() {
            ram.store_u64(bitmap_word_phys(INTERRUPT_OFF, w), v, Ordering::Release)
                .unwrap();
        }
        let mut got = vec![7];
        signals::requested(&ram, &mut got);
        assert_eq!(got, set_bits(&words));
        assert!(got.iter().all(|&s| s < MAX_SLOTS));
    });
}

#[test]
fn claim_takes_only_posted_slots_and_complete_writes_only_the_answer() {
    let ram = GuestMem::anonymous(MEM as usize);
    cases(0xc1a13, 100_000, |rng| {
        let index = match rng.below(8) {
            0 => MAX_SLOTS + rng.below(64) as usize,
            1 => rng.next() as usize,
            _ => rng.below(MAX_SLOTS as u64) as usize,
        };
        let mut s = random_slot(rng);
        if rng.one_in(2) {
            s.state = SlotState::Posted as u32;
        }
        if index >= MAX_SLOTS {
            assert!(matches!(doorbell::claim(&ram, index), Claim::NotPosted));
            doorbell::complete(&ram, index, &Response { ret: 1, aux: None });
            return;
        }
        let off = slot_phys(index);
        ram.write_obj(off, &s).unwrap();
        let taken = match doorbell::claim(&ram, index) {
            Claim::Taken(t) => {
                assert_eq!(
                    s.state,
                    SlotState::Posted as u32,
                    "claimed a non-posted slot"
                );
                let want = Slot {
                    state: SlotState::Taken as u32,
                    ..s
                };
                assert_eq!(fields(&t), fields(&want));
                assert_eq!(fields(&ram.read_obj(off).unwrap()), fields(&want));
                want
            }
            Claim::NotPosted => {
                assert_ne!(s.state, SlotState::Posted as u32, "posted slot not claimed");
                assert_eq!(fields(&ram.read_obj(off).unwrap()), fields(&s));
                s
            }
            Claim::Unreadable => panic!("a slot inside RAM was unreadable"),
        };
        let resp = Response {
            ret: rng.word() as i64,
            aux: rng.one_in(2).then(|| std::array::from_fn(|_| rng.word())),
        };
        doorbell::complete(&ram, index, &resp);
        let want = Slot {
            state: SlotState::Done as u32,
            ret: resp.ret,
            aux: resp.aux.unwrap_or(taken.aux),
            ..taken
        };
        assert_eq!(fields(&ram.read_obj(off).unwrap()), fields(&want));
    });
}

/// The poller's whole pass (`Shared::take_posted`): doorbell, claim, decode,
/// and the answers it gives at once (clock samples, garbage).
#[test]
fn poller_pass_over_a_random_channel() {
    let app = exec::App {
        exe: b"/x".to_vec(),
        exe_id: views::FileId::default(),
        pid: 1,
        cpus: 1,
    };
    let shared = Shared::new(
        GuestMem::anonymous(MEM as usize),
        app,
        false,
        super::tests::test_window(),
    );
    let ram = &shared.ram;
    let (mut posted, mut jobs) = (Vec::new(), Vec::<Job>::new());
    cases(0x9011e4, 20_000, |rng| {
        let words: [u64; DOORBELL_WORDS] =
            std::array::from_fn(|_| if rng.one_in(3) { bitmap_word(rng) } else { 0 });
        let named = set_bits(&words);
        let mut written = Vec::with_capacity(named.len());
        for &i in &named {
            let mut s = random_slot(rng);
            // This proxy's own slots (the others' are left to their proxies).
            s.table = TABLE;
            if !rng.one_in(3) {
                s.state = SlotState::Posted as u32;
            }
            ram.write_obj(slot_phys(i), &s).unwrap();
            written.push(s);
        }
        for (w, &v) in words.iter().enumerate() {
            ram.store_u64(bitmap_word_phys(DOORBELL_OFF, w), v, Ordering::Release)
                .unwrap();
        }
        let before = rng.one_in(64).then(|| {
            ram.read_bytes(slot_phys(0), MAX_SLOTS * SLOT_SIZE as usize)
                .unwrap()
        });
        jobs.clear();
        let n = shared.take_posted(&mut posted, &mut jobs);
        let is_posted = |s: &Slot| s.state == SlotState::Posted as u32;
        assert_eq!(n, written.iter().filter(|s| is_posted(s)).count());
        let mut want_jobs = Vec::new();
        for (&i, s) in named.iter().zip(&written) {
            let now: Slot = ram.read_obj(slot_phys(i)).unwrap();
            if !is_posted(s) {
                assert_eq!(fields(&now), fields(s), "slot {i} touched");
                continue;
            }
            match decode(s) {
                Ok(Request::Clock) => {
                    assert_eq!((now.state, now.ret), (SlotState::Done as u32, 0));
                }
                Ok(req) => {
                    assert_eq!(now.state, SlotState::Taken as u32);
                    want_jobs.push((i, req));
                }
                Err(_) => {
                    assert_eq!(now.state, SlotState::Done as u32);
                    assert_eq!(now.ret, Errno::EINVAL.as_ret());
                }
            }
            assert_eq!((now.kind, now.nr, now.args), (s.kind, s.nr, s.args));
        }
        let got: Vec<(usize, Request)> = jobs.iter().map(|j| (j.slot, j.req)).collect();
        assert_eq!(got, want_jobs);
        for w in 0..DOORBELL_WORDS {
            let v = ram
                .load_u64(bitmap_word_phys(DOORBELL_OFF, w), Ordering::Acquire)
                .unwrap();
            assert_eq!(v, 0);
        }
        // Slots no doorbell bit named are left alone.
        if let Some(before) = before {
            let after = ram
                .read_bytes(slot_phys(0), MAX_SLOTS * SLOT_SIZE as usize)
                .unwrap();
            let size = SLOT_SIZE as usize;
            for i in (0..MAX_SLOTS).filter(|i| !named.contains(i)) {
                assert_eq!(
                    before[i * size..(i + 1) * size],
                    after[i * size..(i + 1) * size],
                    "slot {i} changed without a doorbell bit"
                );
            }
        }
        // Leave every slot Free for the next case.
        for &i in &named {
            ram.store_u32(
                slot_phys(i) + wire::SLOT_STATE_OFF,
                SlotState::Free as u32,
                Ordering::Release,
            )
            .unwrap();
        }
    });
}

/// Virtual bases that entries cluster around, so that they often touch or
/// overlap.
const BASES: [u64; 7] = [
    USER_MIN,
    0x40_0000,
    PIE_BASE,
    INTERP_BASE,
    MMAP_TOP - 0x10_0000,
    STACK_TOP - 0x10_0000,
    USER_MAX - 0x10_0000,
];

/// A mirror entry: mostly plausible (page-aligned, clustered, in RAM), often
/// with one field replaced by a hostile value.
fn random_entry(rng: &mut Rng, mem: u64) -> MirrorEntry {
    let pages = match rng.below(8) {
        0 => rng.below(1 << 12),
        _ => 1 + rng.below(4),
    };
    let mut e = MirrorEntry {
        vaddr: rng.pick(&BASES) + rng.below(16) * PAGE,
        len: pages * PAGE,
        file_off: rng.below(mem / PAGE) * PAGE,
        prot: rng.below(8) as u32,
        kind: rng.small_u32(4),
    };
    if rng.one_in(3) {
        match rng.below(5) {
            0 => e.vaddr = rng.word(),
            1 => e.len = rng.word(),
            2 => e.file_off = rng.word(),
            3 => e.prot = rng.word() as u32,
            _ => e.file_off = SHARED_PHYS + rng.below(SHARED_SIZE / PAGE) * PAGE,
        }
    }
    e
}

fn overlap(a: &MirrorEntry, b: &MirrorEntry) -> bool {
    a.vaddr < b.vaddr + b.len && b.vaddr < a.vaddr + a.len
}

/// Check what `Mirror::new(entries, mem)` said against a brute-force model.
fn check_table(entries: &[MirrorEntry], mem: u64, got: &Result<Mirror, TableError>) {
    let bad = entries
        .iter()
        .enumerate()
        .find_map(|(i, e)| e.validate(mem).err().map(|r| (i, r)));
    let overlapping = bad.is_none()
        && entries
            .iter()
            .enumerate()
            .any(|(i, a)| entries[i + 1..].iter().any(|b| overlap(a, b)));
    match got {
        Ok(m) => {
            assert!(bad.is_none() && !overlapping, "accepted a bad table");
            let es = m.entries();
            assert!(es.iter().all(|e| e.validate(mem).is_ok()));
            assert!(es.windows(2).all(|w| w[0].vaddr + w[0].len <= w[1].vaddr));
            let mut want = entries.to_vec();
            want.sort_by_key(|e| e.vaddr);
            assert_eq!(es, &want[..]);
        }
        Err(TableError::BadEntry {
            index,
            entry,
            reason,
        }) => {
            assert_eq!(bad, Some((*index, *reason)));
            assert_eq!(entries[*index], *entry);
        }
        Err(TableError::Overlap(a, b)) => {
            assert!(overlapping);
            assert!(overlap(a, b) && a.vaddr <= b.vaddr);
            assert!(entries.contains(a) && entries.contains(b));
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

/// A table size: mostly a few entries, sometimes many.
fn entry_count(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0 => rng.below(MAX_REGIONS as u64 + 1) as usize,
        1..=10 => rng.below(64) as usize,
        _ => rng.below(8) as usize,
    }
}

/// Write a region table header and entries into guest RAM.
fn write_table(ram: &GuestMem, gen: u64, count: u32, pad: u32, entries: &[MirrorEntry]) {
    let hdr = RegionTableHeader {
        gen,
        count,
        signals: pad,
    };
    ram.write_obj(TABLE, &hdr).unwrap();
    for (i, e) in entries.iter().enumerate() {
        ram.write_obj(TABLE + 16 + 32 * i as u64, e).unwrap();
    }
}

#[test]
fn region_table_is_accepted_only_when_valid() {
    let ram = GuestMem::anonymous(MEM as usize);
    let (mut accepted, mut overlapping) = (0, 0);
    cases(0x3e61_0175, 100_000, |rng| {
        let n = entry_count(rng);
        let entries: Vec<MirrorEntry> = (0..n).map(|_| random_entry(rng, MEM)).collect();
        let count = match rng.below(20) {
            0 => MAX_REGIONS as u32 + 1 + rng.below(4) as u32,
            1 => rng.word() as u32,
            _ => n as u32,
        };
        // Generation 0 with entries means "being rewritten" (never still).
        let gen = rng.word().max(u64::from(count != 0));
        write_table(&ram, gen, count, rng.next() as u32, &entries);
        let (got_gen, table) = Mirror::read(&ram).expect("a still table is read");
        assert_eq!(got_gen, gen);
        if count as usize > MAX_REGIONS {
            assert_eq!(table, Err(TableError::TooMany(count)));
            return;
        }
        // A count other than `n` reads whatever lies in the table area.
        let entries: Vec<MirrorEntry> = (0..u64::from(count))
            .map(|i| ram.read_obj(TABLE + 16 + 32 * i).unwrap())
            .collect();
        check_table(&entries, MEM, &table);
        match &table {
            Ok(_) => accepted += 1,
            Err(TableError::Overlap(..)) => overlapping += 1,
            Err(_) => {}
        }
        // The same entries given directly, in another order, get the same verdict
        // on validity.
        let mut shuffled = entries.clone();
        shuffled.reverse();
        let again = Mirror::new(shuffled.clone(), MEM);
        check_table(&shuffled, MEM, &again);
        assert_eq!(again.is_ok(), table.is_ok());
    });
    // The generator reaches both verdicts often enough to mean something.
    assert!(
        accepted > 10_000 && overlapping > 1_000,
        "{accepted} accepted, {overlapping} overlapping"
    );
}

/// The kernel rewrites the table while the proxy reads it: whatever the proxy
/// accepts is a valid table.
#[test]
fn region_table_read_while_the_guest_rewrites_it() {
    let ram = GuestMem::anonymous(MEM as usize);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng::new(0x7ac3);
            while !stop.load(Ordering::Relaxed) {
                let n = rng.below(8) as usize;
                let entries: Vec<MirrorEntry> =
                    (0..n).map(|_| random_entry(&mut rng, MEM)).collect();
                let count = if rng.one_in(8) {
                    rng.word() as u32
                } else {
                    n as u32
                };
                write_table(&ram, rng.word(), count, 0, &entries);
            }
        });
        let mut accepted = 0;
        // At least 20,000 reads, and on a loaded machine (where the writer
        // may run between every two loads) until one table was accepted.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut reads = 0;
        while reads < 20_000 || (accepted == 0 && std::time::Instant::now() < deadline) {
            reads += 1;
            match Mirror::read(&ram) {
                Ok((_, Ok(m))) => {
                    accepted += 1;
                    check_table(m.entries(), MEM, &Ok(m.clone()));
                    assert_eq!(Mirror::new(m.entries().to_vec(), MEM).as_ref(), Ok(&m));
                }
                Ok((_, Err(_))) | Err(TableError::Unstable) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(accepted > 0);
    });
}

/// Guest RAM too small for the shared area (or cut inside it): every reader
/// fails cleanly.
#[test]
fn truncated_guest_ram_is_refused_not_overrun() {
    let app = exec::App {
        exe: b"/x".to_vec(),
        exe_id: views::FileId::default(),
        pid: 1,
        cpus: 1,
    };
    let mut rng = Rng::new(0x5a11);
    for size in [
        1,
        PAGE - 3,
        PAGE,
        SHARED_PHYS,
        SHARED_PHYS + 4,
        SHARED_PHYS + DOORBELL_OFF + 12,
        SHARED_PHYS + INTERRUPT_OFF + 8,
        TABLE + 8,
        TABLE + 20,
        TABLE + 16 + 32 * 3 + 5,
        slot_phys(3) + 5,
        slot_phys(MAX_SLOTS - 1) + 40,
    ] {
        let ram = GuestMem::anonymous(size as usize);
        // Fill what exists with hostile bytes.
        let fill: Vec<u8> = (0..size.min(SHARED_PHYS + SHARED_SIZE) - size.min(SHARED_PHYS))
            .map(|_| rng.next() as u8 | 1)
            .collect();
        if size > SHARED_PHYS {
            ram.write_bytes(SHARED_PHYS, &fill).unwrap();
        }
        let mut out = Vec::new();
        doorbell::take(&ram, &mut out);
        assert!(out.iter().all(|&s| s < MAX_SLOTS));
        for i in out.iter().copied().chain([0, 3, MAX_SLOTS - 1]) {
            let _ = doorbell::claim(&ram, i);
            doorbell::complete(&ram, i, &Response::err(Errno::EFAULT));
        }
        signals::requested(&ram, &mut out);
        assert!(out.iter().all(|&s| s < MAX_SLOTS));
        let _ = Mirror::read(&ram);
        let mirror = Mirror::default();
        let user = UserMem {
            mirror: &mirror,
            ram: &ram,
        };
        for nr in offloaded() {
            let args = std::array::from_fn(|_| rng.word());
            let _ = exec::check(nr, &args, &user, &app);
        }
    }
}

/// Syscall numbers the proxy serves.
fn offloaded() -> Vec<u64> {
    (0..1024)
        .filter(|&nr| linux_abi::policy(nr) == Policy::Offload)
        .collect()
}

/// Application memory for the pointer tests: a valid mirror, its regions
/// filled with random bytes (NULs at a random density), and some iovec arrays
/// and paths planted in it.
struct World {
    ram: GuestMem,
    mirror: Mirror,
    /// Where the planted paths are.
    paths: Vec<u64>,
}

/// Paths `exec::check` treats specially, planted in application memory.
const PATHS: [&[u8]; 9] = [
    b"/proc/self/exe",
    b"/proc/thread-self/exe",
    b"/proc/77/exe",
    b"/proc/self/maps",
    b"/proc/77/status",
    b"/proc/meminfo",
    b"/proc/cpuinfo",
    b"//sys/devices/system/cpu/online",
    b"/proc/77/task/5/maps",
];

impl World {
    fn new(ram: GuestMem) -> Self {
        World {
            ram,
            mirror: Mirror::default(),
            paths: Vec::new(),
        }
    }

    /// Build a new random mirror and fill its memory.
    fn reset(&mut self, rng: &mut Rng) {
        let mem = self.ram.size();
        let mut entries: Vec<MirrorEntry> = Vec::new();
        for _ in 0..1 + rng.below(12) {
            let mut e = random_entry(rng, mem);
            e.len = e.len.min(16 * PAGE);
            if e.validate(mem).is_ok() && !entries.iter().any(|x| overlap(x, &e)) {
                entries.push(e);
            }
        }
        self.mirror = Mirror::new(entries, mem).expect("valid, non-overlapping entries");
        let nul_every = rng.pick(&[2, 16, 256, 100_000]);
        // (Inaccessible entries have no memory behind them.)
        for e in self.mirror.entries().iter().filter(|e| e.prot != 0) {
            let bytes: Vec<u8> = (0..e.len)
                .map(|_| {
                    if rng.one_in(nul_every) {
                        0
                    } else {
                        (rng.next() as u8).max(1)
                    }
                })
                .collect();
            self.ram.write_bytes(e.file_off, &bytes).unwrap();
        }
        // Paths and iovec arrays at random addresses (the writes may fail where
        // the memory is read-only or unmirrored; that is fine).
        let user = UserMem {
            mirror: &self.mirror,
            ram: &self.ram,
        };
        self.paths.clear();
        for _ in 0..8 {
            let at = pointer(rng, &self.mirror);
            let p = [rng.pick(&PATHS), b"\0"].concat();
            if user.write(at, &p).is_some() {
                self.paths.push(at);
            }
        }
        for _ in 0..4 {
            let at = pointer(rng, &self.mirror);
            let iovs: Vec<u8> = (0..rng.below(8))
                .flat_map(|_| {
                    let base = pointer(rng, &self.mirror);
                    let len = length(rng);
                    [base.to_le_bytes(), len.to_le_bytes()].concat()
                })
                .collect();
            let _ = user.write(at, &iovs);
        }
        // A header with hostile partition values.
        let hdr = Header {
            cpus_online: rng.small_u32(64),
            total_bytes: rng.word(),
            free_bytes: rng.word(),
            ..Header::default()
        };
        self.ram.write_obj(SHARED_PHYS + HEADER_OFF, &hdr).unwrap();
    }

    fn user(&self) -> UserMem<'_> {
        UserMem {
            mirror: &self.mirror,
            ram: &self.ram,
        }
    }
}

/// A user pointer: in or at the edges of a region, or anything.
fn pointer(rng: &mut Rng, m: &Mirror) -> u64 {
    let es = m.entries();
    if es.is_empty() || rng.one_in(4) {
        return rng.word();
    }
    let e = es[rng.below(es.len() as u64) as usize];
    match rng.below(4) {
        0 => e.vaddr + rng.below(e.len),
        1 => e.vaddr + e.len - rng.below(64),
        2 => e.vaddr.wrapping_sub(rng.below(64)),
        _ => e.vaddr + e.len + rng.below(64),
    }
}

fn length(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 0,
        1 => rng.below(32),
        2 => rng.below(3 * PAGE),
        3 => rng.below(64) * PAGE,
        4 => rng.word(),
        _ => u64::MAX - rng.below(PAGE),
    }
}

/// `[addr, addr+len)` is mirrored with `need`, page by page (regions are
/// page-aligned), by a linear scan.
fn model_covers(m: &Mirror, addr: u64, len: u64, need: u32) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    let Some(end) = addr.checked_add(len) else {
        return Some(false);
    };
    let (first, last) = (addr / PAGE, (end - 1) / PAGE);
    if last - first > 256 {
        return None;
    }
    Some(
        (first..=last)
            .all(|p| model_find(m, p * PAGE).is_some_and(|e| e.prot & need == need && e.prot != 0)),
    )
}

fn model_find(m: &Mirror, addr: u64) -> Option<&MirrorEntry> {
    m.entries()
        .iter()
        .find(|e| e.vaddr <= addr && addr - e.vaddr < e.len)
}

/// The NUL-terminated string at `addr`, byte by byte.
fn model_cstr(u: &UserMem<'_>, addr: u64, max: usize) -> Result<Vec<u8>, CStrError> {
    let mut out = Vec::new();
    for i in 0..=max as u64 {
        let b = addr
            .checked_add(i)
            .and_then(|a| u.read(a, 1, PROT_READ))
            .ok_or(CStrError::Fault)?;
        if b[0] == 0 {
            return Ok(out);
        }
        out.push(b[0]);
    }
    Err(CStrError::TooLong)
}

#[test]
fn lookups_agree_with_a_linear_scan() {
    let mut w = World::new(GuestMem::anonymous(MEM as usize));
    let mut rng = Rng::new(0x100c0b);
    for epoch in 0..100 {
        w.reset(&mut rng);
        cases(0x100c0b + epoch, 1_000, |rng| {
            let m = &w.mirror;
            let (addr, len) = (pointer(rng, m), length(rng));
            let need = rng.below(8) as u32;
            assert_eq!(
                m.find(addr).map(|e| e.vaddr),
                model_find(m, addr).map(|e| e.vaddr)
            );
            let covers = m.covers(addr, len, need);
            if let Some(want) = model_covers(m, addr, len, need) {
                assert_eq!(covers, want, "covers({addr:#x}, {len:#x}, {need})");
            }
            let pieces = m.translate(addr, len, need);
            assert_eq!(pieces.is_some(), covers);
            if let Some(pieces) = pieces {
                // Each piece lies in the region of its virtual address, in RAM.
                let mut cur = addr;
                for (off, n) in pieces {
                    let e = model_find(m, cur).unwrap();
                    assert!(n > 0 && n <= e.vaddr + e.len - cur);
                    assert_eq!(off, e.file_off + (cur - e.vaddr));
                    assert!(off + n <= w.ram.size());
                    cur += n;
                }
                assert_eq!(cur, addr + len);
            }
        });
    }
}

#[test]
fn user_memory_accesses_stay_inside_the_mirror() {
    let mut w = World::new(GuestMem::anonymous(MEM as usize));
    let mut rng = Rng::new(0x5e73e3);
    for epoch in 0..100 {
        w.reset(&mut rng);
        let user = w.user();
        cases(0x5e73e3 + epoch, 1_000, |rng| {
            let m = &w.mirror;
            let addr = pointer(rng, m);
            // Reads and writes, checked against translate and guest RAM.
            let len = length(rng).min(64 * PAGE) as usize;
            let need = rng.below(4) as u32;
            match user.read(addr, len, need) {
                Some(v) => {
                    let pieces = m.translate(addr, len as u64, need).unwrap();
                    let want: Vec<u8> = pieces
                        .iter()
                        .flat_map(|&(off, n)| w.ram.read_bytes(off, n as usize).unwrap())
                        .collect();
                    assert_eq!(v, want);
                }
                None => assert!(m.translate(addr, len as u64, need).is_none()),
            }
            let data: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            match user.write(addr, &data) {
                Some(()) => assert_eq!(user.read(addr, data.len(), 0).unwrap(), data),
                None => assert!(!m.covers(addr, data.len() as u64, PROT_WRITE)),
            }
            // Strings, against a byte-by-byte model.
            let max = match rng.below(8) {
                0 => PATH_MAX - 1,
                1 => 0,
                _ => rng.below(300) as usize,
            };
            assert_eq!(user.read_cstr(addr, max), model_cstr(&user, addr, max));
            // The pointer arguments of a random call.
            let nr = rng.below(460);
            if let Some(sig) = linux_abi::signature(nr) {
                let args = std::array::from_fn(|_| match rng.below(3) {
                    0 => pointer(rng, m),
                    1 => length(rng),
                    _ => rng.word(),
                });
                check_validate(&user, sig, &args);
            }
        });
    }
}

/// `UserMem::validate` answers Ok, EFAULT, ENAMETOOLONG or EINVAL, and Ok only
/// when every sized buffer is mirrored as needed.
fn check_validate(user: &UserMem<'_>, sig: &[Arg], args: &[u64; 6]) {
    let r = user.validate(sig, args);
    match r {
        Ok(()) => {}
        Err(Errno::EFAULT | Errno::ENAMETOOLONG | Errno::EINVAL) => return,
        Err(e) => panic!("validate gave {e:?}"),
    }
    let len = |i: u8| args.get(usize::from(i)).copied().unwrap_or(0);
    for (&kind, &a) in sig.iter().zip(args) {
        if a == 0 {
            continue;
        }
        let ok = match kind {
            Arg::InBuf(i) => user.mirror.covers(a, len(i), PROT_READ),
            Arg::OutBuf(i) => user.mirror.covers(a, len(i), PROT_WRITE),
            Arg::In(n) => user.mirror.covers(a, u64::from(n), PROT_READ),
            Arg::Out(n) => user.mirror.covers(a, u64::from(n), PROT_WRITE),
            Arg::InArray(i, size) => match u64::try_from(len(i) as i32) {
                Ok(n @ 1..) => user.mirror.covers(a, n * u64::from(size), PROT_READ),
                _ => true,
            },
            Arg::Path => user.read_cstr(a, PATH_MAX - 1).is_ok(),
            Arg::IovIn(i) | Arg::IovOut(i) => {
                len(i) <= IOV_MAX && user.mirror.covers(a, len(i) * 16, PROT_READ)
            }
            Arg::Ptr => (USER_MIN..USER_MAX).contains(&a),
            Arg::Int | Arg::Hex | Arg::Mode | Arg::Fd => true,
        };
        assert!(ok, "validate accepted {kind:?} {a:#x} in {args:x?}");
    }
}

/// A call `exec::check` looks into: an open or readlink of a planted path,
/// with random flags, buffer and size.
fn path_call(rng: &mut Rng, w: &World) -> (u64, [u64; 6]) {
    let path = rng.pick(&w.paths);
    let buf = pointer(rng, &w.mirror);
    let size = match rng.below(3) {
        0 => rng.below(64),
        1 => length(rng),
        _ => rng.word(),
    };
    let flags = if rng.one_in(2) {
        rng.pick(&[
            libc::O_RDONLY,
            libc::O_CLOEXEC,
            libc::O_RDWR,
            libc::O_PATH,
            libc::O_CREAT | libc::O_EXCL,
            libc::O_DIRECTORY,
        ]) as u64
    } else {
        rng.word()
    };
    let mut args: [u64; 6] = std::array::from_fn(|_| rng.word());
    let nr = match rng.below(5) {
        0 => {
            args[..2].copy_from_slice(&[path, flags]);
            SYS_OPEN
        }
        1 => {
            args[1..3].copy_from_slice(&[path, flags]);
            SYS_OPENAT
        }
        2 => {
            args[0] = path;
            SYS_CREAT
        }
        3 => {
            args[..3].copy_from_slice(&[path, buf, size]);
            SYS_READLINK
        }
        _ => {
            args[1..4].copy_from_slice(&[path, buf, size]);
            SYS_READLINKAT
        }
    };
    (u64::from(nr), args)
}

#[test]
fn pre_syscall_check_never_panics_and_answers_sensibly() {
    let mut w = World::new(GuestMem::anonymous(MEM as usize));
    let mut rng = Rng::new(0xe8ec);
    let offloaded = offloaded();
    let exe = b"/usr/bin/app".to_vec();
    let app = exec::App {
        exe: exe.clone(),
        exe_id: views::FileId::default(),
        pid: 77,
        cpus: 3,
    };
    let (mut ran, mut views, mut readlinks) = (0, 0, 0);
    for epoch in 0..100 {
        w.reset(&mut rng);
        let user = w.user();
        cases(0xe8ec + epoch, 1_000, |rng| {
            let (nr, args) = if rng.one_in(4) && !w.paths.is_empty() {
                path_call(rng, &w)
            } else {
                let nr = match rng.below(4) {
                    0 | 1 => rng.pick(&offloaded),
                    2 => rng.below(600),
                    _ => rng.word(),
                };
                let args: [u64; 6] = std::array::from_fn(|_| match rng.below(3) {
                    0 => pointer(rng, &w.mirror),
                    1 => length(rng),
                    _ => rng.word(),
                });
                (nr, args)
            };
            // The local calls the kernel forwards: kill of another pid, and
            // futex on memory shared with Linux.
            let forwarded = (linux_abi::attrs(nr).has(Attrs::FORWARDED)
                && args[0] as i32 != 0
                && args[0] as i32 != -1)
                || linux_abi::attrs(nr).has(Attrs::HOST_SHARED);
            let offload = linux_abi::policy(nr) == Policy::Offload || forwarded;
            match exec::check(nr, &args, &user, &app) {
                // Never run: only the check is under test.
                Ok(checked) => {
                    assert!(offload, "syscall {nr} passed the check");
                    if format!("{checked:?}").contains("View") {
                        views += 1;
                    }
                    if let Some(sig) = linux_abi::signature(nr) {
                        assert_eq!(user.validate(sig, &args), Ok(()));
                    }
                    ran += 1;
                }
                Err(r) if !offload => assert_eq!(r, Errno::ENOSYS.as_ret()),
                Err(r) if (-4095..0).contains(&r) => {}
                // readlink of /proc/self/exe is answered with the length written.
                Err(r) => {
                    assert!(linux_abi::attrs(nr).has(Attrs::EXE_LINK));
                    assert!((0..=exe.len() as i64).contains(&r), "{r}");
                    readlinks += 1;
                }
            }
            // The trace line of the same call formats whatever memory holds.
            let line = crate::trace::format_line(nr, &args, rng.word(), rng.word(), &user);
            assert!(line.contains('(') && line.contains(") = "), "{line}");
        });
        // The views over this mirror render.
        let _ = views::maps(
            w.mirror.entries(),
            w.mirror.files(),
            &exe,
            views::FileId::default(),
        );
        let _ = views::status(
            "Name:\tx\nVmRSS:\t1 kB\nCpus_allowed:\tff\n",
            "x",
            3,
            w.mirror.entries(),
        );
    }
    // Calls passed the check, LWK views were opened, readlink answered.
    assert!(
        ran > 1_000 && views > 10 && readlinks > 10,
        "{ran} {views} {readlinks}"
    );
}

/// A table the kernel is rewriting (generation 0, entries half written) is
/// never taken, however long it stays so: the reader gives up with
/// `Unstable` (it once accepted such a torn table, saw two entries overlap
/// and failed every offloaded call of an Open MPI rank with EFAULT).
#[test]
fn a_table_being_rewritten_is_never_read() {
    let ram = GuestMem::anonymous(MEM as usize);
    let e = MirrorEntry {
        vaddr: 0x40_0000,
        len: 0x1000,
        file_off: 0x20_0000,
        prot: 1,
        kind: 0,
    };
    write_table(&ram, 0, 2, 0, &[e, e]);
    assert!(matches!(Mirror::read(&ram), Err(TableError::Unstable)));
    // Finished: read.
    write_table(&ram, 9, 1, 0, &[e]);
    let (gen, table) = Mirror::read(&ram).expect("a finished table is read");
    assert_eq!((gen, table.map(|m| m.entries().len())), (9, Ok(1)));
}
