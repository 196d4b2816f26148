//! A writer for the cpio "newc" format the Linux kernel unpacks as an
//! initramfs: directories, regular files, symlinks and character devices.

/// Builds a newc archive in memory.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

impl Cpio {
    pub fn new() -> Cpio {
        Cpio::default()
    }

    fn pad4(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// One entry; `name` is relative to the archive's root ("bin/busybox").
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let size = u32::try_from(data.len()).expect("cpio entries are below 4 GiB");
        let namesize = u32::try_from(name.len() + 1).expect("short name");
        let fields = [
            self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad4();
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }

    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | (perm & 0o7777), (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], i: usize) -> u32 {
        let s = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn newc_layout() {
        let mut c = Cpio::new();
        c.file("init", 0o755, b"#!/bin/sh\n");
        c.char_dev("dev/console", 0o600, 5, 1);
        let a = c.finish();
        assert_eq!(&a[..6], b"070701");
        assert_eq!(field(&a, 1), 0o100_755);
        assert_eq!(field(&a, 6), 10); // file size
        assert_eq!(field(&a, 11), 5); // "init\0"
                                      // 110-byte header + "init\0" padded to 116, data padded to 128.
        assert_eq!(&a[110..114], b"init");
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        let dev = &a[128..];
        assert_eq!(&dev[..6], b"070701");
        assert_eq!(field(dev, 1), 0o020_600);
        assert_eq!((field(dev, 9), field(dev, 10)), (5, 1));
        assert!(a.len().is_multiple_of(4));
        let tail = String::from_utf8_lossy(&a[a.len() - 16..]);
        assert!(tail.contains("TRAILER!!!"), "{tail}");
    }

    /// The system's cpio tool, when installed, reads what we write.
    #[test]
    fn cpio_tool_lists_it() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut c = Cpio::new();
        c.dir("bin");
        c.file("bin/x", 0o644, b"12345");
        c.symlink("bin/sh", "busybox");
        let a = c.finish();
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        else {
            return; // no cpio tool here
        };
        child.stdin.take().unwrap().write_all(&a).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "bin\nbin/x\nbin/sh\n");
    }
}
