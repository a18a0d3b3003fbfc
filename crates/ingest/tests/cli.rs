//! End-to-end tests of the `fer-ingest` binary on tiny fixtures built in a temp folder:
//! the Kaggle folder layout, `fer2013.csv` and synthetic faces; bad inputs (one `error: ` line
//! naming the file, exit code 2), `on_bad = "skip"`, the sampling protocol, determinism, and
//! the skip / restore behaviour of the stage runner.

use arrow_array::{Array, StringArray};
use fer_core::dataset::ImageDataset;
use fer_core::manifest::{Manifest, RunStatus};
use fer_core::{Emotion, IMAGE_PIXELS, Split};
use fer_test_support::Outcome;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fer-ingest");

/// The folder pool most tests use: (split folder, emotion folder, images).
/// Train: 12 happy, 16 not happy. Test: 6 happy, 8 not happy.
const POOL: &[(&str, &str, usize)] = &[
    ("train", "happy", 12),
    ("train", "sad", 6),
    ("train", "angry", 5),
    ("train", "neutral", 5),
    ("test", "happy", 6),
    ("test", "fear", 4),
    ("test", "surprise", 4),
];
const POOL_FILES: usize = 42;

/// `[ingest]` for the folder layout, every image kept.
const FOLDERS_FULL: &str = r#"source = "folders"
label_mode = "binary"
protocol = "full"
seed = 1
val_fraction = 0.25
"#;

/// `[ingest]` for the folder layout with the `seed` protocol and these sizes
/// (train happy, train not happy, test happy, test not happy).
fn folders_seeded(seed: u64, sizes: [usize; 4]) -> String {
    let [th, tn, sh, sn] = sizes;
    format!(
        "source = \"folders\"\nlabel_mode = \"binary\"\nprotocol = \"seed\"\nseed = {seed}\n\
         val_fraction = 0.25\n\n[ingest.sizes]\ntrain_happy = {th}\ntrain_not_happy = {tn}\n\
         test_happy = {sh}\ntest_not_happy = {sn}\n"
    )
}

/// A `side` x `side` gray image whose pattern depends on `n`, so no two fixtures are alike.
fn pattern(n: u32, side: u32) -> image::GrayImage {
    let (a, b) = (n % 7 + 1, n % 5 + 2);
    image::GrayImage::from_fn(side, side, |x, y| {
        image::Luma([((x * a + y * b + n * 37) % 256) as u8])
    })
}

/// One row of the CSV fixture.
struct CsvRow {
    emotion: u8,
    usage: &'static str,
    pixels: Vec<u8>,
}

impl CsvRow {
    fn line(&self) -> String {
        format!(
            "{},{},{}",
            self.emotion,
            pixel_text(&self.pixels),
            self.usage
        )
    }
}

fn pixel_text(pixels: &[u8]) -> String {
    pixels
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// 22 rows: 14 Training, 4 PublicTest, 4 PrivateTest; emotion codes cycle through 0-6.
fn csv_rows() -> Vec<CsvRow> {
    (0..22u32)
        .map(|i| CsvRow {
            emotion: (i % 7) as u8,
            usage: match i {
                0..14 => "Training",
                14..18 => "PublicTest",
                _ => "PrivateTest",
            },
            pixels: pattern(i, 48).into_raw(),
        })
        .collect()
}

fn csv_lines() -> Vec<String> {
    csv_rows().iter().map(CsvRow::line).collect()
}

/// The outputs of the ingest stage: `<artifacts>/<pipeline>/ingest/`.
struct StageDir(PathBuf);

impl StageDir {
    fn images(&self) -> ImageDataset {
        ImageDataset::read_parquet(&self.0.join("images.parquet")).expect("images.parquet reads")
    }

    fn images_bytes(&self) -> Vec<u8> {
        std::fs::read(self.0.join("images.parquet")).expect("images.parquet exists")
    }

    /// `(file, reason)` rows of rejects.parquet.
    fn rejects(&self) -> Vec<(String, String)> {
        let (_, batches) = fer_core::parquet_io::read_batches(&self.0.join("rejects.parquet"))
            .expect("rejects reads");
        let mut out = Vec::new();
        for b in &batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                    .unwrap_or_else(|| panic!("rejects.parquet: no Utf8 column `{name}`"))
            };
            let (file, reason) = (col("file"), col("reason"));
            out.extend(
                (0..b.num_rows()).map(|i| (file.value(i).to_string(), reason.value(i).to_string())),
            );
        }
        out
    }

    fn manifest_path(&self) -> PathBuf {
        self.0.join("manifest.json")
    }

    fn manifest(&self) -> Manifest {
        Manifest::read(&self.manifest_path()).expect("manifest.json reads")
    }
}

/// A temp folder with `data/` (the fixture), `artifacts/` and the pipeline files.
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

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    fn artifacts(&self) -> PathBuf {
        self.path("artifacts")
    }

    /// Write `<tmp>/<name>.toml` with `[ingest]` followed by `ingest`.
    fn pipeline(&self, name: &str, ingest: &str) -> PathBuf {
        let p = self.path(&format!("{name}.toml"));
        std::fs::write(
            &p,
            format!("[pipeline]\ndescription = \"test\"\n\n[ingest]\n{ingest}"),
        )
        .unwrap();
        p
    }

    /// Write `data/<rel>` as a `side` x `side` image (format from the extension).
    fn image(&self, rel: &str, side: u32, n: u32) -> PathBuf {
        let p = self.data().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        pattern(n, side).save(&p).unwrap();
        p
    }

    /// A valid JPEG cut to half its bytes.
    fn truncated_jpeg(&self, rel: &str) -> PathBuf {
        let p = self.image(rel, 48, 999);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        p
    }

    /// The Kaggle layout: `data/<split>/<emotion>/<Usage>_<n>.jpg`; returns the file count.
    fn folders(&self, pool: &[(&str, &str, usize)]) -> usize {
        let files = pool_files(pool);
        for f in &files {
            self.image(&f.path, 48, f.n as u32);
        }
        files.len()
    }

    /// `data/fer2013.csv` with the header and these rows.
    fn csv(&self, lines: &[String]) -> PathBuf {
        let p = self.data().join("fer2013.csv");
        std::fs::create_dir_all(self.data()).unwrap();
        std::fs::write(&p, format!("emotion,pixels,Usage\n{}\n", lines.join("\n"))).unwrap();
        p
    }

    /// `fer-ingest --pipeline <p> --artifacts <artifacts>` in the temp folder, with none of
    /// the stage's environment variables inherited.
    fn command(&self, pipeline: &Path, artifacts: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.tmp.path())
            .env_remove("FER2013_DIR")
            .env_remove("FERPLUS_DIR")
            .env_remove("FER_ARTIFACTS")
            .env_remove("FER_CACHE_DIR")
            .arg("--pipeline")
            .arg(pipeline)
            .arg("--artifacts")
            .arg(artifacts);
        c
    }

    /// The usual run: the fixture's data folder, no run cache, quiet.
    fn run_into(&self, pipeline: &Path, artifacts: &Path) -> Outcome {
        Outcome::of(
            self.command(pipeline, artifacts)
                .args(["--cache-dir", "off", "--quiet", "--data-dir"])
                .arg(self.data()),
        )
    }

    fn run(&self, pipeline: &Path) -> Outcome {
        self.run_into(pipeline, &self.artifacts())
    }

    fn stage_in(&self, artifacts: &Path, pipeline: &Path) -> StageDir {
        StageDir(artifacts.join(pipeline.file_stem().unwrap()).join("ingest"))
    }

    fn stage(&self, pipeline: &Path) -> StageDir {
        self.stage_in(&self.artifacts(), pipeline)
    }
}

/// One file of a folder pool: its number (in pool order), class folder, FER2013 usage and
/// path under the data folder.
struct PoolFile<'a> {
    n: usize,
    emotion: &'a str,
    usage: &'static str,
    path: String,
}

/// The files of `pool` (split folder, emotion folder, count), numbered across the pool: what
/// [`Fixture::folders`] writes and the FERPlus fixture's rows follow.
fn pool_files<'a>(pool: &[(&'a str, &'a str, usize)]) -> Vec<PoolFile<'a>> {
    let mut out = Vec::new();
    for &(split, emotion, count) in pool {
        let usage = if split == "train" {
            "Training"
        } else {
            "PublicTest"
        };
        for _ in 0..count {
            let n = out.len();
            out.push(PoolFile {
                n,
                emotion,
                usage,
                path: format!("{split}/{emotion}/{usage}_{n:05}.jpg"),
            });
        }
    }
    out
}

/// (happy, not happy) rows of `split`.
fn counts(ds: &ImageDataset, split: Split) -> (usize, usize) {
    (ds.count(split, 0), ds.count(split, 1))
}

fn ids(ds: &ImageDataset) -> Vec<&str> {
    ds.records.iter().map(|r| r.id.as_str()).collect()
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Breaks the inputs of a good run: the fixture and its pipeline file.
type Breaker = fn(&Fixture, &Path);

/// Run a good pipeline, break its inputs with `breaker`, rerun (which must fail with one
/// `error: ` line) and list what the failed run left behind that `make` would take as done.
fn leftovers_after_failure(breaker: Breaker) -> Vec<&'static str> {
    let f = Fixture::new();
    f.folders(POOL);
    let p = f.pipeline("p", FOLDERS_FULL);
    f.run(&p).ok();
    let stage = f.stage(&p);
    assert!(stage.manifest_path().exists());
    breaker(&f, &p);
    f.run(&p).error(&[]);
    let mut left = Vec::new();
    if stage.manifest_path().exists() {
        left.push("manifest.json");
    }
    // The stage's temporary folder: `.ingest.tmp.<pid>@<host>` (older: `.ingest.tmp`).
    let tmp_left = std::fs::read_dir(f.artifacts().join("p"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".ingest.tmp"))
        })
        .unwrap_or(false);
    if tmp_left {
        left.push(".ingest.tmp");
    }
    left
}

#[test]
fn missing_data_dir_names_the_folder() {
    let f = Fixture::new();
    let p = f.pipeline("p", FOLDERS_FULL);
    let missing = f.path("no/such/fer2013");
    Outcome::of(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet"])
            .env("FER2013_DIR", &missing),
    )
    .error(&[&show(&missing), "FER2013_DIR not found"]);
    assert!(!f.stage(&p).manifest_path().exists());
}

#[test]
fn truncated_jpeg_names_the_file() {
    let f = Fixture::new();
    f.folders(POOL);
    let bad = f.truncated_jpeg("train/happy/Training_trunc.jpg");
    f.run(&f.pipeline("p", FOLDERS_FULL))
        .error(&[&show(&bad), "truncated"]);
}

#[test]
fn wrong_size_image_is_named_or_resized() {
    let f = Fixture::new();
    f.folders(POOL);
    let big = f.image("train/sad/Training_big.png", 64, 7);
    f.run(&f.pipeline("p", FOLDERS_FULL))
        .error(&[&show(&big), "64x64", "expected 48x48"]);

    let p = f.pipeline("resized", &format!("{FOLDERS_FULL}resize = true\n"));
    f.run(&p).ok();
    let ds = f.stage(&p).images();
    assert_eq!(ds.records.len(), POOL_FILES + 1);
    let r = ds
        .records
        .iter()
        .find(|r| r.source == "train/sad/Training_big.png")
        .expect("the resized image is in images.parquet");
    assert_eq!(
        (r.id.as_str(), r.emotion, r.label),
        ("sad/Training_big", Emotion::Sad, 1)
    );
    assert_eq!(r.pixels.len(), IMAGE_PIXELS);
    assert!(
        r.pixels.iter().any(|&v| v != r.pixels[0]),
        "resized image is not blank"
    );
}

#[test]
fn unknown_class_folder_is_named() {
    let f = Fixture::new();
    f.folders(POOL);
    f.image("train/contempt/Training_x.jpg", 48, 1);
    f.run(&f.pipeline("p", FOLDERS_FULL)).error(&[
        &show(&f.data().join("train/contempt")),
        "unknown class folder",
    ]);
}

#[test]
fn csv_row_with_wrong_pixel_count_names_the_line() {
    let f = Fixture::new();
    let mut lines = csv_lines();
    // Data row 2 is line 4 of the file (after the header).
    lines[2] = format!(
        "3,{},Training",
        pixel_text(&pattern(99, 48).into_raw()[..IMAGE_PIXELS - 1])
    );
    let csv = f.csv(&lines);
    f.run(&f.pipeline("p", "source = \"csv\"\nprotocol = \"full\"\n"))
        .error(&[&show(&csv), "line 4", "2303 pixels", "expected 2304"]);
}

#[test]
fn csv_row_with_non_numeric_pixel_names_the_line_and_token() {
    let f = Fixture::new();
    let mut lines = csv_lines();
    let mut tokens: Vec<String> = pattern(98, 48)
        .into_raw()
        .iter()
        .map(u8::to_string)
        .collect();
    tokens[7] = "abc".into();
    lines[5] = format!("0,{},PublicTest", tokens.join(" "));
    let csv = f.csv(&lines);
    f.run(&f.pipeline("p", "source = \"csv\"\nprotocol = \"full\"\n"))
        .error(&[&show(&csv), "line 7", "`abc`"]);
}

#[test]
fn bad_pipeline_keys_and_values_are_named() {
    let f = Fixture::new();
    f.folders(POOL);
    let cases = [
        (
            "unknown_key",
            format!("{FOLDERS_FULL}sed = 3\n"),
            vec!["[ingest]", "unknown field `sed`"],
        ),
        (
            "bad_fraction",
            "source = \"folders\"\nprotocol = \"full\"\nval_fraction = 1.5\n".to_string(),
            vec!["[ingest] val_fraction", "1.5"],
        ),
        (
            "bad_mode",
            "source = \"folders\"\nprotocol = \"full\"\nlabel_mode = \"foo\"\n".to_string(),
            vec!["[ingest] label_mode", "`foo`"],
        ),
    ];
    for (name, body, needles) in cases {
        let p = f.pipeline(name, &body);
        let file = show(&p);
        let mut all: Vec<&str> = needles;
        all.push(&file);
        f.run(&p).error(&all);
        assert!(
            !f.stage(&p).0.exists(),
            "{name}: no outputs for an invalid pipeline"
        );
    }
}

#[test]
fn skip_lists_every_bad_file_in_rejects() {
    let f = Fixture::new();
    let good = f.folders(POOL);
    let trunc = f.truncated_jpeg("train/happy/Training_trunc.jpg");
    let big = f.image("test/fear/PublicTest_big.png", 64, 3);
    // on_bad = "error" (the default) stops at the first bad file (sorted by path) and counts the rest.
    f.run(&f.pipeline("strict", FOLDERS_FULL))
        .error(&[&show(&big), "64x64", "and 1 more"]);

    let p = f.pipeline("p", &format!("{FOLDERS_FULL}on_bad = \"skip\"\n"));
    f.run(&p).ok();

    let stage = f.stage(&p);
    let mut rejects = stage.rejects();
    rejects.sort();
    let files: Vec<&str> = rejects.iter().map(|r| r.0.as_str()).collect();
    let mut want = vec![show(&big), show(&trunc)];
    want.sort();
    assert_eq!(files, want);
    for (file, reason) in &rejects {
        let expect = if *file == show(&big) {
            "64x64"
        } else {
            "truncated"
        };
        assert!(reason.contains(expect), "{file}: {reason}");
    }

    let m = stage.manifest();
    assert_eq!(m.summary["rejected"], 2);
    assert_eq!(m.summary["images_read"], good);
    assert_eq!(m.output("rejects.parquet").and_then(|o| o.rows), Some(2));
    let ds = stage.images();
    assert_eq!(
        ds.records.len() + rejects.len(),
        good + 2,
        "nothing dropped silently"
    );
    let got: HashSet<&str> = ids(&ds).into_iter().collect();
    assert!(!got.contains("happy/Training_trunc") && !got.contains("fear/PublicTest_big"));
}

#[test]
fn failed_run_leaves_no_manifest() {
    let left = leftovers_after_failure(|f, _| {
        f.truncated_jpeg("train/happy/Training_trunc.jpg");
    });
    assert!(left.is_empty(), "a failed run left {left:?}");
}

/// The same for failures found before the stage computes: the layout, the data folder, the
/// params.
#[test]
fn failed_setup_leaves_no_manifest() {
    let breakers: [(&str, Breaker); 3] = [
        ("unknown class folder", |f, _| {
            f.image("train/contempt/Training_x.jpg", 48, 1);
        }),
        ("data folder removed", |f, _| {
            std::fs::remove_dir_all(f.data()).unwrap();
        }),
        ("invalid param", |_, p| {
            let text = std::fs::read_to_string(p)
                .unwrap()
                .replace("val_fraction = 0.25", "val_fraction = 1.5");
            std::fs::write(p, text).unwrap();
        }),
    ];
    let left: Vec<String> = breakers
        .into_iter()
        .map(|(what, breaker)| (what, leftovers_after_failure(breaker)))
        .filter(|(_, left)| !left.is_empty())
        .map(|(what, left)| format!("{what}: {left:?}"))
        .collect();
    assert!(
        left.is_empty(),
        "failed runs left outputs behind:\n{}",
        left.join("\n")
    );
}

#[test]
fn same_seed_same_bytes_other_seed_other_sample() {
    let f = Fixture::new();
    f.folders(POOL);
    let sizes = [6, 8, 3, 4];
    let p = f.pipeline("p", &folders_seeded(1, sizes));
    let (a1, a2) = (f.path("a1"), f.path("a2"));
    f.run_into(&p, &a1).ok();
    f.run_into(&p, &a2).ok();
    let (s1, s2) = (f.stage_in(&a1, &p), f.stage_in(&a2, &p));
    assert_eq!(
        s1.images_bytes(),
        s2.images_bytes(),
        "same seed, byte-identical images.parquet"
    );

    let q = f.pipeline("q", &folders_seeded(2, sizes));
    f.run(&q).ok();
    let (one, two) = (s1.images(), f.stage(&q).images());
    assert_eq!(one.records.len(), two.records.len());
    let set = |ds: &ImageDataset| {
        ids(ds)
            .into_iter()
            .map(String::from)
            .collect::<HashSet<String>>()
    };
    assert_ne!(set(&one), set(&two), "another seed draws another sample");
}

#[test]
fn seed_protocol_gives_the_sizes_stratified_val_and_binary_labels() {
    let f = Fixture::new();
    f.folders(POOL);
    let p = f.pipeline("p", &folders_seeded(1, [8, 12, 4, 5]));
    f.run(&p).ok();
    let ds = f.stage(&p).images();

    let (train, val, test) = (
        counts(&ds, Split::Train),
        counts(&ds, Split::Val),
        counts(&ds, Split::Test),
    );
    assert_eq!(
        (train.0 + val.0, train.1 + val.1),
        (8, 12),
        "train+val sizes"
    );
    assert_eq!(test, (4, 5), "test sizes");
    // val_fraction = 0.25 of each class, rounded: 8 -> 2, 12 -> 3.
    assert_eq!(val, (2, 3), "stratified val");
    for r in &ds.records {
        assert_eq!(
            r.label,
            u8::from(r.emotion != Emotion::Happy),
            "{}: happy = 0, others = 1",
            r.id
        );
        let folder = if r.split == Split::Test {
            "test/"
        } else {
            "train/"
        };
        assert!(
            r.source.starts_with(folder),
            "{} ({}) comes from {}",
            r.id,
            r.split,
            r.source
        );
        assert_eq!(r.pixels.len(), IMAGE_PIXELS);
    }
    let unique: HashSet<&str> = ids(&ds).into_iter().collect();
    assert_eq!(unique.len(), ds.records.len(), "ids are unique");

    for (key, sizes) in [
        ("sizes.train_happy", [13, 12, 4, 5]),
        ("sizes.test_not_happy", [8, 12, 4, 9]),
    ] {
        let p = f.pipeline("too_big", &folders_seeded(1, sizes));
        f.run(&p).error(&[key, "only"]);
    }
}

#[test]
fn csv_layout_is_read_and_auto_prefers_it() {
    let f = Fixture::new();
    // Both layouts in the data folder: `auto` must take the CSV.
    f.folders(POOL);
    let rows = csv_rows();
    f.csv(&csv_lines());
    let p = f.pipeline(
        "p",
        "source = \"auto\"\nprotocol = \"full\"\nval_fraction = 0.25\n",
    );
    f.run(&p).ok();
    let stage = f.stage(&p);
    assert_eq!(stage.manifest().summary["source"], "csv");
    let ds = stage.images();
    assert_eq!(ds.records.len(), rows.len());

    let unique: HashSet<&str> = ids(&ds).into_iter().collect();
    assert_eq!(unique.len(), rows.len(), "ids are unique");
    let mut lines_seen = HashSet::new();
    for r in &ds.records {
        let line: usize = r
            .source
            .strip_prefix("fer2013.csv:")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("{}: source `{}` is not fer2013.csv:<line>", r.id, r.source));
        assert!(lines_seen.insert(line));
        let want = &rows[line - 2];
        assert_eq!(
            (r.emotion.code(), r.usage.as_str()),
            (want.emotion, want.usage),
            "{}",
            r.id
        );
        assert_eq!(r.pixels, want.pixels, "{}: pixels of line {line}", r.id);
        assert_eq!(r.label, u8::from(r.emotion != Emotion::Happy));
        let splits: &[Split] = if want.usage == "Training" {
            &[Split::Train, Split::Val]
        } else {
            &[Split::Test]
        };
        assert!(
            splits.contains(&r.split),
            "{}: {} row in {}",
            r.id,
            r.usage,
            r.split
        );
    }
    assert_eq!(
        ds.records.iter().filter(|r| r.split == Split::Test).count(),
        8
    );
    assert!(
        ds.records.iter().any(|r| r.split == Split::Val),
        "val carved from Training rows"
    );
}

#[test]
fn public_test_validation_is_the_literature_split() {
    let f = Fixture::new();
    f.csv(&csv_lines());
    let ingest = "source = \"csv\"\nprotocol = \"full\"\nval_fraction = 0.0\n\
                  validation = \"public_test\"\n";
    let p = f.pipeline("p", ingest);
    f.run(&p).ok();
    let stage = f.stage(&p);
    assert_eq!(stage.manifest().summary["validation"], "public_test");
    let ds = stage.images();
    // Every Training row trains; PublicTest chooses; PrivateTest alone is scored.
    for (split, usage, n) in [
        (Split::Train, "Training", 14),
        (Split::Val, "PublicTest", 4),
        (Split::Test, "PrivateTest", 4),
    ] {
        let rows: Vec<_> = ds.records.iter().filter(|r| r.split == split).collect();
        assert_eq!(rows.len(), n, "{split}");
        assert!(
            rows.iter().all(|r| r.usage == usage),
            "{split}: {usage} only"
        );
    }
    // The default carves val from train and keeps both test usages in test.
    let c = f.pipeline(
        "c",
        "source = \"csv\"\nprotocol = \"full\"\nval_fraction = 0.25\n",
    );
    f.run(&c).ok();
    let carved = f.stage(&c);
    assert_eq!(carved.manifest().summary["validation"], "carve");
    let ds = carved.images();
    assert_eq!(
        ds.records.iter().filter(|r| r.split == Split::Test).count(),
        8
    );
    assert!(
        ds.records
            .iter()
            .filter(|r| r.split == Split::Val)
            .all(|r| r.usage == "Training")
    );

    // Refused before any image is read, naming the key and the fix.
    for (name, text, words) in [
        (
            "frac",
            ingest.replace("val_fraction = 0.0", "val_fraction = 0.1"),
            &["[ingest] validation", "val_fraction = 0"][..],
        ),
        (
            "seed",
            ingest.replace("\"full\"", "\"seed\""),
            &["[ingest] validation", "protocol = \"full\""][..],
        ),
        (
            "syn",
            ingest.replace("\"csv\"", "\"synthetic\""),
            &["[ingest] validation", "synthetic"][..],
        ),
        (
            "typo",
            ingest.replace("public_test", "publictest"),
            &["[ingest] validation", "publictest", "carve or public_test"][..],
        ),
    ] {
        let e = f.pipeline(name, &text);
        f.run(&e).error(words);
    }
    // Data whose test images are all PublicTest (the folder fixture): the test split would be
    // empty, which is an error naming PrivateTest.
    let g = Fixture::new();
    g.folders(POOL);
    let p = g.pipeline("p", &ingest.replace("\"csv\"", "\"folders\""));
    g.run(&p).error(&["public_test", "PrivateTest", "empty"]);
}

#[test]
fn synthetic_needs_no_data_dir() {
    let f = Fixture::new();
    let p = f.pipeline(
        "p",
        "source = \"synthetic\"\nprotocol = \"full\"\nseed = 3\nval_fraction = 0.25\n\n\
         [ingest.synthetic]\ntrain_per_class = 20\ntest_per_class = 10\n",
    );
    // No --data-dir, no FER2013_DIR, and no data/fer2013 under the working folder.
    Outcome::of(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet"]),
    )
    .ok();
    let stage = f.stage(&p);
    assert_eq!(stage.manifest().summary["source"], "synthetic");
    let ds = stage.images();
    let (train, val, test) = (
        counts(&ds, Split::Train),
        counts(&ds, Split::Val),
        counts(&ds, Split::Test),
    );
    assert_eq!((train.0 + val.0, train.1 + val.1), (20, 20));
    assert_eq!(val, (5, 5));
    assert_eq!(test, (10, 10));
    assert!(
        stage.manifest().inputs.is_empty(),
        "synthetic reads no input"
    );
}

#[test]
fn rerun_is_up_to_date_and_a_fresh_folder_restores_from_cache() {
    let f = Fixture::new();
    f.folders(POOL);
    let p = f.pipeline("p", FOLDERS_FULL);
    let cache = f.path("cache");
    let run = |artifacts: &Path| {
        Outcome::of(
            f.command(&p, artifacts)
                .arg("--cache-dir")
                .arg(&cache)
                .arg("--data-dir")
                .arg(f.data()),
        )
        .ok()
    };
    let (a, b) = (f.path("a"), f.path("b"));

    run(&a);
    let first = f.stage_in(&a, &p).manifest();
    assert_eq!(first.status, RunStatus::Computed);

    let again = run(&a);
    assert!(again.stderr.contains("up to date"), "{}", again.stderr);
    assert_eq!(
        f.stage_in(&a, &p).manifest(),
        first,
        "a skipped run keeps the manifest"
    );

    let restored = run(&b);
    assert!(restored.stderr.contains("restored"), "{}", restored.stderr);
    let m = f.stage_in(&b, &p).manifest();
    assert_eq!(m.status, RunStatus::Restored);
    assert_eq!(
        (m.signature.as_str(), &m.outputs),
        (first.signature.as_str(), &first.outputs)
    );
    assert_eq!(
        f.stage_in(&b, &p).images_bytes(),
        f.stage_in(&a, &p).images_bytes()
    );
}

/// Data is tracked by content, not by timestamps: an image replaced in place with its old
/// modification time, or the same images in another folder with older times, are told apart
/// (what make's always-run ingest target relies on; see the Makefile).
#[test]
fn an_image_replaced_in_place_reruns_and_an_identical_copy_does_not() {
    let f = Fixture::new();
    f.folders(POOL);
    let p = f.pipeline("p", FOLDERS_FULL);
    let run = |data: &Path| {
        Outcome::of(
            f.command(&p, &f.artifacts())
                .args(["--cache-dir", "off", "--data-dir"])
                .arg(data),
        )
        .ok()
    };
    run(&f.data());
    let first = f.stage(&p).manifest();
    // One image's pixels change; its size class and modification time stay as they were.
    let victim = pool_files(POOL)[0].path.clone();
    let path = f.data().join(&victim);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    pattern(4242, 48).save(&path).unwrap();
    std::fs::File::options()
        .append(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let again = run(&f.data());
    assert!(again.stderr.contains("computing"), "{}", again.stderr);
    let second = f.stage(&p).manifest();
    assert_ne!(second.inputs[0].hash, first.inputs[0].hash);
    assert_ne!(
        second.output("images.parquet").unwrap().hash,
        first.output("images.parquet").unwrap().hash
    );
    // The same files copied elsewhere with old timestamps: the same data, up to date.
    let copy = f.path("copy");
    for file in pool_files(POOL) {
        let (from, to) = (f.data().join(&file.path), copy.join(&file.path));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
        std::fs::File::options()
            .append(true)
            .open(&to)
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
    }
    let moved = run(&copy);
    assert!(moved.stderr.contains("up to date"), "{}", moved.stderr);
    assert_eq!(f.stage(&p).manifest().signature, second.signature);
}

// ---- FERPlus labels -----------------------------------------------------------------------

/// FERPlus's column of a Kaggle emotion folder (neutral, happiness, surprise, sadness, anger,
/// disgust, fear, contempt, unknown, NF).
fn ferplus_column(emotion: &str) -> usize {
    match emotion {
        "neutral" => 0,
        "happy" => 1,
        "surprise" => 2,
        "sad" => 3,
        "angry" => 4,
        "disgust" => 5,
        "fear" => 6,
        e => panic!("no FERPlus column for {e}"),
    }
}

/// The votes of POOL's file `n` (FERPlus row `n`): agreeing with its folder (8 votes, 2 for
/// neutral), except the cases the rules are about.
fn fixture_votes(n: usize, emotion: &str) -> [u8; 10] {
    let mut v = [0u8; 10];
    match n {
        0 => (v[1], v[0]) = (4, 4),          // happiness tied with neutral: tie
        1 => (v[1], v[9]) = (4, 6),          // not a face
        2 => (v[1], v[8], v[0]) = (3, 5, 2), // unknown
        12 => (v[1], v[3]) = (7, 3),         // FER2013 says sad, FERPlus happy
        13 => (v[7], v[3]) = (6, 4),         // contempt wins outright
        14 => (v[7], v[3]) = (3, 5),         // contempt votes, sadness wins
        _ => {
            v[ferplus_column(emotion)] += 8;
            v[0] += 2;
        }
    }
    v
}

impl Fixture {
    /// `ferplus/` for the POOL folders: `fer2013new.csv` (row n = file n) and the join, where
    /// file 3 has no row, file 4 two disagreeing candidates (4 and 40) and file 5 two agreeing
    /// ones (5 and 6).
    fn ferplus(&self, pool: &[(&str, &str, usize)]) -> PathBuf {
        let dir = self.path("ferplus");
        std::fs::create_dir_all(&dir).unwrap();
        let mut votes = vec![fer_core::ferplus::VOTES_HEADER.to_string()];
        let mut join = vec![fer_core::ferplus::JOIN_HEADER.to_string()];
        for PoolFile {
            n,
            emotion,
            usage,
            path,
        } in pool_files(pool)
        {
            let v = fixture_votes(n, emotion).map(|c| c.to_string()).join(",");
            votes.push(format!("{usage},fer{n:07}.png,{v}"));
            match n {
                3 => {}
                4 => join.push(format!("{path},{usage},,2,4;40,0.0")),
                5 => join.push(format!("{path},{usage},,2,5;6,0.0")),
                _ => join.push(format!("{path},{usage},{n},1,{n},0.0")),
            }
        }
        std::fs::write(dir.join("fer2013new.csv"), votes.join("\n") + "\n").unwrap();
        std::fs::write(
            dir.join("kaggle_fer2013_to_ferplus_rows.csv"),
            join.join("\n") + "\n",
        )
        .unwrap();
        dir
    }

    fn run_ferplus(&self, pipeline: &Path, ferplus: &Path) -> Outcome {
        Outcome::of(
            self.command(pipeline, &self.artifacts())
                .args(["--cache-dir", "off", "--quiet", "--data-dir"])
                .arg(self.data())
                .arg("--ferplus-dir")
                .arg(ferplus),
        )
    }
}

fn record<'a>(ds: &'a ImageDataset, id: &str) -> &'a fer_core::dataset::ImageRecord {
    ds.records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no image `{id}`"))
}

#[test]
fn ferplus_labels_follow_the_rules_and_rejects_name_the_reason() {
    let f = Fixture::new();
    f.folders(POOL);
    let fp = f.ferplus(POOL);
    let p = f.pipeline("p", &format!("{FOLDERS_FULL}labels = \"ferplus\"\n"));
    f.run_ferplus(&p, &fp).ok();
    let stage = f.stage(&p);
    let rejects = stage.rejects();
    let want = [
        ("Training_00000.jpg", "ferplus: tie"),
        ("Training_00001.jpg", "ferplus: not a face"),
        ("Training_00002.jpg", "ferplus: unknown"),
        ("Training_00003.jpg", "ferplus: no join row"),
        ("Training_00004.jpg", "ferplus: ambiguous join"),
    ];
    assert_eq!(rejects.len(), want.len(), "{rejects:?}");
    for (file, reason) in want {
        assert!(
            rejects
                .iter()
                .any(|(f, r)| f.ends_with(&format!("train/happy/{file}")) && r == reason),
            "{file}: {reason} not in {rejects:?}"
        );
    }
    let ds = stage.images();
    assert_eq!(ds.records.len(), POOL_FILES - 5);
    assert_eq!(ds.labels, fer_core::LabelSource::Ferplus);
    // Agreeing duplicates keep their label; FERPlus overrides FER2013's sad; contempt counts
    // as not happy in binary mode.
    let dup = record(&ds, "happy/Training_00005");
    assert_eq!((dup.label, dup.ferplus_label), (0, Some(0)));
    assert!(dup.ferplus_votes.is_some());
    let flipped = record(&ds, "sad/Training_00012");
    assert_eq!((flipped.emotion, flipped.label), (Emotion::Sad, 0));
    assert_eq!(record(&ds, "sad/Training_00013").label, 1);
    assert_eq!(stage.manifest().summary["ferplus"], "available");
}

#[test]
fn ferplus_contempt_under_emotion7_is_rejected_only_when_it_wins() {
    let f = Fixture::new();
    f.folders(POOL);
    let fp = f.ferplus(POOL);
    let ingest = FOLDERS_FULL.replace("binary", "emotion7") + "labels = \"ferplus\"\n";
    let p = f.pipeline("p", &ingest);
    f.run_ferplus(&p, &fp).ok();
    let stage = f.stage(&p);
    let rejects = stage.rejects();
    assert!(
        rejects
            .iter()
            .any(|(f, r)| f.ends_with("train/sad/Training_00013.jpg") && r == "ferplus: contempt"),
        "{rejects:?}"
    );
    let ds = stage.images();
    assert_eq!(record(&ds, "sad/Training_00014").label, Emotion::Sad.code());
    assert_eq!(
        record(&ds, "sad/Training_00012").label,
        Emotion::Happy.code()
    );
}

#[test]
fn fer2013_labels_keep_every_image_and_carry_ferplus_beside() {
    let f = Fixture::new();
    f.folders(POOL);
    let fp = f.ferplus(POOL);
    let p = f.pipeline("p", FOLDERS_FULL);
    f.run_ferplus(&p, &fp).ok();
    let stage = f.stage(&p);
    assert!(stage.rejects().is_empty());
    let ds = stage.images();
    assert_eq!(ds.records.len(), POOL_FILES);
    let flipped = record(&ds, "sad/Training_00012");
    assert_eq!((flipped.label, flipped.ferplus_label), (1, Some(0)));
    let tie = record(&ds, "happy/Training_00000");
    assert_eq!(tie.ferplus_label, None);
    assert_eq!(tie.ferplus_votes.map(|v| v.emotions[1]), Some(4));
    assert_eq!(record(&ds, "happy/Training_00003").ferplus_votes, None);
    // Without the FERPlus folder the same run has no FERPlus figures.
    let q = f.pipeline("q", FOLDERS_FULL);
    f.run_ferplus(&q, &f.path("nowhere")).ok();
    assert!(!f.stage(&q).images().has_ferplus());
    assert_eq!(f.stage(&q).manifest().summary["ferplus"], "not available");
}

#[test]
fn ferplus_rows_follow_csv_row_positions() {
    let f = Fixture::new();
    f.csv(&csv_lines());
    let dir = f.path("ferplus");
    std::fs::create_dir_all(&dir).unwrap();
    // Row 0: a tie; every other row: happiness alone on top, so every kept image is happy.
    let mut votes = vec![fer_core::ferplus::VOTES_HEADER.to_string()];
    for i in 0..csv_rows().len() {
        let v = if i == 0 { "4,4" } else { "1,9" };
        votes.push(format!("Training,fer{i:07}.png,{v},0,0,0,0,0,0,0,0"));
    }
    std::fs::write(dir.join("fer2013new.csv"), votes.join("\n") + "\n").unwrap();
    let p = f.pipeline(
        "p",
        "source = \"csv\"\nprotocol = \"full\"\nval_fraction = 0.25\nlabels = \"ferplus\"\n",
    );
    f.run_ferplus(&p, &dir).ok();
    let stage = f.stage(&p);
    let rejects = stage.rejects();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(rejects[0].0.ends_with("fer2013.csv: row 0"), "{rejects:?}");
    assert_eq!(rejects[0].1, "ferplus: tie");
    let ds = stage.images();
    assert_eq!(ds.records.len(), csv_rows().len() - 1);
    assert!(ds.records.iter().all(|r| r.label == 0));
}

#[test]
fn ferplus_bad_options_exit_2_naming_the_key_or_file() {
    let f = Fixture::new();
    f.folders(POOL);
    let p = f.pipeline("p", &format!("{FOLDERS_FULL}labels = \"ferpluss\"\n"));
    f.run(&p)
        .error(&["[ingest]", "labels", "unknown label source `ferpluss`"]);
    let q = f.pipeline("q", &format!("{FOLDERS_FULL}labels = \"ferplus\"\n"));
    let missing = f.path("no-ferplus");
    f.run_ferplus(&q, &missing).error(&[
        &show(&missing.join("fer2013new.csv")),
        "not found",
        "FERPLUS_DIR",
    ]);
    // The votes are there but the join to the folders is not.
    let fp = f.ferplus(POOL);
    std::fs::remove_file(fp.join("kaggle_fer2013_to_ferplus_rows.csv")).unwrap();
    f.run_ferplus(&q, &fp)
        .error(&["kaggle_fer2013_to_ferplus_rows.csv", "not found"]);
    let s = f.pipeline("s", "source = \"synthetic\"\nlabels = \"ferplus\"\n");
    f.run(&s)
        .error(&["labels", "synthetic faces have no FERPlus votes"]);
}

/// Seven emotions, drawn per emotion: `[ingest.sizes] train_per_emotion` / `test_per_emotion`
/// give that many images of each emotion, labels are the emotion codes, and val is stratified
/// per emotion. Too few images of one emotion is an error naming the key and the emotion; the
/// per-emotion keys under the binary mode, or a mix with the binary keys, are errors naming
/// `sizes`.
#[test]
fn seed_protocol_per_emotion_draws_each_emotion() {
    // Train: 6 of each of the seven; test: 3 of each.
    let pool: Vec<(&str, &str, usize)> = Emotion::ALL
        .iter()
        .flat_map(|e| [("train", e.as_str(), 6), ("test", e.as_str(), 3)])
        .collect();
    let f = Fixture::new();
    f.folders(&pool);
    let seven = |train: usize, test: usize| {
        format!(
            "source = \"folders\"\nlabel_mode = \"emotion7\"\nprotocol = \"seed\"\nseed = 1\n\
             val_fraction = 0.25\n\n[ingest.sizes]\ntrain_per_emotion = {train}\n\
             test_per_emotion = {test}\n"
        )
    };
    let p = f.pipeline("p", &seven(4, 2));
    f.run(&p).ok();
    let ds = f.stage(&p).images();
    for e in Emotion::ALL {
        let of = |split: Split| {
            ds.records
                .iter()
                .filter(|r| r.split == split && r.emotion == e)
                .count()
        };
        assert_eq!(of(Split::Train) + of(Split::Val), 4, "{e:?} train+val");
        assert_eq!(of(Split::Val), 1, "{e:?}: a quarter of 4 is val");
        assert_eq!(of(Split::Test), 2, "{e:?} test");
    }
    assert!(ds.records.iter().all(|r| r.label == r.emotion.code()));
    let p = f.pipeline("too_big", &seven(7, 2));
    f.run(&p)
        .error(&["sizes.train_per_emotion = 7", "only 6", "images in train"]);
    let p = f.pipeline("binary", &seven(4, 2).replace("emotion7", "binary"));
    f.run(&p)
        .error(&["sizes", "need label_mode = \"emotion7\""]);
    let p = f.pipeline("mixed", &(seven(4, 2) + "train_happy = 3\n"));
    f.run(&p).error(&["sizes", "not both"]);
    let p = f.pipeline("half", &seven(4, 2).replace("test_per_emotion = 2\n", ""));
    f.run(&p)
        .error(&["sizes", "both train_per_emotion and test_per_emotion"]);
}

/// Synthetic faces under `emotion7`: `train_per_class` / `test_per_class` of each of the seven
/// emotions, labelled with their codes.
#[test]
fn synthetic_seven_emotions_gives_each_emotion() {
    let f = Fixture::new();
    let p = f.pipeline(
        "p",
        "source = \"synthetic\"\nlabel_mode = \"emotion7\"\nprotocol = \"full\"\nseed = 3\n\
         val_fraction = 0.25\n\n[ingest.synthetic]\ntrain_per_class = 8\ntest_per_class = 4\n",
    );
    Outcome::of(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet"]),
    )
    .ok();
    let ds = f.stage(&p).images();
    for e in Emotion::ALL {
        let n = |split: Split| {
            ds.records
                .iter()
                .filter(|r| r.split == split && r.label == e.code())
                .count()
        };
        assert_eq!(
            (n(Split::Train), n(Split::Val), n(Split::Test)),
            (6, 2, 4),
            "{e:?}"
        );
    }
}

/// Run `cmd` to the end, but fail the test (killing it) if it takes over `secs` seconds: a
/// run that would hang on an input must not hang the test suite.
fn outcome_within(cmd: &mut Command, secs: u64) -> Outcome {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fer-ingest starts");
    let start = std::time::Instant::now();
    loop {
        if child
            .try_wait()
            .expect("fer-ingest can be waited for")
            .is_some()
        {
            break;
        }
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fer-ingest hung: still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("fer-ingest output");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A folder linked into a class folder is read like any other (it used to fail the hash); a
/// link back to a folder above it is a loop, and a link to nowhere leads nowhere: both rejects.
#[cfg(unix)]
#[test]
fn symlinked_folders_are_followed_and_loops_are_rejects() {
    let f = Fixture::new();
    let good = f.folders(POOL);
    let elsewhere = f.path("elsewhere/extra");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for n in 0..3u32 {
        pattern(500 + n, 48)
            .save(elsewhere.join(format!("Training_linked{n}.png")))
            .unwrap();
    }
    std::os::unix::fs::symlink(&elsewhere, f.data().join("train/happy/extra")).unwrap();
    let p = f.pipeline("p", FOLDERS_FULL);
    f.run(&p).ok();
    let ds = f.stage(&p).images();
    assert_eq!(ds.records.len(), good + 3);
    for n in 0..3 {
        let id = format!("happy/Training_linked{n}");
        assert!(
            ids(&ds).contains(&id.as_str()),
            "{id} read through the link"
        );
    }
    assert!(f.stage(&p).rejects().is_empty());

    let sad = f.data().join("train/sad");
    let lp = sad.join("loop");
    std::os::unix::fs::symlink(&sad, &lp).unwrap();
    let nowhere = f.data().join("test/fear/PublicTest_gone.jpg");
    std::os::unix::fs::symlink(f.path("no/such/file.jpg"), &nowhere).unwrap();
    f.run(&f.pipeline("strict", FOLDERS_FULL)).error(&[
        &show(&nowhere),
        "leads nowhere",
        "and 1 more",
    ]);
    let p = f.pipeline("q", &format!("{FOLDERS_FULL}on_bad = \"skip\"\n"));
    outcome_within(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet", "--data-dir"])
            .arg(f.data()),
        120,
    )
    .ok();
    let mut rejects = f.stage(&p).rejects();
    rejects.sort();
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert_eq!(rejects[0].0, show(&nowhere));
    assert!(rejects[0].1.contains("leads nowhere"), "{}", rejects[0].1);
    assert_eq!(rejects[1].0, show(&lp));
    assert!(
        rejects[1].1.contains("symbolic link loop"),
        "{}",
        rejects[1].1
    );
    assert_eq!(f.stage(&p).images().records.len(), good + 3);
}

/// A FIFO named `.jpg` used to hang ingest (it was opened to be hashed and read); a FIFO or a
/// socket is refused from its file type, never opened, and listed in rejects.parquet.
#[cfg(unix)]
#[test]
fn a_fifo_or_socket_named_as_an_image_is_a_reject_never_opened() {
    let f = Fixture::new();
    let good = f.folders(POOL);
    let fifo = f.data().join("train/happy/Training_fifo.jpg");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs (coreutils)");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let sock = f.data().join("test/fear/PublicTest_sock.png");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("a unix socket");

    let strict = f.pipeline("strict", FOLDERS_FULL);
    outcome_within(
        f.command(&strict, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet", "--data-dir"])
            .arg(f.data()),
        120,
    )
    .error(&[&show(&sock), "a socket, not a regular file", "and 1 more"]);

    let p = f.pipeline("p", &format!("{FOLDERS_FULL}on_bad = \"skip\"\n"));
    outcome_within(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet", "--data-dir"])
            .arg(f.data()),
        120,
    )
    .ok();
    let mut rejects = f.stage(&p).rejects();
    rejects.sort();
    let files: Vec<&str> = rejects.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(files, [show(&sock), show(&fifo)]);
    assert!(rejects[0].1.contains("socket"), "{}", rejects[0].1);
    assert!(rejects[1].1.contains("FIFO"), "{}", rejects[1].1);
    let m = f.stage(&p).manifest();
    assert_eq!(m.summary["rejected"], 2);
    assert_eq!(f.stage(&p).images().records.len(), good);
}

/// A PNG cut short (even by its IEND chunk alone, which decoders do not miss) is a reject
/// named like a truncated JPEG.
#[test]
fn truncated_png_is_rejected_like_a_truncated_jpeg() {
    let f = Fixture::new();
    let good = f.folders(POOL);
    let no_end = f.image("train/happy/Training_noend.png", 48, 77);
    let bytes = std::fs::read(&no_end).unwrap();
    // The IEND chunk is the last 12 bytes: length (0), type, CRC.
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
    std::fs::write(&no_end, &bytes[..bytes.len() - 12]).unwrap();
    let half = f.image("test/fear/PublicTest_half.png", 48, 78);
    let bytes = std::fs::read(&half).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    // Bytes after IEND (some writers leave them) are no truncation.
    let tail = f.image("test/happy/PublicTest_tail.png", 48, 79);
    let mut bytes = std::fs::read(&tail).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    std::fs::write(&tail, &bytes).unwrap();

    f.run(&f.pipeline("strict", FOLDERS_FULL))
        .error(&[&show(&half), "truncated", "and 1 more"]);
    let p = f.pipeline("p", &format!("{FOLDERS_FULL}on_bad = \"skip\"\n"));
    f.run(&p).ok();
    let mut rejects = f.stage(&p).rejects();
    rejects.sort();
    let files: Vec<&str> = rejects.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(files, [show(&half), show(&no_end)]);
    for (file, reason) in &rejects {
        assert!(
            reason.contains("truncated or not a PNG"),
            "{file}: {reason}"
        );
    }
    let ds = f.stage(&p).images();
    assert_eq!(ds.records.len(), good + 1);
    assert!(ids(&ds).contains(&"happy/PublicTest_tail"));
}

/// A pipeline file named `...toml` (stem `..`) or `--pipeline ..` is refused, naming the file
/// or the argument and the rule, and nothing outside the artifacts folder is touched.
#[test]
fn a_pipeline_named_dot_dot_is_refused() {
    let f = Fixture::new();
    f.folders(POOL);
    // What `<artifacts>/../ingest/manifest.json` would be.
    let outside = f.path("ingest/manifest.json");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::write(&outside, b"{}").unwrap();
    let dots = f.pipeline("..", FOLDERS_FULL);
    assert_eq!(dots.file_name().unwrap(), "...toml");
    f.run(&dots)
        .error(&[&show(&dots), "pipeline name `..`", "letters, digits"]);
    let mut c = Command::new(BIN);
    c.current_dir(f.tmp.path())
        .env_remove("FER_ARTIFACTS")
        .env_remove("FER_CACHE_DIR")
        .args([
            "--pipeline",
            "..",
            "--cache-dir",
            "off",
            "--quiet",
            "--artifacts",
        ])
        .arg(f.artifacts())
        .arg("--data-dir")
        .arg(f.data());
    Outcome::of(&mut c).error(&["--pipeline `..`", "letters, digits"]);
    assert_eq!(std::fs::read(&outside).unwrap(), b"{}", "left alone");
    assert!(!f.artifacts().join("ingest").exists());
}

#[test]
fn max_train_images_keeps_each_emotion_and_the_balance() {
    let f = Fixture::new();
    let p = f.pipeline(
        "p",
        "source = \"synthetic\"\nprotocol = \"full\"\nseed = 3\nval_fraction = 0.25\n\
         max_train_images = 10\n\n[ingest.synthetic]\ntrain_per_class = 20\ntest_per_class = 8\n",
    );
    Outcome::of(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet"]),
    )
    .ok();
    let ds = f.stage(&p).images();
    let (train, val, test) = (
        counts(&ds, Split::Train),
        counts(&ds, Split::Val),
        counts(&ds, Split::Test),
    );
    // 40 drawn training images capped at 10: a quarter of each class, test likewise.
    assert_eq!((train.0 + val.0, train.1 + val.1), (5, 5));
    assert_eq!(test, (2, 2));
    let e = f.pipeline("e", "source = \"synthetic\"\nmax_train_images = 0\n");
    f.run(&e).error(&["max_train_images", "at least 1"]);
}

#[test]
fn mini_writes_its_own_folder_with_capped_sizes() {
    let f = Fixture::new();
    let p = f.pipeline(
        "p",
        "source = \"synthetic\"\nprotocol = \"full\"\nseed = 3\nval_fraction = 0.25\n\n\
         [ingest.synthetic]\ntrain_per_class = 300\ntest_per_class = 100\n",
    );
    Outcome::of(
        f.command(&p, &f.artifacts())
            .args(["--cache-dir", "off", "--quiet"])
            .env("FER_MINI", "1"),
    )
    .ok();
    assert!(
        !f.artifacts().join("p").exists(),
        "a miniature run never writes the real run's folder"
    );
    let stage = StageDir(f.artifacts().join("p-mini").join("ingest"));
    let ds = stage.images();
    let (train, val) = (counts(&ds, Split::Train), counts(&ds, Split::Val));
    // 600 drawn training images capped at 200 (fer_core::mini::TRAIN_IMAGES): a third of
    // each class, and of each class of test (100 -> 33).
    assert_eq!(fer_core::mini::TRAIN_IMAGES, 200);
    assert_eq!((train.0 + val.0, train.1 + val.1), (100, 100));
    assert_eq!(counts(&ds, Split::Test), (33, 33));
}
