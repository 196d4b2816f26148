//! The files `python3 -c pass` reads, for the Linux guest's initramfs: the
//! interpreter, its dynamic loader and libraries, and the modules (with their
//! compiled `__pycache__` files) and `.pth` files that its start-up imports,
//! as this host's interpreter reports them. Margay reads the same files from
//! the host through the proxy, so both kernels start the same interpreter
//! with the same work to do.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use anyhow::{bail, Context as _};

/// Run by the interpreter itself: the modules its start-up loaded (taken
/// before this script imports anything else), their cached bytecode, the
/// `.pth` files `site` read, and the executable.
const LIST_SCRIPT: &str = r#"
import sys
loaded = [getattr(m, '__file__', None) for m in list(sys.modules.values())]
import os, site, importlib.util
out = {sys.executable}
for f in loaded:
    if not f:
        continue
    out.add(f)
    if f.endswith('.py'):
        try:
            out.add(importlib.util.cache_from_source(f))
        except Exception:
            pass
for d in site.getsitepackages():
    if os.path.isdir(d):
        out.update(os.path.join(d, n) for n in os.listdir(d) if n.endswith('.pth'))
for f in sorted(out):
    if os.path.isfile(f):
        print(f)
for d in sys.path:
    if os.path.isdir(d):
        print(d.rstrip('/') + '/')
"#;

/// What the C library reads when the interpreter starts in the C locale
/// (which Python coerces to C.UTF-8), where present.
const LIBC_FILES: [&str; 5] = [
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/locale/locale.alias",
    "/usr/lib/locale/C.utf8/LC_CTYPE",
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
];

/// Absolute paths of the shared objects and loader `ldd` lists for `elf`.
fn ldd(elf: &str) -> anyhow::Result<Vec<String>> {
    let o = Command::new("ldd")
        .arg(elf)
        .output()
        .context("cannot run ldd (Debian: libc-bin)")?;
    if !o.status.success() {
        return Ok(Vec::new()); // not dynamic
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&o.stdout)))
}

fn parse_ldd(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(str::to_string)
        .collect()
}

/// `(path in the guest without the leading '/', contents)` for every file
/// `python` needs to run `-c pass`; a path ending in '/' is a directory
/// (those on `sys.path`, which must exist even when empty).
pub fn guest_files(python: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let o = Command::new(python)
        .args(["-c", LIST_SCRIPT])
        .env_clear()
        .output()
        .with_context(|| {
            format!("probe pystart: cannot run {python} (Debian: apt-get install python3)")
        })?;
    if !o.status.success() {
        bail!(
            "probe pystart: {python} failed to list its start-up files:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut paths: BTreeSet<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    paths.insert(python.to_string());
    paths.extend(
        LIBC_FILES
            .iter()
            .filter(|p| std::path::Path::new(p).is_file())
            .map(|p| p.to_string()),
    );
    let elves: Vec<String> = paths
        .iter()
        .filter(|p| p.ends_with(".so") || p.as_str() == python)
        .cloned()
        .collect();
    for e in elves {
        paths.extend(ldd(&e)?);
    }
    paths
        .into_iter()
        .map(|p| {
            let data = if p.ends_with('/') {
                Vec::new() // a directory on sys.path
            } else {
                fs::read(&p).with_context(|| format!("probe pystart: cannot read {p}"))?
            };
            Ok((p.trim_start_matches('/').to_string(), data))
        })
        .collect()
}

/// Every directory above the given archive paths, parents first.
pub fn parent_dirs<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        let mut cur = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            dirs.insert(cur.clone());
        }
    }
    // BTreeSet order puts "usr" before "usr/lib": parents come first.
    dirs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn parents_first() {
        let d = parent_dirs(["usr/lib/python3.11/os.py", "usr/bin/python3", "init"]);
        assert_eq!(d, ["usr", "usr/bin", "usr/lib", "usr/lib/python3.11"]);
    }

    /// On a host with Debian's python3, the list has the interpreter, its
    /// loader, `os.py` (the landmark that locates the standard library) and
    /// compiled modules.
    #[test]
    fn lists_the_interpreter_and_its_modules() {
        if !std::path::Path::new("/usr/bin/python3").exists() {
            return;
        }
        let files = guest_files("/usr/bin/python3").unwrap();
        let has = |suffix: &str| files.iter().any(|(p, _)| p.ends_with(suffix));
        assert!(has("usr/bin/python3"));
        assert!(has("ld-linux-x86-64.so.2"));
        assert!(has("/os.py"));
        assert!(has(".pyc"));
        assert!(has("lib-dynload/"));
        assert!(files.iter().all(|(p, _)| !p.starts_with('/')));
    }
}
