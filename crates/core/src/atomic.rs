//! Atomic file writes: a file is written under a temporary name in its own folder, flushed to
//! disk (`fsync`), renamed over the target, and the folder is flushed so that the rename itself
//! survives a crash. A reader (or a process killed at any moment and run again) sees either the
//! old file or the new one, never a part of it; a killed writer leaves at most a temporary
//! file, which [`is_temp`] recognises.
//!
//! # Temporary names
//! `.<file name>.tmp-<pid>.<n>.<nonce>@<host>`: the writer's process id, a per-process
//! counter, a random nonce (so no two writes, of one process or of two, share a name, and
//! no one can guess a name ahead of a write) and the host's name ([`host_name`]), so that a
//! folder shared by several hosts (a network run cache or artifacts folder) can tell whose a
//! leftover is. The temporary is created exclusively (`O_CREAT | O_EXCL`), which never follows
//! a symbolic link planted at its name. Older versions wrote `.<file name>.tmp-<pid>`; both
//! are recognised.
//!
//! # Stale temporaries ([`TempOwner::is_stale`])
//! A leftover is removed only when its writer is surely gone: one written on this host by a
//! process that no longer runs (`/proc/<pid>` on Linux), or without a process id; one written
//! by another host (whose processes this host cannot see) only once it is older than
//! [`STALE_AGE`] (a day); any over that age (a live pid by then is a reused one).

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The marker in temporary names: `.<file name>.tmp-<pid>...`.
const TEMP_MARK: &str = ".tmp-";

/// The age beyond which any temporary is taken as abandoned (and the only test that applies
/// to one written by another host): 24 hours.
pub const STALE_AGE: Duration = Duration::from_secs(24 * 3600);

/// The longest host name kept in temporary names.
const HOST_MAX: usize = 64;

/// The longest part of a file name kept in its temporary name (file names are at most 255
/// bytes; the rest of a temporary name takes under 110).
const NAME_MAX: usize = 120;

/// This host's name as temporary names carry it: `/proc/sys/kernel/hostname` (Linux), else
/// `$HOSTNAME`, else `unknown-host`; characters other than ASCII letters, digits, `.`, `-`
/// and `_` become `_`, and it is cut to 64 bytes.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        sanitize_host(&raw)
    })
}

/// A host name made safe for a file name (see [`host_name`]); empty: `unknown-host`.
pub fn sanitize_host(raw: &str) -> String {
    let s: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(HOST_MAX)
        .collect();
    if s.is_empty() {
        "unknown-host".into()
    } else {
        s
    }
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= HOST_MAX
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `<pid>.<n>.<nonce>`: unique to this call within this process (the counter), and not
/// guessable ahead of it (the nonce: std's per-process random hash keys over the counter and
/// the time in nanoseconds).
pub fn unique_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write_u64(n);
    h.write_u128(nanos);
    format!("{}.{n}.{:016x}", std::process::id(), h.finish())
}

/// Who wrote a temporary file or folder, as its name tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempOwner {
    /// The writer's process id (`None`: a name without one, from an older version).
    pub pid: Option<u32>,
    /// The writer's host ([`host_name`]); `None`: an older name, taken as this host's.
    pub host: Option<String>,
}

impl TempOwner {
    /// Parse the tail of a temporary name after its marker: `<pid>[.<anything>][@<host>]`, or
    /// an empty tail (no pid). A pid that is not a number counts as none.
    pub fn parse(tail: &str) -> TempOwner {
        let (left, host) = match tail.rsplit_once('@') {
            Some((l, h)) if is_host(h) => (l, Some(h.to_string())),
            _ => (tail, None),
        };
        let pid = left.split('.').next().and_then(|p| p.parse().ok());
        TempOwner { pid, host }
    }

    /// Written on this host (or by an older version, which did not say)?
    pub fn on_this_host(&self) -> bool {
        self.host.as_deref().is_none_or(|h| h == host_name())
    }

    /// Written by this very process?
    pub fn is_this_process(&self) -> bool {
        self.on_this_host() && self.pid == Some(std::process::id())
    }

    /// May a temporary of this owner, `age` old (`None`: unknown), be removed as abandoned?
    /// Never one of this process's; on this host, when its process is gone (or it names
    /// none); on another host, only past [`STALE_AGE`]; anywhere, past [`STALE_AGE`].
    pub fn is_stale(&self, age: Option<Duration>) -> bool {
        if self.is_this_process() {
            return false;
        }
        let old = age.is_some_and(|a| a > STALE_AGE);
        if !self.on_this_host() {
            return old;
        }
        old || self.pid.is_none_or(|p| !pid_alive(p))
    }
}

/// Is process `pid` of this host alive? On Linux by `/proc/<pid>`; elsewhere it is taken as
/// alive (a leftover is then removed once it is [`STALE_AGE`] old).
pub fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// How long ago a file or folder was last modified (`None` when unknown or in the future).
pub fn age_of(path: &Path) -> Option<Duration> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
}

/// A fresh temporary path [`write`] and [`write_with`] may use for `path`:
/// `.<name>.tmp-<pid>.<n>.<nonce>@<host>` in the same folder (a rename within one file
/// system is atomic). Every call gives another name.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cut = name.len().min(NAME_MAX);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    path.with_file_name(format!(
        ".{}{TEMP_MARK}{}@{}",
        &name[..cut],
        unique_tag(),
        host_name()
    ))
}

/// Whether a file name is one of this module's temporary names (a write that never finished),
/// new (`.<name>.tmp-<pid>.<n>.<nonce>@<host>`) or old (`.<name>.tmp-<pid>`).
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// The writer of a temporary name ([`is_temp`]); `None` if `name` is not one.
pub fn temp_owner(name: &str) -> Option<TempOwner> {
    if !is_temp(name) {
        return None;
    }
    // The host (which has no `@`) comes off first: the file's own name may hold `@` or the
    // marker.
    let (left, host) = match name.rsplit_once('@') {
        Some((l, h)) if is_host(h) && l.contains(TEMP_MARK) => (l, Some(h)),
        _ => (name, None),
    };
    let (_, tail) = left.rsplit_once(TEMP_MARK)?;
    let mut owner = TempOwner::parse(tail);
    owner.host = host.map(str::to_string);
    Some(owner)
}

/// Create a fresh temporary file for `path`, exclusively (`create_new`: it fails rather than
/// open an existing file or follow a symbolic link at that name); a name taken by someone
/// else is retried with another.
fn create_temp(path: &Path) -> Result<(PathBuf, std::fs::File)> {
    let mut tries = 0;
    loop {
        let tmp = temp_path(path);
        match std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
            Err(e) => return Err(Error::io(tmp, e)),
        }
    }
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, mut f) = create_temp(path)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).at(&tmp);
    drop(f);
    let done = written
        .and_then(|()| std::fs::rename(&tmp, path).at(path))
        .and_then(|()| sync_dir(path.parent().unwrap_or(Path::new("."))));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Atomically replace `path` by what `fill` writes to the temporary path it is given (for
/// writers that only take a path, such as burn's stores). The temporary file already exists
/// when `fill` is called (created empty and exclusively, so that its name cannot be taken
/// over by a symbolic link): `fill` must overwrite it, truncating it (`File::create`) or
/// replacing it (burn's `SafetensorsStore` with `overwrite(true)` renames its own scratch file
/// over it), not insist on creating it. The temporary file is removed when `fill` fails.
pub fn write_with<E: From<Error>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let (tmp, f) = create_temp(path)?;
    drop(f);
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

/// Remove the temporary files a killed writer left in `dir` (not recursive): this process's
/// own (call it before writing there) and the stale ones of others ([`TempOwner::is_stale`]:
/// a live writer on this host, or a writer on another host under a day ago, keeps its file).
/// Missing folder: nothing to do.
pub fn remove_temps(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for e in entries {
        let e = e.at(dir)?;
        let Some(owner) = temp_owner(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let path = e.path();
        if e.file_type().at(&path)?.is_file()
            && (owner.is_this_process() || owner.is_stale(age_of(&path)))
        {
            std::fs::remove_file(&path).at(&path)?;
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
