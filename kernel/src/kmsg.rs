//! The kernel log: a byte ring in the shared area that the host prints with
//! `--kmsg` and after a panic, echoed to QEMU's debug console.

use crate::arch::cpu::outb;
use crate::arch::mem::{shared_area, SpinLock};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use wire::{DEBUGCON_PORT, HEADER_KMSG_HEAD_OFF, HEADER_OFF, KMSG_OFF, KMSG_SIZE};

static LOCK: SpinLock<()> = SpinLock::new(());
/// Echo to the debug console (on until the boot header says otherwise).
static ECHO: AtomicBool = AtomicBool::new(true);

pub fn set_echo(on: bool) {
    ECHO.store(on, Ordering::Relaxed);
}

struct Sink;

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let head = shared_area().atomic_u64(HEADER_OFF + HEADER_KMSG_HEAD_OFF);
        let mut h = head.load(Ordering::Relaxed);
        for chunk in s.as_bytes().chunks(256) {
            let mut done = 0;
            while done < chunk.len() {
                let pos = h % KMSG_SIZE;
                let n = (chunk.len() - done).min((KMSG_SIZE - pos) as usize);
                shared_area().write(KMSG_OFF + pos, &chunk[done..done + n]);
                done += n;
                h += n as u64;
            }
            head.store(h, Ordering::Release);
        }
        if ECHO.load(Ordering::Relaxed) {
            for &b in s.as_bytes() {
                outb(DEBUGCON_PORT, b);
            }
        }
        Ok(())
    }
}

pub fn write_fmt(args: fmt::Arguments) {
    let _g = LOCK.lock();
    let _ = Sink.write_fmt(args);
}

/// Write without taking the lock (panic path, where the lock may be held).
pub fn write_fmt_unlocked(args: fmt::Arguments) {
    let _ = Sink.write_fmt(args);
}

#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::kmsg::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
