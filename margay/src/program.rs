//! Finding and vetting the program to run: `execvp`-style `$PATH` search, the
//! shell's exit statuses (127 not found, 126 found but not runnable), and the
//! ELF check that rejects what the LWK cannot load before anything boots.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// How much of the file `lwk_core::elf::parse` gets to see.
const ELF_PREFIX: u64 = 64 << 10;
/// `$PATH` when it is unset (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

#[derive(Debug, Error)]
pub enum ProgramError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: No such file or directory")]
    NoSuchFile(String),
    #[error("{0}: Permission denied")]
    PermissionDenied(String),
    #[error("{0}: Is a directory")]
    IsDirectory(String),
    #[error("{0}: cannot execute: not a regular file")]
    NotRegular(String),
    #[error("{0}: cannot read: {1}")]
    Read(String, io::Error),
    #[error("{0}: cannot execute: {1}")]
    Rejected(String, String),
}

impl ProgramError {
    /// The exit status a shell uses for this failure.
    pub fn exit_status(&self) -> i32 {
        match self {
            ProgramError::NotFound(_) | ProgramError::NoSuchFile(_) => 127,
            _ => 126,
        }
    }
}

/// The program to run.
#[derive(Debug)]
pub struct Program {
    /// As the user typed it (becomes argv[0]).
    pub typed: OsString,
    /// Canonical absolute path (for the kernel and /proc/self/exe).
    pub path: PathBuf,
    /// Bytes of memory its loadable segments occupy (page-rounded).
    pub image_bytes: u64,
}

fn shown(p: &OsStr) -> String {
    p.to_string_lossy().into_owned()
}

/// Find `program` like execvp: as given if it contains a '/', else in `path_var`
/// (an empty entry means the current directory).
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ProgramError> {
    let name = shown(program);
    if program.is_empty() {
        return Err(ProgramError::NotFound(name));
    }
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return match p.metadata() {
            Ok(_) => Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ProgramError::NoSuchFile(name)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                Err(ProgramError::PermissionDenied(name))
            }
            Err(e) => Err(ProgramError::Read(name, e)),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied = false;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let cand = dir.join(program);
        match cand.metadata() {
            Ok(m) if m.is_file() && crate::sys::may_execute(cand.as_os_str()) => return Ok(cand),
            // Like execvp: remember that something was there, keep looking.
            Ok(_) => denied = true,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        Err(ProgramError::PermissionDenied(name))
    } else {
        Err(ProgramError::NotFound(name))
    }
}

/// Resolve `program`, check that it is a runnable static x86-64 ELF the LWK can
/// load, and canonicalize its path.
pub fn prepare(program: &OsStr, path_var: Option<&OsStr>) -> Result<Program, ProgramError> {
    let name = shown(program);
    let path = resolve(program, path_var)?;
    let meta = path
        .metadata()
        .map_err(|e| ProgramError::Read(name.clone(), e))?;
    if meta.is_dir() {
        return Err(ProgramError::IsDirectory(name));
    }
    if !meta.is_file() {
        return Err(ProgramError::NotRegular(name));
    }
    if !crate::sys::may_execute(path.as_os_str()) {
        return Err(ProgramError::PermissionDenied(name));
    }
    let mut prefix = Vec::new();
    File::open(&path)
        .and_then(|f| f.take(ELF_PREFIX).read_to_end(&mut prefix))
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ProgramError::PermissionDenied(name.clone()),
            _ => ProgramError::Read(name.clone(), e),
        })?;
    let info = lwk_core::elf::parse(&prefix, meta.len())
        .map_err(|e| ProgramError::Rejected(name.clone(), e.to_string()))?;
    let image_bytes = info
        .loads
        .iter()
        .map(|s| {
            let start = s.vaddr & !0xfff;
            (s.vaddr.saturating_add(s.memsz).saturating_add(0xfff) & !0xfff).saturating_sub(start)
        })
        .fold(0u64, u64::saturating_add);
    let path = std::fs::canonicalize(&path).map_err(|e| ProgramError::Read(name, e))?;
    Ok(Program {
        typed: program.to_owned(),
        path,
        image_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, mode: u32, contents: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, contents).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn path_search_like_execvp() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        file(a.path(), "tool", 0o644, b"not executable");
        let exe = file(b.path(), "tool", 0o755, b"x");
        fs::create_dir(a.path().join("dir")).unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();

        // The non-executable one in the first directory is skipped.
        assert_eq!(resolve(OsStr::new("tool"), Some(&path)).unwrap(), exe);
        assert!(matches!(
            resolve(OsStr::new("missing"), Some(&path)),
            Err(ProgramError::NotFound(_))
        ));
        // Only non-runnable candidates: permission denied (126).
        let only_a = a.path().as_os_str();
        let e = resolve(OsStr::new("tool"), Some(only_a)).unwrap_err();
        assert!(matches!(e, ProgramError::PermissionDenied(_)));
        assert_eq!(e.exit_status(), 126);
        assert!(matches!(
            resolve(OsStr::new("dir"), Some(only_a)),
            Err(ProgramError::PermissionDenied(_))
        ));
        // With a slash: used as is, never searched.
        assert_eq!(resolve(exe.as_os_str(), Some(OsStr::new(""))).unwrap(), exe);
        let e = resolve(OsStr::new("./surely/not/here"), Some(&path)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "./surely/not/here: No such file or directory"
        );
        assert_eq!(e.exit_status(), 127);
        let e = resolve(OsStr::new(""), Some(&path)).unwrap_err();
        assert_eq!(e.exit_status(), 127);
        assert_eq!(
            resolve(OsStr::new("nope"), Some(&path))
                .unwrap_err()
                .to_string(),
            "nope: command not found"
        );
    }

    #[test]
    fn empty_path_entry_is_the_current_directory() {
        // Only checks the candidate construction: "" maps to "./name".
        let e = resolve(OsStr::new("margay-no-such-tool"), Some(OsStr::new(":"))).unwrap_err();
        assert!(matches!(e, ProgramError::NotFound(_)));
    }

    #[test]
    fn unrunnable_files_are_rejected_with_126() {
        let d = tempfile::tempdir().unwrap();
        let script = file(d.path(), "script", 0o755, b"#!/bin/sh\necho hi\n");
        let e = prepare(script.as_os_str(), None).unwrap_err();
        assert!(matches!(e, ProgramError::Rejected(..)), "{e}");
        assert!(e.to_string().contains("cannot execute"), "{e}");
        assert_eq!(e.exit_status(), 126);

        let e = prepare(d.path().as_os_str(), None).unwrap_err();
        assert!(matches!(e, ProgramError::IsDirectory(_)), "{e}");

        let noexec = file(d.path(), "noexec", 0o644, b"\x7fELF");
        assert!(matches!(
            prepare(noexec.as_os_str(), None),
            Err(ProgramError::PermissionDenied(_))
        ));
        assert!(matches!(
            prepare(OsStr::new("/dev/null"), None),
            Err(ProgramError::NotRegular(_)) | Err(ProgramError::PermissionDenied(_))
        ));
    }

    #[test]
    fn a_static_binary_is_accepted_and_canonicalized() {
        // Debian's busybox-static, when installed; otherwise nothing to check here.
        let Some(bb) = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("bb");
        std::os::unix::fs::symlink(bb, &link).unwrap();
        match prepare(link.as_os_str(), None) {
            Ok(p) => {
                assert!(p.path.is_absolute());
                assert_ne!(p.path, link);
                assert_eq!(p.typed, link.as_os_str());
            }
            // A dynamically linked busybox is rejected with a reason.
            Err(e) => assert!(e.to_string().contains("cannot execute"), "{e}"),
        }
    }
}
