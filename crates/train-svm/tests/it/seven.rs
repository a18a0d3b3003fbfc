//! Seven classes (`label_mode = "emotion7"`): `fer-train-svm` on a drawn fixture of seven
//! separable classes (each class a bright block at its own place, with noise and jitter)
//! trains one-vs-rest SVMs per grid point, predicts the argmax, writes a `decision_<class>`
//! column per class, chooses by val macro F1, calibrates the happy decision against label 3,
//! and saves models that reload (`SavedSvms::class_decisions`) to bit-identical decisions.

use arrow_array::{Array, BooleanArray, Float64Array, StringArray};
use fer_core::stage::upstream_code_version;
use fer_core::stage::{Outputs, StageRun};
use fer_core::tensors::TensorSet;
use fer_core::transform::{Denoise, Equalize, Normalization, Transform};
use fer_core::{LabelMode, Split};
use fer_schema::predictions::{self, DECISION_PREFIX};
use fer_test_support::Outcome;
use fer_train_svm::SavedSvms;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fer-train-svm");
const K: usize = 7;

fn transform() -> Transform {
    Transform {
        size: 48,
        resize_filter: "triangle".into(),
        denoise: Denoise::None,
        equalize: Equalize::None,
        normalization: Normalization::Standardize {
            mean: 0.45,
            std: 0.25,
        },
    }
}

/// Class `c`'s drawing: noise, and a bright 12x12 block at the class's own place (seven
/// places on a 3 x 3 grid), jittered by up to 2 pixels.
fn drawing(c: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let (dx, dy) = (rng.random_range(-2i32..=2), rng.random_range(-2i32..=2));
    let mut px: Vec<u8> = (0..48 * 48)
        .map(|_| 80u8.saturating_add(rng.random_range(0u8..50)))
        .collect();
    let (gx, gy) = ((c % 3) as i32 * 16 + 2, (c / 3) as i32 * 16 + 2);
    for y in 0..12 {
        for x in 0..12 {
            let (xx, yy) = (gx + x + dx, gy + y + dy);
            if (0..48).contains(&xx) && (0..48).contains(&yy) {
                px[(yy * 48 + xx) as usize] = 220;
            }
        }
    }
    px
}

fn split(n_per_class: usize, seed: u64) -> TensorSet {
    let t = transform();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..K * n_per_class {
        let label = (i % K) as u8;
        x.extend(
            drawing(label as usize, &mut rng)
                .iter()
                .map(|&v| t.normalize(v)),
        );
        y.push(label);
    }
    TensorSet {
        n: y.len(),
        height: 48,
        width: 48,
        x,
        y,
        truths: None,
    }
}

fn names() -> Vec<&'static str> {
    LabelMode::Emotion7.class_names()
}

/// A fake seven-class `preprocess` stage in `artifacts/<pipeline>/preprocess/` (through the
/// real stage runner), its tensors saying `label_mode = "emotion7"` as preprocess's do.
fn preprocess(artifacts: &Path, pipeline: &str) {
    let run = StageRun {
        pipeline: pipeline.into(),
        stage: "preprocess".into(),
        artifacts: artifacts.to_path_buf(),
        code_version: upstream_code_version(fer_train_svm::UPSTREAM_CODE_VERSIONS, "preprocess")
            .expect("train-svm reads preprocess")
            .into(),
        params: serde_json::json!({}),
        inputs: vec![],
        cache: None,
        force: true,
        verbose: false,
        touch_on_skip: true,
        section_hash: None,
        cache_max_bytes: None,
        status_only: false,
    };
    run.execute(|dir: &Path| -> fer_core::Result<Outputs> {
        let mut out = Outputs::default();
        transform().save(&dir.join("transform.json"))?;
        out.file("transform.json");
        let mut index: Vec<crate::common::IndexRow> = Vec::new();
        for (name, n, seed) in [("train", 16, 1), ("val", 6, 2), ("test", 8, 3)] {
            let t = split(n, seed);
            t.write(
                &dir.join(format!("{name}.safetensors")),
                &serde_json::json!({"split": name, "label_mode": "emotion7", "labels": "fer2013"}),
            )?;
            out.table(&format!("{name}.safetensors"), t.n);
            for (i, &y) in t.y.iter().enumerate() {
                index.push((name.into(), i as u32, format!("{name}/img{i:04}"), y));
            }
        }
        let n = crate::common::write_index(dir, &index, |l| names()[l as usize])?;
        out.table("index.parquet", n);
        Ok(out)
    })
    .unwrap();
}

fn run(dir: &Path, artifacts: &Path, pipeline: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{pipeline}.toml"));
    std::fs::write(&p, format!("[train_svm]\n{body}")).unwrap();
    Outcome::of(
        Command::new(BIN)
            .arg("--pipeline")
            .arg(&p)
            .arg("--artifacts")
            .arg(artifacts)
            .args(["--cache-dir", "off", "--quiet"]),
    )
    .ok();
    artifacts.join(pipeline).join("train_svm")
}

/// Every model kind on both features, C and gamma grids of two.
const ALL: &str = r#"seed = 3
features = ["raw", "hog"]
kernels = ["rbf", "linear", "rff"]
c = [0.5, 2.0]
c_linear = [0.01, 0.1]
gamma = ["scale", "0.3*scale"]
pca = 0
max_train = 100
rff_dim = 300
"#;

fn argmax(v: &[f64]) -> u8 {
    let mut best = 0;
    for (k, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = k;
        }
    }
    best as u8
}

#[test]
fn seven_classes_train_one_vs_rest_and_reload_to_identical_decisions() {
    let d = tempfile::tempdir().unwrap();
    let artifacts = d.path().join("artifacts");
    preprocess(&artifacts, "seven");
    let dir = run(d.path(), &artifacts, "seven", ALL);
    let pre = artifacts.join("seven").join("preprocess");
    let tensors = |s: Split| {
        TensorSet::read(&pre.join(format!("{}.safetensors", s.as_str())))
            .unwrap()
            .0
    };
    let (val, test) = (tensors(Split::Val), tensors(Split::Test));

    // predictions.parquet: a decision_<class> column per class, in class order; decision is
    // happy's (class 3), pred the argmax, label the emotion code.
    let pp = dir.join("predictions.parquet");
    assert_eq!(
        predictions::classes_of(&pp, DECISION_PREFIX).unwrap(),
        names()
    );
    let rows = predictions::read_svm(&pp).unwrap();
    assert_eq!(rows.len(), 6 * (val.n + test.n));
    for r in &rows {
        assert_eq!(r.decisions.len(), K, "{r:?}");
        assert_eq!(r.pred, argmax(&r.decisions), "{r:?}");
        assert_eq!(r.decision.to_bits(), r.decisions[3].to_bits(), "{r:?}");
        let t = if r.split == Split::Val { &val } else { &test };
        assert_eq!(r.label, t.y[r.row as usize]);
    }

    // The saved models reload to the same seven decisions, bit for bit; `decisions` is the
    // happy one-vs-rest.
    let saved = SavedSvms::load(&dir.join("model.safetensors")).unwrap();
    assert_eq!(saved.class_names.strs(), names());
    assert_eq!(saved.models.len(), 6);
    let mut checked = 0;
    for m in &saved.models {
        assert_eq!(m.classes.len(), K, "{}", m.name);
        for (split, t) in [(Split::Val, &val), (Split::Test, &test)] {
            let v = saved.class_decisions(&m.name, t).unwrap();
            assert_eq!(v.dim(), (t.n, K));
            let happy = saved.decisions(&m.name, t).unwrap();
            for r in rows
                .iter()
                .filter(|r| r.model == m.name && r.split == split)
            {
                let i = r.row as usize;
                for k in 0..K {
                    assert_eq!(
                        v[[i, k]].to_bits(),
                        r.decisions[k].to_bits(),
                        "{} {split:?} row {i} class {k}",
                        m.name
                    );
                }
                assert_eq!(happy[i].to_bits(), r.decision.to_bits());
                checked += 1;
            }
        }
    }
    assert_eq!(checked, rows.len());

    // Far above chance (1/7) on the separable drawings; the best by val macro F1.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["best"]["by"], "val macro F1");
    let models = m["models"].as_array().unwrap();
    let best_f1 = models
        .iter()
        .map(|x| x["val"]["macro_avg"]["f1"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    let best = models
        .iter()
        .find(|x| x["name"] == m["best"]["name"])
        .unwrap();
    assert_eq!(best["val"]["macro_avg"]["f1"].as_f64().unwrap(), best_f1);
    for model in models {
        let acc = model["test"]["accuracy"].as_f64().unwrap();
        assert!(acc > 0.8, "{}: test accuracy {acc}", model["name"]);
        assert_eq!(model["test"]["classes"].as_array().unwrap().len(), K);
        assert_eq!(model["test"]["confusion"].as_array().unwrap().len(), K);
        let auc = model["test"]["roc_auc"].as_f64().unwrap();
        assert!(auc > 0.9, "{}: macro one-vs-rest AUC {auc}", model["name"]);
    }

    // grid.parquet: val_macro_f1 per point; each (feature, kernel)'s chosen point has the
    // highest of its group, the first in grid order on a tie.
    let (schema, batches) = fer_core::parquet_io::read_batches(&dir.join("grid.parquet")).unwrap();
    let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let at = cols.iter().position(|&c| c == "val_macro_f1").unwrap();
    assert_eq!(cols[at - 1], "val_balanced_accuracy");
    let mut points: Vec<(String, f64, bool)> = Vec::new();
    for b in &batches {
        let s = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (feature, kernel) = (s("feature"), s("kernel"));
        let f1 = b.column_by_name("val_macro_f1").unwrap();
        let f1 = f1.as_any().downcast_ref::<Float64Array>().unwrap();
        let chosen = b.column_by_name("chosen").unwrap();
        let chosen = chosen.as_any().downcast_ref::<BooleanArray>().unwrap();
        for i in 0..b.num_rows() {
            points.push((
                format!("{}/{}", feature.value(i), kernel.value(i)),
                f1.value(i),
                chosen.value(i),
            ));
        }
    }
    assert_eq!(points.len(), 20);
    for model in models {
        let name = model["name"].as_str().unwrap();
        let group: Vec<&(String, f64, bool)> = points.iter().filter(|p| p.0 == name).collect();
        let top = group.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let first = group.iter().position(|p| p.1 == top).unwrap();
        assert!(group[first].2, "{name}: the first best point is chosen");
        assert_eq!(group.iter().filter(|p| p.2).count(), 1, "{name}");
    }

    // calibration.json: Platt scaling of the happy decision against label 3 (happy).
    let cal = fer_schema::calibration::read(&dir.join("calibration.json")).unwrap();
    for c in &cal.models {
        let fer_schema::calibration::Method::Platt { a, .. } = c.method else {
            panic!("{}: {:?}", c.model, c.method)
        };
        assert!(a < 0.0, "{}: a = {a}", c.model);
        assert_eq!(
            c.n_happy,
            val.y.iter().filter(|&&y| y == 3).count() as u64,
            "{}",
            c.model
        );
    }
    let report = std::fs::read_to_string(dir.join("report.txt")).unwrap();
    assert!(
        report.contains("surprise") && report.contains("neutral"),
        "{report}"
    );
}

#[test]
fn seven_class_runs_are_deterministic() {
    let d = tempfile::tempdir().unwrap();
    let body = "seed = 5\nfeatures = [\"hog\"]\nkernels = [\"rbf\", \"linear\", \"rff\"]\n\
                c = [1.0]\nc_linear = [0.1]\ngamma = [\"scale\"]\npca = 12\nrff_dim = 100\n\
                class_weight = \"balanced\"\n";
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    preprocess(&a, "det");
    preprocess(&b, "det");
    let (da, db) = (
        run(d.path(), &a, "det", body),
        run(d.path(), &b, "det", body),
    );
    for file in [
        "model.safetensors",
        "predictions.parquet",
        "calibration.json",
    ] {
        assert_eq!(
            std::fs::read(da.join(file)).unwrap(),
            std::fs::read(db.join(file)).unwrap(),
            "{file} differs between two runs"
        );
    }
}
