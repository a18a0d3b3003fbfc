//! A training run's checkpoints, safe against a crash at any moment.
//!
//! Every finished epoch `N` is one generation, the folder `epoch-NNNN/` of the run's
//! checkpoint folder: `last.safetensors` (the weights after epoch N), `optim.bin` (the
//! optimizer's state), `best.safetensors` (the best weights so far by validation loss) and,
//! with `ema` the moving average of the weights, `ema.safetensors` ([`crate::ema`]), and,
//! written last, `state.json` ([`TrainState`]: epochs, best-so-far, plateau rate, parameter
//! ids) recording the blake3 hashes of the other files. Each file is written atomically
//! (`fer_core::atomic`: temporary file, fsync, rename, fsync of the folder), so a generation
//! is complete exactly when its `state.json` exists and the files' hashes match it.
//!
//! The previous generation is kept until the next one is complete (two are kept), so a
//! generation torn by a kill, or mismatched (weights of one epoch with another's state, a
//! file missing or cut short), is never used: [`latest_good`] falls back to the newest
//! complete generation and removes the broken ones, with a warning, and if none is left the
//! run starts clean. Nothing is ever resumed from a mixed set, and nothing wedges.
//!
//! A resumed run equals an uninterrupted one because everything its next epochs depend on is
//! either saved here or derived from the seed and the epoch: the weights with BatchNorm's
//! running statistics (`last.safetensors`), Adam's moments and step counts keyed by the
//! parameter ids the state restores (`optim.bin`), the moving average (`ema.safetensors`),
//! the epochs so far, best-so-far loss and
//! epoch, patience counter and plateau rate (`state.json`); the data order (a shuffle seeded by
//! seed and epoch), augmentation and mixup (seeded by epoch and batch), dropout masks (seeded by step
//! and part) and the cosine rate (a function of the step) are recomputed. The backend's RNG
//! only initializes the network, which a resumed run overwrites.

use crate::TrainError;
use crate::train::TrainState;
use burn::optim::ModuleOptimizer;
use fer_core::atomic;
use fer_models::arch::Net;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The weights after the generation's epoch.
pub const LAST: &str = "last.safetensors";
/// The best weights so far.
pub const BEST: &str = "best.safetensors";
/// The optimizer's state (burnpack).
pub const OPTIM: &str = "optim.bin";
/// The moving average of the weights (`ema` runs only; [`crate::ema`]).
pub const EMA: &str = "ema.safetensors";
/// The run's state and the hashes of the three files above; written last.
pub const STATE: &str = "state.json";
/// The files every generation's `state.json` vouches for (and [`EMA`] in `ema` runs).
pub const FILES: [&str; 3] = [LAST, OPTIM, BEST];
/// Generations kept: the newest complete one and the one before it.
const KEEP: usize = 2;

/// The folder of generation `epoch` (the state after that many epochs).
pub fn generation_dir(ckpt: &Path, epoch: usize) -> PathBuf {
    ckpt.join(format!("epoch-{epoch:04}"))
}

/// The generation folders under `ckpt`, newest first (missing folder: none).
pub fn generations(ckpt: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let entries = match std::fs::read_dir(ckpt) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fer_core::Error::io(ckpt, e).into()),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| fer_core::Error::io(ckpt, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("epoch-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort_by_key(|g| std::cmp::Reverse(g.0));
    Ok(out)
}

/// Read and check generation `epoch` in `dir`: its `state.json` parses, covers exactly
/// `epoch` epochs, and names the hashes of files that are all there and match. `Err` says
/// what is wrong.
pub fn verify(dir: &Path, epoch: usize) -> Result<TrainState, String> {
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no {STATE} (the epoch's write did not finish)"),
        _ => format!("{STATE}: {e}"),
    })?;
    let st: TrainState =
        serde_json::from_str(&text).map_err(|e| format!("{STATE} is not valid: {e}"))?;
    if st.epochs.len() != epoch {
        return Err(format!(
            "{STATE} records {} epochs, the folder is epoch {epoch}",
            st.epochs.len()
        ));
    }
    // Every generation's files, and any other its state vouches for (the average of an `ema`
    // run).
    let extra = st
        .files
        .keys()
        .map(String::as_str)
        .filter(|f| !FILES.contains(f));
    for f in FILES.into_iter().chain(extra) {
        let want = st
            .files
            .get(f)
            .ok_or_else(|| format!("{STATE} records no hash for {f}"))?;
        let path = dir.join(f);
        if !path.is_file() {
            return Err(format!("{f} is missing"));
        }
        let have = fer_core::hash::hash_file(&path).map_err(|e| e.to_string())?;
        if &have != want {
            return Err(format!(
                "{f} does not match its hash in {STATE} (cut short, or from another epoch)"
            ));
        }
    }
    Ok(st)
}

/// The newest complete generation under `ckpt` that `load` accepts (`load` reads the weights
/// and optimizer of a verified generation; an error there also counts as a broken generation).
/// Broken generations newer than the one returned are removed, and each is reported through
/// `warn`; `None` (every generation broken or none there) leaves the folder without any, for a
/// clean start.
pub fn latest_good<T>(
    ckpt: &Path,
    mut load: impl FnMut(&Path, TrainState) -> Result<T, TrainError>,
    warn: &dyn Fn(&str),
) -> Result<Option<(PathBuf, T)>, TrainError> {
    atomic::remove_temps(ckpt)?;
    let gens = generations(ckpt)?;
    let mut broken = Vec::new();
    let mut found = None;
    for (epoch, dir) in &gens {
        let why = match verify(dir, *epoch) {
            Ok(st) => match load(dir, st) {
                Ok(t) => {
                    found = Some((dir.clone(), t));
                    break;
                }
                Err(e) => fer_core::cli::error_chain(&e),
            },
            Err(why) => why,
        };
        warn(&format!(
            "warning: {}: broken checkpoint, not used: {why}",
            dir.display()
        ));
        broken.push(dir.clone());
    }
    for dir in &broken {
        remove_dir(dir)?;
    }
    match &found {
        Some((dir, _)) if !broken.is_empty() => warn(&format!(
            "warning: resuming from the last complete checkpoint, {}",
            dir.display()
        )),
        None if !broken.is_empty() => warn(&format!(
            "warning: {}: no complete checkpoint left: training starts from scratch",
            ckpt.display()
        )),
        _ => {}
    }
    if !broken.is_empty() {
        atomic::sync_dir(ckpt)?;
    }
    Ok(found)
}

/// Write generation `state.epochs.len()`: the weights `last`, the optimizer, the best weights
/// (`best`: new best weights, or `None` to keep those of `prev`, the previous generation's
/// folder), the moving average `ema` when the run keeps one, then `state.json` with their
/// hashes (also set in `state.files`). Older generations beyond the two newest are removed
/// once it is complete. Returns its folder.
pub fn commit(
    ckpt: &Path,
    state: &mut TrainState,
    (last, optim): (&Net, &ModuleOptimizer),
    best: Option<&Net>,
    ema: Option<&Net>,
    prev: Option<&Path>,
) -> Result<PathBuf, TrainError> {
    let epoch = state.epochs.len();
    let dir = generation_dir(ckpt, epoch);
    // A folder of this epoch can only be a broken leftover: start it afresh.
    remove_dir(&dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| fer_core::Error::io(&dir, e))?;
    atomic::sync_dir(ckpt)?;
    fer_models::checkpoint::save_weights(last, &dir.join(LAST))?;
    let bytes = optim.into_bytes().map_err(|e| TrainError::Checkpoint {
        path: dir.join(OPTIM).display().to_string(),
        message: format!("cannot save optimizer state: {e}"),
    })?;
    atomic::write(&dir.join(OPTIM), &bytes)?;
    match (best, prev) {
        (Some(m), _) => fer_models::checkpoint::save_weights(m, &dir.join(BEST))?,
        (None, Some(p)) => link_or_copy(&p.join(BEST), &dir.join(BEST))?,
        (None, None) => {
            return Err(TrainError::Checkpoint {
                path: dir.join(BEST).display().to_string(),
                message: "no best weights yet and no earlier checkpoint to take them from".into(),
            });
        }
    }
    if let Some(m) = ema {
        fer_models::checkpoint::save_weights(m, &dir.join(EMA))?;
    }
    let mut files = BTreeMap::new();
    for f in FILES.into_iter().chain(ema.map(|_| EMA)) {
        files.insert(f.to_string(), fer_core::hash::hash_file(&dir.join(f))?);
    }
    state.files = files;
    let text = serde_json::to_string_pretty(&*state).expect("state serializes");
    atomic::write(&dir.join(STATE), text.as_bytes())?;
    for (_, old) in generations(ckpt)?.into_iter().skip(KEEP) {
        remove_dir(&old)?;
    }
    Ok(dir)
}

/// `to` as a hard link to `from` (an unchanged best checkpoint costs no copy), or a copy
/// written atomically where links are not supported.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), TrainError> {
    if std::fs::hard_link(from, to).is_ok() {
        atomic::sync_dir(to.parent().unwrap_or(Path::new(".")))?;
        return Ok(());
    }
    let bytes = std::fs::read(from).map_err(|e| fer_core::Error::io(from, e))?;
    atomic::write(to, &bytes)?;
    Ok(())
}

/// Remove a generation folder (or whatever else took its name: a file is removed too).
fn remove_dir(dir: &Path) -> Result<(), TrainError> {
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    let removed = if is_dir {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::remove_file(dir)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(fer_core::Error::io(dir, e).into())
        }
        _ => Ok(()),
    }
}

/// Remove a resume folder (missing: nothing to do).
pub fn remove_resume(dir: &Path) -> Result<(), fer_core::Error> {
    fer_core::stage::remove_dir_if_exists(dir)
}
