//! What the SVMs learn from: the preprocess outputs ([`Data`], with the label mode's classes),
//! the label checks, the features fitted on train (one [`FeatureSet`] per feature) and the
//! kernel SVMs' training rows (a stratified, seeded subsample of at most `max_train` rows,
//! [`stratified_subsample`], stratified by label: by emotion in seven-class mode) with the
//! positive rows of each SVM task (binary: one task, happy = label 0; seven classes: one
//! one-vs-rest task per class).

use crate::{FeaturePipeline, STAGE, SvmError, SvmParams, features, log};
use fer_core::pipeline::PipelineFile;
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Instant;

/// The preprocess outputs the stage reads.
#[derive(Debug, Clone)]
pub struct Data {
    pub transform: Transform,
    pub train: TensorSet,
    pub val: TensorSet,
    pub test: TensorSet,
    pub val_ids: Vec<String>,
    pub test_ids: Vec<String>,
    /// The label mode's class names (`fer_core::LabelMode::class_names`, from the train
    /// tensors' `label_mode`; binary when absent): `happy`, `not_happy` or the seven emotions.
    pub class_names: fer_core::Classes,
    happy: usize,
}

impl Data {
    /// Seven classes (more than two): one one-vs-rest SVM per class.
    pub fn one_vs_rest(&self) -> bool {
        self.class_names.len() > 2
    }

    /// The index of the happy class (0 in binary, 3 of seven), found by the class vocabulary
    /// when the data was read.
    pub fn happy(&self) -> usize {
        self.happy
    }

    /// The class names as `&str`.
    pub fn names(&self) -> Vec<&str> {
        self.class_names.strs()
    }

    /// The positive label of each SVM task: binary, the one task happy vs not; seven classes,
    /// each class vs the rest, in class order.
    pub fn tasks(&self) -> Vec<u8> {
        if self.one_vs_rest() {
            (0..self.class_names.len() as u8).collect()
        } else {
            vec![self.happy as u8]
        }
    }

    /// The index in [`Data::tasks`] of the task that scores happy: happy's own one-vs-rest
    /// task, or the binary SVM's only one.
    pub fn happy_task(&self) -> usize {
        if self.one_vs_rest() { self.happy } else { 0 }
    }
}

impl Data {
    pub fn read(dir: &Path) -> Result<Data, SvmError> {
        let transform = Transform::load(&dir.join("transform.json"))?;
        let read = |s: &str| TensorSet::read(&dir.join(format!("{s}.safetensors")));
        let ((train, meta), (val, _), (test, _)) = (read("train")?, read("val")?, read("test")?);
        let mode = meta["label_mode"]
            .as_str()
            .and_then(fer_core::LabelMode::parse)
            .unwrap_or_default();
        let class_names = fer_core::Classes::of_mode(mode);
        let happy = class_names
            .happy()
            .map_err(|e| SvmError::Data(format!("{}: {e}", dir.display())))?;
        let ids = fer_core::tensors::read_ids(&dir.join("index.parquet"))?;
        let take = |s: &str, n: usize| -> Result<Vec<String>, SvmError> {
            let v = fer_core::Split::parse(s)
                .map(|sp| ids[sp as usize].clone())
                .unwrap_or_default();
            if v.len() != n {
                return Err(SvmError::Data(format!(
                    "{}: {} {s} ids for {n} {s} images",
                    dir.join("index.parquet").display(),
                    v.len()
                )));
            }
            Ok(v)
        };
        let (val_ids, test_ids) = (take("val", val.n)?, take("test", test.n)?);
        Ok(Data {
            transform,
            train,
            val,
            test,
            val_ids,
            test_ids,
            class_names,
            happy,
        })
    }
}

/// Every split must be non-empty with labels of the label mode (binary: 0 = happy, 1 = not
/// happy; seven classes: the emotion codes 0-6, each of them in train).
pub(crate) fn check_labels(data: &Data) -> Result<(), SvmError> {
    let k = data.class_names.len();
    for (name, t) in [
        ("train", &data.train),
        ("val", &data.val),
        ("test", &data.test),
    ] {
        if let Some(&bad) = t.y.iter().find(|&&v| v as usize >= k) {
            return Err(SvmError::Data(format!(
                "{name} has label {bad}, but the label mode has {k} classes ({})",
                data.class_names.join(", ")
            )));
        }
        if t.n == 0 {
            return Err(SvmError::Data(format!("the {name} split is empty")));
        }
    }
    if data.one_vs_rest()
        && let Some(c) = (0..k).find(|&c| !data.train.y.contains(&(c as u8)))
    {
        return Err(SvmError::Data(format!(
            "train has no image of class {c} ({}): its one-vs-rest SVM has nothing to learn",
            data.class_names[c]
        )));
    }
    Ok(())
}

/// A feature's fitted pipeline and its rows per split.
pub(crate) struct FeatureSet {
    pub(crate) pipeline: FeaturePipeline,
    pub(crate) train: Array2<f64>,
    pub(crate) val: Array2<f64>,
    pub(crate) gamma_scale: f64,
    pub(crate) seconds: f64,
}

/// Each feature of `p.features`, in order, fitted on train (standardization, optional PCA)
/// and applied to val, with sklearn's `scale` gamma of its train rows.
pub(crate) fn fit_features(
    data: &Data,
    p: &SvmParams,
    quiet: bool,
    pf: &PipelineFile,
) -> Result<Vec<FeatureSet>, SvmError> {
    let range = data.transform.value_range();
    let mut sets: Vec<FeatureSet> = Vec::new();
    for &kind in &p.features {
        let t0 = Instant::now();
        let (pipeline, train) = FeaturePipeline::fit(kind, p.hog, range, p.pca, &data.train)
            .map_err(|m| {
                if m.starts_with("pca") {
                    SvmError::Core(pf.param_error(STAGE, "pca", m))
                } else {
                    SvmError::Data(format!("{} features: {m}", kind.as_str()))
                }
            })?;
        let val = pipeline.transform(&data.val).map_err(SvmError::Data)?;
        let gamma_scale = features::gamma_scale(&train);
        let seconds = t0.elapsed().as_secs_f64();
        log(
            quiet,
            format!(
                "{}: {} features per image ({:.2} s), gamma scale = {gamma_scale:.3e}",
                kind.as_str(),
                pipeline.dim(),
                seconds
            ),
        );
        sets.push(FeatureSet {
            pipeline,
            train,
            val,
            gamma_scale,
            seconds,
        });
    }
    Ok(sets)
}

/// A seeded, stratified subsample of at most `max` row indices (ascending); every row when
/// `max` is 0 or not below the row count. Each class keeps its share, rounded.
pub fn stratified_subsample(y: &[u8], max: usize, seed: u64) -> Vec<usize> {
    if max == 0 || y.len() <= max {
        return (0..y.len()).collect();
    }
    let mut classes: Vec<u8> = y.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(max);
    let mut left = max;
    for (ci, &c) in classes.iter().enumerate() {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        let quota = if ci + 1 == classes.len() {
            left
        } else {
            ((max as f64 * rows.len() as f64 / y.len() as f64).round() as usize).min(left)
        }
        .min(rows.len());
        left -= quota;
        for k in rand::seq::index::sample(&mut rng, rows.len(), quota).into_iter() {
            out.push(rows[k]);
        }
    }
    out.sort_unstable();
    out
}

/// The kernel SVMs' training rows: the subsample of train (`max_train`), its positive flags per
/// task ([`Data::tasks`]) and each feature's rows of it, and the positive flags per task of
/// every train row (the DCD solvers).
pub(crate) struct TrainRows {
    pub(crate) sub: Vec<usize>,
    pub(crate) sub_pos: Vec<Vec<bool>>,
    pub(crate) all_pos: Vec<Vec<bool>>,
    pub(crate) subs: Vec<Array2<f64>>,
}

impl TrainRows {
    pub(crate) fn new(data: &Data, sets: &[FeatureSet], p: &SvmParams, quiet: bool) -> TrainRows {
        let sub = stratified_subsample(&data.train.y, p.max_train, p.seed);
        let tasks = data.tasks();
        let sub_pos: Vec<Vec<bool>> = tasks
            .iter()
            .map(|&c| sub.iter().map(|&i| data.train.y[i] == c).collect())
            .collect();
        let all_pos: Vec<Vec<bool>> = tasks
            .iter()
            .map(|&c| data.train.y.iter().map(|&v| v == c).collect())
            .collect();
        let subs: Vec<Array2<f64>> = sets
            .iter()
            .map(|s| {
                if sub.len() == s.train.nrows() {
                    s.train.clone()
                } else {
                    s.train.select(Axis(0), &sub)
                }
            })
            .collect();
        if sub.len() < data.train.n {
            log(
                quiet,
                format!(
                    "rbf/linear train on a stratified subsample of {} of {} rows (max_train)",
                    sub.len(),
                    data.train.n
                ),
            );
        }
        TrainRows {
            sub,
            sub_pos,
            all_pos,
            subs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_subsample_keeps_shares_and_is_seeded() {
        let y: Vec<u8> = (0..1000).map(|i| u8::from(i % 4 != 0)).collect();
        let s = stratified_subsample(&y, 100, 3);
        assert_eq!(s.len(), 100);
        assert_eq!(s.iter().filter(|&&i| y[i] == 0).count(), 25);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s, stratified_subsample(&y, 100, 3));
        assert_ne!(s, stratified_subsample(&y, 100, 4));
        assert_eq!(stratified_subsample(&y, 0, 1).len(), 1000);
        assert_eq!(stratified_subsample(&y, 5000, 1).len(), 1000);
    }
}
