//! Tests of the `stats` stage: the study's mean/std table against a direct computation, the
//! data-quality audit (exact and near duplicates, test images with a train twin, blank
//! images), the files it writes (valid PNGs, table row counts), the seeded sample grids, and
//! invalid params (exit code 2, the key named).
//!
//! Fixtures are `ImageDataset`s built here; for end-to-end runs the ingest stage's output
//! (images.parquet and its manifest) is written with the stage runner, and `fer-stats` runs
//! on it.

use approx::assert_abs_diff_eq;
use arrow_array::types::{ArrowPrimitiveType, Float64Type, UInt8Type, UInt32Type, UInt64Type};
use arrow_array::{RecordBatch, cast::AsArray};
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::manifest::Manifest;
use fer_core::stage::upstream_code_version;
use fer_core::stage::{Outputs, StageRun};
use fer_core::{Emotion, IMAGE_PIXELS, IMAGE_SIDE, LabelMode, Split};
use fer_stats::{StatsParams, class_moments, compute};
use fer_test_support::Outcome;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fer-stats");

/// The mean/std groups: the splits and FER2013's own train folder.
const GROUPS: [&str; 4] = ["train", "val", "test", "train+val"];

/// Side of one cell of an image grid (`fer_core::plot::image_grid` at scale 2).
const CELL: u32 = IMAGE_SIDE as u32 * 2 + 4;

/// The pixel size of an image grid with `rows` rows of at most `cols` images.
fn grid_size(rows: usize, cols: usize) -> (u32, u32) {
    (
        170 + cols.max(1) as u32 * CELL + 4,
        36 + rows.max(1) as u32 * CELL + 4,
    )
}

/// A deterministic pseudo-random number from two integers (splitmix-style mixing).
fn mix(a: u32, b: u32) -> u32 {
    let mut z = (a as u64) << 32 | b as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// A 48x48 image unlike that of any other `n`: a gradient whose direction and frequency
/// depend on `n`, plus pseudo-random texture.
fn pattern(n: u32) -> Vec<u8> {
    (0..IMAGE_PIXELS as u32)
        .map(|i| {
            let (x, y) = (i % 48, i / 48);
            let base = (x * (n % 5 + 1) + y * (n % 7 + 2) + n * 29) % 200;
            (base + mix(n, i) % 56) as u8
        })
        .collect()
}

fn record(id: &str, split: Split, emotion: Emotion, pixels: Vec<u8>) -> ImageRecord {
    ImageRecord {
        id: id.into(),
        split,
        usage: "Synthetic".into(),
        emotion,
        label: LabelMode::Binary.label_of(emotion),
        pixels,
        source: format!("fixture/{id}"),
        ferplus_label: None,
        ferplus_votes: None,
    }
}

/// `happy` happy then `other` not-happy images of `split` (emotions cycling), patterns from
/// `first` on.
fn faces(split: Split, happy: usize, other: usize, first: u32) -> Vec<ImageRecord> {
    let others = [
        Emotion::Sad,
        Emotion::Angry,
        Emotion::Neutral,
        Emotion::Fear,
    ];
    (0..happy + other)
        .map(|i| {
            let e = if i < happy {
                Emotion::Happy
            } else {
                others[i % others.len()]
            };
            record(
                &format!("{split}_{i:02}"),
                split,
                e,
                pattern(first + i as u32),
            )
        })
        .collect()
}

fn binary(records: Vec<ImageRecord>) -> ImageDataset {
    ImageDataset {
        side: IMAGE_SIDE,
        label_mode: LabelMode::Binary,
        labels: fer_core::LabelSource::Fer2013,
        records,
    }
}

/// Train 5 + 4, val 3 not happy only (so val has no happy row), test 3 + 3.
fn small_dataset() -> ImageDataset {
    binary(
        [
            faces(Split::Train, 5, 4, 0),
            faces(Split::Val, 0, 3, 100),
            faces(Split::Test, 3, 3, 200),
        ]
        .concat(),
    )
}

/// The audit fixture and the findings it must give.
struct AuditFixture {
    ds: ImageDataset,
    /// The planted pairs (id a, id b, kind), `a` first in the dataset. The two blank images
    /// (pixel RMS 0.02) are left out: the audit misses them, see
    /// `near_constant_images_are_near_duplicates`.
    pairs: BTreeSet<(&'static str, &'static str, &'static str)>,
    test_twins: BTreeSet<&'static str>,
    blank: BTreeSet<&'static str>,
}

impl AuditFixture {
    /// Is this the pair of the two blank images?
    fn blank_pair(&self, a: &str, b: &str) -> bool {
        self.blank.contains(a) && self.blank.contains(b)
    }
}

/// Train: an exact duplicate pair (`tr_a`, `tr_a_dup`), `tr_bright` (`tr_a` + 40: same
/// structure, far in pixels), and distinct images. Val: two near-constant images and a
/// distinct one. Test: an exact copy of `tr_b` with another label, a copy of `tr_c` with
/// noise of at most 2 grey levels, and distinct images.
fn audit_fixture() -> AuditFixture {
    let (a, b, c) = (pattern(1), pattern(2), pattern(3));
    let bright: Vec<u8> = a.iter().map(|v| v.saturating_add(40)).collect();
    let near_c: Vec<u8> = c
        .iter()
        .enumerate()
        .map(|(i, &v)| v.saturating_add_signed((mix(99, i as u32) % 5) as i8 - 2))
        .collect();
    let mut blank1 = vec![17u8; IMAGE_PIXELS];
    blank1[IMAGE_PIXELS / 2] = 18;
    use Emotion::*;
    use Split::*;
    let records = vec![
        record("tr_a", Train, Happy, a.clone()),
        record("tr_a_dup", Train, Happy, a),
        record("tr_b", Train, Happy, b.clone()),
        record("tr_c", Train, Sad, c),
        record("tr_bright", Train, Angry, bright),
        record("tr_d", Train, Neutral, pattern(4)),
        record("tr_e", Train, Happy, pattern(5)),
        record("va_blank", Val, Sad, vec![17; IMAGE_PIXELS]),
        record("va_blank1", Val, Happy, blank1),
        record("va_f", Val, Fear, pattern(6)),
        record("te_copy_b", Test, Surprise, b),
        record("te_near_c", Test, Angry, near_c),
        record("te_g", Test, Happy, pattern(7)),
        record("te_h", Test, Neutral, pattern(8)),
    ];
    AuditFixture {
        ds: binary(records),
        pairs: [
            ("tr_a", "tr_a_dup", "exact"),
            ("tr_b", "te_copy_b", "exact"),
            ("tr_c", "te_near_c", "near"),
        ]
        .into(),
        test_twins: ["te_copy_b", "te_near_c"].into(),
        blank: ["va_blank", "va_blank1"].into(),
    }
}

/// Population mean and standard deviation.
fn mean_std<'a>(pixels: impl Iterator<Item = &'a u8> + Clone) -> (f64, f64) {
    let n = pixels.clone().count() as f64;
    let mean = pixels.clone().map(|&v| v as f64).sum::<f64>() / n;
    let var = pixels.map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn in_group(group: &str, split: Split) -> bool {
    group == split.as_str() || (group == "train+val" && split != Split::Test)
}

fn split_of(ds: &ImageDataset, id: &str) -> Split {
    ds.records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no image `{id}`"))
        .split
}

fn class_name(r: &ImageRecord) -> &'static str {
    LabelMode::Binary.class_names()[r.label as usize]
}

/// A Parquet table read whole.
struct Table(Vec<RecordBatch>);

impl Table {
    fn read(path: &Path) -> Table {
        Table(
            fer_core::parquet_io::read_batches(path)
                .expect("table reads")
                .1,
        )
    }

    fn rows(&self) -> usize {
        self.0.iter().map(|b| b.num_rows()).sum()
    }

    fn column<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a arrow_array::ArrayRef> {
        let name = name.to_string();
        self.0.iter().map(move |b| {
            b.column_by_name(&name)
                .unwrap_or_else(|| panic!("no column `{name}`"))
        })
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.column(name)
            .flat_map(|c| {
                c.as_string::<i32>()
                    .iter()
                    .map(|v| v.expect("no nulls").to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn values<T: ArrowPrimitiveType>(&self, name: &str) -> Vec<T::Native> {
        self.column(name)
            .flat_map(|c| c.as_primitive::<T>().values().to_vec())
            .collect()
    }
}

/// The outputs of the stage, from the binary or from `compute`.
struct StageDir(PathBuf);

impl StageDir {
    fn file(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn table(&self, rel: &str) -> Table {
        Table::read(&self.file(rel))
    }

    fn json(&self) -> Value {
        let text = std::fs::read_to_string(self.file("stats.json")).expect("stats.json exists");
        serde_json::from_str(&text).expect("stats.json parses")
    }

    fn manifest(&self) -> Manifest {
        Manifest::read(&self.file("manifest.json")).expect("manifest.json reads")
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

    /// `compute` with `params` into `<tmp>/<name>/`.
    fn compute(&self, name: &str, ds: &ImageDataset, params: &StatsParams) -> StageDir {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        compute(ds, params, &dir, true).expect("stats compute");
        StageDir(dir)
    }

    /// Write `<tmp>/<name>.toml` with `[stats]` followed by `body`.
    fn pipeline(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(&format!("{name}.toml"));
        std::fs::write(
            &p,
            format!("[pipeline]\ndescription = \"test\"\n\n[stats]\n{body}"),
        )
        .unwrap();
        p
    }

    /// What `fer-ingest` would leave: `<artifacts>/<name>/ingest/` with images.parquet and a
    /// manifest recording its hash.
    fn ingest(&self, name: &str, ds: &ImageDataset) {
        let v = upstream_code_version(fer_stats::UPSTREAM_CODE_VERSIONS, "ingest");
        self.ingest_built_by(name, ds, v.expect("stats reads ingest"));
    }

    /// [`Self::ingest`] as if made by ingest's code of version `code_version`.
    fn ingest_built_by(&self, name: &str, ds: &ImageDataset, code_version: &str) {
        StageRun {
            pipeline: name.into(),
            stage: "ingest".into(),
            artifacts: self.artifacts(),
            code_version: code_version.into(),
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

    /// `fer-stats` on `pipeline` with the fixture's artifacts, no run cache, and `flag`.
    fn run_with(&self, pipeline: &Path, flag: &str) -> Outcome {
        Outcome::of(
            Command::new(BIN)
                .current_dir(self.tmp.path())
                .env_remove("FER_ARTIFACTS")
                .env_remove("FER_CACHE_DIR")
                .arg("--pipeline")
                .arg(pipeline)
                .arg("--artifacts")
                .arg(self.artifacts())
                .args(["--cache-dir", "off", flag]),
        )
    }

    fn run(&self, pipeline: &Path) -> Outcome {
        self.run_with(pipeline, "--quiet")
    }

    fn stage(&self, name: &str) -> StageDir {
        StageDir(self.artifacts().join(name).join("stats"))
    }

    /// `fer-stats --status`: its one line.
    fn status(&self, pipeline: &Path) -> String {
        let out = self.run_with(pipeline, "--status").ok();
        out.stdout.trim().to_string()
    }

    /// Ingest `ds` as pipeline `name`, write the pipeline file, run the stage: it must succeed.
    fn stats(&self, name: &str, body: &str, ds: &ImageDataset) -> StageDir {
        self.ingest(name, ds);
        self.run(&self.pipeline(name, body)).ok();
        self.stage(name)
    }
}

#[test]
fn mean_and_std_are_pooled_population_moments_per_group_and_class() {
    let ds = small_dataset();
    let cm = class_moments(&ds);
    // (group, class) -> (images, mean, std), computed directly.
    let mut want: BTreeMap<(String, String), (u64, f64, f64)> = BTreeMap::new();
    for group in GROUPS {
        for class in ["happy", "not_happy", "all"] {
            let members: Vec<&ImageRecord> = ds
                .records
                .iter()
                .filter(|r| in_group(group, r.split) && (class == "all" || class_name(r) == class))
                .collect();
            let key = (group.to_string(), class.to_string());
            if members.is_empty() {
                assert!(!cm.contains_key(&key), "{key:?}: no images, no row");
                continue;
            }
            let (mean, std) = mean_std(members.iter().flat_map(|r| &r.pixels));
            let m = &cm[&key];
            assert_eq!(m.images, members.len() as u64, "{key:?}: images");
            assert_eq!(m.pixels(), (members.len() * IMAGE_PIXELS) as u64, "{key:?}");
            assert_abs_diff_eq!(m.mean(), mean, epsilon = 1e-9);
            assert_abs_diff_eq!(m.std(), std, epsilon = 1e-9);
            want.insert(key, (m.images, mean, std));
        }
    }
    assert_eq!(
        cm.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(want[&("train+val".into(), "all".into())].0, 12);
    assert!(!want.contains_key(&("val".into(), "happy".into())));

    // summary.parquet is the same table, plus image counts per (group, emotion).
    let f = Fixture::new();
    let out = f.compute("out", &ds, &StatsParams::default());
    let t = out.table("summary.parquet");
    let (split, class) = (t.strings("split"), t.strings("class"));
    let images = t.values::<UInt64Type>("images");
    let (mean, std) = (
        t.values::<Float64Type>("mean"),
        t.values::<Float64Type>("std"),
    );
    let mut got = BTreeMap::new();
    let mut emotions = BTreeMap::new();
    for i in 0..t.rows() {
        if let Some(e) = class[i].strip_prefix("emotion:") {
            emotions.insert((split[i].clone(), e.to_string()), images[i]);
        } else {
            got.insert(
                (split[i].clone(), class[i].clone()),
                (images[i], mean[i], std[i]),
            );
        }
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, (n, m, s)) in &want {
        let (gn, gm, gs) = got[k];
        assert_eq!(gn, *n, "{k:?}");
        assert_abs_diff_eq!(gm, *m, epsilon = 1e-9);
        assert_abs_diff_eq!(gs, *s, epsilon = 1e-9);
    }
    let mut want_emotions: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &ds.records {
        for g in GROUPS.into_iter().filter(|g| in_group(g, r.split)) {
            *want_emotions
                .entry((g.to_string(), r.emotion.to_string()))
                .or_default() += 1;
        }
    }
    assert_eq!(emotions, want_emotions);
}

/// duplicates.parquet rows: (id a, id b, kind).
fn duplicate_pairs(t: &Table) -> Vec<(String, String, String)> {
    let (a, b, kind) = (t.strings("id_a"), t.strings("id_b"), t.strings("kind"));
    (0..t.rows())
        .map(|i| (a[i].clone(), b[i].clone(), kind[i].clone()))
        .collect()
}

fn id_set(v: &Value) -> BTreeSet<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list of ids: {v}"))
        .iter()
        .map(|v| v.as_str().expect("an id"))
        .collect()
}

#[test]
fn audit_finds_duplicates_leaks_and_blanks_and_nothing_else() {
    let fx = audit_fixture();
    let f = Fixture::new();
    let out = f.compute("out", &fx.ds, &StatsParams::default());
    let audit = &out.json()["audit"];

    // duplicates.parquet: the planted pairs (and at most the blank pair besides).
    let t = out.table("duplicates.parquet");
    let rows = duplicate_pairs(&t);
    let got: BTreeSet<(&str, &str, &str)> = rows
        .iter()
        .filter(|p| !fx.blank_pair(&p.0, &p.1))
        .map(|p| (p.0.as_str(), p.1.as_str(), p.2.as_str()))
        .collect();
    assert_eq!(got, fx.pairs, "duplicate pairs");
    let (rms, hamming) = (
        t.values::<Float64Type>("rms"),
        t.values::<UInt32Type>("hamming"),
    );
    for (i, (a, b, kind)) in rows.iter().enumerate() {
        let ok = match kind.as_str() {
            "exact" => rms[i] == 0.0 && hamming[i] == 0,
            // Two near-constant images skip the pHash filter (their hash bits are noise).
            _ if fx.blank_pair(a, b) => rms[i] > 0.0 && rms[i] <= 4.0,
            _ => rms[i] > 0.0 && rms[i] <= 4.0 && hamming[i] <= 8,
        };
        assert!(
            ok,
            "{a} ~ {b}: {kind} rms {} hamming {}",
            rms[i], hamming[i]
        );
    }
    let splits = |ids: Vec<&String>| -> Vec<String> {
        ids.into_iter()
            .map(|id| split_of(&fx.ds, id).to_string())
            .collect()
    };
    assert_eq!(
        t.strings("split_a"),
        splits(rows.iter().map(|p| &p.0).collect())
    );
    assert_eq!(
        t.strings("split_b"),
        splits(rows.iter().map(|p| &p.1).collect())
    );

    // stats.json agrees with the table, and with the fixture.
    let count = |k: &str| rows.iter().filter(|p| p.2 == k).count();
    assert_eq!(
        (count("exact"), audit["exact_pairs"].as_u64()),
        (2, Some(2))
    );
    assert_eq!(audit["near_pairs"], count("near"));
    assert_eq!(audit["test_with_train_twin"], 2);
    assert_eq!(
        audit["test_with_train_twin_label_conflicts"], 1,
        "te_copy_b"
    );
    assert_eq!(
        id_set(&audit["test_with_train_twin_examples"]),
        fx.test_twins
    );
    assert_eq!(
        audit["files_in_exact_duplicates_within_split"],
        serde_json::json!({"train": 2})
    );
    let scopes = &audit["by_scope"];
    assert_eq!(scopes["within train"]["exact_pairs"], 1);
    assert_eq!(
        (
            &scopes["train~test"]["exact_pairs"],
            &scopes["train~test"]["near_pairs"],
            &scopes["train~test"]["label_conflicts"]
        ),
        (&1.into(), &1.into(), &1.into())
    );

    // Blank images: stats.json and blank.parquet.
    assert_eq!(audit["blank"]["count"], 2);
    assert_eq!(id_set(&audit["blank"]["ids"]), fx.blank);
    let blank = out.table("blank.parquet");
    let blank_ids = blank.strings("id");
    assert_eq!(
        blank_ids
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        fx.blank
    );
    assert!(
        blank
            .values::<Float64Type>("pixel_std")
            .iter()
            .all(|&s| s < 2.0)
    );

    // Distinct images (tr_bright included: pHash 2 bits from tr_a, pixel RMS 39) are not
    // reported anywhere.
    let reported: BTreeSet<&str> = got.iter().flat_map(|p| [p.0, p.1]).collect();
    for r in fx
        .ds
        .records
        .iter()
        .filter(|r| !fx.blank.contains(r.id.as_str()))
    {
        let planted = fx.pairs.iter().any(|p| p.0 == r.id || p.1 == r.id);
        assert_eq!(reported.contains(r.id.as_str()), planted, "{}", r.id);
    }
}

/// Two near-constant images, all 17 and all 17 but one pixel 18 (pixel RMS 0.02), are near
/// duplicates, but their pHashes are 17 bits apart: a flat image's DCT coefficients are all
/// about 0, so its hash bits are noise, and the 8-bit pHash prefilter drops the pair before
/// the RMS check.
#[test]
fn near_constant_images_are_near_duplicates() {
    let fx = audit_fixture();
    let f = Fixture::new();
    let out = f.compute("out", &fx.ds, &StatsParams::default());
    let rows = duplicate_pairs(&out.table("duplicates.parquet"));
    assert!(
        rows.iter()
            .any(|p| fx.blank_pair(&p.0, &p.1) && p.2 == "near"),
        "va_blank ~ va_blank1 not reported: {rows:?}"
    );
}

#[test]
fn outputs_are_valid_pngs_and_tables_of_the_expected_size() {
    let fx = audit_fixture();
    let ds = &fx.ds;
    let f = Fixture::new();
    let stage = f.stats("p", "", ds);
    let spc = StatsParams::default().samples_per_class;

    let png = |rel: &str| {
        let bytes = std::fs::read(stage.file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{rel}: not a PNG");
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        (img.width(), img.height())
    };
    for split in Split::ALL {
        let per_class: BTreeMap<u8, usize> =
            ds.records
                .iter()
                .filter(|r| r.split == split)
                .fold(BTreeMap::new(), |mut m, r| {
                    *m.entry(r.label).or_default() += 1;
                    m
                });
        let cols = per_class.values().max().unwrap().min(&spc);
        assert_eq!(
            png(&format!("samples_{split}.png")),
            grid_size(per_class.len(), *cols),
            "samples_{split}.png: one row per class"
        );
    }
    assert_eq!(png("histograms.png"), (900, 500));
    let cross = fx
        .pairs
        .iter()
        .filter(|p| split_of(ds, p.0) != split_of(ds, p.1))
        .count();
    assert_eq!(
        png("duplicates.png"),
        grid_size(cross, 2),
        "a row per cross-split pair"
    );
    assert_eq!(png("blank.png"), grid_size(1, fx.blank.len()));

    // summary.parquet: one row per (group, class or `all`) and per (group, emotion) present.
    let mut summary_rows = BTreeSet::new();
    for r in &ds.records {
        for g in GROUPS.into_iter().filter(|g| in_group(g, r.split)) {
            summary_rows.insert((g, class_name(r).to_string()));
            summary_rows.insert((g, "all".to_string()));
            summary_rows.insert((g, format!("emotion:{}", r.emotion)));
        }
    }
    let m = stage.manifest();
    let rows = |rel: &str| m.output(rel).and_then(|o| o.rows);
    let summary = stage.table("summary.parquet");
    assert_eq!(summary.rows(), summary_rows.len());
    assert_eq!(rows("summary.parquet"), Some(summary_rows.len() as u64));

    // histograms.parquet: bins 0..=255 per (split, class), counts tallied from the pixels.
    let mut want: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for r in &ds.records {
        let h = want
            .entry((r.split.to_string(), class_name(r).to_string()))
            .or_insert_with(|| vec![0; 256]);
        r.pixels.iter().for_each(|&v| h[v as usize] += 1);
    }
    let t = stage.table("histograms.parquet");
    assert_eq!(t.rows(), 256 * want.len());
    assert_eq!(rows("histograms.parquet"), Some(t.rows() as u64));
    let (split, class) = (t.strings("split"), t.strings("class"));
    let (bin, count) = (
        t.values::<UInt8Type>("bin"),
        t.values::<UInt64Type>("count"),
    );
    let mut got: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for i in 0..t.rows() {
        let h = got.entry((split[i].clone(), class[i].clone())).or_default();
        assert_eq!(bin[i] as usize, h.len(), "bins in order 0..=255");
        h.push(count[i]);
    }
    assert_eq!(got, want);

    let duplicates = stage.table("duplicates.parquet").rows();
    assert!(duplicates >= fx.pairs.len(), "{duplicates} duplicate rows");
    assert_eq!(rows("duplicates.parquet"), Some(duplicates as u64));
    assert_eq!(rows("blank.parquet"), Some(fx.blank.len() as u64));
    for rel in ["histograms.png", "samples_train.png", "stats.json"] {
        assert!(m.output(rel).is_some(), "manifest lists {rel}");
    }
}

#[test]
fn sample_grids_follow_the_seed() {
    let ds = binary(
        [
            faces(Split::Train, 20, 20, 0),
            faces(Split::Val, 8, 8, 100),
            faces(Split::Test, 8, 8, 200),
        ]
        .concat(),
    );
    let f = Fixture::new();
    let samples = |name: &str, seed: u64| {
        f.stats(
            name,
            &format!("seed = {seed}\nsamples_per_class = 5\n"),
            &ds,
        )
        .json()["samples"]
            .clone()
    };
    let (one, one_again, two) = (samples("a", 1), samples("b", 1), samples("c", 2));
    assert_eq!(one, one_again, "same seed, same samples");
    assert_ne!(one["train"], two["train"], "another seed, other samples");

    for split in Split::ALL {
        for (label, class) in ["happy", "not_happy"].into_iter().enumerate() {
            let ids: Vec<&str> = one[split.as_str()][class]
                .as_array()
                .unwrap_or_else(|| panic!("samples.{split}.{class}"))
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(ids.len(), 5, "{split} {class}");
            assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 5, "distinct");
            for id in ids {
                let r = ds.records.iter().find(|r| r.id == id).unwrap();
                assert_eq!((r.split, r.label as usize), (split, label), "{id}");
            }
        }
    }
}

#[test]
fn invalid_params_are_named_and_leave_no_manifest() {
    let f = Fixture::new();
    let ds = small_dataset();
    let cases = [
        (
            "zero_samples",
            "samples_per_class = 0\n",
            "[stats] samples_per_class:",
        ),
        (
            "negative_rms",
            "near_dup_rms = -1\n",
            "[stats] near_dup_rms:",
        ),
        (
            "unknown_key",
            "sample_per_class = 3\n",
            "[stats] unknown field `sample_per_class`",
        ),
    ];
    for (name, body, needle) in cases {
        // A good run first: the failed one must take its manifest away.
        let stage = f.stats(name, "", &ds);
        assert!(stage.file("manifest.json").exists(), "{name}");
        let p = f.pipeline(name, body);
        f.run(&p).error(&[&p.display().to_string(), needle]);
        assert!(
            !stage.file("manifest.json").exists(),
            "{name}: a failed run left the old manifest"
        );
    }

    let p = f.pipeline("no_ingest", "");
    f.run(&p).error(&[
        "stage `ingest` has not run",
        "make ingest PIPELINE=no_ingest",
    ]);
    assert!(!f.stage("no_ingest").0.exists());
}

/// `make status`'s answer for a stage after an upstream one that must run first: it waits, and
/// then reruns only if that one's outputs change, unless its own section or code changed.
#[test]
fn status_says_a_stage_waits_for_an_out_of_date_upstream_stage() {
    let f = Fixture::new();
    let ds = small_dataset();
    f.stats("s", "", &ds);
    let p = f.pipeline("s", "");
    assert_eq!(f.status(&p), "s/stats: up to date");
    f.ingest_built_by("s", &ds, "0000000000000000");
    assert_eq!(
        f.status(&p),
        "s/stats: waits for ingest; then reruns only if its outputs change"
    );
    let p = f.pipeline("s", "seed = 7\n");
    assert_eq!(
        f.status(&p),
        "s/stats: waits for ingest; then reruns: [stats] changed"
    );
    f.ingest("s", &ds);
    let s = f.status(&p);
    assert!(s.starts_with("s/stats: would run: "), "{s}");
}
