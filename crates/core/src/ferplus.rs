//! FERPlus labels: the votes of 10 annotators per FER2013 image (`fer2013new.csv`), the join
//! from the Kaggle image folders to its rows (`kaggle_fer2013_to_ferplus_rows.csv`), and the
//! rules that turn votes into a label. Reads those two files (under `FERPLUS_DIR`, see
//! `../shared/data/ferplus/SOURCE.md`); writes nothing; takes no params.
//!
//! # From votes to a label
//! The label is the plurality of the 8 emotion votes (neutral, happiness, surprise, sadness,
//! anger, disgust, fear, contempt); `unknown` and `NF` (not a face) are votes, not emotions.
//! In this order:
//! 1. no vote for any emotion: rejected [`Reject::NoVotes`];
//! 2. `NF` votes at least the top emotion's: rejected [`Reject::NotAFace`] (the 173 rows
//!    FERPlus excluded all have NF = 10);
//! 3. `unknown` votes at least the top emotion's: rejected [`Reject::Unknown`];
//! 4. binary ([`binary_label`]): happy when happiness alone has the most votes, not happy when
//!    it has fewer than the top; happiness tied with another emotion at the top is rejected
//!    [`Reject::Tie`] (a tie among the other emotions is still not happy; contempt counts as
//!    not happy);
//! 5. seven emotions ([`emotion_label`]): FER2013 has no contempt, so contempt's votes count for
//!    no class: when contempt alone has the most votes the image is rejected
//!    [`Reject::Contempt`], otherwise the plurality of the other seven wins, and a tie at their
//!    top is rejected [`Reject::Tie`].
//!
//! The soft target ([`Votes::happy_share`]) is happiness' share of the 8 emotion votes.
//!
//! # Joining the Kaggle folders
//! A file's row is the join table's `fer2013_row`. A file with several pixel-identical
//! candidate rows (`fer2013_row` empty, `n_candidate_rows` > 1) takes their label when every
//! candidate gives the same one, and is rejected [`Reject::AmbiguousJoin`] otherwise; a file
//! with no row is rejected [`Reject::NoJoinRow`] (see [`join_label`]). With `fer2013.csv`,
//! data row i is FERPlus row i.

use crate::error::{Error, IoContext, Result};
use crate::label::{BinaryLabel, Emotion};
use std::collections::BTreeMap;
use std::path::Path;

/// `fer2013new.csv`'s header.
pub const VOTES_HEADER: &str =
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF";
/// `kaggle_fer2013_to_ferplus_rows.csv`'s header.
pub const JOIN_HEADER: &str =
    "kaggle_path,usage,fer2013_row,n_candidate_rows,candidate_rows,rms_pixel_diff";

/// The emotion columns in file order, as FER2013 emotions (`None`: contempt).
const EMOTIONS: [Option<Emotion>; 8] = [
    Some(Emotion::Neutral),
    Some(Emotion::Happy),
    Some(Emotion::Surprise),
    Some(Emotion::Sad),
    Some(Emotion::Angry),
    Some(Emotion::Disgust),
    Some(Emotion::Fear),
    None,
];
const HAPPINESS: usize = 1;
const CONTEMPT: usize = 7;

/// The 8 emotion vote columns' classes, in file order, named as the project names classes
/// (FERPlus's `happiness` is `happy`; contempt has no FER2013 class).
pub const VOTE_CLASSES: [&str; 8] = [
    "neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt",
];

/// One image's votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Votes {
    /// neutral, happiness, surprise, sadness, anger, disgust, fear, contempt.
    pub emotions: [u8; 8],
    pub unknown: u8,
    pub not_face: u8,
}

/// Why an image has no FERPlus label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    NoVotes,
    NotAFace,
    Unknown,
    Tie,
    Contempt,
    NoJoinRow,
    AmbiguousJoin,
}

impl Reject {
    /// The reason as `rejects.parquet` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::NoVotes => "ferplus: no emotion votes",
            Reject::NotAFace => "ferplus: not a face",
            Reject::Unknown => "ferplus: unknown",
            Reject::Tie => "ferplus: tie",
            Reject::Contempt => "ferplus: contempt",
            Reject::NoJoinRow => "ferplus: no join row",
            Reject::AmbiguousJoin => "ferplus: ambiguous join",
        }
    }
}

impl Votes {
    /// The 10 counts in file order (8 emotions, unknown, NF): `images.parquet`'s
    /// `ferplus_votes`.
    pub fn to_bytes(&self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.emotions);
        b[8] = self.unknown;
        b[9] = self.not_face;
        b
    }

    /// The inverse of [`Votes::to_bytes`] (`None` unless exactly 10 bytes).
    pub fn from_bytes(b: &[u8]) -> Option<Votes> {
        let b: &[u8; 10] = b.try_into().ok()?;
        let mut emotions = [0u8; 8];
        emotions.copy_from_slice(&b[..8]);
        Some(Votes {
            emotions,
            unknown: b[8],
            not_face: b[9],
        })
    }

    /// The votes of one of FER2013's emotions.
    pub fn of(&self, e: Emotion) -> u8 {
        let i = EMOTIONS
            .iter()
            .position(|x| *x == Some(e))
            .expect("every FER2013 emotion has a FERPlus column");
        self.emotions[i]
    }

    /// Happiness' share of the 8 emotion votes (`None` without emotion votes).
    pub fn happy_share(&self) -> Option<f64> {
        self.share_of(Emotion::Happy)
    }

    /// A FER2013 emotion's share of the 8 emotion votes (`None` without emotion votes).
    pub fn share_of(&self, e: Emotion) -> Option<f64> {
        let total: u32 = self.emotions.iter().map(|&v| v as u32).sum();
        (total > 0).then(|| self.of(e) as f64 / total as f64)
    }

    /// The seven-class soft target: each of FER2013's seven emotions' share of the votes for
    /// those seven, indexed by emotion code (contempt's votes left out, as the seven-class
    /// hard label drops contempt); `None` when none of the seven has a vote.
    pub fn shares7(&self) -> Option<[f64; 7]> {
        let votes = Emotion::ALL.map(|e| self.of(e) as f64);
        let total: f64 = votes.iter().sum();
        (total > 0.0).then(|| votes.map(|v| v / total))
    }

    /// Rules 1 to 3: the top emotion vote count, or why there is none worth having.
    fn top(&self) -> std::result::Result<u8, Reject> {
        let top = *self.emotions.iter().max().expect("8 emotions");
        if top == 0 {
            Err(Reject::NoVotes)
        } else if self.not_face >= top {
            Err(Reject::NotAFace)
        } else if self.unknown >= top {
            Err(Reject::Unknown)
        } else {
            Ok(top)
        }
    }
}

/// The plurality of all 8 emotion columns (contempt included), as a column index in file
/// order: rules 1 to 3, then [`Reject::Tie`] when two columns share the top. What the stats
/// audit compares FER2013's label with.
pub fn plurality(v: &Votes) -> std::result::Result<usize, Reject> {
    let top = v.top()?;
    let at_top: Vec<usize> = (0..8).filter(|&i| v.emotions[i] == top).collect();
    match at_top.as_slice() {
        [i] => Ok(*i),
        _ => Err(Reject::Tie),
    }
}

/// Happy versus not happy (rule 4 of the module doc).
pub fn binary_label(v: &Votes) -> std::result::Result<BinaryLabel, Reject> {
    let top = v.top()?;
    let happy = v.emotions[HAPPINESS];
    let at_top = v.emotions.iter().filter(|&&c| c == top).count();
    match (happy == top, at_top) {
        (true, 1) => Ok(BinaryLabel::Happy),
        (true, _) => Err(Reject::Tie),
        (false, _) => Ok(BinaryLabel::NotHappy),
    }
}

/// One of FER2013's seven emotions (rule 5 of the module doc).
pub fn emotion_label(v: &Votes) -> std::result::Result<Emotion, Reject> {
    v.top()?;
    let seven_top = (0..8)
        .filter(|&i| i != CONTEMPT)
        .map(|i| v.emotions[i])
        .max()
        .expect("7 emotions");
    if v.emotions[CONTEMPT] > seven_top {
        return Err(Reject::Contempt);
    }
    let winners: Vec<usize> = (0..8)
        .filter(|&i| i != CONTEMPT && v.emotions[i] == seven_top)
        .collect();
    match winners.as_slice() {
        [i] => Ok(EMOTIONS[*i].expect("not contempt")),
        _ => Err(Reject::Tie),
    }
}

/// One row of `fer2013new.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    pub usage: String,
    /// Empty for the rows FERPlus excluded as not faces.
    pub image_name: String,
    pub votes: Votes,
}

fn bad_line(path: &Path, line: usize, m: impl std::fmt::Display) -> Error {
    Error::Other(format!("{}: line {line}: {m}", path.display()))
}

/// Read `fer2013new.csv`: its rows in file order (row i is `fer2013.csv`'s data row i).
pub fn read_votes(path: &Path) -> Result<Vec<VoteRow>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header.trim_end_matches('\r') != VOTES_HEADER {
        return Err(bad_line(
            path,
            1,
            format!("expected the header `{VOTES_HEADER}`"),
        ));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let f: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if f.len() != 12 {
            return Err(bad_line(
                path,
                n,
                format!("{} fields, expected 12", f.len()),
            ));
        }
        let mut c = [0u8; 10];
        for (k, s) in f[2..].iter().enumerate() {
            c[k] = s
                .parse()
                .map_err(|_| bad_line(path, n, format!("`{s}` is not a vote count")))?;
        }
        let mut emotions = [0u8; 8];
        emotions.copy_from_slice(&c[..8]);
        rows.push(VoteRow {
            usage: f[0].to_string(),
            image_name: f[1].to_string(),
            votes: Votes {
                emotions,
                unknown: c[8],
                not_face: c[9],
            },
        });
    }
    Ok(rows)
}

/// One file of the Kaggle folders in the join table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRow {
    pub usage: String,
    /// The one matching row, when exactly one matches.
    pub row: Option<usize>,
    /// Every pixel-identical row (several for duplicates, none for excluded images).
    pub candidates: Vec<usize>,
}

/// Read `kaggle_fer2013_to_ferplus_rows.csv`, keyed by the path under the FER2013 folder
/// (`train/happy/Training_10019449.jpg`).
pub fn read_join(path: &Path) -> Result<BTreeMap<String, JoinRow>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header.trim_end_matches('\r') != JOIN_HEADER {
        return Err(bad_line(
            path,
            1,
            format!("expected the header `{JOIN_HEADER}`"),
        ));
    }
    let mut out = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let f: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if f.len() != 6 {
            return Err(bad_line(path, n, format!("{} fields, expected 6", f.len())));
        }
        let num = |s: &str| -> Result<usize> {
            s.parse()
                .map_err(|_| bad_line(path, n, format!("`{s}` is not a row number")))
        };
        let row = if f[2].is_empty() {
            None
        } else {
            Some(num(f[2])?)
        };
        let candidates = f[4]
            .split(';')
            .filter(|s| !s.is_empty())
            .map(num)
            .collect::<Result<Vec<usize>>>()?;
        if out
            .insert(
                f[0].to_string(),
                JoinRow {
                    usage: f[1].to_string(),
                    row,
                    candidates,
                },
            )
            .is_some()
        {
            return Err(bad_line(path, n, format!("`{}` is listed twice", f[0])));
        }
    }
    Ok(out)
}

/// The label of a joined file by `rule` ([`binary_label`] or [`emotion_label`]) and the row
/// it came from (the first candidate for agreeing duplicates). `join`: the file's join row,
/// `None` when the table does not list it; a row number past the votes counts as no row.
/// Duplicates that all reject for the same reason keep that reason.
pub fn join_label<T: PartialEq + Copy>(
    join: Option<&JoinRow>,
    votes: &[VoteRow],
    rule: impl Fn(&Votes) -> std::result::Result<T, Reject>,
) -> std::result::Result<(T, usize), Reject> {
    let Some(j) = join else {
        return Err(Reject::NoJoinRow);
    };
    let rows: Vec<usize> = match (j.row, j.candidates.len()) {
        (Some(r), _) => vec![r],
        (None, 0) => return Err(Reject::NoJoinRow),
        (None, _) => j.candidates.clone(),
    };
    let mut labels = Vec::with_capacity(rows.len());
    for &r in &rows {
        let v = votes.get(r).ok_or(Reject::NoJoinRow)?;
        labels.push(rule(&v.votes));
    }
    if labels.iter().all(|l| *l == labels[0]) {
        labels[0].map(|l| (l, rows[0]))
    } else {
        Err(Reject::AmbiguousJoin)
    }
}
