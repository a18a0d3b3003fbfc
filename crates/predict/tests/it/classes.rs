//! Seven-class models in fer-predict: a CNN's per-emotion probabilities (`prob_<class>` CSV
//! columns beside the calibrated `p_happy`, a JSON `emotions` object, the argmax `emotion`), reproducing train_cnn's
//! predictions exactly with `--no-detect`; an SVM's per-class one-vs-rest decisions
//! (`d_<class>`, `decisions`); the service's per-face JSON; and none of it for binary models.

use crate::common::*;
use burn::tensor::Device;
use fer_core::LabelMode;
use fer_core::tensors::TensorSet;
use fer_models::features::{FeatureKind, FeaturePipeline, HogParams};
use fer_models::svm::{Decision, KernelKind, SavedModel, SavedSvms};
use fer_predict::model::Calibration;
use fer_predict::serve::{ServeOptions, bind};
use fer_predict::{DetectOptions, FaceDetector, ModelOptions, Predictor, Scorer};
use fer_schema::calibration::ScoreKind;
use rand::{RngExt, SeedableRng};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fer-predict"))
}

fn run(args: &[&str], model: &Path, imgs: &Path) -> String {
    let out = bin()
        .args(args)
        .args(["--no-detect", "--quiet", "--threshold", "0.5", "--model"])
        .arg(model)
        .arg(imgs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn jsonl(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// CSV rows as maps from column to value, and the header.
fn csv_rows(out: &str) -> (Vec<String>, Vec<std::collections::HashMap<String, String>>) {
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

/// `n` drawn faces saved as PNG files in `dir`, and the model input preprocess would make of
/// them (decode, luma, the fitted transform).
fn faces(dir: &Path, n: usize) -> TensorSet {
    std::fs::create_dir_all(dir).unwrap();
    let mut x = Vec::new();
    for i in 0..n {
        let path = dir.join(format!("f{i:03}.png"));
        synthetic_face(i).save(&path).unwrap();
        let g = image::load_from_memory(&std::fs::read(&path).unwrap())
            .unwrap()
            .to_luma8();
        x.extend(transform().apply(&g));
    }
    TensorSet {
        n,
        height: 48,
        width: 48,
        x,
        y: vec![0; n],
        truths: None,
    }
}

fn names() -> Vec<&'static str> {
    LabelMode::Emotion7.class_names()
}

/// The header of a binary model's CSV (as before seven classes) and of a seven-class one's.
fn headers(prefix: &str) -> (Vec<String>, Vec<String>) {
    let binary: Vec<String> = fer_predict::output::HEADER
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut seven = binary[..9].to_vec();
    seven.extend(names().iter().map(|c| format!("{prefix}{c}")));
    seven.push("emotion".into());
    seven.extend(binary[9..].iter().cloned());
    (binary, seven)
}

#[test]
fn seven_class_cnn_gives_per_emotion_probabilities_matching_train_cnn() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    let (net, art) = tiny_model_of(&mdir, true, 16, 11, &names());
    // A temperature map of p(happy), as train_cnn fits one: p_happy is calibrated, the
    // per-emotion probabilities (prob_happy too) are the softmax output.
    let t = 2.0;
    let rec = fer_schema::calibration::ModelCalibration {
        model: "tiny".into(),
        method: fer_schema::calibration::Method::Temperature { temperature: t },
        n: 0,
        n_happy: 0,
        before: None,
        after: None,
    };
    fer_schema::calibration::write(
        &mdir.join(fer_schema::calibration::FILE),
        &fer_eval::calibration::file(ScoreKind::PHappy, vec![rec]),
    )
    .unwrap();
    let cal = |p: f64| fer_eval::calibration::apply_temperature(p, t);
    let imgs = d.path().join("faces");
    let n = 20;
    let set = faces(&imgs, n);
    // train_cnn's scores of the same tensors (flip averaging, its eval batch).
    let want = fer_models::score::predict(&net, &set, 16, true, &Device::flex());
    assert_eq!(want[0].len(), 7);

    let rows = jsonl(&run(&["--format", "jsonl"], &mdir, &imgs));
    assert_eq!(rows.len(), n);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["status"], "ok");
        // p_happy: the happy class's (3) softmax output, calibrated.
        assert_eq!(r["p_happy"].as_f64().unwrap(), cal(want[i][3]), "row {i}");
        assert_ne!(cal(want[i][3]), want[i][3]);
        let e = r["emotions"].as_object().unwrap();
        assert_eq!(e.len(), 7);
        for (k, c) in names().iter().enumerate() {
            assert_eq!(e[*c].as_f64().unwrap(), want[i][k], "row {i} {c}");
        }
        let top = fer_models::score::argmax(&want[i]);
        assert_eq!(r["emotion"], names()[top], "row {i}");
        assert!(r.get("decisions").is_none());
    }
    assert_eq!(art.class_names.strs(), names());

    let (header, csv) = csv_rows(&run(&[], &mdir, &imgs));
    assert_eq!(header, headers("prob_").1);
    for (i, r) in csv.iter().enumerate() {
        for (k, c) in names().iter().enumerate() {
            assert_eq!(r[&format!("prob_{c}")].parse::<f64>().unwrap(), want[i][k]);
        }
        assert_eq!(r["p_happy"].parse::<f64>().unwrap(), cal(want[i][3]));
        assert_eq!(header.iter().filter(|c| *c == "p_happy").count(), 1);
        assert_eq!(r["emotion"], names()[fer_models::score::argmax(&want[i])]);
    }

    // A binary model: the columns and objects of before, none per emotion.
    let bdir = d.path().join("binary");
    tiny_model(&bdir, true, 16);
    let (header, _) = csv_rows(&run(&[], &bdir, &imgs));
    assert_eq!(header, headers("prob_").0);
    for r in jsonl(&run(&["--format", "jsonl"], &bdir, &imgs)) {
        assert!(
            r.get("emotions").is_none() && r.get("emotion").is_none(),
            "{r}"
        );
    }
}

/// A seven-class SVM folder: raw pixels with PCA fitted on drawn faces, seven linear
/// one-vs-rest decisions of seeded random weights, `transform.json` beside them.
fn svm_folder(dir: &Path) -> SavedSvms {
    std::fs::create_dir_all(dir).unwrap();
    let train = faces(&dir.join("train"), 24);
    let t = transform();
    let (pipeline, _) = FeaturePipeline::fit(
        FeatureKind::Raw,
        HogParams::default(),
        t.value_range(),
        6,
        &train,
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let classes: Vec<Decision> = (0..7)
        .map(|_| Decision::Linear {
            w: ndarray::Array1::from_shape_fn(6, |_| rng.random_range(-1.0..1.0)),
            bias: rng.random_range(-0.5..0.5),
        })
        .collect();
    let svms = SavedSvms {
        features: vec![pipeline],
        models: vec![SavedModel {
            name: "raw/linear".into(),
            feature: FeatureKind::Raw,
            kernel: KernelKind::Linear,
            c: 0.1,
            gamma: None,
            decision: classes[3].clone(),
            classes,
        }],
        class_names: names().iter().map(|c| c.to_string()).collect(),
    };
    svms.save(&dir.join("model.safetensors")).unwrap();
    t.save(&dir.join("transform.json")).unwrap();
    svms
}

#[test]
fn seven_class_svm_gives_per_class_decisions_and_the_argmax() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("train_svm");
    let svms = svm_folder(&mdir);
    let imgs: PathBuf = d.path().join("faces");
    let n = 12;
    let set = faces(&imgs, n);
    let v = svms.class_decisions("raw/linear", &set).unwrap();
    assert_eq!(v.dim(), (n, 7));
    // Uncalibrated (no calibration.json): p_happy = 1 / (1 + exp(-d_happy)), as a binary SVM.
    let p = |d: f64| Calibration::none(ScoreKind::SvmDecision, None).apply(d);
    let rows = jsonl(&run(&["--format", "jsonl"], &mdir, &imgs));
    assert_eq!(rows.len(), n);
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        let dec = r["decisions"].as_object().unwrap();
        let row: Vec<f64> = names().iter().map(|c| dec[*c].as_f64().unwrap()).collect();
        for k in 0..7 {
            assert_eq!(row[k].to_bits(), v[[i, k]].to_bits(), "row {i} class {k}");
        }
        assert_eq!(r["p_happy"].as_f64().unwrap(), p(v[[i, 3]]));
        let top = fer_models::svm::argmax_rows(&v)[i] as usize;
        assert_eq!(r["emotion"], names()[top]);
        seen.insert(top);
        assert!(
            r.get("emotions").is_none(),
            "an SVM's decisions are no probabilities"
        );
    }
    let (header, csv) = csv_rows(&run(&[], &mdir, &imgs));
    assert_eq!(header, headers("d_").1);
    for (i, r) in csv.iter().enumerate() {
        for (k, c) in names().iter().enumerate() {
            assert_eq!(r[&format!("d_{c}")].parse::<f64>().unwrap(), v[[i, k]]);
        }
        assert_eq!(r["p_happy"].parse::<f64>().unwrap(), p(v[[i, 3]]));
    }
    assert!(!seen.is_empty());
}

/// `POST /predict?detect=false` of one face: the reply's JSON.
fn post(addr: std::net::SocketAddr, body: &[u8]) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /predict?detect=false HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn the_service_returns_per_emotion_fields_per_face() {
    let d = tempfile::tempdir().unwrap();
    let serve = |dir: &Path| {
        let scorer = Scorer::load(dir, &ModelOptions::default()).unwrap();
        let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
        let p = Predictor::new(scorer, det, true, 0.5).unwrap();
        let o = ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ServeOptions::default()
        };
        bind(p, &o).unwrap().spawn()
    };
    let face = png(&synthetic_face(5));
    let g = image::load_from_memory(&face).unwrap().to_luma8();
    let one = TensorSet {
        n: 1,
        height: 48,
        width: 48,
        x: transform().apply(&g),
        y: vec![0],
        truths: None,
    };

    let cnn = d.path().join("cnn");
    let (net, _) = tiny_model_of(&cnn, false, 8, 3, &names());
    let want = fer_models::score::predict(&net, &one, 8, false, &Device::flex());
    let r = post(serve(&cnn), &face);
    let f = &r["faces"][0];
    assert_eq!(f["p_happy"].as_f64().unwrap(), want[0][3]);
    for (k, c) in names().iter().enumerate() {
        assert_eq!(f["emotions"][c].as_f64().unwrap(), want[0][k], "{c}");
    }
    assert_eq!(f["emotion"], names()[fer_models::score::argmax(&want[0])]);

    let svm = d.path().join("train_svm");
    let svms = svm_folder(&svm);
    let v = svms.class_decisions("raw/linear", &one).unwrap();
    let r = post(serve(&svm), &face);
    let f = &r["faces"][0];
    for (k, c) in names().iter().enumerate() {
        assert_eq!(f["decisions"][c].as_f64().unwrap(), v[[0, k]], "{c}");
    }
    let top = fer_models::svm::argmax_rows(&v)[0] as usize;
    assert_eq!(f["emotion"], names()[top]);

    // A binary model's faces: exactly the fields of before.
    let b = d.path().join("binary");
    tiny_model(&b, false, 8);
    let r = post(serve(&b), &face);
    let keys: Vec<&String> = r["faces"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["box", "face", "label", "p_happy"]);
}
