//! End-to-end tests of the `fer-train-svm` binary on a drawn fixture: a fake `preprocess`
//! stage (written through the real stage runner, so its manifest and hashes are genuine) of
//! two separable classes of 48x48 drawings (a smile, mouth corners up = happy; a frown = not
//! happy) with noise and jitter. The SVMs must beat chance by far, the saved models must
//! reload to bit-identical decision values, runs must be deterministic, and bad params must
//! exit 2 with one `error: ` line naming the file, `[train_svm]` and the key.

use arrow_array::{Array, Float64Array, StringArray, UInt8Array, UInt32Array};
use fer_core::stage::upstream_code_version;
use fer_core::stage::{Outputs, StageRun};
use fer_core::tensors::TensorSet;
use fer_core::transform::{Denoise, Equalize, Normalization, Transform};
use fer_test_support::Outcome;
use fer_train_svm::SavedSvms;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fer-train-svm");

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

/// A face-like drawing: two eyes and a mouth arc, curving up (happy) or down, with jitter,
/// a random arc depth and pixel noise.
fn drawing(happy: bool, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let (dx, dy) = (rng.random_range(-3i32..=3), rng.random_range(-3i32..=3));
    let depth = rng.random_range(4.0f32..8.0);
    let mut px: Vec<u8> = (0..48 * 48)
        .map(|_| 90u8.saturating_add(rng.random_range(0u8..40)))
        .collect();
    let mut put = |x: i32, y: i32, v: u8| {
        if (0..48).contains(&x) && (0..48).contains(&y) {
            px[(y * 48 + x) as usize] = v;
        }
    };
    for (ex, ey) in [(16, 16), (32, 16)] {
        for oy in -2..=2 {
            for ox in -2..=2 {
                put(ex + ox + dx, ey + oy + dy, 30);
            }
        }
    }
    for x in 12..=36 {
        let t = (x as f32 - 24.0) / 12.0;
        // Image y grows downwards: a smile's corners are higher (smaller y) than its middle.
        let bend = depth * (1.0 - t * t);
        let y = if happy { 30.0 + bend } else { 38.0 - bend };
        for w in 0..2 {
            put(x + dx, y.round() as i32 + w + dy, 230);
        }
    }
    px
}

fn split(n_per_class: usize, seed: u64) -> TensorSet {
    let t = transform();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..2 * n_per_class {
        let label = (i % 2) as u8;
        x.extend(
            drawing(label == 0, &mut rng)
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

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A temp folder with `artifacts/<pipeline>/preprocess/` for each pipeline name.
    fn new(pipelines: &[&str]) -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in pipelines {
            f.preprocess(name);
        }
        f
    }

    fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    fn preprocess(&self, pipeline: &str) {
        let run = StageRun {
            pipeline: pipeline.into(),
            stage: "preprocess".into(),
            artifacts: self.artifacts(),
            code_version: upstream_code_version(
                fer_train_svm::UPSTREAM_CODE_VERSIONS,
                "preprocess",
            )
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
            for (name, n, seed) in [("train", 60, 1), ("val", 20, 2), ("test", 25, 3)] {
                let t = split(n, seed);
                t.write(
                    &dir.join(format!("{name}.safetensors")),
                    &serde_json::json!({}),
                )?;
                out.table(&format!("{name}.safetensors"), t.n);
                for (i, &y) in t.y.iter().enumerate() {
                    index.push((name.into(), i as u32, format!("{name}/img{i:04}"), y));
                }
            }
            let n =
                crate::common::write_index(dir, &index, |l| if l == 0 { "happy" } else { "sad" })?;
            out.table("index.parquet", n);
            Ok(out)
        })
        .unwrap();
    }

    fn pipeline(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, format!("[train_svm]\n{body}")).unwrap();
        p
    }

    fn run_into(&self, pipeline: &Path, artifacts: &Path) -> Outcome {
        Outcome::of(
            Command::new(BIN)
                .arg("--pipeline")
                .arg(pipeline)
                .arg("--artifacts")
                .arg(artifacts)
                .args(["--cache-dir", "off", "--quiet"]),
        )
    }

    fn run(&self, pipeline: &Path) -> Outcome {
        self.run_into(pipeline, &self.artifacts())
    }

    fn stage(&self, pipeline: &str) -> PathBuf {
        self.artifacts().join(pipeline).join("train_svm")
    }
}

/// Every model kind on both features, a 2 x 2 grid.
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

/// (model, split, row, id, label, decision, pred) of `predictions.parquet`.
type PredRow = (String, String, u32, String, u8, f64, u8);

fn predictions(dir: &Path) -> Vec<PredRow> {
    let (_, batches) =
        fer_core::parquet_io::read_batches(&dir.join("predictions.parquet")).unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let s = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let u8c = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<UInt8Array>()
                .unwrap()
                .clone()
        };
        let (model, split, id) = (s("model"), s("split"), s("id"));
        let (label, pred) = (u8c("label"), u8c("pred"));
        let row = b.column_by_name("row").unwrap();
        let row = row.as_any().downcast_ref::<UInt32Array>().unwrap();
        let dec = b.column_by_name("decision").unwrap();
        let dec = dec.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.push((
                model.value(i).to_string(),
                split.value(i).to_string(),
                row.value(i),
                id.value(i).to_string(),
                label.value(i),
                dec.value(i),
                pred.value(i),
            ));
        }
    }
    rows
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

/// Reload `model.safetensors` and recompute every prediction from the preprocess tensors:
/// the decision values must be bit-identical to `predictions.parquet`.
fn assert_reload_identical(f: &Fixture, pipeline: &str) -> usize {
    let dir = f.stage(pipeline);
    let saved = SavedSvms::load(&dir.join("model.safetensors")).unwrap();
    let pre = f.artifacts().join(pipeline).join("preprocess");
    let rows = predictions(&dir);
    let mut checked = 0;
    for m in &saved.models {
        for split in ["val", "test"] {
            let (t, _) = TensorSet::read(&pre.join(format!("{split}.safetensors"))).unwrap();
            let d = saved.decisions(&m.name, &t).unwrap();
            let got: Vec<&PredRow> = rows
                .iter()
                .filter(|r| r.0 == m.name && r.1 == split)
                .collect();
            assert_eq!(got.len(), t.n, "{} {split}", m.name);
            for r in got {
                let i = r.2 as usize;
                assert_eq!(
                    r.5.to_bits(),
                    d[i].to_bits(),
                    "{} {split} row {i}: saved {} vs reloaded {}",
                    m.name,
                    r.5,
                    d[i]
                );
                assert_eq!(r.4, t.y[i]);
                assert_eq!(r.6, u8::from(d[i] < 0.0));
                assert_eq!(r.3, format!("{split}/img{i:04}"));
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn every_model_beats_chance_and_reloads_to_identical_decisions() {
    let f = Fixture::new(&["drawn"]);
    let p = f.pipeline("drawn", ALL);
    f.run(&p).ok();
    let dir = f.stage("drawn");
    for file in [
        "model.safetensors",
        "predictions.parquet",
        "grid.parquet",
        "metrics.json",
        "report.txt",
        "manifest.json",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let m = metrics(&dir);
    let models = m["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    // Every model that beats chance gets a Platt map fitted on val (a < 0: higher decisions
    // mean happier) that lowers the val NLL of the unfitted 1 / (1 + exp(-d)).
    let cal = fer_schema::calibration::read(&dir.join("calibration.json")).unwrap();
    assert_eq!(cal.fitted_on, "val");
    assert_eq!(
        cal.models
            .iter()
            .map(|c| c.model.as_str())
            .collect::<Vec<_>>(),
        names
    );
    for c in &cal.models {
        let fer_schema::calibration::Method::Platt { a, .. } = c.method else {
            panic!("{}: {:?}", c.model, c.method)
        };
        assert!(a < 0.0, "{}: a = {a}", c.model);
        assert!(
            c.after.unwrap().nll <= c.before.unwrap().nll + 0.01,
            "{c:?}"
        );
    }
    assert_eq!(
        names,
        [
            "raw/rbf",
            "raw/linear",
            "raw/rff",
            "hog/rbf",
            "hog/linear",
            "hog/rff"
        ]
    );
    for model in models {
        let acc = model["test"]["accuracy"].as_f64().unwrap();
        let auc = model["test"]["roc_auc"].as_f64().unwrap();
        // Chance is 0.5; 120 jittered training drawings in 2304 pixels are not much.
        assert!(acc > 0.7, "{}: test accuracy {acc}", model["name"]);
        assert!(auc > 0.75, "{}: test ROC AUC {auc}", model["name"]);
        assert!(model["inference_images_per_second"].as_f64().unwrap() > 0.0);
        assert!(model["train_seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(model["test"]["n"], 50);
    }
    // The kernel SVMs train on the stratified subsample, rff on every train row.
    assert_eq!(models[0]["n_train"], 100);
    assert_eq!(models[2]["n_train"], 120);
    assert_eq!(m["n"]["kernel_train"], 100);
    assert!(models.iter().any(|x| x["name"] == m["best"]["name"]));
    let best = m["best"]["test_accuracy"].as_f64().unwrap();
    assert!(best >= 0.9, "best model's test accuracy {best}");
    // 2 features x (rbf 2x2 + linear 2 + rff 2x2) grid points, one chosen per model.
    let (_, grid) = fer_core::parquet_io::read_batches(&dir.join("grid.parquet")).unwrap();
    assert_eq!(grid.iter().map(|b| b.num_rows()).sum::<usize>(), 20);
    let checked = assert_reload_identical(&f, "drawn");
    assert_eq!(checked, 6 * (40 + 50));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "computed");
}

#[test]
fn same_seed_same_models_and_predictions_with_pca() {
    let f = Fixture::new(&["pca"]);
    let body = "seed = 5\nfeatures = [\"raw\", \"hog\"]\nkernels = [\"rbf\", \"rff\"]\n\
                c = [1.0]\ngamma = [\"scale\"]\npca = 12\nrff_dim = 200\n\
                class_weight = \"balanced\"\n";
    let p = f.pipeline("pca", body);
    let other = f.dir.path().join("other");
    // The second artifacts folder needs the same upstream stage.
    let copy = Command::new("cp")
        .arg("-r")
        .arg(f.artifacts())
        .arg(&other)
        .status()
        .unwrap();
    assert!(copy.success());
    f.run(&p).ok();
    f.run_into(&p, &other).ok();
    let (a, b) = (f.stage("pca"), other.join("pca").join("train_svm"));
    for file in ["model.safetensors", "predictions.parquet"] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file} differs between two runs"
        );
    }
    let m = metrics(&a);
    assert_eq!(m["features"][0]["dim"], 12);
    for model in m["models"].as_array().unwrap() {
        assert!(
            model["test"]["accuracy"].as_f64().unwrap() > 0.8,
            "{}",
            model["name"]
        );
    }
    assert_reload_identical(&f, "pca");
    // A rerun is up to date and leaves the outputs alone.
    let again = f.run_into(&p, &f.artifacts()).ok();
    assert_eq!(again.stderr, "");
}

#[test]
fn bad_params_exit_2_naming_the_key() {
    let f = Fixture::new(&[]);
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "c_zero",
            "c = [1.0, 0.0]\n",
            &["[train_svm] c:", "0 is not > 0"],
        ),
        ("c_negative", "c = [-1]\n", &["[train_svm] c:"]),
        ("c_empty", "c = []\n", &["[train_svm] c:", "empty"]),
        (
            "kernel",
            "kernels = [\"rbf\", \"poly\"]\n",
            &["[train_svm] kernels:", "`poly`"],
        ),
        (
            "kernels_empty",
            "kernels = []\n",
            &["[train_svm] kernels:", "empty"],
        ),
        (
            "feature",
            "features = [\"sift\"]\n",
            &["[train_svm] features:", "`sift`"],
        ),
        (
            "features_empty",
            "features = []\n",
            &["[train_svm] features:"],
        ),
        ("gamma_zero", "gamma = [0.0]\n", &["[train_svm] gamma:"]),
        (
            "gamma_negative",
            "gamma = [\"scale\", -2]\n",
            &["[train_svm] gamma:"],
        ),
        (
            "gamma_name",
            "gamma = [\"auto\"]\n",
            &["[train_svm] gamma:", "`auto`"],
        ),
        ("gamma_empty", "gamma = []\n", &["[train_svm] gamma:"]),
        ("max_train", "max_train = 3\n", &["[train_svm] max_train:"]),
        (
            "c_linear",
            "c_linear = [0.1, -1]\n",
            &["[train_svm] c_linear:"],
        ),
        (
            "solver",
            "linear_solver = \"newton\"\n",
            &["[train_svm] linear_solver:", "`newton`"],
        ),
        ("tol", "tol = 0\n", &["[train_svm] tol:"]),
        (
            "class_weight",
            "class_weight = \"auto\"\n",
            &["[train_svm] class_weight:", "`auto`"],
        ),
        (
            "hog_cell",
            "hog = { cell = 7 }\n",
            &["[train_svm] hog:", "48x48"],
        ),
        ("hog_key", "hog = { cel = 8 }\n", &["[train_svm]", "`cel`"]),
        (
            "unknown",
            "kernel = [\"rbf\"]\n",
            &["[train_svm]", "unknown field `kernel`"],
        ),
    ];
    for (name, body, needles) in cases {
        let p = f.pipeline(name, body);
        let file = p.display().to_string();
        let mut all: Vec<&str> = needles.to_vec();
        all.push(&file);
        f.run(&p).error(&all);
        assert!(!f.stage(name).exists(), "{name}: no outputs for bad params");
    }
}

#[test]
fn missing_preprocess_names_the_stage_to_run() {
    let f = Fixture::new(&[]);
    let p = f.pipeline("nothing", "c = [1.0]\n");
    f.run(&p).error(&["make preprocess PIPELINE=nothing"]);
}

#[test]
fn pca_larger_than_the_train_set_names_the_key() {
    let f = Fixture::new(&["big"]);
    let p = f.pipeline("big", "features = [\"hog\"]\npca = 500\n");
    let file = p.display().to_string();
    f.run(&p)
        .error(&[&file, "[train_svm] pca:", "120 train rows"]);
    assert!(!f.stage("big").join("manifest.json").exists());
}
