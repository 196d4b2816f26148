//! Signals in the proxy: Linux signals sent to the application (which Linux
//! delivers to its proxy) are posted to the LWK through the shared
//! `HOST_SIGNALS` word, and a syscall the proxy runs for an LWK thread that
//! has a signal to take is interrupted (EINTR) on the kernel's request.

use crate::guest_mem::GuestMem;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use wire::{HOST_SIGNALS_OFF, INTERRUPT_OFF, MAX_SLOTS, SHARED_PHYS, SIGNALS_POKE_OFF};

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

/// Host address of the HOST_SIGNALS word (0 until `install`).
static HOST_WORD: AtomicUsize = AtomicUsize::new(0);
/// Host address of the SIGNALS_POKE word (0 until `install`).
static POKE_WORD: AtomicUsize = AtomicUsize::new(0);
/// In a forked proxy: host address of its process's region-table `signals`
/// word (u32, signals 1-32), which replaces HOST_SIGNALS.
static PROCESS_WORD: AtomicUsize = AtomicUsize::new(0);

/// The signal the proxy sends its own worker threads to cut a blocking
/// syscall short: its handler does nothing and is installed without
/// SA_RESTART, so the call returns EINTR.
pub fn interrupt_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

extern "C" fn forward(sig: i32) {
    let own = PROCESS_WORD.load(Ordering::Acquire);
    if own != 0 {
        if (1..=32).contains(&sig) {
            // SAFETY: `own` is the 4-byte aligned `signals` field of this
            // process's region table inside the guest RAM mapping, which stays
            // mapped for the proxy's lifetime (checked by `retarget`).
            unsafe {
                (*(own as *const std::sync::atomic::AtomicU32))
                    .fetch_or(1 << (sig - 1), Ordering::AcqRel)
            };
            // Then ask margay for an NMI, so a core busy in user mode looks.
            let poke = POKE_WORD.load(Ordering::Acquire);
            if poke != 0 {
                // SAFETY: `poke` is the 8-byte aligned SIGNALS_POKE word inside
                // the guest RAM mapping (checked by `install`).
                unsafe { (*(poke as *const AtomicU64)).store(1, Ordering::Release) };
            }
        }
        return;
    }
    let addr = HOST_WORD.load(Ordering::Acquire);
    if addr != 0 && (1..=64).contains(&sig) {
        // SAFETY: `addr` is the 8-byte aligned HOST_SIGNALS word inside the
        // guest RAM mapping, which stays mapped for the proxy's lifetime
        // (checked by `install`); an atomic OR is async-signal-safe.
        unsafe { (*(addr as *const AtomicU64)).fetch_or(1 << (sig - 1), Ordering::AcqRel) };
    }
}

extern "C" fn nothing(_sig: i32) {}

fn set_handler(sig: i32, handler: extern "C" fn(i32), restart: bool) -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; the handlers only
    // do async-signal-safe work (an atomic OR, or nothing).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Install the forwarding handlers and the interrupt signal's handler.
pub fn install(ram: &GuestMem) -> anyhow::Result<()> {
    let addr = ram
        .host_addr(SHARED_PHYS + HOST_SIGNALS_OFF, 8)
        .map_err(|e| anyhow::anyhow!("HOST_SIGNALS word: {e}"))?;
    anyhow::ensure!(addr % 8 == 0, "HOST_SIGNALS word is misaligned");
    HOST_WORD.store(addr, Ordering::Release);
    let poke = ram
        .host_addr(SHARED_PHYS + SIGNALS_POKE_OFF, 8)
        .map_err(|e| anyhow::anyhow!("SIGNALS_POKE word: {e}"))?;
    anyhow::ensure!(poke % 8 == 0, "SIGNALS_POKE word is misaligned");
    POKE_WORD.store(poke, Ordering::Release);
    for &s in &FORWARDED {
        set_handler(s, forward, true)?;
    }
    set_handler(interrupt_signal(), nothing, false)?;
    Ok(())
}

/// In a forked proxy: post signals to the process whose region table is at
/// guest-physical `table` (its `signals` word) instead of the initial one's.
pub fn retarget(ram: &GuestMem, table: u64) {
    if let Ok(addr) = ram.host_addr(table + wire::REGION_SIGNALS_OFF, 4) {
        if addr % 4 == 0 {
            PROCESS_WORD.store(addr, Ordering::Release);
        }
    }
}

/// The LWK process stopped on stop signal `sig`. A forked process's proxy
/// stops itself with it, so that Linux shows the process stopped to its
/// parent (wait4 with WUNTRACED, SIGCHLD) and job control; it returns once
/// continued (the SIGCONT also reaches the LWK through `forward`). The
/// initial process's proxy stops margay instead (the job a shell started).
pub fn stop(sig: i32) {
    if PROCESS_WORD.load(Ordering::Acquire) == 0 {
        // SAFETY: sending SIGSTOP to our parent, margay, has no memory effects.
        unsafe { libc::kill(libc::getppid(), libc::SIGSTOP) };
        return;
    }
    crate::sys::raise_default(sig);
    if FORWARDED.contains(&sig) {
        let _ = set_handler(sig, forward, true);
    }
}

/// Slots whose syscall the kernel wants interrupted.
pub fn requested(ram: &GuestMem, out: &mut Vec<usize>) {
    out.clear();
    for w in 0..MAX_SLOTS / 64 {
        let Ok(bits) = ram.load_u64(
            SHARED_PHYS + INTERRUPT_OFF + w as u64 * 8,
            Ordering::Acquire,
        ) else {
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
pub fn interrupt_thread(thread: u64) {
    if thread != 0 {
        // SAFETY: `thread` is a pthread_t recorded by a live worker of this
        // process while it serves a slot; it is cleared before the worker
        // moves on, and pthread_kill on it only sends a signal.
        unsafe { libc::pthread_kill(thread as libc::pthread_t, interrupt_signal()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_slots_come_from_the_bitmap() {
        let ram = GuestMem::anonymous((SHARED_PHYS + 0x10_0000) as usize);
        ram.store_u64(SHARED_PHYS + INTERRUPT_OFF, 0b1001, Ordering::Release)
            .unwrap();
        ram.store_u64(
            SHARED_PHYS + INTERRUPT_OFF + 8 * 7,
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
        let ram = GuestMem::anonymous((SHARED_PHYS + 0x10_0000) as usize);
        install(&ram).unwrap();
        let mut fds = [0; 2];
        // SAFETY: plain pipe creation into a local array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() } as u64).unwrap();
            let mut b = [0u8; 1];
            // SAFETY: reading into a local buffer of the given length.
            let r = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            (r, std::io::Error::last_os_error().raw_os_error())
        });
        let t = rx.recv().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !reader.is_finished() && std::time::Instant::now() < deadline {
            interrupt_thread(t);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (r, e) = reader.join().unwrap();
        assert_eq!((r, e), (-1, Some(libc::EINTR)));
        // A forwarded signal lands in the HOST_SIGNALS word.
        forward(libc::SIGUSR1);
        assert_eq!(
            ram.load_u64(SHARED_PHYS + HOST_SIGNALS_OFF, Ordering::Acquire)
                .unwrap(),
            1 << (libc::SIGUSR1 - 1)
        );
        HOST_WORD.store(0, Ordering::Release);
    }
}
