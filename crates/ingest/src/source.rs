//! Readers for the two public FER2013 layouts. File-level problems (undecodable, wrong size,
//! bad CSV row) are returned as rejects so `on_bad` decides; layout problems (missing folder,
//! unknown class folder) are errors.

use crate::IngestError;
use fer_core::{Emotion, IMAGE_SIDE, Split};
use image::imageops::FilterType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// One image as read from the source, before sampling and the val split.
#[derive(Debug, Clone)]
pub struct Raw {
    pub id: String,
    /// `Train` or `Test` (val is carved later).
    pub split: Split,
    pub usage: String,
    pub emotion: Emotion,
    pub pixels: Vec<u8>,
    pub source: String,
    /// `fer2013.csv`'s data row (0-based; FERPlus's row of the image), `None` for files.
    pub csv_row: Option<usize>,
    /// Filled by [`crate::labels::attach`]: FERPlus's label and votes.
    pub ferplus_label: Option<u8>,
    pub ferplus_votes: Option<fer_core::ferplus::Votes>,
}

/// A file or row that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub images: Vec<Raw>,
    pub rejects: Vec<Reject>,
}

/// How images that are not 48x48 are handled.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    pub resize: bool,
    pub filter: FilterType,
}

/// Decode bytes to 48x48 8-bit gray (colour converted with the `image` crate's luma weights).
pub fn decode_gray(bytes: &[u8], is_jpeg: bool, sizing: Sizing) -> Result<Vec<u8>, String> {
    if is_jpeg {
        // A JPEG ends with the EOI marker; decoders pad a truncated stream silently.
        let end = bytes
            .iter()
            .rposition(|&b| b != 0)
            .map(|i| i + 1)
            .unwrap_or(0);
        if end < 4 || bytes[..2] != [0xFF, 0xD8] || bytes[end - 2..end] != [0xFF, 0xD9] {
            return Err("truncated or not a JPEG (no start/end marker)".into());
        }
    }
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let gray = img.to_luma8();
    let (w, h) = gray.dimensions();
    let side = IMAGE_SIDE as u32;
    if (w, h) == (side, side) {
        return Ok(gray.into_raw());
    }
    if !sizing.resize {
        return Err(format!(
            "image is {w}x{h}, expected {side}x{side} (set resize = true in [ingest] to resize)"
        ));
    }
    Ok(image::imageops::resize(&gray, side, side, sizing.filter).into_raw())
}

fn usage_of(stem: &str, split: Split) -> String {
    for u in ["Training", "PublicTest", "PrivateTest"] {
        if stem.starts_with(u) {
            return u.to_string();
        }
    }
    match split {
        Split::Train => "Training".into(),
        _ => "Test".into(),
    }
}

/// The files of the Kaggle layout: `(split, emotion, path)` sorted by path.
pub fn list_folder_layout(root: &Path) -> Result<Vec<(Split, Emotion, PathBuf)>, IngestError> {
    let mut out = Vec::new();
    for (dir, split) in [("train", Split::Train), ("test", Split::Test)] {
        let d = root.join(dir);
        if !d.is_dir() {
            return Err(IngestError::Layout(format!(
                "{}: folder not found (expected the Kaggle layout {dir}/<emotion>/*.jpg, or fer2013.csv)",
                d.display()
            )));
        }
        let mut classes: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| fer_core::Error::io(&d, e))?
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        classes.sort_by_key(|e| e.file_name());
        for c in classes {
            let cp = c.path();
            let name = c.file_name().to_string_lossy().to_string();
            if !cp.is_dir() {
                return Err(IngestError::Layout(format!(
                    "{}: unexpected file (expected only emotion folders in {dir}/)",
                    cp.display()
                )));
            }
            let emotion: Emotion = name.parse().map_err(|m: String| {
                IngestError::Layout(format!("{}: unknown class folder: {m}", cp.display()))
            })?;
            for f in fer_core::hash::list_files(&cp)? {
                out.push((split, emotion, f));
            }
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    Ok(out)
}

/// Read the Kaggle image folders (decoding in parallel).
pub fn read_folders(
    root: &Path,
    files: &[(Split, Emotion, PathBuf)],
    sizing: Sizing,
    progress: &indicatif::ProgressBar,
) -> Loaded {
    let results: Vec<Result<Raw, Reject>> = files
        .par_iter()
        .map(|(split, emotion, path)| {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .replace('\\', "/");
            let reject = |reason: String| Reject {
                file: path.display().to_string(),
                reason,
            };
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let is_jpeg = matches!(ext.as_str(), "jpg" | "jpeg");
            if !is_jpeg && ext != "png" {
                progress.inc(1);
                return Err(reject("not a .jpg, .jpeg or .png file".into()));
            }
            let out = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode_gray(&b, is_jpeg, sizing))
                .map_err(reject)
                .map(|pixels| {
                    let stem = path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string();
                    Raw {
                        usage: usage_of(&stem, *split),
                        // Kaggle reuses a few file names across class folders (for example
                        // train/neutral and train/surprise both have Training_52789098.jpg,
                        // different images), so the id keeps the class folder.
                        id: format!("{emotion}/{stem}"),
                        split: *split,
                        emotion: *emotion,
                        pixels,
                        source: rel,
                        csv_row: None,
                        ferplus_label: None,
                        ferplus_votes: None,
                    }
                });
            progress.inc(1);
            out
        })
        .collect();
    let mut loaded = Loaded::default();
    let mut seen = std::collections::HashMap::new();
    for r in results {
        match r {
            Ok(raw) => {
                if let Some(first) = seen.insert(raw.id.clone(), raw.source.clone()) {
                    loaded.rejects.push(Reject {
                        file: root.join(&raw.source).display().to_string(),
                        reason: format!("duplicate id `{}` (also {first})", raw.id),
                    });
                } else {
                    loaded.images.push(raw);
                }
            }
            Err(rej) => loaded.rejects.push(rej),
        }
    }
    loaded
}

/// Read the original `fer2013.csv` (`emotion,pixels,Usage`).
pub fn read_csv(path: &Path, progress: &indicatif::ProgressBar) -> Result<Loaded, IngestError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| IngestError::Layout(format!("{}: {e}", path.display())))?;
    let headers = rdr
        .headers()
        .map_err(|e| IngestError::Layout(format!("{}: {e}", path.display())))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                IngestError::Layout(format!(
                    "{}: no `{name}` column in the header (expected emotion,pixels,Usage)",
                    path.display()
                ))
            })
    };
    let (ce, cp, cu) = (col("emotion")?, col("pixels")?, col("Usage")?);
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        rows.push((i, line, rec));
    }
    progress.set_length(rows.len() as u64);
    let results: Vec<Result<Raw, Reject>> = rows
        .into_par_iter()
        .map(|(i, line, rec)| {
            let reject = |reason: String| Reject {
                file: format!("{}: line {line} (row {i})", path.display()),
                reason,
            };
            let out = (|| {
                let rec = rec.map_err(|e| format!("unreadable CSV row: {e}"))?;
                let get = |c: usize| {
                    rec.get(c)
                        .map(str::trim)
                        .ok_or_else(|| format!("only {} fields", rec.len()))
                };
                let e = get(ce)?;
                let emotion = e
                    .parse::<u8>()
                    .ok()
                    .and_then(Emotion::from_code)
                    .ok_or_else(|| format!("emotion `{e}` is not a code 0-6"))?;
                let usage = get(cu)?;
                let split = match usage {
                    "Training" => Split::Train,
                    "PublicTest" | "PrivateTest" => Split::Test,
                    u => {
                        return Err(format!(
                            "Usage `{u}` is not Training, PublicTest or PrivateTest"
                        ));
                    }
                };
                let mut pixels = Vec::with_capacity(IMAGE_SIDE * IMAGE_SIDE);
                for (k, tok) in get(cp)?.split_ascii_whitespace().enumerate() {
                    let v: u8 = tok
                        .parse()
                        .map_err(|_| format!("pixel {k} is `{tok}`, not a number 0-255"))?;
                    pixels.push(v);
                }
                if pixels.len() != IMAGE_SIDE * IMAGE_SIDE {
                    return Err(format!(
                        "{} pixels, expected {} ({IMAGE_SIDE}x{IMAGE_SIDE})",
                        pixels.len(),
                        IMAGE_SIDE * IMAGE_SIDE
                    ));
                }
                Ok(Raw {
                    id: format!("{usage}_row{i:05}"),
                    split,
                    usage: usage.to_string(),
                    emotion,
                    pixels,
                    source: format!("fer2013.csv:{line}"),
                    csv_row: Some(i),
                    ferplus_label: None,
                    ferplus_votes: None,
                })
            })()
            .map_err(reject);
            progress.inc(1);
            out
        })
        .collect();
    let mut loaded = Loaded::default();
    for r in results {
        match r {
            Ok(raw) => loaded.images.push(raw),
            Err(rej) => loaded.rejects.push(rej),
        }
    }
    Ok(loaded)
}
