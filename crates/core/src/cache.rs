//! The run cache's housekeeping: checking an entry, quarantining a bad one, leftover
//! temporary folders, and the size bound.
//!
//! Layout: `<cache>/<stage>/<signature>/` holds a stage's outputs and its `manifest.json`
//! ([`crate::stage`] stores and restores them). Beside it:
//! - `<cache>/quarantine/<stage>-<signature>-<unix time>-<pid>.<n>.<nonce>@<host>/`: an
//!   entry that failed its check (unreadable manifest, another signature, a missing or changed
//!   output, an output path that leaves the entry), moved aside so it is never read again and
//!   can be looked at; pruned first;
//! - `<signature>.tmp<pid>@<host>` (older versions: `<signature>.tmp<pid>`): an entry being
//!   stored by process `pid` of `host`; one its writer left is removed by the next store when
//!   it is stale ([`crate::atomic::TempOwner::is_stale`]: a dead process of this host, or over
//!   a day old, the only test for another host's, whose processes this host cannot see).
//!
//! An entry's output paths must stay inside its folder ([`crate::manifest::resolve_output`]):
//! one that is absolute, goes up (`..`) or resolves through a symbolic link to outside is a
//! bad entry like any other, quarantined and never read.
//!
//! The bound (`FER_CACHE_MAX`, e.g. `20G`; default [`DEFAULT_MAX_BYTES`]; `none` for no bound)
//! is enforced after each store: quarantined entries go first, then the least recently used
//! entries (by the modification time of their manifest, which a restore refreshes), oldest
//! first, never the entry just stored.

use crate::atomic::{TempOwner, age_of, host_name};
use crate::error::{Error, IoContext, Result};
use crate::hash;
use crate::manifest::{MANIFEST_FILE, Manifest, resolve_output};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The default size bound of the run cache: 20 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 << 30;

/// The quarantine folder under the cache root.
pub const QUARANTINE: &str = "quarantine";

/// What a cache folder holds for a signature.
#[derive(Debug)]
pub enum Entry {
    /// Nothing is stored for it.
    Absent,
    /// A complete entry whose outputs all have their recorded sizes and hashes.
    Good(Manifest),
    /// Something is stored but fails the check: why.
    Bad(String),
}

/// Check the entry in `cdir` for signature `sig`.
pub fn check(cdir: &Path, sig: &str) -> Entry {
    let mpath = cdir.join(MANIFEST_FILE);
    if !cdir.exists() {
        return Entry::Absent;
    }
    let m = match Manifest::read(&mpath) {
        Ok(m) => m,
        Err(e) => return Entry::Bad(format!("manifest: {e}")),
    };
    if m.signature != sig {
        return Entry::Bad(format!("manifest has signature {}", m.signature));
    }
    match first_bad_output(cdir, &m) {
        Some(why) => Entry::Bad(why),
        None => Entry::Good(m),
    }
}

/// The first output of `m` in `dir` that is missing, differs from its record or whose path
/// leaves `dir` ([`resolve_output`]), described.
pub fn first_bad_output(dir: &Path, m: &Manifest) -> Option<String> {
    for o in &m.outputs {
        let p = match resolve_output(dir, &o.path) {
            Ok(p) => p,
            Err(why) => return Some(why),
        };
        match std::fs::metadata(&p) {
            Err(_) => return Some(format!("{}: missing", o.path)),
            Ok(md) if md.len() != o.bytes => {
                return Some(format!(
                    "{}: {} bytes, {} recorded",
                    o.path,
                    md.len(),
                    o.bytes
                ));
            }
            Ok(_) => {}
        }
        match hash::hash_file(&p) {
            Ok(h) if h == o.hash => {}
            Ok(_) => return Some(format!("{}: content changed", o.path)),
            Err(e) => return Some(format!("{}: {e}", o.path)),
        }
    }
    None
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Move the bad entry `cdir` (of `stage`) into the quarantine folder; returns where it went.
pub fn quarantine(root: &Path, stage: &str, cdir: &Path) -> Result<PathBuf> {
    let q = root.join(QUARANTINE);
    std::fs::create_dir_all(&q).at(&q)?;
    let name = cdir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // Unique (pid, counter, nonce, host): two entries moved aside in one second, by one
    // process or by two hosts sharing the cache, never collide.
    let dst = q.join(format!(
        "{stage}-{name}-{}-{}@{}",
        unix_now(),
        crate::atomic::unique_tag(),
        host_name()
    ));
    std::fs::rename(cdir, &dst).at(cdir)?;
    Ok(dst)
}

pub use crate::atomic::pid_alive;

/// This process's temporary folder for `stage` in `artifacts/<pipeline>/`:
/// `.<stage>.tmp.<pid>@<host>`.
pub fn stage_tmp_name(stage: &str) -> String {
    format!(".{stage}.tmp.{}@{}", std::process::id(), host_name())
}

/// A stage's temporary folder in `artifacts/<pipeline>/` and who made it:
/// `.<stage>.tmp.<pid>@<host>`, `.<stage>.tmp.<pid>` (older, no host: taken as this host's),
/// or the bare `.<stage>.tmp` older versions used (no pid); `None` if `name` is not one.
pub fn stage_tmp(stage: &str, name: &str) -> Option<TempOwner> {
    let bare = format!(".{stage}.tmp");
    if name == bare {
        return Some(TempOwner {
            pid: None,
            host: None,
        });
    }
    let owner = TempOwner::parse(name.strip_prefix(&bare)?.strip_prefix('.')?);
    owner.pid.is_some().then_some(owner)
}

/// This process's temporary folder for storing the cache entry `sig`:
/// `<sig>.tmp<pid>@<host>`.
pub fn cache_tmp_name(sig: &str) -> String {
    format!("{sig}.tmp{}@{}", std::process::id(), host_name())
}

/// A cache entry being stored, and by whom: `<signature>.tmp<pid>@<host>`, or the older
/// `<signature>.tmp<pid>` (no host: taken as this host's); `None` if `name` is not one.
pub fn cache_tmp(name: &str) -> Option<TempOwner> {
    // The host (no `@` in it) comes off first: it may itself hold `.tmp`.
    let (left, host) = match name.rsplit_once('@') {
        Some((l, h)) => (l, Some(h.to_string())),
        None => (name, None),
    };
    let (_, pid) = left.rsplit_once(".tmp")?;
    let pid: u32 = pid.parse().ok()?;
    Some(TempOwner {
        pid: Some(pid),
        host,
    })
}

/// Remove the folders in `dir` that `which` names as stale temporaries
/// ([`TempOwner::is_stale`]: of a process of this host that is gone, or without a pid, or of
/// another host and over a day old, or over a day old anyway); never this process's. Returns
/// how many were removed. One that cannot be removed is left as it is.
pub fn remove_stale_tmp(dir: &Path, which: impl Fn(&str) -> Option<TempOwner>) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(owner) = which(&name) else {
            continue;
        };
        if owner.is_stale(age_of(&e.path())) && std::fs::remove_dir_all(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Parse a size: a number of bytes with an optional `K`, `M`, `G` or `T` (powers of 1024,
/// an optional `B` or `iB` after it); `none` means no bound.
pub fn parse_size(s: &str) -> Result<Option<u64>> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || {
        Error::Other(format!(
            "FER_CACHE_MAX / --cache-max: `{s}` is not a size (say 500M, 20G, or none)"
        ))
    };
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let n: f64 = digits.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    Ok(Some((n * (1u64 << shift) as f64) as u64))
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// One prunable folder of the cache.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    bytes: u64,
    quarantined: bool,
    used: SystemTime,
}

/// The order in which entries are pruned: quarantined ones first, then least recently used
/// first, ties by path (so the order never depends on the directory listing).
fn prune_order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.quarantined
        .cmp(&a.quarantined)
        .then(a.used.cmp(&b.used))
        .then(a.path.cmp(&b.path))
}

/// Remove entries of the cache at `root` until it holds at most `max` bytes, by
/// [`prune_order`], never `keep`. Returns the removed folders.
pub fn prune(root: &Path, max: u64, keep: &Path) -> Vec<PathBuf> {
    let mut all: Vec<Candidate> = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    for stage in rd.flatten().filter(|e| e.path().is_dir()) {
        let quarantined = stage.file_name() == QUARANTINE;
        let Ok(entries) = std::fs::read_dir(stage.path()) else {
            continue;
        };
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            // Another process may be storing it right now.
            if cache_tmp(&e.file_name().to_string_lossy()).is_some() {
                continue;
            }
            let path = e.path();
            let used = std::fs::metadata(path.join(MANIFEST_FILE))
                .or_else(|_| e.metadata())
                .and_then(|m| m.modified())
                .unwrap_or(UNIX_EPOCH);
            all.push(Candidate {
                bytes: dir_size(&path),
                path,
                quarantined,
                used,
            });
        }
    }
    let mut total: u64 = all.iter().map(|c| c.bytes).sum();
    all.sort_by(prune_order);
    let mut removed = Vec::new();
    for c in all {
        if total <= max {
            break;
        }
        if c.path == keep {
            continue;
        }
        if std::fs::remove_dir_all(&c.path).is_ok() {
            total = total.saturating_sub(c.bytes);
            removed.push(c.path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_none() {
        assert_eq!(parse_size("1024").unwrap(), Some(1024));
        assert_eq!(parse_size("2K").unwrap(), Some(2048));
        assert_eq!(parse_size("500M").unwrap(), Some(500 << 20));
        assert_eq!(parse_size("20GiB").unwrap(), Some(20 << 30));
        assert_eq!(parse_size("1.5g").unwrap(), Some(3 << 29));
        assert_eq!(parse_size("none").unwrap(), None);
        let e = parse_size("lots").unwrap_err().to_string();
        assert!(e.contains("FER_CACHE_MAX") && e.contains("lots"), "{e}");
        assert!(parse_size("-3G").is_err());
    }

    #[test]
    fn quarantined_go_first_then_least_recently_used() {
        let t = |s: u64| UNIX_EPOCH + std::time::Duration::from_secs(s);
        let c = |p: &str, q: bool, used: u64| Candidate {
            path: PathBuf::from(p),
            bytes: 1,
            quarantined: q,
            used: t(used),
        };
        let mut v = [
            c("s/new", false, 30),
            c("s/old", false, 10),
            c("quarantine/x", true, 50),
            c("s/b-tie", false, 20),
            c("s/a-tie", false, 20),
        ];
        v.sort_by(prune_order);
        let order: Vec<_> = v
            .iter()
            .map(|c| c.path.to_string_lossy().to_string())
            .collect();
        assert_eq!(
            order,
            ["quarantine/x", "s/old", "s/a-tie", "s/b-tie", "s/new"]
        );
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let mine = format!(".s.tmp.{}", std::process::id());
        // A pid far above any pid_max: never alive.
        for name in [
            ".s.tmp",
            ".s.tmp.4294967",
            mine.as_str(),
            ".other.tmp.4294967",
        ] {
            std::fs::create_dir_all(d.path().join(name)).unwrap();
        }
        let n = remove_stale_tmp(d.path(), |name| stage_tmp("s", name));
        assert_eq!(n, 2);
        assert!(d.path().join(&mine).exists());
        assert!(d.path().join(".other.tmp.4294967").exists());
        assert!(!d.path().join(".s.tmp").exists());
        assert_eq!(
            cache_tmp("abc.tmp12"),
            Some(TempOwner {
                pid: Some(12),
                host: None
            })
        );
        assert_eq!(cache_tmp("abc"), None);
    }
}
