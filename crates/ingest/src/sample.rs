//! The protocol applied to the decoded images: the sample drawn, the validation split carved.

use crate::IngestError;
use crate::params::{IngestParams, Protocol, Validation};
use crate::source::Raw;
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::{BinaryLabel, Emotion, LabelMode, LabelSource, Split};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The dataset row of an ingested image: its training target is FER2013's label or FERPlus's,
/// as `labels` says (an image without a FERPlus label never gets here with `ferplus`).
pub(super) fn to_record(p: &IngestParams, r: Raw, split: Split) -> ImageRecord {
    ImageRecord {
        label: target(p, &r),
        id: r.id,
        split,
        usage: r.usage,
        emotion: r.emotion,
        pixels: r.pixels,
        source: r.source,
        ferplus_label: r.ferplus_label,
        ferplus_votes: r.ferplus_votes,
    }
}

fn target(p: &IngestParams, r: &Raw) -> u8 {
    match (p.labels, r.ferplus_label) {
        (LabelSource::Ferplus, Some(l)) => l,
        _ => p.label_mode.label_of(r.emotion),
    }
}

/// FER2013's `Usage` of the images the literature validates on.
pub const PUBLIC_TEST: &str = "PublicTest";

/// Apply the protocol (sampling, by FER2013's binary labels whatever the target) and carve the
/// stratified validation split (by the target), or, with `validation = "public_test"`, make
/// the PublicTest images the validation split. Also returns the training images the seed
/// protocol left out (the pretraining pool), sorted by id.
pub fn select(
    p: &IngestParams,
    mut images: Vec<Raw>,
) -> Result<(ImageDataset, Vec<Raw>), IngestError> {
    images.sort_by(|a, b| a.id.cmp(&b.id));
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut chosen: Vec<Raw> = Vec::new();
    let mut rest: Vec<Raw> = Vec::new();
    if let Protocol::SeedPerEmotion(n) = p.protocol {
        // Per emotion, by FER2013's labels: `n.train` / `n.test` of each of the seven.
        for split in [Split::Train, Split::Test] {
            let (want, key) = match split {
                Split::Train => (n.train, "train_per_emotion"),
                _ => (n.test, "test_per_emotion"),
            };
            for emotion in Emotion::ALL {
                let pool = images
                    .iter()
                    .filter(|r| r.split == split && r.emotion == emotion)
                    .cloned()
                    .collect();
                let what = emotion.as_str();
                chosen.extend(draw(pool, (want, key), what, split, &mut rng, &mut rest)?);
            }
        }
    } else {
        for split in [Split::Train, Split::Test] {
            for group in BinaryLabel::ALL {
                let mut pool: Vec<Raw> = images
                    .iter()
                    .filter(|r| r.split == split && r.emotion.binary() == group)
                    .cloned()
                    .collect();
                if let Protocol::Seed(sizes) = p.protocol {
                    let want = match (split, group) {
                        (Split::Train, BinaryLabel::Happy) => (sizes.train_happy, "train_happy"),
                        (Split::Train, BinaryLabel::NotHappy) => {
                            (sizes.train_not_happy, "train_not_happy")
                        }
                        (_, BinaryLabel::Happy) => (sizes.test_happy, "test_happy"),
                        (_, BinaryLabel::NotHappy) => (sizes.test_not_happy, "test_not_happy"),
                    };
                    let what = group.to_string();
                    pool = draw(pool, want, &what, split, &mut rng, &mut rest)?;
                }
                chosen.extend(pool);
            }
        }
    }
    if let Some(cap) = p.max_train_images {
        shrink(&mut chosen, &mut rest, cap, p);
    }
    // Stratified validation split: per label, a shuffled val_fraction of train.
    let mut records: Vec<ImageRecord> = Vec::with_capacity(chosen.len());
    let mut val_rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x5641_4C5F_5350_4C54);
    let classes = p.label_mode.num_classes() as u8;
    let (train, test): (Vec<Raw>, Vec<Raw>) =
        chosen.into_iter().partition(|r| r.split == Split::Train);
    for c in 0..classes {
        let mut group: Vec<Raw> = train
            .iter()
            .filter(|r| target(p, r) == c)
            .cloned()
            .collect();
        group.sort_by(|a, b| a.id.cmp(&b.id));
        group.shuffle(&mut val_rng);
        let n_val = (group.len() as f64 * p.val_fraction).round() as usize;
        for (i, r) in group.into_iter().enumerate() {
            records.push(to_record(
                p,
                r,
                if i < n_val { Split::Val } else { Split::Train },
            ));
        }
    }
    if p.validation == Validation::PublicTest {
        let public = test.iter().filter(|r| r.usage == PUBLIC_TEST).count();
        let missing = match (public, test.len() - public) {
            (0, _) => Some(("validation", PUBLIC_TEST)),
            (_, 0) => Some(("test", "PrivateTest")),
            _ => None,
        };
        if let Some((split, usage)) = missing {
            return Err(IngestError::Params(format!(
                "[ingest] validation = \"public_test\": no test image comes from FER2013's \
                 {usage}, so the {split} split would be empty (the Kaggle file names start \
                 with `{usage}_`; fer2013.csv's Usage column says it)"
            )));
        }
    }
    records.extend(test.into_iter().map(|r| {
        // The literature's split: PublicTest chooses, PrivateTest alone scores.
        let split = if p.validation == Validation::PublicTest && r.usage == PUBLIC_TEST {
            Split::Val
        } else {
            Split::Test
        };
        to_record(p, r, split)
    }));
    records.sort_by(|a, b| (a.split, &a.id).cmp(&(b.split, &b.id)));
    rest.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((
        ImageDataset {
            side: fer_core::IMAGE_SIDE,
            label_mode: p.label_mode,
            labels: p.labels,
            records,
        },
        rest,
    ))
}

/// `max_train_images`: when the drawn training images (train and val) are more than `cap`,
/// keep the fraction `cap / drawn` of each group of `chosen` (per split, the groups the
/// protocol draws by: FER2013's binary groups, or its seven emotions under `emotion7`;
/// rounded, at least one of a group that has any) and of the pretraining pool `rest`, each a
/// seeded shuffle's first rows, so the sample keeps its class balance and every class.
fn shrink(chosen: &mut Vec<Raw>, rest: &mut Vec<Raw>, cap: usize, p: &IngestParams) {
    let drawn = chosen.iter().filter(|r| r.split == Split::Train).count();
    if drawn <= cap {
        return;
    }
    let fraction = cap as f64 / drawn as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x4D49_4E49_5F43_4150);
    let group_of = |r: &Raw| match p.label_mode {
        LabelMode::Emotion7 => r.emotion as usize,
        LabelMode::Binary => r.emotion.binary() as usize,
    };
    let mut keep = |mut group: Vec<Raw>, at_least: usize| -> Vec<Raw> {
        group.sort_by(|a, b| a.id.cmp(&b.id));
        group.shuffle(&mut rng);
        let n = ((group.len() as f64 * fraction).round() as usize).max(at_least.min(group.len()));
        group.truncate(n);
        group
    };
    let all = std::mem::take(chosen);
    for split in [Split::Train, Split::Test] {
        for g in 0..Emotion::ALL.len() {
            let group: Vec<Raw> = all
                .iter()
                .filter(|r| r.split == split && group_of(r) == g)
                .cloned()
                .collect();
            chosen.extend(keep(group, 1));
        }
    }
    *rest = keep(std::mem::take(rest), 0);
}

/// The seed protocol's draw from one group's `pool`: `want.0` images (the key `want.1` of
/// `[ingest.sizes]` asks for; too few is an error naming it and the group `what`), shuffled by
/// `rng`; a training split's leftovers go to `rest` (the pretraining pool).
fn draw(
    mut pool: Vec<Raw>,
    want: (usize, &str),
    what: &str,
    split: Split,
    rng: &mut ChaCha8Rng,
    rest: &mut Vec<Raw>,
) -> Result<Vec<Raw>, IngestError> {
    let (want, key) = want;
    if pool.len() < want {
        return Err(IngestError::Params(format!(
            "[ingest] sizes.{key} = {want}, but the data has only {} {what} images in {split}",
            pool.len(),
        )));
    }
    pool.shuffle(rng);
    let left = pool.split_off(want);
    if split == Split::Train {
        rest.extend(left);
    }
    Ok(pool)
}
