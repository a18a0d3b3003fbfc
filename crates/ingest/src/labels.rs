//! FERPlus labels for the ingested images: where the files are, which row is whose, and
//! what happens to images FERPlus gives no label.
//!
//! The vote-to-label rules (ties, not a face, unknown, contempt, duplicates) are
//! `fer_core::ferplus`'s; this module applies them:
//! - Kaggle folders: a file's row comes from `kaggle_fer2013_to_ferplus_rows.csv`, keyed by
//!   its path under `FER2013_DIR`; `fer2013.csv`: data row i is FERPlus row i.
//! - `labels = "ferplus"`: every image without a usable label is dropped before sampling and
//!   listed in `rejects.parquet` with its reason (`ferplus: tie`, `ferplus: not a face`, ...).
//!   These are expected, so `on_bad = "error"` does not stop on them.
//! - `labels = "fer2013"`: nothing is dropped; the FERPlus label and votes ride along where
//!   they exist (to score against both truths), when the FERPlus files are there at all.

use crate::IngestError;
use crate::params::Source;
use crate::source::{Raw, Reject};
use fer_core::LabelMode;
use fer_core::ferplus::{self, JoinRow, VoteRow, Votes};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `fer2013new.csv` under `FERPLUS_DIR`.
pub const VOTES_FILE: &str = "fer2013new.csv";
/// The pixel-matched join under `FERPLUS_DIR`.
pub const JOIN_FILE: &str = "kaggle_fer2013_to_ferplus_rows.csv";

/// The FERPlus files a source needs.
#[derive(Debug, Clone)]
pub struct FerplusFiles {
    pub votes: PathBuf,
    /// The join table (Kaggle folders only).
    pub join: Option<PathBuf>,
}

impl FerplusFiles {
    /// Every file, for the stage's input hash.
    pub fn paths(&self) -> Vec<PathBuf> {
        std::iter::once(self.votes.clone())
            .chain(self.join.clone())
            .collect()
    }
}

/// The FERPlus files for `source` (folders or csv) under `dir`. `required`
/// (`labels = "ferplus"`): a missing folder or file is an error naming it; otherwise `None`.
pub fn locate(
    dir: &Path,
    source: Source,
    required: bool,
) -> Result<Option<FerplusFiles>, IngestError> {
    let files = FerplusFiles {
        votes: dir.join(VOTES_FILE),
        join: (source != Source::Csv).then(|| dir.join(JOIN_FILE)),
    };
    let missing = files.paths().into_iter().find(|p| !p.is_file());
    match (missing, required) {
        (None, _) => Ok(Some(files)),
        (Some(_), false) => Ok(None),
        (Some(p), true) => Err(IngestError::Layout(format!(
            "{}: not found: [ingest] labels = \"ferplus\" needs FERPlus's votes{} in FERPLUS_DIR \
             (--ferplus-dir, default data/ferplus; see ../shared/data/ferplus/SOURCE.md)",
            p.display(),
            if source == Source::Csv {
                ""
            } else {
                " and the join to the Kaggle folders"
            }
        ))),
    }
}

/// FERPlus's label of one image in `mode`.
fn rule(mode: LabelMode) -> impl Fn(&Votes) -> Result<u8, ferplus::Reject> {
    move |v: &Votes| match mode {
        LabelMode::Binary => ferplus::binary_label(v).map(|b| b as u8),
        LabelMode::Emotion7 => ferplus::emotion_label(v).map(|e| e.code()),
    }
}

/// The label and votes of one image: from its join row (folders) or its CSV row.
fn label_of(
    raw: &Raw,
    votes: &[VoteRow],
    join: Option<&BTreeMap<String, JoinRow>>,
    mode: LabelMode,
) -> (Result<u8, ferplus::Reject>, Option<Votes>) {
    let row_join;
    let j = match (raw.csv_row, join) {
        (Some(r), _) => {
            row_join = JoinRow {
                usage: raw.usage.clone(),
                row: Some(r),
                candidates: vec![r],
            };
            Some(&row_join)
        }
        (None, Some(join)) => join.get(&raw.source),
        (None, None) => None,
    };
    let label = ferplus::join_label(j, votes, rule(mode));
    let row = match (&label, j) {
        (Ok((_, r)), _) => Some(*r),
        (Err(_), Some(j)) => j
            .row
            .or_else(|| (j.candidates.len() == 1).then(|| j.candidates[0])),
        (Err(_), None) => None,
    };
    (
        label.map(|(l, _)| l),
        row.and_then(|r| votes.get(r)).map(|v| v.votes),
    )
}

/// Attach FERPlus labels and votes to `images`; with `drop` (`labels = "ferplus"`), move the
/// images without a label to the returned rejects. `data_dir` names rejected files.
pub fn attach(
    images: &mut Vec<Raw>,
    files: &FerplusFiles,
    mode: LabelMode,
    drop: bool,
    data_dir: &Path,
) -> Result<Vec<Reject>, IngestError> {
    let votes = ferplus::read_votes(&files.votes)?;
    let join = match &files.join {
        Some(p) => Some(ferplus::read_join(p)?),
        None => None,
    };
    let mut rejects = Vec::new();
    let mut kept = Vec::with_capacity(images.len());
    for mut raw in images.drain(..) {
        let (label, v) = label_of(&raw, &votes, join.as_ref(), mode);
        raw.ferplus_votes = v;
        match label {
            Ok(l) => {
                raw.ferplus_label = Some(l);
                kept.push(raw);
            }
            Err(why) if drop => rejects.push(Reject {
                file: match raw.csv_row {
                    Some(r) => format!("{}: row {r}", data_dir.join("fer2013.csv").display()),
                    None => data_dir.join(&raw.source).display().to_string(),
                },
                reason: why.as_str().to_string(),
            }),
            Err(_) => kept.push(raw),
        }
    }
    *images = kept;
    Ok(rejects)
}
