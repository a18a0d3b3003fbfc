//! The pipeline lock: one stage binary at a time per pipeline.
//!
//! Two runs of one pipeline (two `make all`, or a stage started by hand beside `make`) would
//! otherwise share the stages' temporary and resume folders and corrupt each other. Every stage
//! binary takes an advisory lock on `<artifacts>/<pipeline>/.lock` (the operating system's file
//! lock, `flock` on Unix, so a killed holder releases it at once) before it reads its inputs,
//! and holds it until it exits.
//!
//! Rules:
//! - the holder writes `pid <pid>, <binary>, since <time>` into the file, so a waiting run can
//!   name it;
//! - by default a second run waits for the lock, saying once whom it waits for, and then goes
//!   on (it then finds most stages up to date and skips them);
//! - with `--no-wait` it exits at once with an error naming the holder (exit code 2).

use crate::error::{Error, IoContext, Result};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The lock file's name inside `<artifacts>/<pipeline>/`.
pub const LOCK_FILE: &str = ".lock";

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contention {
    /// Wait until it is released (after one line on stderr naming the holder).
    Wait,
    /// Fail at once, naming the holder.
    Fail,
}

/// A held pipeline lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct PipelineLock {
    file: File,
    path: PathBuf,
}

/// The lock file of `pipeline` under `artifacts`.
pub fn lock_path(artifacts: &Path, pipeline: &str) -> PathBuf {
    artifacts.join(pipeline).join(LOCK_FILE)
}

fn holder_of(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another process".to_string()
    } else {
        s.to_string()
    }
}

impl PipelineLock {
    /// Take the lock of `pipeline` for the program `who` (its binary name).
    pub fn acquire(
        artifacts: &Path,
        pipeline: &str,
        who: &str,
        contention: Contention,
    ) -> Result<PipelineLock> {
        let path = lock_path(artifacts, pipeline);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder_of(&mut file);
                match contention {
                    Contention::Fail => {
                        return Err(Error::Other(format!(
                            "{}: pipeline `{pipeline}` is in use by {holder}; wait for it to finish (or run without --no-wait to wait)",
                            path.display()
                        )));
                    }
                    Contention::Wait => {
                        eprintln!(
                            "[{pipeline}] waiting for {holder} to finish (lock {})",
                            path.display()
                        );
                        file.lock().at(&path)?;
                    }
                }
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        let note = format!("pid {}, {who}, since {stamp}\n", std::process::id());
        file.set_len(0).at(&path)?;
        file.seek(SeekFrom::Start(0)).at(&path)?;
        file.write_all(note.as_bytes()).at(&path)?;
        Ok(PipelineLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        // Clear the note first so a run that reads it after the release never names a
        // finished process; the lock itself goes with the file handle.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_fails_naming_the_first_and_gets_it_after_release() {
        let root = tempfile::tempdir().unwrap();
        let first = PipelineLock::acquire(root.path(), "p", "fer-one", Contention::Fail).unwrap();
        let err = PipelineLock::acquire(root.path(), "p", "fer-two", Contention::Fail)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fer-one"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(".lock"), "{err}");
        // Another pipeline is not blocked.
        let other = PipelineLock::acquire(root.path(), "q", "fer-two", Contention::Fail);
        assert!(other.is_ok());
        drop(first);
        let second = PipelineLock::acquire(root.path(), "p", "fer-two", Contention::Fail).unwrap();
        let note = std::fs::read_to_string(second.path()).unwrap();
        assert!(note.contains("fer-two"), "{note}");
    }

    #[test]
    fn a_waiting_holder_gets_the_lock_when_the_first_lets_go() {
        let root = tempfile::tempdir().unwrap();
        let first = PipelineLock::acquire(root.path(), "p", "fer-one", Contention::Wait).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = root.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let l = PipelineLock::acquire(&dir, "p", "fer-two", Contention::Wait).unwrap();
            tx.send(()).unwrap();
            drop(l);
        });
        // Still held: the waiter must not get through.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err()
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the waiter gets the lock once it is released");
        waiter.join().unwrap();
    }
}
