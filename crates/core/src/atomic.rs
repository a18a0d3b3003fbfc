//! Atomic file writes: a file is written under a temporary name in its own folder (the name
//! carries the process id, so two processes never share one), flushed to disk (`fsync`),
//! renamed over the target, and the folder is flushed so that the rename itself survives a
//! crash. A reader (or a process killed at any moment and run again) sees either the old file
//! or the new one, never a part of it; a killed writer leaves at most a temporary file, which
//! [`is_temp`] recognises.

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The marker in temporary names: `.<file name>.tmp-<pid>`.
const TEMP_MARK: &str = ".tmp-";

/// The temporary path [`write`] and [`write_with`] use for `path`: `.<name>.tmp-<pid>` in
/// the same folder (a rename within one file system is atomic).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_MARK}{}", std::process::id()))
}

/// Whether a file name is one of this module's temporary names (a write that never finished).
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).at(tmp)?;
        f.write_all(bytes).at(tmp)?;
        Ok(())
    })
}

/// Atomically replace `path` by what `fill` writes to the temporary path it is given (for
/// writers that only take a path, such as burn's stores). The temporary file is removed when
/// `fill` fails.
pub fn write_with<E: From<Error>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let tmp = temp_path(path);
    let done = fill(&tmp).and_then(|()| {
        sync_file(&tmp)?;
        std::fs::rename(&tmp, path).at(path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        Ok(())
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Flush a file's contents to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).at(path)?.sync_all().at(path)
}

/// Flush a folder's entries (names created, renamed or removed in it) to disk. A no-op where
/// folders cannot be opened for syncing (Windows).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(d).at(d)?.sync_all().at(d)?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Remove the temporary files a killed writer left in `dir` (not recursive). Missing folder:
/// nothing to do.
pub fn remove_temps(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for e in entries {
        let e = e.at(dir)?;
        if is_temp(&e.file_name().to_string_lossy()) && e.file_type().at(e.path())?.is_file() {
            std::fs::remove_file(e.path()).at(e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_leave_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["state.json".to_string()]);
        // A failing writer leaves the old file and no temporary behind.
        let r: Result<()> = write_with(&p, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Other("disk full".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        // A killed writer's leftover is recognised and removed.
        let left = temp_path(&p);
        assert!(is_temp(&left.file_name().unwrap().to_string_lossy()));
        std::fs::write(&left, b"torn").unwrap();
        remove_temps(d.path()).unwrap();
        assert!(!left.exists() && p.exists());
    }
}
