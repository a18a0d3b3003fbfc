//! Readers for the two public FER2013 layouts. File-level problems (undecodable, truncated,
//! wrong size, bad CSV row, not a regular file) are returned as rejects so `on_bad` decides;
//! layout problems (missing folder, unknown class folder) are errors.
//!
//! The class folders are walked following symbolic links (a linked folder is read like any
//! other; a link that leads back to a folder above it is a loop, refused as a reject, as is a
//! link that leads nowhere). An entry that is not a regular file (a FIFO, a socket, a device),
//! whatever its name, is refused from its file type alone and never opened, so that it can
//! neither hang the stage nor be hashed.

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

/// The image formats the folder layout holds, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.jpg`, `.jpeg`
    Jpeg,
    /// `.png`
    Png,
}

impl Format {
    /// The format of a file by its extension (any case); `None`: not an image file we read.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            _ => None,
        }
    }
}

/// Why `bytes` are a truncated file of `format` (`None`: whole), by the rule fer-predict
/// shares ([`fer_core::imagefile`]): decoders do not say, they pad a truncated JPEG with grey
/// and may decode the first rows of a truncated PNG.
pub fn truncated(bytes: &[u8], format: Format) -> Option<&'static str> {
    match format {
        Format::Jpeg => (!fer_core::imagefile::jpeg_is_whole(bytes))
            .then_some("truncated or not a JPEG (no start/end marker)"),
        Format::Png => (!fer_core::imagefile::png_is_whole(bytes))
            .then_some("truncated or not a PNG (no signature or no IEND end chunk)"),
    }
}

/// Decode bytes to 48x48 8-bit gray (colour converted with the `image` crate's luma weights),
/// after the truncation check of [`truncated`].
pub fn decode_gray(bytes: &[u8], format: Format, sizing: Sizing) -> Result<Vec<u8>, String> {
    if let Some(why) = truncated(bytes, format) {
        return Err(why.into());
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

/// The Kaggle layout as listed: its image files and the entries refused unopened.
#[derive(Debug, Default)]
pub struct FolderLayout {
    /// `(split, emotion, path)` of every regular file, sorted by path.
    pub files: Vec<(Split, Emotion, PathBuf)>,
    /// Entries that are not regular files (FIFO, socket, device), symbolic links that lead
    /// nowhere or back to a folder above them: rejects, sorted by file.
    pub refused: Vec<Reject>,
}

/// What an entry that is neither a folder nor a regular file is.
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    let _ = ft;
    "not a regular file"
}

/// Every regular file under `root` (a class folder), following symbolic links, skipping hidden
/// entries (names starting with `.`), sorted; the entries refused go to `refused`. A folder
/// that cannot be read is an error.
pub fn list_class_folder(
    root: &Path,
    refused: &mut Vec<Reject>,
) -> Result<Vec<PathBuf>, IngestError> {
    fn walk(
        dir: &Path,
        above: &mut Vec<PathBuf>,
        out: &mut Vec<PathBuf>,
        refused: &mut Vec<Reject>,
    ) -> Result<(), IngestError> {
        let refuse = |refused: &mut Vec<Reject>, p: &Path, reason: String| {
            refused.push(Reject {
                file: p.display().to_string(),
                reason,
            })
        };
        let rd = std::fs::read_dir(dir).map_err(|e| fer_core::Error::io(dir, e))?;
        for e in rd {
            let e = e.map_err(|e| fer_core::Error::io(dir, e))?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            let mut ft = e.file_type().map_err(|e| fer_core::Error::io(&path, e))?;
            if ft.is_symlink() {
                // What the link leads to (metadata follows links; nothing is opened).
                match std::fs::metadata(&path) {
                    Ok(md) => ft = md.file_type(),
                    Err(err) => {
                        refuse(
                            refused,
                            &path,
                            format!("a symbolic link that leads nowhere ({err})"),
                        );
                        continue;
                    }
                }
            }
            if ft.is_dir() {
                let real =
                    std::fs::canonicalize(&path).map_err(|e| fer_core::Error::io(&path, e))?;
                if above.contains(&real) {
                    refuse(
                        refused,
                        &path,
                        format!(
                            "a symbolic link loop (it leads back to {}, a folder above it)",
                            real.display()
                        ),
                    );
                    continue;
                }
                above.push(real);
                walk(&path, above, out, refused)?;
                above.pop();
            } else if ft.is_file() {
                out.push(path);
            } else {
                refuse(
                    refused,
                    &path,
                    format!("{}, not a regular file: not opened", special_kind(&ft)),
                );
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let real = std::fs::canonicalize(root).map_err(|e| fer_core::Error::io(root, e))?;
    walk(root, &mut vec![real], &mut out, refused)?;
    out.sort();
    Ok(out)
}

/// The files of the Kaggle layout (sorted by path) and the entries refused unopened
/// ([`FolderLayout`]).
pub fn list_folder_layout(root: &Path) -> Result<FolderLayout, IngestError> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
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
            for f in list_class_folder(&cp, &mut refused)? {
                out.push((split, emotion, f));
            }
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    refused.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(FolderLayout {
        files: out,
        refused,
    })
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
            let Some(format) = Format::of(path) else {
                progress.inc(1);
                return Err(reject("not a .jpg, .jpeg or .png file".into()));
            };
            let out = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode_gray(&b, format, sizing))
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
