//! Signals in the proxy: Linux signals sent to the application (which Linux
//! delivers to its proxy) are posted to the LWK through the shared
//! `HOST_SIGNALS` word, and a syscall the proxy runs for an LWK thread that
//! has a signal to take is interrupted (EINTR) on the kernel's request.

use crate::guest_mem::GuestMem;
use crate::sys::{set_handler, Handler};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use wire::{
    bitmap_word_phys, signal_bit, DOORBELL_WORDS, HOST_SIGNALS_PHYS, INTERRUPT_OFF,
    SIGNALS_POKE_PHYS,
};

/// Signals forwarded to the LWK process as they arrive at the proxy (job
/// control included: the LWK stops and continues the process, and asks the
/// proxy to stop when it does).
pub const FORWARDED: [i32; 13] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCHLD,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGCONT,
];

/// Guest RAM, for the signal handler (set by `install`; the proxy keeps it
/// mapped for its whole life, and so does this static).
static RAM: OnceLock<Arc<GuestMem>> = OnceLock::new();
/// In a forked proxy: guest-physical address of its process's region-table
/// `signals` word (u32, signals 1-32), which replaces HOST_SIGNALS; 0 in the
/// initial proxy.
static PROCESS_WORD: AtomicU64 = AtomicU64::new(0);

/// The signal the proxy sends its own worker threads to cut a blocking
/// syscall short: its handler does nothing and is installed without
/// SA_RESTART, so the call returns EINTR.
pub fn interrupt_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

/// Post signal `sig` to the LWK process. Runs as a signal handler
/// (`sys::Handler::ForwardToLwk`): only async-signal-safe work.
pub fn forward(sig: i32) {
    let Some(ram) = RAM.get() else { return };
    let Ok(sig) = u32::try_from(sig) else { return };
    // The GuestMem atomics are bounds-checked and do not allocate: safe in a
    // signal handler. A failed access (impossible after `install` and
    // `retarget` checked the words) drops the signal.
    let own = PROCESS_WORD.load(Ordering::Acquire);
    if own != 0 {
        if (1..=32).contains(&sig) {
            // signal_bit(sig) < 2^32 for sig <= 32.
            let _ = ram.fetch_or_u32(own, signal_bit(sig) as u32, Ordering::AcqRel);
            // Then ask margay for an NMI, so a core busy in user mode looks.
            let _ = ram.store_u64(SIGNALS_POKE_PHYS, 1, Ordering::Release);
        }
        return;
    }
    if (1..=64).contains(&sig) {
        let _ = ram.fetch_or_u64(HOST_SIGNALS_PHYS, signal_bit(sig), Ordering::AcqRel);
    }
}

/// Install the forwarding handlers and the interrupt signal's handler. The
/// first call's `ram` is the one signals are posted to (one proxy per process).
pub fn install(ram: Arc<GuestMem>) -> anyhow::Result<()> {
    ram.load_u64(HOST_SIGNALS_PHYS, Ordering::Relaxed)
        .map_err(|e| anyhow::anyhow!("HOST_SIGNALS word: {e}"))?;
    ram.load_u64(SIGNALS_POKE_PHYS, Ordering::Relaxed)
        .map_err(|e| anyhow::anyhow!("SIGNALS_POKE word: {e}"))?;
    let _ = RAM.set(ram);
    for &s in &FORWARDED {
        set_handler(s, Handler::ForwardToLwk, true)?;
    }
    set_handler(interrupt_signal(), Handler::Nothing, false)?;
    Ok(())
}

/// In a forked proxy: post signals to the process whose region table is at
/// guest-physical `table` (its `signals` word) instead of the initial one's.
pub fn retarget(ram: &GuestMem, table: u64) {
    let word = table + wire::REGION_SIGNALS_OFF;
    if ram.load_u32(word, Ordering::Relaxed).is_ok() {
        PROCESS_WORD.store(word, Ordering::Release);
    }
}

/// The LWK process stopped on stop signal `sig`. A forked process's proxy
/// stops itself with it, so that Linux shows the process stopped to its
/// parent (wait4 with WUNTRACED, SIGCHLD) and job control; it returns once
/// continued (the SIGCONT also reaches the LWK through `forward`). The
/// initial process's proxy stops margay instead (the job a shell started).
pub fn stop(sig: i32) {
    if PROCESS_WORD.load(Ordering::Acquire) == 0 {
        if let Some(margay) = rustix::process::getppid() {
            let _ = rustix::process::kill_process(margay, rustix::process::Signal::STOP);
        }
        return;
    }
    crate::sys::raise_default(sig);
    if FORWARDED.contains(&sig) {
        let _ = set_handler(sig, Handler::ForwardToLwk, true);
    }
}

/// Slots whose syscall the kernel wants interrupted.
pub fn requested(ram: &GuestMem, out: &mut Vec<usize>) {
    out.clear();
    for w in 0..DOORBELL_WORDS {
        let Ok(bits) = ram.load_u64(bitmap_word_phys(INTERRUPT_OFF, w), Ordering::Acquire) else {
            continue;
        };
        let mut b = bits;
        while b != 0 {
            let i = b.trailing_zeros() as usize;
            out.push(w * 64 + i);
            b &= b - 1;
        }
    }
}

/// Send the interrupt signal to the thread running a syscall, if any.
/// `thread` is the Linux thread id a worker of this process recorded while it
/// serves a slot (0: none).
pub fn interrupt_thread(thread: u64) {
    if thread != 0 {
        crate::sys::signal_thread(thread, interrupt_signal());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::SHARED_PHYS;

    #[test]
    fn requested_slots_come_from_the_bitmap() {
        let ram = GuestMem::anonymous((SHARED_PHYS + 0x10_0000) as usize);
        ram.store_u64(
            bitmap_word_phys(INTERRUPT_OFF, 0),
            0b1001,
            Ordering::Release,
        )
        .unwrap();
        ram.store_u64(
            bitmap_word_phys(INTERRUPT_OFF, 7),
            1 << 63,
            Ordering::Release,
        )
        .unwrap();
        let mut v = Vec::new();
        requested(&ram, &mut v);
        assert_eq!(v, [0, 3, 511]);
    }

    #[test]
    fn interrupting_a_blocked_read_gives_eintr() {
        let ram = Arc::new(GuestMem::anonymous((SHARED_PHYS + 0x10_0000) as usize));
        install(Arc::clone(&ram)).unwrap();
        let (rd, _wr) = rustix::pipe::pipe().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            tx.send(crate::sys::thread_id()).unwrap();
            let mut b = [0u8; 1];
            rustix::io::read(&rd, &mut b)
        });
        let t = rx.recv().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !reader.is_finished() && std::time::Instant::now() < deadline {
            interrupt_thread(t);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(reader.join().unwrap(), Err(rustix::io::Errno::INTR));
        // A forwarded signal lands in the HOST_SIGNALS word.
        forward(libc::SIGUSR1);
        assert_eq!(
            ram.load_u64(HOST_SIGNALS_PHYS, Ordering::Acquire).unwrap(),
            1 << (libc::SIGUSR1 - 1)
        );
    }
}
