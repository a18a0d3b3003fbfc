//! fer-predict: exact reproduction with --no-detect, error rows, detection on pasted faces.

use crate::common::*;
use burn::tensor::Device;
use fer_core::tensors::TensorSet;
use fer_predict::{DetectOptions, FaceDetector, ModelOptions, Outcome, Predictor, Scorer, scene};
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fer-predict"))
}

fn jsonl(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Run `cmd` (a `--format jsonl` scoring), expect success, and parse its rows.
fn run_jsonl(cmd: &mut Command) -> Vec<serde_json::Value> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    jsonl(&out.stdout)
}

/// The acceptance test: `--no-detect` on image files gives exactly train_cnn's `predict` on
/// the tensors ingest + preprocess make of the same files (same checkpoint, flip averaging,
/// several batches).
#[test]
fn no_detect_reproduces_train_cnn_predictions_exactly() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    let (net, art) = tiny_model(&mdir, true, 16);
    let imgs = d.path().join("faces");
    std::fs::create_dir_all(&imgs).unwrap();
    let n = 40;
    let mut x = Vec::new();
    for i in 0..n {
        let f = synthetic_face(i);
        let path = imgs.join(format!(
            "f{i:03}.{}",
            if i % 3 == 0 { "jpg" } else { "png" }
        ));
        f.save(&path).unwrap();
        // As ingest reads a file (decode, luma) and preprocess transforms it.
        let g = image::load_from_memory(&std::fs::read(&path).unwrap())
            .unwrap()
            .to_luma8();
        x.extend(art.transform.apply(&g));
    }
    let set = TensorSet {
        n,
        height: 48,
        width: 48,
        x,
        y: vec![0; n],
        truths: None,
    };
    let want = fer_models::score::predict(&net, &set, 16, true, &Device::flex());
    let rows = run_jsonl(
        bin()
            .args(["--no-detect", "--format", "jsonl", "--quiet", "--model"])
            .arg(&mdir)
            .arg(&imgs),
    );
    assert_eq!(rows.len(), n);
    for (i, r) in rows.iter().enumerate() {
        assert!(
            r["file"]
                .as_str()
                .unwrap()
                .ends_with(&format!("f{i:03}.jpg"))
                || r["file"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("f{i:03}.png"))
        );
        assert_eq!(r["status"], "ok");
        assert_eq!(r["face"], 0);
        assert_eq!(r["box"]["width"], 48);
        let p = r["p_happy"].as_f64().unwrap();
        assert_eq!(p, want[i][0], "row {i}: {p} vs train_cnn {}", want[i][0]);
        assert_eq!(r["label"], if p >= 0.5 { "happy" } else { "not_happy" });
    }
}

#[test]
fn bad_files_become_rows_and_the_batch_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    tiny_model(&mdir, false, 8);
    let imgs = d.path().join("in");
    std::fs::create_dir_all(&imgs).unwrap();
    synthetic_face(0).save(imgs.join("a_face.png")).unwrap();
    std::fs::write(imgs.join("b_broken.jpg"), b"\xff\xd8\xff\xe0 not really").unwrap();
    let full = png(&synthetic_face(1));
    std::fs::write(imgs.join("c_truncated.png"), &full[..full.len() / 2]).unwrap();
    // A blank photo: detection finds no face.
    image::RgbImage::from_pixel(320, 240, image::Rgb([40, 90, 160]))
        .save(imgs.join("d_blank.png"))
        .unwrap();
    let missing = d.path().join("missing.jpg");
    let list = format!(
        "{}\n{}\n",
        imgs.join("d_blank.png").display(),
        missing.display()
    );
    let mut child = bin()
        .args([
            "--format",
            "csv",
            "--quiet",
            "--threshold",
            "0.3",
            "--model",
        ])
        .arg(&mdir)
        .arg(&imgs)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::Reader::from_reader(&out.stdout[..]);
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(head, fer_predict::output::HEADER);
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap().rsplit('/').next().unwrap(),
                r.get(1).unwrap(),
            )
        })
        .collect();
    // a_face.png is a drawn face with detection on: whatever the detector says, it is a row.
    assert_eq!(status.len(), 6, "{status:?}");
    assert_eq!(status[1], ("b_broken.jpg", "error"));
    assert_eq!(status[2], ("c_truncated.png", "error"));
    assert_eq!(status[3], ("d_blank.png", "no_face"));
    assert_eq!(status[4], ("d_blank.png", "no_face"));
    assert_eq!(status[5], ("missing.jpg", "error"));
    assert!(!rows[1].get(11).unwrap().is_empty(), "error message");
    assert!(rows[5].get(11).unwrap().contains("no such file"));

    // A model folder that does not exist: exit code 2 and the path named.
    let out = bin()
        .args(["--quiet", "--model"])
        .arg(d.path().join("nope"))
        .arg(&imgs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// YuNet's size of the turned copies is checked when the detector is built: a bad
/// `--det-tilt-scale` is exit code 2 naming the flag; a good one scores.
#[cfg(feature = "yunet")]
#[test]
fn det_tilt_scale_is_checked_and_used() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    tiny_model(&mdir, true, 16);
    let img = d.path().join("frame.png");
    image::GrayImage::from_pixel(64, 48, image::Luma([128]))
        .save(&img)
        .unwrap();
    let run = |scale: &str| {
        bin()
            .args(["--quiet", "--detector", "yunet", "--det-tilt-scale", scale])
            .arg("--model")
            .arg(&mdir)
            .arg(&img)
            .output()
            .unwrap()
    };
    let out = run("3");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--det-tilt-scale 3"), "{err}");
    let out = run("1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Real FER2013 test faces pasted, scaled up, into 640x480 colour photos: the detector finds
/// most, and the predictions agree with --no-detect on most of those (skipped without data).
#[test]
fn detector_finds_pasted_fer2013_faces() {
    let Some(fer) = fer2013() else {
        eprintln!("FER2013 not found: detection test skipped");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // The seed model when it loads (meaningful labels), else a tiny random one.
    let scorer = seed_model()
        .and_then(|m| Scorer::load(&m, &ModelOptions::default()).ok())
        .unwrap_or_else(|| {
            tiny_model(&d.path().join("m"), true, 64);
            Scorer::load(&d.path().join("m"), &ModelOptions::default()).unwrap()
        });
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    let p = Predictor::new(scorer, det, true, 0.5).unwrap();
    let mut faces = Vec::new();
    for class in ["happy", "sad", "neutral", "surprise"] {
        let items = fer_predict::inputs::expand(
            &[fer.join("test").join(class).display().to_string()],
            &mut std::io::empty(),
        );
        for it in items.iter().step_by(37).take(10) {
            faces.push(image::open(it.path.as_ref().unwrap()).unwrap().to_luma8());
        }
    }
    let (mut pasted, mut found, mut agree) = (0, 0, 0);
    for (s, group) in faces.chunks(2).enumerate() {
        let (img, places) = scene::scene(group, 640, 480, (96, 192), s as u64);
        let Outcome::Faces { faces: got, .. } = p
            .predict_bytes(&scene::encode(&img, s % 2 == 0), true, 0.5)
            .unwrap()
        else {
            panic!("decodes")
        };
        for (j, pl) in places.iter().enumerate() {
            pasted += 1;
            if let Some(g) = got.iter().find(|g| {
                scene::iou(
                    (g.bbox.x, g.bbox.y, g.bbox.width, g.bbox.height),
                    (pl.x, pl.y, pl.side, pl.side),
                ) >= 0.3
            }) {
                found += 1;
                let Outcome::Faces { faces: alone, .. } =
                    p.predict_bytes(&png(&group[j]), false, 0.5).unwrap()
                else {
                    panic!()
                };
                agree += usize::from(g.label == alone[0].label);
            }
        }
    }
    let rate = found as f64 / pasted as f64;
    let agreement = agree as f64 / found.max(1) as f64;
    eprintln!("detection rate {rate:.3} ({found}/{pasted}), label agreement {agreement:.3}");
    assert!(pasted >= 36);
    assert!(rate >= 0.8, "detection rate {rate}");
    assert!(agreement >= 0.75, "agreement {agreement}");
}

/// train_cnn's own test predictions of the seed model, reproduced from the FER2013 files
/// (skipped when the data or the seed artifacts are absent).
#[test]
fn seed_test_predictions_are_reproduced_from_files() {
    let (Some(fer), Some(model)) = (fer2013(), seed_model()) else {
        eprintln!("FER2013 or artifacts/seed/train_cnn/fer-small not found: skipped");
        return;
    };
    let scorer = match Scorer::load(&model, &ModelOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("seed model does not load with this train-cnn ({e}): skipped");
            return;
        }
    };
    // predictions.parquet keeps the raw p(happy); predict reports it through calibration.json.
    let calibration = scorer.calibration.clone();
    let p = Predictor::new(
        scorer,
        FaceDetector::embedded(DetectOptions::default()).unwrap(),
        false,
        0.5,
    )
    .unwrap();
    let (_, batches) =
        fer_core::parquet_io::read_batches(&model.join("predictions.parquet")).unwrap();
    use arrow_array::{Array, Float64Array, StringArray};
    let mut want: Vec<(String, f64)> = Vec::new();
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (split, id, ph) = (col("split"), col("id"), col("p_happy"));
        let split = split.as_any().downcast_ref::<StringArray>().unwrap();
        let id = id.as_any().downcast_ref::<StringArray>().unwrap();
        let ph = ph.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            if split.value(i) == "test" {
                want.push((id.value(i).to_string(), calibration.apply(ph.value(i))));
            }
        }
    }
    let sample: Vec<&(String, f64)> = want.iter().step_by(7).collect();
    let items: Vec<fer_predict::inputs::Item> = sample
        .iter()
        .map(|(id, _)| fer_predict::inputs::Item {
            name: id.clone(),
            path: Ok(fer.join("test").join(format!("{id}.jpg"))),
        })
        .collect();
    let mut got = Vec::new();
    p.run_files(
        &items,
        64,
        &indicatif::ProgressBar::hidden(),
        &mut |_, o| {
            got.push(o.clone());
            Ok(())
        },
    )
    .unwrap();
    for ((id, w), o) in sample.iter().zip(&got) {
        let Outcome::Faces { faces, .. } = o else {
            panic!("{id}: {o:?}")
        };
        assert_eq!(faces[0].p_happy, *w, "{id}");
    }
    eprintln!("{} seed test predictions reproduced exactly", sample.len());
}

/// Model folders written before fer-ops (its conv, pool and batch-norm kernels) still load
/// and score the same. `tests/fixtures/pre-fer-ops/` holds a fer-small model folder that the
/// code before fer-ops trained (the smoke pipeline, commit a26cb8a) and `expected.jsonl`, what
/// that code's fer-predict gave for the synthetic faces below (see the fixture's README.md).
/// Today's code must give the same label and p_happy within float tolerance (the kernels sum
/// in another order, so the last bits may differ).
#[test]
fn model_folders_written_before_fer_ops_score_the_same() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pre-fer-ops");
    let d = tempfile::tempdir().unwrap();
    // FER_FIXTURE_FACES keeps the faces (how the fixture's expected scores were made).
    let imgs = std::env::var_os("FER_FIXTURE_FACES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| d.path().join("faces"));
    std::fs::create_dir_all(&imgs).unwrap();
    for i in 0..24 {
        synthetic_face(i)
            .save(imgs.join(format!("f{i:03}.png")))
            .unwrap();
    }
    let got = run_jsonl(
        bin()
            .args([
                "--no-detect",
                "--format",
                "jsonl",
                "--quiet",
                "--threshold",
                "0.5",
            ])
            .arg("--model")
            .arg(fixture.join("model"))
            .arg(&imgs),
    );
    let want = jsonl(&std::fs::read(fixture.join("expected.jsonl")).unwrap());
    assert_eq!(got.len(), 24);
    assert_eq!(want.len(), 24);
    let name = |r: &serde_json::Value| {
        Path::new(r["file"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    let mut labels = std::collections::BTreeSet::new();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(name(g), name(w));
        let (pg, pw) = (
            g["p_happy"].as_f64().unwrap(),
            w["p_happy"].as_f64().unwrap(),
        );
        assert!(
            (pg - pw).abs() < 1e-5,
            "{}: p_happy {pg} now, {pw} before",
            name(g)
        );
        assert_eq!(g["label"], w["label"], "{}", name(g));
        labels.insert(w["label"].as_str().unwrap().to_string());
    }
    // The fixture is only a check if the model tells the faces apart.
    assert_eq!(
        labels.len(),
        2,
        "the fixture model gives one label to every face"
    );
}
