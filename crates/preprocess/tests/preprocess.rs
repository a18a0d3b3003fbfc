//! Tests of the `preprocess` stage: the saved transform reproduces the tensors bit for bit,
//! the normalization is fitted on train only, every option of `[preprocess]` is reachable from
//! a pipeline file and takes effect, invalid options are named (exit code 2), and reruns are
//! up to date and byte-identical.
//!
//! Fixtures are `ImageDataset`s built here; the ingest stage's output (images.parquet and its
//! manifest) is written with the stage runner, and `fer-preprocess` runs on it.

use approx::assert_abs_diff_eq;
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt8Type, UInt32Type};
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::manifest::{Manifest, RunStatus};
use fer_core::pipeline::PipelineFile;
use fer_core::stage::upstream_code_version;
use fer_core::stage::{Outputs, StageRun};
use fer_core::tensors::TensorSet;
use fer_core::transform::{Denoise, Equalize, Normalization, Transform};
use fer_core::{Emotion, IMAGE_PIXELS, IMAGE_SIDE, LabelMode, Split};
use fer_preprocess::{NormKind, PreprocessParams, PreprocessSection, fit};
use fer_test_support::Outcome;
use image::GrayImage;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fer-preprocess");

/// Output files of the stage (besides manifest.json).
const OUTPUTS: [&str; 5] = [
    "transform.json",
    "train.safetensors",
    "val.safetensors",
    "test.safetensors",
    "index.parquet",
];

/// A deterministic pseudo-random number from two integers (splitmix-style mixing).
fn mix(a: u32, b: u32) -> u32 {
    let mut z = (a as u64) << 32 | b as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// A 48x48 image unlike that of any other `n`: a gradient whose direction and frequency
/// depend on `n`, plus pseudo-random texture (so denoising and equalization change it).
fn pattern(n: u32) -> Vec<u8> {
    (0..IMAGE_PIXELS as u32)
        .map(|i| {
            let (x, y) = (i % 48, i / 48);
            let base = (x * (n % 5 + 1) + y * (n % 7 + 2) + n * 29) % 200;
            (base + mix(n, i) % 56) as u8
        })
        .collect()
}

/// Train 16, val 6, test 8 images; even rows happy, odd rows another emotion.
fn dataset() -> ImageDataset {
    let others = [
        Emotion::Angry,
        Emotion::Sad,
        Emotion::Neutral,
        Emotion::Fear,
        Emotion::Surprise,
        Emotion::Disgust,
    ];
    let mut records = Vec::new();
    for (split, count) in [(Split::Train, 16), (Split::Val, 6), (Split::Test, 8)] {
        for i in 0..count {
            let n = records.len() as u32;
            let emotion = if i % 2 == 0 {
                Emotion::Happy
            } else {
                others[(i / 2) % others.len()]
            };
            records.push(ImageRecord {
                id: format!("{split}_{i:02}"),
                split,
                usage: "Synthetic".into(),
                emotion,
                label: LabelMode::Binary.label_of(emotion),
                pixels: pattern(n),
                source: format!("fixture/{n}"),
                ferplus_label: None,
                ferplus_votes: None,
            });
        }
    }
    ImageDataset {
        side: IMAGE_SIDE,
        label_mode: LabelMode::Binary,
        labels: fer_core::LabelSource::Fer2013,
        records,
    }
}

fn gray(r: &ImageRecord) -> GrayImage {
    GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, r.pixels.clone()).unwrap()
}

fn records(ds: &ImageDataset, split: Split) -> Vec<&ImageRecord> {
    ds.records.iter().filter(|r| r.split == split).collect()
}

/// `[preprocess]` with `body`, parsed and validated as the stage does.
fn params(body: &str) -> PreprocessParams {
    let pf = PipelineFile::parse(Path::new("test.toml"), &format!("[preprocess]\n{body}"))
        .expect("pipeline parses");
    pf.section::<PreprocessSection>("preprocess")
        .expect("section deserializes")
        .validate(&pf)
        .expect("section is valid")
}

/// Population mean and standard deviation.
fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The outputs of one stage: `<artifacts>/<pipeline>/<stage>/`.
struct StageDir(PathBuf);

impl StageDir {
    fn file(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn manifest(&self) -> Manifest {
        Manifest::read(&self.file("manifest.json")).expect("manifest.json reads")
    }

    fn transform(&self) -> Transform {
        Transform::load(&self.file("transform.json")).expect("transform.json loads")
    }

    fn tensors(&self, split: Split) -> (TensorSet, serde_json::Value) {
        TensorSet::read(&self.file(&format!("{split}.safetensors"))).expect("tensors read")
    }

    /// index.parquet rows: (split, row, id, label, emotion).
    fn index(&self) -> Vec<(String, u32, String, u8, String)> {
        let (_, batches) =
            fer_core::parquet_io::read_batches(&self.file("index.parquet")).expect("index reads");
        let mut out = Vec::new();
        for b in &batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .unwrap_or_else(|| panic!("index.parquet: no column `{name}`"))
            };
            let (split, row, id) = (
                col("split").as_string::<i32>(),
                col("row").as_primitive::<UInt32Type>(),
                col("id").as_string::<i32>(),
            );
            let (label, emotion) = (
                col("label").as_primitive::<UInt8Type>(),
                col("emotion").as_string::<i32>(),
            );
            out.extend((0..b.num_rows()).map(|i| {
                (
                    split.value(i).to_string(),
                    row.value(i),
                    id.value(i).to_string(),
                    label.value(i),
                    emotion.value(i).to_string(),
                )
            }));
        }
        out
    }
}

/// A temp folder with `artifacts/` and the pipeline files.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn artifacts(&self) -> PathBuf {
        self.path("artifacts")
    }

    /// Write `<tmp>/<name>.toml` with `[preprocess]` followed by `body`.
    fn pipeline(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(&format!("{name}.toml"));
        std::fs::write(
            &p,
            format!("[pipeline]\ndescription = \"test\"\n\n[preprocess]\n{body}"),
        )
        .unwrap();
        p
    }

    /// What `fer-ingest` would leave: `<artifacts>/<name>/ingest/` with images.parquet and a
    /// manifest recording its hash.
    fn ingest_into(&self, artifacts: &Path, name: &str, ds: &ImageDataset) {
        StageRun {
            pipeline: name.into(),
            stage: "ingest".into(),
            artifacts: artifacts.to_path_buf(),
            code_version: upstream_code_version(fer_preprocess::UPSTREAM_CODE_VERSIONS, "ingest")
                .expect("preprocess reads ingest")
                .into(),
            params: serde_json::json!({}),
            inputs: vec![],
            cache: None,
            force: false,
            verbose: false,
            touch_on_skip: true,
            section_hash: None,
            cache_max_bytes: None,
            status_only: false,
        }
        .execute(|dir| {
            let n = ds.write_parquet(&dir.join("images.parquet"))?;
            let mut o = Outputs::default();
            o.table("images.parquet", n);
            Ok::<_, fer_core::Error>(o)
        })
        .expect("ingest fixture is written");
    }

    fn command(&self, pipeline: &Path, artifacts: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.tmp.path())
            .env_remove("FER_ARTIFACTS")
            .env_remove("FER_CACHE_DIR")
            .arg("--pipeline")
            .arg(pipeline)
            .arg("--artifacts")
            .arg(artifacts)
            .args(["--cache-dir", "off"]);
        c
    }

    fn run_into(&self, pipeline: &Path, artifacts: &Path) -> Outcome {
        Outcome::of(self.command(pipeline, artifacts).arg("--quiet"))
    }

    fn run(&self, pipeline: &Path) -> Outcome {
        self.run_into(pipeline, &self.artifacts())
    }

    fn stage_in(&self, artifacts: &Path, name: &str) -> StageDir {
        StageDir(artifacts.join(name).join("preprocess"))
    }

    fn stage(&self, name: &str) -> StageDir {
        self.stage_in(&self.artifacts(), name)
    }

    /// Ingest `ds` as pipeline `name`, write the pipeline file, run the stage: it must succeed.
    fn preprocess(&self, name: &str, body: &str, ds: &ImageDataset) -> StageDir {
        self.ingest_into(&self.artifacts(), name, ds);
        self.run(&self.pipeline(name, body)).ok();
        self.stage(name)
    }
}

/// What transform.json must record for a section.
#[derive(Debug, Clone)]
struct Want {
    size: u32,
    filter: &'static str,
    denoise: Denoise,
    equalize: Equalize,
    norm: NormKind,
}

impl Default for Want {
    /// The defaults of `[preprocess]`.
    fn default() -> Want {
        Want {
            size: 48,
            filter: "triangle",
            denoise: Denoise::None,
            equalize: Equalize::None,
            norm: NormKind::Standardize,
        }
    }
}

impl Want {
    fn check(&self, name: &str, t: &Transform) {
        let norm = match t.normalization {
            Normalization::Unit => NormKind::Unit,
            Normalization::Symmetric => NormKind::Symmetric,
            Normalization::Standardize { .. } => NormKind::Standardize,
        };
        assert_eq!(
            (
                t.size,
                t.resize_filter.as_str(),
                t.denoise,
                t.equalize,
                norm
            ),
            (
                self.size,
                self.filter,
                self.denoise,
                self.equalize,
                self.norm
            ),
            "{name}: transform.json"
        );
    }
}

/// Check every row of `<split>.safetensors` against the saved transform applied to the
/// split's images in images.parquet, bit for bit, and index.parquet against the images.
fn check_reproduces(name: &str, stage: &StageDir, images: &ImageDataset) {
    let t = stage.transform();
    let thash = fer_core::hash::hash_file(&stage.file("transform.json")).unwrap();
    let index = stage.index();
    assert_eq!(index.len(), images.records.len(), "{name}: index rows");
    for split in Split::ALL {
        let recs = records(images, split);
        let (ts, meta) = stage.tensors(split);
        assert_eq!(
            (ts.n, ts.height, ts.width),
            (recs.len(), t.size as usize, t.size as usize),
            "{name} {split}: tensor shape"
        );
        assert_eq!(meta["split"], split.as_str(), "{name} {split}");
        assert_eq!(
            meta["transform"],
            thash.as_str(),
            "{name} {split}: transform hash"
        );
        let rows: Vec<_> = index.iter().filter(|r| r.0 == split.as_str()).collect();
        assert_eq!(rows.len(), recs.len(), "{name} {split}: index rows");
        for (i, (r, row)) in recs.iter().zip(&rows).enumerate() {
            assert_eq!(
                (row.1 as usize, row.2.as_str(), row.3, row.4.as_str()),
                (i, r.id.as_str(), r.label, r.emotion.as_str()),
                "{name} {split}: index row {i}"
            );
            assert_eq!(ts.y[i], r.label, "{name} {split}: y[{i}] of {}", r.id);
            let want: Vec<u32> = t.apply(&gray(r)).iter().map(|v| v.to_bits()).collect();
            let got: Vec<u32> = ts.image(i).iter().map(|v| v.to_bits()).collect();
            assert!(want == got, "{name} {split}: row {i} ({}) differs", r.id);
        }
    }
}

#[test]
fn saved_transform_reproduces_the_tensors_bit_for_bit() {
    let f = Fixture::new();
    let ds = dataset();
    let configs = [
        (
            "standardize_gaussian_global",
            "normalization = \"standardize\"\ndenoise = \"gaussian\"\nsigma = 1.2\nequalize = \"global\"\n",
            Want {
                denoise: Denoise::Gaussian { sigma: 1.2 },
                equalize: Equalize::Global,
                ..Want::default()
            },
        ),
        (
            "symmetric_median",
            "normalization = \"symmetric\"\ndenoise = \"median\"\nradius = 2\n",
            Want {
                denoise: Denoise::Median { radius: 2 },
                norm: NormKind::Symmetric,
                ..Want::default()
            },
        ),
        (
            "unit_32_lanczos3",
            "normalization = \"unit\"\nsize = 32\nresize_filter = \"lanczos3\"\n",
            Want {
                size: 32,
                filter: "lanczos3",
                norm: NormKind::Unit,
                ..Want::default()
            },
        ),
    ];
    for (name, body, want) in configs {
        let stage = f.preprocess(name, body, &ds);
        want.check(name, &stage.transform());
        // The images as the stage read them, not the fixture in memory.
        let images =
            ImageDataset::read_parquet(&f.artifacts().join(name).join("ingest/images.parquet"))
                .unwrap();
        assert_eq!(images, ds);
        check_reproduces(name, &stage, &images);
    }
}

#[test]
fn normalization_is_fitted_on_train_only() {
    let ds = dataset();
    let change = |ds: &ImageDataset, splits: &[Split]| {
        let mut out = ds.clone();
        for r in out.records.iter_mut().filter(|r| splits.contains(&r.split)) {
            r.pixels.iter_mut().for_each(|v| *v /= 3);
        }
        out
    };
    for body in [
        "normalization = \"standardize\"\n",
        "normalization = \"standardize\"\ndenoise = \"gaussian\"\nsigma = 1.5\nequalize = \"global\"\n",
    ] {
        let p = params(body);
        let t = fit(&ds, &p).unwrap();
        let Normalization::Standardize { mean, std } = t.normalization else {
            panic!("{body}: fitted {:?}", t.normalization);
        };
        let held_out = fit(&change(&ds, &[Split::Val, Split::Test]), &p).unwrap();
        assert_eq!(
            held_out.normalization, t.normalization,
            "{body}: val/test pixels moved the constants"
        );
        let Normalization::Standardize {
            mean: mean2,
            std: std2,
        } = fit(&change(&ds, &[Split::Train]), &p)
            .unwrap()
            .normalization
        else {
            unreachable!()
        };
        assert!(
            mean2 != mean && std2 != std,
            "{body}: changed train pixels, same constants {mean} {std}"
        );
        // The constants are the pooled population mean/std of the prepared train pixels.
        let train: Vec<f64> = records(&ds, Split::Train)
            .iter()
            .flat_map(|r| t.prepare(&gray(r)).into_raw())
            .map(|v| v as f64 / 255.0)
            .collect();
        let (m, s) = mean_std(train.iter().copied());
        assert_abs_diff_eq!(mean as f64, m, epsilon = 1e-6);
        assert_abs_diff_eq!(std as f64, s, epsilon = 1e-6);
    }
}

#[test]
fn every_option_is_reachable_from_the_pipeline_file() {
    let f = Fixture::new();
    let ds = dataset();
    let s32 = |filter: &'static str| Want {
        size: 32,
        filter,
        ..Want::default()
    };
    let cases: Vec<(&str, String, Want)> = vec![
        (
            "defaults_explicit",
            "size = 48\nresize_filter = \"triangle\"\nnormalization = \"standardize\"\n\
             denoise = \"none\"\nequalize = \"none\"\n"
                .into(),
            Want::default(),
        ),
        (
            "unit",
            "normalization = \"unit\"\n".into(),
            Want {
                norm: NormKind::Unit,
                ..Want::default()
            },
        ),
        (
            "symmetric",
            "normalization = \"symmetric\"\n".into(),
            Want {
                norm: NormKind::Symmetric,
                ..Want::default()
            },
        ),
        (
            "gaussian",
            "denoise = \"gaussian\"\nsigma = 1.5\n".into(),
            Want {
                denoise: Denoise::Gaussian { sigma: 1.5 },
                ..Want::default()
            },
        ),
        (
            "median",
            "denoise = \"median\"\nradius = 2\n".into(),
            Want {
                denoise: Denoise::Median { radius: 2 },
                ..Want::default()
            },
        ),
        (
            "global",
            "equalize = \"global\"\n".into(),
            Want {
                equalize: Equalize::Global,
                ..Want::default()
            },
        ),
    ]
    .into_iter()
    .chain(
        ["nearest", "triangle", "catmull_rom", "gaussian", "lanczos3"].map(|filter| {
            (
                filter,
                format!("size = 32\nresize_filter = \"{filter}\"\n"),
                s32(filter),
            )
        }),
    )
    .collect();

    let mut outputs: Vec<(&str, Vec<f32>)> = Vec::new();
    for (name, body, want) in &cases {
        let name = *name;
        let stage = f.preprocess(name, body, &ds);
        let t = stage.transform();
        want.check(name, &t);
        let m = stage.manifest();
        assert_eq!(
            m.summary["value_range"],
            serde_json::json!([t.value_range().0, t.value_range().1]),
            "{name}: manifest value_range"
        );
        let (train, _) = stage.tensors(Split::Train);
        assert!(train.x.iter().all(|v| v.is_finite()), "{name}: finite");
        let (lo, hi) = Split::ALL
            .iter()
            .flat_map(|&s| stage.tensors(s).0.x)
            .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
        match want.norm {
            NormKind::Unit => assert!(lo >= 0.0 && hi <= 1.0, "{name}: {lo}..{hi}"),
            NormKind::Symmetric => assert!(lo >= -1.0 && hi <= 1.0, "{name}: {lo}..{hi}"),
            NormKind::Standardize => {
                let (mean, std) = mean_std(train.x.iter().map(|&v| v as f64));
                assert_abs_diff_eq!(mean, 0.0, epsilon = 1e-4);
                assert_abs_diff_eq!(std, 1.0, epsilon = 1e-4);
            }
        }
        outputs.push((name, train.x));
    }
    // Each option took effect: no two configurations give the same train tensor.
    for (i, (a, xa)) in outputs.iter().enumerate() {
        for (b, xb) in &outputs[i + 1..] {
            assert!(xa != xb, "`{a}` and `{b}` give the same tensors");
        }
    }
}

#[test]
fn invalid_options_are_named_and_leave_no_manifest() {
    let f = Fixture::new();
    let ds = dataset();
    let cases = [
        (
            "negative_sigma",
            "denoise = \"gaussian\"\nsigma = -1\n",
            "[preprocess] sigma:",
        ),
        (
            "zscore",
            "normalization = \"zscore\"\n",
            "[preprocess] normalization:",
        ),
        (
            "bilateral",
            "denoise = \"bilateral\"\n",
            "[preprocess] denoise:",
        ),
        (
            "radius_zero",
            "denoise = \"median\"\nradius = 0\n",
            "[preprocess] radius:",
        ),
        ("clahe", "equalize = \"clahe\"\n", "[preprocess] equalize:"),
        (
            "unknown_key",
            "sharpen = 1\n",
            "[preprocess] unknown field `sharpen`",
        ),
    ];
    for (name, body, needle) in cases {
        // A good run first: the failed one must take its manifest away.
        let stage = f.preprocess(name, "", &ds);
        assert!(stage.file("manifest.json").exists(), "{name}");
        let p = f.pipeline(name, body);
        f.run(&p).error(&[&p.display().to_string(), needle]);
        assert!(
            !stage.file("manifest.json").exists(),
            "{name}: a failed run left the old manifest"
        );
    }

    // No upstream: the message says which stage to run.
    let p = f.pipeline("no_ingest", "");
    f.run(&p).error(&[
        "stage `ingest` has not run",
        "make ingest PIPELINE=no_ingest",
    ]);
    assert!(!f.stage("no_ingest").0.exists());
}

#[test]
fn rerun_is_up_to_date_and_outputs_are_byte_identical() {
    let f = Fixture::new();
    let ds = dataset();
    let body = "denoise = \"median\"\nradius = 1\nequalize = \"global\"\n";
    let p = f.pipeline("p", body);
    let (a, b) = (f.path("a"), f.path("b"));
    for artifacts in [&a, &b] {
        f.ingest_into(artifacts, "p", &ds);
        f.run_into(&p, artifacts).ok();
    }
    let (sa, sb) = (f.stage_in(&a, "p"), f.stage_in(&b, "p"));
    let first = sa.manifest();
    assert_eq!(first.status, RunStatus::Computed);
    let listed: Vec<&str> = first.outputs.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(listed, OUTPUTS, "manifest lists the outputs");
    for rel in OUTPUTS {
        assert_eq!(
            sa.bytes(rel),
            sb.bytes(rel),
            "{rel}: same input, same bytes"
        );
    }
    assert_eq!(
        (&sb.manifest().signature, &sb.manifest().outputs),
        (&first.signature, &first.outputs)
    );

    let again = Outcome::of(&mut f.command(&p, &a)).ok();
    assert!(again.stderr.contains("up to date"), "{}", again.stderr);
    assert_eq!(sa.manifest(), first, "a skipped run keeps the manifest");

    let before: Vec<Vec<u8>> = OUTPUTS.iter().map(|rel| sa.bytes(rel)).collect();
    let forced = Outcome::of(f.command(&p, &a).arg("--force")).ok();
    assert!(forced.stderr.contains("computing"), "{}", forced.stderr);
    let after: Vec<Vec<u8>> = OUTPUTS.iter().map(|rel| sa.bytes(rel)).collect();
    assert!(before == after, "a forced recompute gives the same bytes");
    let m = sa.manifest();
    assert_eq!(
        (m.status, &m.signature, &m.outputs),
        (RunStatus::Computed, &first.signature, &first.outputs)
    );
}
