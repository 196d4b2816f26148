//! Serving the channel: the state the proxy's threads share (`Shared`), the
//! polling leader and its standby (see `leader`), taking posted slots, and
//! handling each request on the application's mirrored memory. Forking the
//! proxy is in `fork`.

use std::io::Write as _;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use linux_abi::Errno;
use wire::{MAX_SLOTS, SHARED_PHYS};

use super::decode::{decode, Request, Response};
use super::doorbell::{self, Claim};
use super::exec;
use super::files::{self, PluggedFile};
use super::leader;
use super::mirror::{self, Mirror, TableError};
use super::pool::Pool;
use super::signals;
use super::user_mem::UserMem;
use super::views;
use super::window::Window;
use crate::guest_mem::GuestMem;

/// Spin this long after the last request before sleeping, then nap with growing
/// sleeps from MIN_NAP to MAX_NAP. Under TCG the guest often runs for a few ms
/// between offloaded calls (translating new code); with 100 µs / 1 ms a `busybox sh`
/// start-up waited ~3.9 ms in total for the proxy, with 2 ms / 200 µs ~0.5 ms. Idle
/// cost: at most 5000 wake-ups a second. Idle workers spin for SPIN too (a few of
/// them at a time), so a request is handed over without a futex wake-up.
const SPIN: Duration = Duration::from_millis(2);
const MIN_NAP: Duration = Duration::from_micros(10);
const MAX_NAP: Duration = Duration::from_micros(200);
/// Most worker threads: one per slot (every LWK thread may be blocked in Linux
/// at once), plus a polling leader and its standby.
const MAX_WORKERS: usize = MAX_SLOTS + 2;

/// State of the mirror relative to the kernel's table.
#[derive(Clone, Copy)]
pub(super) enum MirrorState {
    /// Mirrors the table of this generation.
    Current(u64),
    /// The table of this generation was invalid: every offloaded call fails.
    Poisoned(u64),
    /// Nothing mirrored yet (or a mapping failed): read the table again.
    Unknown,
}

/// The mirror and what it mirrors; behind `Shared::mirror`'s lock.
pub(super) struct MirrorView {
    pub(super) mirror: Mirror,
    state: MirrorState,
    complained: bool,
    /// The plugged files this process maps (shared file mappings): the
    /// mirror maps their regions from the files themselves.
    pub(super) files: Vec<PluggedFile>,
    /// The SysV segments this process has attached (files::shmat).
    pub(super) sysv: Vec<files::SysvAttach>,
}

/// What the poller and the workers share.
pub(super) struct Shared {
    pub(super) ram: Arc<GuestMem>,
    /// Guest-physical address of this proxy's LWK process's region table.
    pub(super) table: u64,
    /// The application as Linux would describe it; execve changes it.
    pub(super) app: RwLock<exec::App>,
    pub(super) trace: bool,
    pub(super) window: &'static Window,
    /// Readers validate pointers against it; a writer brings it up to date.
    pub(super) mirror: RwLock<MirrorView>,
    /// Who polls the doorbell (see `leader`).
    role: leader::Role,
    /// The thread (Linux tid) serving each slot right now (0 when none), for interrupts.
    running: Box<[AtomicU64]>,
}

/// A request taken from slot `slot`.
pub(super) struct Job {
    pub(super) slot: usize,
    pub(super) req: Request,
}

/// What the proxy's threads do (see `leader`).
enum Task {
    /// Poll the doorbell as the leader of this epoch.
    Lead(u32),
    /// Watch the leader and take over when it is stuck in a call.
    Standby,
    /// Serve one request.
    Serve(Job),
}

/// The poller's spin-then-nap policy.
struct Poller {
    last: Instant,
    nap: Duration,
}

impl Poller {
    fn new() -> Self {
        Poller {
            last: Instant::now(),
            nap: MIN_NAP,
        }
    }

    fn busy(&mut self) {
        self.last = Instant::now();
        self.nap = MIN_NAP;
    }

    /// Nothing was posted: spin on, or nap.
    fn idle(&mut self) {
        if self.last.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(self.nap);
            self.nap = (self.nap * 2).min(MAX_NAP);
        }
    }
}

/// A running proxy: its threads serve the channel until the process ends.
pub(super) struct Running {
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) shared: Arc<Shared>,
}

impl Shared {
    pub(super) fn new(
        ram: impl Into<Arc<GuestMem>>,
        app: exec::App,
        trace: bool,
        window: &'static Window,
    ) -> Self {
        Self::for_table(
            ram.into(),
            app,
            trace,
            window,
            SHARED_PHYS + wire::REGIONS_OFF,
            Vec::new(),
            Vec::new(),
        )
    }

    pub(super) fn for_table(
        ram: Arc<GuestMem>,
        app: exec::App,
        trace: bool,
        window: &'static Window,
        table: u64,
        files: Vec<PluggedFile>,
        sysv: Vec<files::SysvAttach>,
    ) -> Self {
        Shared {
            ram,
            table,
            app: RwLock::new(app),
            trace,
            window,
            mirror: RwLock::new(MirrorView {
                mirror: Mirror::default(),
                state: MirrorState::Unknown,
                complained: false,
                files,
                sysv,
            }),
            role: leader::Role::default(),
            running: (0..MAX_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Start the leader and its standby on worker threads.
    pub(super) fn start(self) -> Running {
        let shared = Arc::new(self);
        let pool: Arc<OnceLock<Pool<Task>>> = Arc::new(OnceLock::new());
        let (s, p) = (Arc::clone(&shared), Arc::clone(&pool));
        // Idle workers park at once: spinning ones would compete with the
        // leader and the guest's vCPUs for host cores.
        let workers = Pool::new(MAX_WORKERS, Duration::ZERO, move |task: Task| {
            let pool = p
                .get()
                .expect("the pool is set before any task is submitted");
            match task {
                Task::Lead(epoch) => s.lead(epoch, pool),
                Task::Standby => s.standby(pool),
                Task::Serve(job) => s.serve(job),
            }
        });
        let pool = pool.get_or_init(|| workers);
        pool.submit(Task::Lead(0));
        pool.submit(Task::Standby);
        Running { shared }
    }

    fn serve(&self, job: Job) {
        let me = crate::sys::thread_id();
        let running = self.running.get(job.slot);
        if let Some(r) = running {
            r.store(me, Ordering::Release);
        }
        let resp = self.handle(job.req);
        if let Some(r) = running {
            r.store(0, Ordering::Release);
        }
        doorbell::complete(&self.ram, job.slot, &resp);
    }

    /// Interrupt the syscalls the kernel asked to interrupt (a signal is
    /// waiting for their LWK thread). Repeated on every pass while the bit
    /// stays set, so a signal that lands just before the call blocks is not
    /// lost; the kernel clears the bit once the slot is answered.
    fn interrupt_pass(&self, slots: &mut Vec<usize>) {
        signals::requested(&self.ram, slots);
        for &slot in slots.iter() {
            if let Some(r) = self.running.get(slot) {
                signals::interrupt_thread(r.load(Ordering::Acquire));
            }
        }
    }

    /// Poll the doorbell as the leader of `epoch`, serving the last request of
    /// each batch itself (no hand-over on the common path) and the others on
    /// workers. Returns when a standby has taken over during a long call.
    fn lead(&self, epoch: u32, pool: &Pool<Task>) {
        let mut poller = Poller::new();
        let mut posted = Vec::with_capacity(MAX_SLOTS);
        let mut jobs = Vec::with_capacity(MAX_SLOTS);
        loop {
            if self.take_posted(&mut posted, &mut jobs) == 0 {
                poller.idle();
                continue;
            }
            poller.busy();
            let Some(mine) = jobs.pop() else {
                continue;
            };
            for job in jobs.drain(..) {
                pool.submit(Task::Serve(job));
            }
            let token = self.role.enter(epoch);
            self.serve(mine);
            if !self.role.leave(token) {
                return;
            }
        }
    }

    /// Watch the leader; take over (and appoint a new standby) when it has been
    /// in the same call for a whole nap.
    fn standby(&self, pool: &Pool<Task>) {
        let mut watch = leader::Watch::default();
        let mut slots = Vec::new();
        loop {
            self.interrupt_pass(&mut slots);
            let (epoch, nap) = watch.check(&self.role);
            if let Some(epoch) = epoch {
                pool.submit(Task::Standby);
                return self.lead(epoch, pool);
            }
            std::thread::sleep(nap);
        }
    }

    /// Take every posted slot the doorbell names: answer clock samples and
    /// garbage at once, collect the rest in `jobs`. Returns how many were taken.
    pub(super) fn take_posted(&self, posted: &mut Vec<usize>, jobs: &mut Vec<Job>) -> usize {
        posted.clear();
        doorbell::take_own(&self.ram, self.table, posted);
        let mut taken = 0;
        for &slot in posted.iter() {
            let resp = match doorbell::claim(&self.ram, slot) {
                Claim::NotPosted => continue,
                Claim::Unreadable => Response::err(Errno::EFAULT),
                Claim::Taken(s) => match decode(&s) {
                    Ok(Request::Clock) => Response::clock(),
                    Ok(req) => {
                        jobs.push(Job { slot, req });
                        taken += 1;
                        continue;
                    }
                    Err(_) => Response::err(Errno::EINVAL),
                },
            };
            doorbell::complete(&self.ram, slot, &resp);
            taken += 1;
        }
        taken
    }

    pub(super) fn handle(&self, req: Request) -> Response {
        match req {
            Request::Clock => Response::clock(),
            Request::Syscall { nr, args } => {
                // Validate under the lock, execute without it: the call may block.
                let checked = self.with_mirror(|current, mirror| {
                    current?;
                    let user = UserMem {
                        mirror,
                        ram: &self.ram,
                    };
                    let app = self.app.read().unwrap_or_else(|e| e.into_inner());
                    exec::check(nr, &args, &user, &app).map_err(Response::ret)
                });
                match checked {
                    Ok(c) => Response::ret(c.run()),
                    Err(resp) => resp,
                }
            }
            Request::Trace {
                nr,
                args,
                result,
                flags,
            } => {
                if self.trace {
                    // A stale or poisoned mirror only makes pointers print as hex.
                    let mut line = self.with_mirror(|_, mirror| {
                        let user = UserMem {
                            mirror,
                            ram: &self.ram,
                        };
                        crate::trace::format_line(nr, &args, result, flags, &user)
                    });
                    line.push('\n');
                    // fd 2 is the application's stderr; if it closed it, so be it.
                    // Printed before Done, so the line precedes the call's effects.
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
                Response::ret(0)
            }
            Request::Exec { path } => {
                let path = self.with_mirror(|current, mirror| {
                    current.ok()?;
                    let user = UserMem {
                        mirror,
                        ram: &self.ram,
                    };
                    user.read_cstr(path, 4095).ok()
                });
                let Some(path) = path else {
                    return Response::err(Errno::EFAULT);
                };
                let exe = std::fs::canonicalize(std::ffi::OsStr::from_bytes(&path))
                    .map(|p| p.into_os_string().into_vec())
                    .unwrap_or(path);
                {
                    let mut app = self.app.write().unwrap_or_else(|e| e.into_inner());
                    app.exe_id =
                        views::FileId::of(std::path::Path::new(std::ffi::OsStr::from_bytes(&exe)))
                            .unwrap_or_default();
                    app.exe = exe;
                }
                crate::sys::close_cloexec_fds();
                // Linux detaches every SysV segment at exec.
                files::shmdt_all(
                    &mut self
                        .mirror
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .sysv,
                );
                Response::ret(0)
            }
            Request::Fork { table } => self.fork(table),
            Request::Exit { status, signal } => crate::sys::exit_like(status, signal),
            Request::Stop { signal } => match i32::try_from(signal) {
                Ok(sig @ (libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)) => {
                    signals::stop(sig);
                    Response::ret(0)
                }
                _ => Response::err(Errno::EINVAL),
            },
            Request::FileMap { op, fd, args } => match op {
                wire::FILEMAP_INFO => files::info(fd, args[0] != 0),
                wire::FILEMAP_PLUG | wire::FILEMAP_ATTACH => {
                    let mut view = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
                    if op == wire::FILEMAP_PLUG {
                        files::plug(&mut view.files, fd, args[0])
                    } else {
                        files::attach(&mut view.files, fd, args)
                    }
                }
                wire::FILEMAP_SHMAT => {
                    let mut view = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
                    files::shmat(&mut view.sysv, fd, args[0])
                }
                wire::FILEMAP_SHM_PLUG | wire::FILEMAP_SHM_ATTACH => {
                    let mut guard = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
                    let view = &mut *guard;
                    if op == wire::FILEMAP_SHM_PLUG {
                        files::shm_plug(&mut view.files, &view.sysv, fd, args[0])
                    } else {
                        files::shm_attach(&mut view.files, &view.sysv, fd, args)
                    }
                }
                wire::FILEMAP_SHMDT => {
                    let mut view = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
                    files::shmdt(&mut view.sysv, fd)
                }
                _ => Response::err(Errno::EINVAL),
            },
        }
    }

    /// Run `f` on the mirror, brought up to date with the kernel's region table
    /// first; `f` also learns whether that worked (`Err(response)` if not).
    fn with_mirror<R>(&self, f: impl FnOnce(Result<(), Response>, &Mirror) -> R) -> R {
        let gen = self
            .ram
            .load_u64(self.table + wire::REGION_GEN_OFF, Ordering::Acquire);
        if let Ok(gen) = gen {
            let view = self.mirror.read().unwrap_or_else(PoisonError::into_inner);
            match view.state {
                MirrorState::Current(g) if g == gen => return f(Ok(()), &view.mirror),
                MirrorState::Poisoned(g) if g == gen => {
                    return f(Err(Response::err(Errno::EFAULT)), &view.mirror)
                }
                _ => {}
            }
        }
        let mut view = self.mirror.write().unwrap_or_else(PoisonError::into_inner);
        let r = view
            .refresh(&self.ram, self.window, self.table)
            .map_err(Response::err);
        f(r, &view.mirror)
    }
}

impl MirrorView {
    /// Bring the mirror up to date with the kernel's region table.
    fn refresh(&mut self, ram: &GuestMem, window: &Window, table: u64) -> Result<(), Errno> {
        let gen = ram
            .load_u64(table + wire::REGION_GEN_OFF, Ordering::Acquire)
            .map_err(|_| Errno::EFAULT)?;
        match self.state {
            MirrorState::Current(g) if g == gen => return Ok(()),
            MirrorState::Poisoned(g) if g == gen => return Err(Errno::EFAULT),
            _ => {}
        }
        let (gen, table) = match Mirror::read_at_with(ram, table, &self.files) {
            Ok(t) => t,
            Err(e) => {
                self.complain(&e);
                return Err(Errno::EFAULT);
            }
        };
        let new = match table {
            Ok(m) => m,
            Err(e) => {
                self.complain(&e);
                self.unmap_all(window);
                self.state = MirrorState::Poisoned(gen);
                return Err(Errno::EFAULT);
            }
        };
        let (removed, added) = mirror::diff(&self.mirror, &new);
        let result = removed
            .iter()
            .try_for_each(|e| window.release(e))
            .and_then(|()| {
                added
                    .iter()
                    .try_for_each(|e| window.mirror(ram, e, &self.files))
            });
        match result {
            Ok(()) => {
                self.mirror = new;
                self.state = MirrorState::Current(gen);
                Ok(())
            }
            Err(e) => {
                eprintln!("margay: proxy: {e}");
                // Start from a clean slate: every mapping of both tables goes.
                for e in new.entries() {
                    let _ = window.release(e);
                }
                self.unmap_all(window);
                self.state = MirrorState::Unknown;
                Err(Errno::ENOMEM)
            }
        }
    }

    fn unmap_all(&mut self, window: &Window) {
        for e in self.mirror.entries() {
            let _ = window.release(e);
        }
        self.mirror = Mirror::default();
    }

    fn complain(&mut self, e: &TableError) {
        if !self.complained {
            self.complained = true;
            eprintln!("margay: proxy: rejecting the LWK's region table: {e}; offloaded calls fail with EFAULT until it is fixed");
        }
    }
}
