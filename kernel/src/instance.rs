//! A standing instance (`margay boot`, `FLAG_INSTANCE`): the kernel boots
//! with no program and runs a resident init process instead, whose one
//! page of user code loops on `wire::INIT_SYSCALL`. Each such call serves
//! the mailbox once (see `wire::instance`): it spawns a program for an exec
//! client (loaded through that client, which is the new process's proxy) or
//! kills the processes of a client that is gone; with nothing posted it
//! sleeps a millisecond.
//!
//! Init never offloads on its own behalf, ignores every signal, and is the
//! parent of every spawned process; its pid is that of margay's instance
//! host process.

use crate::arch::mem::shared_area;
use crate::aspace::{AddressSpace, RegionTable};
use crate::process::{self, Process, SigAction};
use crate::sched;
use crate::shared::{BootData, BootParams};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use linux_abi::Errno;
use lwk_core::region::{RegionKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use wire::{
    Mailbox, MAILBOX_DATA_OFF, MAILBOX_DATA_SIZE, MAILBOX_DONE, MAILBOX_LOADING, MAILBOX_OFF,
    MAILBOX_POSTED, MAILBOX_STATE_OFF, OP_KILL, OP_SPAWN, SPAWN_INJECT_PANIC,
};

/// Where init's code page lives.
const INIT_CODE: u64 = 0x1_0000;

/// The pid of init (0 until it exists).
static INIT_PID: AtomicU32 = AtomicU32::new(0);

/// Whether the running task is init (the only caller of `INIT_SYSCALL`).
pub fn is_init() -> bool {
    let init = INIT_PID.load(Ordering::Acquire);
    init != 0 && sched::current_pid() == Some(init)
}

/// init's code: `mov eax, INIT_SYSCALL; syscall; jmp back to the mov`.
fn init_code() -> [u8; 9] {
    let nr = (wire::INIT_SYSCALL as u32).to_le_bytes();
    [0xb8, nr[0], nr[1], nr[2], nr[3], 0x0f, 0x05, 0xeb, 0xf7]
}

/// Create init and enter it on this core (the boot core, once everything
/// else is up). Does not return.
pub fn start_init(params: &BootParams) -> ! {
    let built = (|| -> Result<Process, Errno> {
        let mut asp = AddressSpace::with_table(RegionTable::Shared)?;
        asp.map_anon(INIT_CODE, 4096, PROT_READ | PROT_WRITE, RegionKind::Image)?;
        crate::uaccess::fill_user(&asp, INIT_CODE, &init_code())?;
        asp.protect(INIT_CODE, 4096, PROT_READ | PROT_EXEC)?;
        let ignore = SigAction {
            handler: crate::process::SIG_IGN,
            ..SigAction::default()
        };
        let mut name = [0u8; 16];
        name[..4].copy_from_slice(b"init");
        Ok(Process {
            aspace: asp,
            brk_start: 0,
            brk: 0,
            heap_end: 0,
            pid: params.proxy_pid,
            sigactions: [ignore; 65],
            altstack: (0, 2, 0),
            name,
            exe: Vec::from(&b"margay-init"[..]),
            sysv: Vec::new(),
        })
    })();
    let init = match built {
        Ok(p) => p,
        Err(e) => panic!("cannot create the instance's init process: {}", e.name()),
    };
    let pid = init.pid;
    init.aspace.activate();
    sched::set_user_page_tables(init.aspace.root());
    process::register(init);
    INIT_PID.store(pid, Ordering::Release);
    // Signals never interrupt init's work (its child's SIGCHLD would cut the
    // loader's requests short): all blocked, and ignored anyway.
    sched::adopt_main(pid)
        .sigmask
        .store(u64::MAX, Ordering::Release);
    crate::kprintln!("instance: ready for programs (init is pid {pid})");
    crate::shared::set_user_entry_ns(crate::time::realtime_ns());
    crate::shared::set_state(wire::State::Running);
    crate::arch::trap::jump_to_user(INIT_CODE, 0)
}

fn state() -> &'static core::sync::atomic::AtomicU32 {
    shared_area().atomic_u32(MAILBOX_OFF + MAILBOX_STATE_OFF)
}

/// Answer the posted request with `ret` (and the reason of a failure in the
/// data area).
fn answer(ret: i64, why: &[u8]) {
    let mut m: Mailbox = shared_area().read_obj(MAILBOX_OFF);
    let n = why.len().min(MAILBOX_DATA_SIZE as usize);
    shared_area().write(MAILBOX_DATA_OFF, &why[..n]);
    m.ret = ret;
    m.data_len = n as u32;
    m.state = MAILBOX_LOADING;
    shared_area().write_obj(MAILBOX_OFF, m);
    state().store(MAILBOX_DONE, Ordering::Release);
}

/// init's system call: serve a posted request, or sleep a millisecond.
pub fn serve() -> u64 {
    if state().load(Ordering::Acquire) != MAILBOX_POSTED {
        let ms = crate::time::tsc_hz() / 1000;
        let _ = sched::sleep_until(crate::arch::cpu::rdtsc() + ms, None);
        return 0;
    }
    let m: Mailbox = shared_area().read_obj(MAILBOX_OFF);
    match m.op {
        OP_SPAWN => spawn(&m),
        OP_KILL => {
            let r = kill_tree(m.proxy_pid);
            answer(r, b"");
        }
        other => {
            crate::kprintln!("instance: unknown mailbox operation {other}");
            answer(Errno::EINVAL.as_ret(), b"unknown operation");
        }
    }
    0
}

/// The request's path, argv and envp.
fn request_data(m: &Mailbox) -> Option<BootData> {
    let len = u64::from(m.data_len);
    if len > MAILBOX_DATA_SIZE {
        return None;
    }
    let mut buf = alloc::vec![0u8; len as usize];
    shared_area().read(MAILBOX_DATA_OFF, &mut buf);
    let (argc, envc) = (m.argc as usize, m.envc as usize);
    let mut parts = wire::split_bootdata(&buf, 1usize.checked_add(argc)?.checked_add(envc)?)?;
    let path = parts.next()?.to_vec();
    let argv = parts.by_ref().take(argc).map(|s| s.to_vec()).collect();
    let envp = parts.map(|s| s.to_vec()).collect();
    Some(BootData { path, argv, envp })
}

fn spawn(m: &Mailbox) {
    if m.flags & SPAWN_INJECT_PANIC != 0 {
        panic!("injected panic (margay exec --inject kernel-panic)");
    }
    let Some(bd) = request_data(m) else {
        answer(Errno::EINVAL.as_ret(), b"malformed request");
        return;
    };
    let online = sched::online_mask();
    let affinity = if m.cpus == 0 { online } else { m.cpus & online };
    if affinity == 0 {
        answer(
            Errno::EINVAL.as_ret(),
            b"none of the requested cores is online in this instance",
        );
        return;
    }
    let pid = m.proxy_pid;
    // The pid is the first thread's tid too: no process or thread may have it.
    if pid == 0 || process::entry(pid).is_some() || sched::find(pid).is_some() {
        answer(Errno::EEXIST.as_ret(), b"a process with this pid exists");
        return;
    }
    let table = match RegionTable::new() {
        Ok(t) => t,
        Err(_) => {
            answer(Errno::ENOMEM.as_ret(), b"out of memory for a region table");
            return;
        }
    };
    // The client serves this table from now on: the loader reads the
    // program through it.
    let mut posted = *m;
    posted.table = table.phys();
    posted.state = MAILBOX_POSTED;
    shared_area().write_obj(MAILBOX_OFF, posted);
    state().store(MAILBOX_LOADING, Ordering::Release);
    let params = BootParams {
        proxy_pid: pid,
        uid: m.uid,
        gid: m.gid,
        euid: m.euid,
        egid: m.egid,
        ..BootParams::default()
    };
    let loaded =
        crate::ikc::on_behalf_of(table.phys(), || crate::loader::load(&bd, &params, table));
    let loaded = match loaded {
        Ok(l) => l,
        Err(msg) => {
            crate::kprintln!(
                "margay: {}: cannot execute: {msg}",
                core::str::from_utf8(&bd.path).unwrap_or("?")
            );
            answer(Errno::ENOEXEC.as_ret(), msg.as_bytes());
            return;
        }
    };
    let (cr3, table) = (loaded.process.aspace.root(), loaded.process.aspace.table());
    let frame = crate::arch::trap::SyscallFrame {
        rip: loaded.entry,
        rcx: loaded.entry,
        rsp: loaded.sp,
        rflags: 0x202,
        r11: 0x202,
        ..Default::default()
    };
    process::register(loaded.process);
    let np = sched::NewProcess { pid, cr3, table };
    // The new process starts with no signal blocked (not init's mask).
    let setup = |t: &sched::Task| t.sigmask.store(0, Ordering::Release);
    let spawned = sched::reserve_thread().and_then(|res| {
        sched::spawn_thread_prepared(res, &frame, Some(0), affinity, Some(np), setup)
    });
    match spawned {
        Some(t) => {
            sched::start_thread(t);
            answer(i64::from(pid), b"");
        }
        None => {
            if let Some(e) = process::unregister(pid) {
                if let Ok(inner) = alloc::sync::Arc::try_unwrap(e).map(|e| e.inner.into_inner()) {
                    inner.aspace.destroy();
                }
            }
            answer(Errno::EAGAIN.as_ret(), b"no channel slot for a new thread");
        }
    }
}

/// Kill process `pid` and its descendants (its exec client is gone): their
/// pending offloads on the dead client are answered here with EINTR.
fn kill_tree(pid: u32) -> i64 {
    if process::entry(pid).is_none() || pid == INIT_PID.load(Ordering::Acquire) {
        return Errno::ESRCH.as_ret();
    }
    let all = process::entries();
    let mut victims = alloc::vec![pid];
    loop {
        let more: Vec<u32> = all
            .iter()
            .filter(|(p, e)| !victims.contains(p) && victims.contains(&e.parent))
            .map(|(p, _)| *p)
            .collect();
        if more.is_empty() {
            break;
        }
        victims.extend(more);
    }
    for &v in &victims {
        crate::signal::post_to(v, linux_abi::signal::SIGKILL, crate::signal::SI_USER, 0);
    }
    if let Some(e) = process::entry(pid) {
        e.orphaned.store(true, Ordering::Release);
    }
    for t in sched::tasks_of(pid) {
        if t.in_offload.load(Ordering::Acquire) {
            crate::ikc::slot::abandon(t.slot, Errno::EINTR.as_ret());
        }
    }
    crate::kprintln!(
        "instance: killed process {pid} and {} descendant(s): its client is gone",
        victims.len() - 1
    );
    0
}
