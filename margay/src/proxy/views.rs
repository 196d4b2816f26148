//! The LWK's own views of the /proc and /sys files that runtimes read to size
//! themselves: `/sys/devices/system/cpu/{online,possible,present}`,
//! `/proc/cpuinfo`, `/proc/meminfo`, `/proc/self/status` and `/proc/self/maps`
//! describe the LWK partition (its cores, its memory, its mappings), as
//! McKernel's do; the rest of /proc and /sys comes from Linux.
//!
//! An offloaded open of one of these paths (`classify`) is answered with a
//! read-only file descriptor on a memory file holding the synthesized text
//! (`open_view`). The generators are pure functions of the host's own text, the
//! number of LWK cores and the LWK's region table.

use std::ffi::CString;
use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, IntoRawFd as _, OwnedFd};

use linux_abi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};
use linux_abi::Errno;
use wire::{MirrorEntry, RegionKind};

/// A file with an LWK view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `/sys/devices/system/cpu/{online,possible,present}`.
    CpuList,
    CpuInfo,
    MemInfo,
    /// `/proc/self/status` (and of the process's pid and its tasks).
    Status,
    /// `/proc/self/maps` (likewise).
    Maps,
}

impl View {
    /// Name of the memory file (shown by `/proc/self/fd/N`).
    fn name(self) -> &'static str {
        match self {
            View::CpuList => "cpu",
            View::CpuInfo => "cpuinfo",
            View::MemInfo => "meminfo",
            View::Status => "status",
            View::Maps => "maps",
        }
    }
}

/// The LWK view `path` names, if any: exact matches after collapsing repeated
/// slashes and `.` components, with `/proc/self`, `/proc/thread-self`,
/// `/proc/<pid>` and `/proc/<pid>/task/<tid>` resolved (`pid` is the proxy's, which
/// is the application's). Relative paths, `..` and a trailing slash never match
/// (Linux answers those itself).
pub fn classify(path: &[u8], pid: u32) -> Option<View> {
    if path.first() != Some(&b'/') || path.last() == Some(&b'/') {
        return None;
    }
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.contains(&&b".."[..]) {
        return None;
    }
    match parts.as_slice() {
        [b"sys", b"devices", b"system", b"cpu", f] => {
            matches!(*f, b"online" | b"possible" | b"present").then_some(View::CpuList)
        }
        [b"proc", b"cpuinfo"] => Some(View::CpuInfo),
        [b"proc", b"meminfo"] => Some(View::MemInfo),
        [b"proc", b"thread-self", f] => per_process(f),
        [b"proc", p, f] if is_us(p, pid) => per_process(f),
        [b"proc", p, b"task", t, f] if is_us(p, pid) && is_number(t) => per_process(f),
        _ => None,
    }
}

fn per_process(file: &[u8]) -> Option<View> {
    match file {
        b"status" => Some(View::Status),
        b"maps" => Some(View::Maps),
        _ => None,
    }
}

fn is_us(component: &[u8], pid: u32) -> bool {
    component == b"self" || component == pid.to_string().as_bytes()
}

/// A decimal number as /proc spells it (no sign, no leading zero).
fn is_number(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit) && (s.len() == 1 || s[0] != b'0')
}

/// What an open of a view asks for, decided from its flags: `Ok(cloexec)` to
/// open it, `Err(errno)` as Linux refuses it, `None` to let Linux open the real
/// file (O_PATH: nothing is read through it).
pub fn open_mode(flags: u64) -> Option<Result<bool, Errno>> {
    let flags = flags as i32;
    if flags & libc::O_PATH != 0 {
        return None;
    }
    Some(if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
        Err(Errno::EEXIST)
    } else if flags & libc::O_DIRECTORY != 0 {
        Err(Errno::ENOTDIR)
    } else if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
        Err(Errno::EACCES)
    } else {
        Ok(flags & libc::O_CLOEXEC != 0)
    })
}

/// `0-{n-1}` (`0` for one core), as Linux prints a CPU list.
pub fn cpu_list(n: u32) -> String {
    if n <= 1 {
        "0".to_string()
    } else {
        format!("0-{}", n - 1)
    }
}

/// The content of `/sys/devices/system/cpu/{online,possible,present}`.
pub fn sys_cpu_list(n: u32) -> String {
    format!("{}\n", cpu_list(n))
}

/// A mask of the first `n` CPUs as Linux prints `Cpus_allowed`: hex digits in
/// 32-bit groups separated by commas, at least `min_digits` digits wide (the
/// host's own width, which follows its number of possible CPUs).
pub fn cpu_mask(n: u32, min_digits: usize) -> String {
    let digits = min_digits.max((n as usize).div_ceil(4)).max(1);
    let mut out = String::new();
    for d in (0..digits).rev() {
        let lo = d as u32 * 4;
        let bits = n.saturating_sub(lo).min(4);
        let nibble = (1u32 << bits) - 1;
        out.push(char::from_digit(nibble, 16).unwrap_or('0'));
        if d > 0 && d % 8 == 0 {
            out.push(',');
        }
    }
    out
}

/// `/proc/cpuinfo` for `n` LWK cores: the host's first `n` processor blocks
/// (repeated if the host has fewer), renumbered 0..n-1 as one package of `n`
/// cores.
pub fn cpuinfo(host: &str, n: u32) -> String {
    let blocks: Vec<&str> = host
        .split("\n\n")
        .map(|b| b.trim_matches('\n'))
        .filter(|b| b.starts_with("processor"))
        .collect();
    let mut out = String::new();
    for i in 0..n {
        let Some(block) = blocks.get(i as usize % blocks.len().max(1)) else {
            out.push_str(&format!("processor\t: {i}\n\n"));
            continue;
        };
        for line in block.lines() {
            let new = line.split_once(':').and_then(|(key, _)| {
                let v = match key.trim() {
                    "processor" | "core id" | "apicid" | "initial apicid" => i,
                    "siblings" | "cpu cores" => n,
                    "physical id" => 0,
                    _ => return None,
                };
                Some(format!("{key}: {v}"))
            });
            out.push_str(new.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// `/proc/meminfo` of a partition with `total` bytes usable, `free` of them free:
/// the host's lines, with the totals replaced and no caches or swap.
pub fn meminfo(host: &str, total: u64, free: u64) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let key = line.split_once(':').map(|(k, _)| k);
        // The partition's sizes; every other amount of memory is the host's
        // and means nothing here (tools that subtract Shmem or SReclaimable
        // from the total would underflow), except the huge page size.
        let bytes = match key {
            Some("MemTotal") => Some(total),
            Some("MemFree" | "MemAvailable") => Some(free),
            Some("Hugepagesize") => None,
            Some(_) if line.ends_with(" kB") => Some(0),
            _ => None,
        };
        match (key, bytes) {
            (Some(k), Some(b)) => {
                out.push_str(&format!("{:<16}{:>8} kB", format!("{k}:"), b >> 10))
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The command name Linux gives a program it executes: the executable's base
/// name, at most 15 bytes.
pub fn comm(exe: &[u8]) -> String {
    let base = exe.rsplit(|&b| b == b'/').next().unwrap_or_default();
    String::from_utf8_lossy(&base[..base.len().min(15)]).into_owned()
}

/// `/proc/self/status`: the proxy's own, with the application's name, the CPU
/// affinity of `n` LWK cores and the memory sizes of the LWK regions.
pub fn status(host: &str, name: &str, n: u32, regions: &[MirrorEntry]) -> String {
    let kb = |f: &dyn Fn(&MirrorEntry) -> bool| -> u64 {
        regions.iter().filter(|e| f(e)).map(|e| e.len >> 10).sum()
    };
    let total = kb(&|_| true);
    let is_stack = |e: &MirrorEntry| e.region_kind() == Ok(RegionKind::Stack);
    let stack = kb(&is_stack);
    let exe = kb(&|e| e.region_kind() == Ok(RegionKind::Image) && e.prot & PROT_EXEC != 0);
    let data = kb(&|e| !is_stack(e) && e.prot & PROT_WRITE != 0);
    let mut out = String::new();
    for line in host.lines() {
        let Some((key, value)) = line.split_once(':') else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let size = match key {
            "VmPeak" | "VmSize" | "VmHWM" | "VmRSS" | "RssAnon" => Some(total),
            "VmData" => Some(data),
            "VmStk" => Some(stack),
            "VmExe" => Some(exe),
            "VmLib" | "RssFile" | "RssShmem" | "VmSwap" => Some(0),
            _ => None,
        };
        if let Some(size) = size {
            out.push_str(&format!("{key}:\t{size:>8} kB"));
        } else if key == "Name" {
            out.push_str(&format!("{key}:\t{name}"));
        } else if key == "Cpus_allowed" {
            let digits = value.trim().chars().filter(char::is_ascii_hexdigit).count();
            out.push_str(&format!("{key}:\t{}", cpu_mask(n, digits)));
        } else if key == "Cpus_allowed_list" {
            out.push_str(&format!("{key}:\t{}", cpu_list(n)));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Identity of the executable file for `/proc/self/maps`: device major, minor
/// and inode number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub major: u32,
    pub minor: u32,
    pub ino: u64,
}

impl FileId {
    pub fn of(path: &std::path::Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        let dev = m.dev();
        Some(FileId {
            major: libc::major(dev),
            minor: libc::minor(dev),
            ino: m.ino(),
        })
    }
}

/// `/proc/self/maps` of the LWK process: one line per region, in Linux's format.
pub fn maps(
    regions: &[MirrorEntry],
    files: &[super::files::PluggedFile],
    exe: &[u8],
    exe_id: FileId,
) -> Vec<u8> {
    let mut sorted = regions.to_vec();
    sorted.sort_by_key(|e| e.vaddr);
    let mut out = Vec::new();
    for e in &sorted {
        let bit = |b: u32, c: char| if e.prot & b != 0 { c } else { '-' };
        let kind = e.region_kind();
        let file =
            super::files::find(files, e.file_off, e.len).filter(|_| kind == Ok(RegionKind::Shared));
        let (name, id, offset): (&[u8], FileId, u64) = match (kind, file) {
            (Ok(RegionKind::Image), _) => (exe, exe_id, 0),
            (Ok(RegionKind::Heap), _) => (b"[heap]", FileId::default(), 0),
            (Ok(RegionKind::Stack), _) => (b"[stack]", FileId::default(), 0),
            // A shared file mapping: the file, at the region's offset in it.
            (Ok(RegionKind::Shared), Some(f)) => (&f.name, f.id, e.file_off - f.gpa),
            // Linux names anonymous shared memory after the shmem file behind it.
            (Ok(RegionKind::Shared), None) => (b"/dev/zero (deleted)", FileId::default(), 0),
            (Ok(RegionKind::Anon) | Err(_), _) => (b"", FileId::default(), 0),
        };
        let prefix = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {}",
            e.vaddr,
            e.vaddr.saturating_add(e.len),
            bit(PROT_READ, 'r'),
            bit(PROT_WRITE, 'w'),
            bit(PROT_EXEC, 'x'),
            if kind == Ok(RegionKind::Shared) {
                's'
            } else {
                'p'
            },
            offset,
            id.major,
            id.minor,
            id.ino
        );
        out.extend_from_slice(prefix.as_bytes());
        if !name.is_empty() {
            // Linux pads the header to 25 + 6 * sizeof(void *) - 1 columns.
            out.resize(out.len() + 72usize.saturating_sub(prefix.len()), b' ');
        }
        out.push(b' ');
        out.extend_from_slice(name);
        out.push(b'\n');
    }
    out
}

/// Everything a view's content is made from, snapshotted while the mirror is
/// locked; the host's own files are read later, without the lock.
#[derive(Debug)]
pub struct Pending {
    pub view: View,
    pub cloexec: bool,
    pub cpus: u32,
    pub total: u64,
    pub free: u64,
    pub regions: Vec<MirrorEntry>,
    /// The plugged files of shared regions (maps names them).
    pub files: Vec<super::files::PluggedFile>,
    pub exe: Vec<u8>,
    pub exe_id: FileId,
}

impl Pending {
    /// The file's content.
    pub fn content(&self) -> Vec<u8> {
        let host = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        match self.view {
            View::CpuList => sys_cpu_list(self.cpus).into_bytes(),
            View::CpuInfo => cpuinfo(&host("/proc/cpuinfo"), self.cpus).into_bytes(),
            View::MemInfo => meminfo(&host("/proc/meminfo"), self.total, self.free).into_bytes(),
            View::Status => status(
                &host("/proc/self/status"),
                &comm(&self.exe),
                self.cpus,
                &self.regions,
            )
            .into_bytes(),
            View::Maps => maps(&self.regions, &self.files, &self.exe, self.exe_id),
        }
    }

    /// Open the view: a new file descriptor (the lowest free, as an open
    /// would return) reading the content from its start, or `-errno`.
    pub fn open(&self) -> i64 {
        let content = self.content();
        match open_view(self.view.name(), &content, self.cloexec) {
            // The application owns the descriptor from now on.
            Ok(fd) => i64::from(fd.into_raw_fd()),
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

/// A read-only file descriptor on a memory file holding `content`. The memory
/// file is written through its first descriptor, then reopened read-only and the
/// read-only description moved onto the first number.
fn open_view(name: &str, content: &[u8], cloexec: bool) -> std::io::Result<OwnedFd> {
    let cname = CString::new(name).unwrap_or_default();
    let fd = crate::sys::memfd_create(&cname)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content)?;
    let ro = std::fs::OpenOptions::new()
        .read(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    crate::sys::dup3(ro.as_fd(), file.as_fd(), cloexec)?;
    // `ro`'s own number is closed here; the view keeps the memfd's number.
    Ok(OwnedFd::from(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_after_normalizing() {
        let pid = 4242;
        for (p, v) in [
            ("/sys/devices/system/cpu/online", Some(View::CpuList)),
            ("/sys/devices/system/cpu/possible", Some(View::CpuList)),
            ("/sys/devices/system/cpu/present", Some(View::CpuList)),
            ("//sys/devices//system/./cpu/online", Some(View::CpuList)),
            ("/sys/devices/system/cpu/offline", None),
            ("/sys/devices/system/cpu/online/", None),
            ("/sys/devices/system/cpu/cpu0/online", None),
            ("sys/devices/system/cpu/online", None),
            ("/proc/cpuinfo", Some(View::CpuInfo)),
            ("/proc/meminfo", Some(View::MemInfo)),
            ("/proc//meminfo", Some(View::MemInfo)),
            ("/proc/stat", None),
            ("/proc/self/status", Some(View::Status)),
            ("/proc/self/maps", Some(View::Maps)),
            ("/proc/4242/status", Some(View::Status)),
            ("/proc/4242/maps", Some(View::Maps)),
            ("/proc/4242/task/4243/maps", Some(View::Maps)),
            ("/proc/self/task/7/status", Some(View::Status)),
            ("/proc/thread-self/status", Some(View::Status)),
            ("/proc/thread-self/maps", Some(View::Maps)),
            ("/proc/4243/status", None),
            ("/proc/04242/status", None),
            ("/proc/4242/task/07/status", None),
            ("/proc/4242/task/x/status", None),
            ("/proc/self/smaps", None),
            ("/proc/self/exe", None),
            ("/proc/self/../self/maps", None),
            ("/proc/self/fd/3", None),
            ("", None),
            ("/", None),
        ] {
            assert_eq!(classify(p.as_bytes(), pid), v, "{p}");
        }
    }

    #[test]
    fn open_flags_decide_the_answer() {
        let f = |x: i32| open_mode(x as u64);
        assert_eq!(f(libc::O_RDONLY), Some(Ok(false)));
        assert_eq!(f(libc::O_RDONLY | libc::O_CLOEXEC), Some(Ok(true)));
        assert_eq!(f(libc::O_RDONLY | libc::O_NONBLOCK), Some(Ok(false)));
        assert_eq!(f(libc::O_WRONLY), Some(Err(Errno::EACCES)));
        assert_eq!(f(libc::O_RDWR), Some(Err(Errno::EACCES)));
        assert_eq!(f(libc::O_RDONLY | libc::O_TRUNC), Some(Err(Errno::EACCES)));
        assert_eq!(
            f(libc::O_RDONLY | libc::O_DIRECTORY),
            Some(Err(Errno::ENOTDIR))
        );
        assert_eq!(
            f(libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL),
            Some(Err(Errno::EEXIST))
        );
        assert_eq!(f(libc::O_PATH), None);
    }

    #[test]
    fn cpu_lists_and_masks() {
        assert_eq!(sys_cpu_list(1), "0\n");
        assert_eq!(sys_cpu_list(2), "0-1\n");
        assert_eq!(sys_cpu_list(32), "0-31\n");
        assert_eq!(cpu_mask(1, 1), "1");
        assert_eq!(cpu_mask(2, 1), "3");
        assert_eq!(cpu_mask(3, 0), "7");
        assert_eq!(cpu_mask(4, 1), "f");
        assert_eq!(cpu_mask(5, 1), "1f");
        assert_eq!(cpu_mask(2, 2), "03");
        assert_eq!(cpu_mask(32, 8), "ffffffff");
        assert_eq!(cpu_mask(2, 16), "00000000,00000003");
        assert_eq!(cpu_mask(32, 32), "00000000,00000000,00000000,ffffffff");
        assert_eq!(cpu_mask(4, 9), "0,0000000f");
    }

    const HOST_CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nphysical id\t: 0\nsiblings\t: 2\ncore id\t\t: 0\ncpu cores\t: 2\napicid\t\t: 0\ninitial apicid\t: 0\nflags\t\t: fpu sse\npower management:\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nphysical id\t: 0\nsiblings\t: 2\ncore id\t\t: 1\ncpu cores\t: 2\napicid\t\t: 1\ninitial apicid\t: 1\nflags\t\t: fpu sse\npower management:\n\n";

    #[test]
    fn cpuinfo_has_one_block_per_lwk_core() {
        let one = cpuinfo(HOST_CPUINFO, 1);
        assert_eq!(one.matches("processor").count(), 1);
        assert!(one.contains("siblings\t: 1\n"));
        assert!(one.contains("cpu cores\t: 1\n"));
        assert!(one.contains("flags\t\t: fpu sse\npower management:\n\n"));
        assert!(one.ends_with("\n\n") && !one.ends_with("\n\n\n"));
        // More LWK cores than host blocks: blocks repeat, renumbered.
        let four = cpuinfo(HOST_CPUINFO, 4);
        assert_eq!(four.matches("\nprocessor").count() + 1, 4);
        for i in 0..4 {
            assert!(four.contains(&format!("processor\t: {i}\n")), "{four}");
            assert!(four.contains(&format!("core id\t\t: {i}\n")));
            assert!(four.contains(&format!("apicid\t\t: {i}\n")));
            assert!(four.contains(&format!("initial apicid\t: {i}\n")));
        }
        assert_eq!(four.matches("siblings\t: 4\n").count(), 4);
        assert_eq!(four.matches("cpu cores\t: 4\n").count(), 4);
        // No host text at all (unreadable): minimal blocks.
        assert_eq!(cpuinfo("", 2), "processor\t: 0\n\nprocessor\t: 1\n\n");
    }

    #[test]
    fn meminfo_shows_the_partition() {
        let host = "MemTotal:       24684084 kB\nMemFree:        23375080 kB\nMemAvailable:   24305488 kB\nBuffers:            3424 kB\nCached:          1095624 kB\nSwapCached:            0 kB\nActive:           664584 kB\nSwapTotal:       1000000 kB\nSwapFree:        1000000 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n";
        let m = meminfo(host, 100 << 20, 60 << 20);
        let want = "MemTotal:         102400 kB\nMemFree:           61440 kB\nMemAvailable:      61440 kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nActive:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n";
        assert_eq!(m, want);
        // Wide numbers are not cut.
        assert!(
            meminfo("MemTotal: 1 kB\n", 1 << 40, 0).starts_with("MemTotal:       1073741824 kB\n")
        );
    }

    fn region(vaddr: u64, len: u64, prot: u32, kind: u32) -> MirrorEntry {
        MirrorEntry {
            vaddr,
            len,
            file_off: 0x200_0000,
            prot,
            kind,
        }
    }

    fn sample_regions() -> Vec<MirrorEntry> {
        vec![
            region(
                0x3fff_ff70_0000,
                0x80_0000,
                PROT_READ | PROT_WRITE,
                RegionKind::Stack.into(),
            ),
            region(0x40_0000, 0x1000, PROT_READ, RegionKind::Image.into()),
            region(
                0x40_1000,
                0x2000,
                PROT_READ | PROT_EXEC,
                RegionKind::Image.into(),
            ),
            region(
                0x60_0000,
                0x3000,
                PROT_READ | PROT_WRITE,
                RegionKind::Heap.into(),
            ),
            region(0x3eff_fff0_0000, 0x10_0000, PROT_READ | PROT_WRITE, 0),
            region(0x3eff_ffe0_0000, 0x1000, 0, 0),
        ]
    }

    #[test]
    fn comm_is_the_base_name() {
        assert_eq!(comm(b"/usr/bin/busybox"), "busybox");
        assert_eq!(comm(b"/a/averyveryverylongname"), "averyveryverylo");
        assert_eq!(comm(b"plain"), "plain");
        assert_eq!(comm(b""), "");
    }

    #[test]
    fn status_describes_the_lwk_process() {
        let host = "Name:\tmargay\nThreads:\t5\nVmPeak:\t70368744177664 kB\nVmSize:\t70368744177664 kB\nVmRSS:\t    1768 kB\nVmStk:\t     132 kB\nVmExe:\t    2000 kB\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        let s = status(host, "busybox", 4, &sample_regions());
        let total = (0x80_0000 + 0x1000 + 0x2000 + 0x3000 + 0x10_0000 + 0x1000) >> 10;
        assert!(s.contains(&format!("VmSize:\t{total:>8} kB\n")), "{s}");
        assert!(s.contains(&format!("VmPeak:\t{total:>8} kB\n")));
        assert!(s.contains(&format!("VmRSS:\t{total:>8} kB\n")));
        assert!(s.contains("VmStk:\t    8192 kB\n"));
        assert!(s.contains("VmExe:\t       8 kB\n"));
        assert!(s.contains("Cpus_allowed:\tf\n"));
        assert!(s.contains("Cpus_allowed_list:\t0-3\n"));
        assert!(s.starts_with("Name:\tbusybox\nThreads:\t5\n"));
        assert!(s.ends_with("Mems_allowed:\t1\n"));
        let s = status(
            "Cpus_allowed:\t00000000,00000003\nCpus_allowed_list:\t0-1\n",
            "x",
            1,
            &[],
        );
        assert_eq!(
            s,
            "Cpus_allowed:\t00000000,00000001\nCpus_allowed_list:\t0\n"
        );
    }

    #[test]
    fn maps_lists_the_lwk_regions() {
        let id = FileId {
            major: 0xfe,
            minor: 0,
            ino: 247030,
        };
        let m = String::from_utf8(maps(&sample_regions(), &[], b"/bin/busybox", id)).unwrap();
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines.len(), 6);
        let pad = |head: &str, name: &str| format!("{head:<72} {name}");
        assert_eq!(
            lines[0],
            pad(
                "00400000-00401000 r--p 00000000 fe:00 247030",
                "/bin/busybox"
            )
        );
        assert_eq!(lines[0].find('/'), Some(73));
        assert!(lines[1].starts_with("00401000-00403000 r-xp 00000000 fe:00 247030 "));
        assert!(lines[2].starts_with("00600000-00603000 rw-p 00000000 00:00 0 "));
        assert!(lines[2].ends_with(" [heap]"));
        assert_eq!(lines[3], "3effffe00000-3effffe01000 ---p 00000000 00:00 0 ");
        assert_eq!(lines[4], "3efffff00000-3f0000000000 rw-p 00000000 00:00 0 ");
        assert_eq!(
            lines[5],
            pad("3fffff700000-3ffffff00000 rw-p 00000000 00:00 0", "[stack]")
        );
        assert_eq!(lines[5].find('['), Some(73));
        assert!(maps(&[], &[], b"/x", id).is_empty());
    }

    #[test]
    fn a_view_opens_as_a_read_only_file_at_offset_zero() {
        use rustix::fs::OFlags;
        use std::io::Read as _;
        for cloexec in [false, true] {
            let mut f = std::fs::File::from(open_view("test", b"0-3\n", cloexec).unwrap());
            let fdflags = rustix::io::fcntl_getfd(&f).unwrap();
            let flflags = rustix::fs::fcntl_getfl(&f).unwrap();
            assert_eq!(fdflags.contains(rustix::io::FdFlags::CLOEXEC), cloexec);
            assert_eq!(flflags & OFlags::ACCMODE, OFlags::RDONLY);
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            assert_eq!(s, "0-3\n");
            assert!(f.write_all(b"x").is_err());
        }
    }
}
