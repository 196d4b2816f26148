//! What margay tells the user after the LWK stops: the program's fate from the
//! header (exit status, fatal signal, kernel panic), the kmsg ring (`--kmsg`) and
//! the syscall statistics (`--stats`). Everything read from guest memory is
//! validated; the formatting functions are pure.

use std::fmt::Write as _;
use std::mem::size_of;
use std::sync::atomic::Ordering;

use wire::{
    CpuStat, Header, State, StatsHeader, SyscallStat, KMSG_OFF, KMSG_SIZE, SHARED_PHYS,
    STATS_ENTRIES_OFF, STATS_NR, STATS_OFF,
};

use crate::guest_mem::GuestMem;

/// Exit status for "the LWK failed" (EX_SOFTWARE).
pub const EXIT_INTERNAL: i32 = 70;
/// kmsg lines shown after a panic.
pub const PANIC_KMSG_LINES: usize = 30;

/// How the LWK instance ended, as read from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(u8),
    Killed {
        signal: u32,
        fault_addr: u64,
    },
    Panicked,
    /// Still booting or running: QEMU died under it.
    Stopped(State),
    /// The header holds nonsense.
    Corrupt(String),
}

/// Interpret the kernel-written part of the header.
pub fn outcome(h: &Header) -> Outcome {
    match State::try_from(h.state) {
        Ok(State::Exited) => Outcome::Exited((h.exit_code & 0xff) as u8),
        Ok(State::Killed) if (1..=64).contains(&h.signal) => Outcome::Killed {
            signal: h.signal,
            fault_addr: h.fault_addr,
        },
        Ok(State::Killed) => Outcome::Corrupt(format!("killed by invalid signal {}", h.signal)),
        Ok(State::Panicked) => Outcome::Panicked,
        Ok(s @ (State::Booting | State::Running)) => Outcome::Stopped(s),
        Err(v) => Outcome::Corrupt(format!("invalid state {v}")),
    }
}

/// Read the header with its state loaded atomically (Acquire), so everything the
/// kernel wrote before setting the state is visible.
pub fn read_header(mem: &GuestMem) -> Option<Header> {
    let off = SHARED_PHYS + wire::HEADER_OFF;
    let state = mem
        .load_u32(off + wire::HEADER_STATE_OFF, Ordering::Acquire)
        .ok()?;
    let mut h: Header = mem.read_obj(off).ok()?;
    h.state = state;
    Some(h)
}

/// `Segmentation fault (signal 11, fault address 0x10)`.
pub fn describe_signal(signal: u32, fault_addr: u64) -> String {
    let mut s = format!(
        "{} (signal {signal}",
        linux_abi::signal::description(signal)
    );
    if fault_addr != 0 {
        let _ = write!(s, ", fault address {fault_addr:#x}");
    }
    s.push(')');
    s
}

/// Signals whose deaths shells do not report (`yes | head` dies of SIGPIPE).
pub fn is_quiet_signal(signal: u32) -> bool {
    signal == linux_abi::signal::SIGINT || signal == linux_abi::signal::SIGPIPE
}

/// The last `min(head, ring.len())` bytes written into the ring, oldest first.
pub fn kmsg_tail(ring: &[u8], head: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (start, len) in wire::kmsg_spans(head, ring.len() as u64) {
        // Both spans lie inside the ring (kmsg_spans keeps them below its size).
        out.extend_from_slice(&ring[start as usize..(start + len) as usize]);
    }
    out
}

/// The kmsg ring's current contents, from guest memory.
pub fn read_kmsg(mem: &GuestMem) -> Vec<u8> {
    let head = mem
        .load_u64(
            SHARED_PHYS + wire::HEADER_OFF + wire::HEADER_KMSG_HEAD_OFF,
            Ordering::Acquire,
        )
        .unwrap_or(0);
    match mem.read_bytes(SHARED_PHYS + KMSG_OFF, KMSG_SIZE as usize) {
        Ok(ring) => kmsg_tail(&ring, head),
        Err(_) => Vec::new(),
    }
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(text);
    let lines: Vec<&str> = s.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The panic report: recent kernel messages and the registers.
pub fn panic_report(h: &Header, kmsg: &[u8], console: &[u8]) -> String {
    let mut s = String::from("margay: LWK kernel panic\n");
    let log = if kmsg.is_empty() { console } else { kmsg };
    let lines = last_lines(log, PANIC_KMSG_LINES);
    if !lines.is_empty() {
        s.push_str(if kmsg.is_empty() {
            "debug console:\n"
        } else {
            "last kernel messages:\n"
        });
        s.push_str(&lines);
    }
    if h.regs_valid != 0 {
        s.push_str("registers:\n");
        for (i, (name, v)) in wire::REG_NAMES.iter().zip(h.regs.iter()).enumerate() {
            let _ = write!(s, "  {name:>6} {v:#018x}");
            if i % 4 == 3 {
                s.push('\n');
            }
        }
        if !wire::REG_NAMES.len().is_multiple_of(4) {
            s.push('\n');
        }
    }
    s
}

/// The stats area, if the kernel marked it valid.
pub fn read_stats(mem: &GuestMem) -> Option<(StatsHeader, Vec<SyscallStat>)> {
    let base = SHARED_PHYS + STATS_OFF;
    let hdr: StatsHeader = mem.read_obj(base).ok()?;
    if hdr.valid == 0 {
        return None;
    }
    let entries = (0..STATS_NR as u64)
        .map(|i| {
            mem.read_obj::<SyscallStat>(
                base + STATS_ENTRIES_OFF + i * size_of::<SyscallStat>() as u64,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((hdr, entries))
}

/// The per-core counters of the `ncpus` cores that ran (at most MAX_CPUS).
pub fn read_cpu_stats(mem: &GuestMem, ncpus: u64) -> Vec<CpuStat> {
    let n = ncpus.min(wire::MAX_CPUS as u64);
    (0..n)
        .map_while(|i| {
            mem.read_obj::<CpuStat>(
                SHARED_PHYS + STATS_OFF + wire::CPU_STATS_OFF + i * size_of::<CpuStat>() as u64,
            )
            .ok()
        })
        .collect()
}

fn micros(cycles: u64, tsc_hz: u64) -> Option<f64> {
    (tsc_hz != 0).then(|| cycles as f64 * 1e6 / tsc_hz as f64)
}

/// The `--stats` table.
pub fn render_stats(
    h: &Header,
    stats: &StatsHeader,
    entries: &[SyscallStat],
    cpus: &[CpuStat],
) -> String {
    let mut rows: Vec<(u64, &SyscallStat)> = entries
        .iter()
        .enumerate()
        .map(|(nr, e)| (nr as u64, e))
        .filter(|(_, e)| e.local | e.offloaded | e.unsupported != 0)
        .collect();
    let total = |e: &SyscallStat| {
        e.local
            .saturating_add(e.offloaded)
            .saturating_add(e.unsupported)
    };
    rows.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then(a.0.cmp(&b.0)));
    let wait =
        |cycles: u64| micros(cycles, h.tsc_hz).map_or("-".to_string(), |us| format!("{us:.1}"));

    let mut s = String::from("margay: system calls\n");
    let _ = writeln!(
        s,
        "  {:<20} {:>10} {:>10} {:>12} {:>16}",
        "syscall", "local", "offloaded", "unsupported", "offload wait µs"
    );
    let mut sum = SyscallStat::default();
    for (nr, e) in &rows {
        let name = linux_abi::name(*nr).map_or_else(|| format!("syscall_{nr}"), str::to_string);
        let _ = writeln!(
            s,
            "  {name:<20} {:>10} {:>10} {:>12} {:>16}",
            e.local,
            e.offloaded,
            e.unsupported,
            wait(e.offload_cycles)
        );
        sum.local = sum.local.saturating_add(e.local);
        sum.offloaded = sum.offloaded.saturating_add(e.offloaded);
        sum.unsupported = sum.unsupported.saturating_add(e.unsupported);
        sum.offload_cycles = sum.offload_cycles.saturating_add(e.offload_cycles);
    }
    let _ = writeln!(
        s,
        "  {:<20} {:>10} {:>10} {:>12} {:>16}",
        "total",
        sum.local,
        sum.offloaded,
        sum.unsupported,
        wait(sum.offload_cycles)
    );
    let _ = writeln!(
        s,
        "  total: {} local, {} offloaded, {} unsupported; {} µs waiting for the proxy",
        sum.local,
        sum.offloaded,
        sum.unsupported,
        wait(sum.offload_cycles)
    );
    let _ = writeln!(
        s,
        "  timer interrupts: {}, other interrupts: {}, context switches: {}",
        stats.timer_irqs, stats.other_irqs, stats.context_switches
    );
    for (i, c) in cpus.iter().enumerate() {
        let _ = writeln!(
            s,
            "  core {i}: timer interrupts {}, IPIs {}, context switches {}",
            c.timer_irqs, c.ipis, c.context_switches
        );
    }
    if h.user_entry_ns != 0 && h.boot.host_start_ns != 0 && h.user_entry_ns >= h.boot.host_start_ns
    {
        let ms = (h.user_entry_ns - h.boot.host_start_ns) as f64 / 1e6;
        let _ = writeln!(
            s,
            "  start-up: first user instruction {ms:.1} ms after margay started"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_abi::syscalls_gen::*;

    #[test]
    fn states_are_validated() {
        let h = |state: u32, code: u32, signal: u32| Header {
            state,
            exit_code: code,
            signal,
            ..Header::default()
        };
        assert_eq!(outcome(&h(2, 0x1_2a, 0)), Outcome::Exited(0x2a));
        assert_eq!(
            outcome(&h(3, 0, 11)),
            Outcome::Killed {
                signal: 11,
                fault_addr: 0
            }
        );
        assert!(matches!(outcome(&h(3, 0, 0)), Outcome::Corrupt(_)));
        assert!(matches!(outcome(&h(3, 0, 65)), Outcome::Corrupt(_)));
        assert_eq!(outcome(&h(4, 0, 0)), Outcome::Panicked);
        assert_eq!(outcome(&h(1, 0, 0)), Outcome::Stopped(State::Running));
        assert!(matches!(outcome(&h(99, 0, 0)), Outcome::Corrupt(_)));
        assert_eq!(
            describe_signal(11, 0x10),
            "Segmentation fault (signal 11, fault address 0x10)"
        );
        assert_eq!(describe_signal(6, 0), "Aborted (signal 6)");
        assert!(is_quiet_signal(13) && is_quiet_signal(2) && !is_quiet_signal(11));
    }

    #[test]
    fn kmsg_ring_wraps() {
        let ring = b"56789abc01234".to_vec(); // size 13
                                              // Nothing written yet / partly filled.
        assert_eq!(kmsg_tail(&ring, 0), b"");
        assert_eq!(kmsg_tail(&ring, 5), b"56789");
        assert_eq!(kmsg_tail(&ring, 13), &ring[..]);
        // Wrapped: head 21 means bytes 8..21 survive, starting at index 8.
        assert_eq!(
            kmsg_tail(&ring, 21),
            b"01234"
                .iter()
                .chain(b"56789abc")
                .copied()
                .collect::<Vec<_>>()
        );
        // Exactly two laps.
        assert_eq!(kmsg_tail(&ring, 26), &ring[..]);
        assert_eq!(kmsg_tail(&[], 5), b"");
        assert_eq!(kmsg_tail(&ring, u64::MAX).len(), 13);
        assert_eq!(last_lines(b"a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines(b"", 2), "");
    }

    #[test]
    fn kmsg_from_guest_memory() {
        let mem = GuestMem::anonymous(64 << 20);
        let ring = SHARED_PHYS + KMSG_OFF;
        mem.write_bytes(ring + KMSG_SIZE - 3, b"abc").unwrap();
        mem.write_bytes(ring, b"def").unwrap();
        mem.store_u64(
            SHARED_PHYS + wire::HEADER_KMSG_HEAD_OFF,
            3 * KMSG_SIZE + 3,
            Ordering::Release,
        )
        .unwrap();
        let k = read_kmsg(&mem);
        assert_eq!(k.len(), KMSG_SIZE as usize);
        assert!(k.ends_with(b"abcdef"));
    }

    #[test]
    fn stats_table() {
        let mut entries = vec![SyscallStat::default(); STATS_NR];
        entries[SYS_WRITE as usize] = SyscallStat {
            offloaded: 3,
            offload_cycles: 3000,
            ..Default::default()
        };
        entries[SYS_BRK as usize] = SyscallStat {
            local: 5,
            ..Default::default()
        };
        entries[SYS_CLONE as usize] = SyscallStat {
            unsupported: 1,
            ..Default::default()
        };
        entries[511] = SyscallStat {
            local: 1,
            ..Default::default()
        };
        let h = Header {
            tsc_hz: 1_000_000_000,
            boot: wire::BootParams {
                host_start_ns: 1_000_000_000,
                ..Default::default()
            },
            user_entry_ns: 1_123_400_000,
            ..Header::default()
        };
        let st = StatsHeader {
            valid: 1,
            timer_irqs: 7,
            other_irqs: 1,
            context_switches: 2,
            ..Default::default()
        };
        let cpus = [CpuStat {
            timer_irqs: 0,
            ipis: 3,
            context_switches: 4,
            online: 1,
        }];
        let s = render_stats(&h, &st, &entries, &cpus);
        assert!(
            s.contains("core 0: timer interrupts 0, IPIs 3, context switches 4"),
            "{s}"
        );
        let lines: Vec<&str> = s.lines().collect();
        // Sorted by total count.
        assert!(lines[2].trim_start().starts_with("brk"), "{s}");
        assert!(lines[3].trim_start().starts_with("write"), "{s}");
        assert!(lines[3].ends_with("3.0"), "{s}");
        assert!(s.contains("clone"), "{s}");
        assert!(s.contains("syscall_511"), "{s}");
        assert!(
            s.contains("total: 6 local, 3 offloaded, 1 unsupported; 3.0 µs"),
            "{s}"
        );
        assert!(
            s.contains("timer interrupts: 7, other interrupts: 1, context switches: 2"),
            "{s}"
        );
        assert!(
            s.contains("start-up: first user instruction 123.4 ms after margay started"),
            "{s}"
        );
        // Without a TSC frequency or entry time.
        let s = render_stats(&Header::default(), &st, &entries, &[]);
        assert!(s.contains("µs waiting") && s.contains(" - µs"), "{s}");
        assert!(!s.contains("start-up"), "{s}");
    }

    #[test]
    fn panic_report_shows_registers() {
        let mut h = Header {
            regs_valid: 1,
            ..Header::default()
        };
        let rip = wire::REG_NAMES.iter().position(|&n| n == "rip").unwrap();
        h.regs[rip] = 0xffff_ffff_8000_1234;
        let r = panic_report(&h, b"boot\npanicked at foo.rs:1\n", b"");
        assert!(r.starts_with("margay: LWK kernel panic\n"), "{r}");
        assert!(r.contains("panicked at foo.rs:1"), "{r}");
        assert!(r.contains("rip 0xffffffff80001234"), "{r}");
        assert!(r.contains("vector"), "{r}");
        let r = panic_report(&Header::default(), b"", b"console says hi\n");
        assert!(
            r.contains("console says hi") && !r.contains("registers"),
            "{r}"
        );
    }
}
