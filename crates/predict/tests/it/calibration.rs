//! Predict applies a model folder's `calibration.json` (issue 19): p_happy is the calibrated
//! probability, a folder without the file is used uncalibrated with a warning saying why, an
//! `uncalibrated` record warns with its reason, and the recommendation's threshold (on the
//! raw score) is mapped through the same calibration.

use crate::common::*;
use fer_eval::calibration::{apply_temperature, file};
use fer_predict::{ModelOptions, Scorer};
use fer_schema::calibration::{self as calfile, Method, ModelCalibration, ScoreKind};
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fer-predict"))
}

fn write_calibration(dir: &Path, kind: ScoreKind, method: Method) {
    let rec = ModelCalibration {
        model: "tiny".into(),
        method,
        n: 100,
        n_happy: 50,
        before: None,
        after: None,
    };
    calfile::write(&dir.join(calfile::FILE), &file(kind, vec![rec])).unwrap();
}

/// The normalized inputs of 6 synthetic faces.
fn inputs() -> Vec<f32> {
    let t = transform();
    (0..6).flat_map(|i| t.apply(&synthetic_face(i))).collect()
}

fn p_happy(dir: &Path) -> (Scorer, Vec<f64>) {
    let s = Scorer::load(dir, &ModelOptions::default()).unwrap();
    let p = s.p_happy(inputs()).unwrap();
    (s, p)
}

#[test]
fn a_calibration_file_changes_p_happy_as_its_temperature_says() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    tiny_model(&mdir, false, 8);
    // No calibration.json: the raw softmax p(happy), and a warning that says why.
    let (s, raw) = p_happy(&mdir);
    let w = s.calibration.warning.clone().expect("a warning");
    assert!(
        w.contains("calibration.json: not found") && w.contains("not calibrated"),
        "{w}"
    );
    assert!(s.description.contains("uncalibrated"), "{}", s.description);
    // T = 0.25 sharpens: every p moves away from 0.5, exactly by the documented map.
    write_calibration(
        &mdir,
        ScoreKind::PHappy,
        Method::Temperature { temperature: 0.25 },
    );
    let (s, cal) = p_happy(&mdir);
    assert_eq!(s.calibration.warning, None);
    assert!(s.description.contains("T=0.2500"), "{}", s.description);
    for (r, c) in raw.iter().zip(&cal) {
        assert!(
            (c - apply_temperature(*r, 0.25)).abs() < 1e-12,
            "{r} -> {c}"
        );
        assert!((c - 0.5).abs() >= (r - 0.5).abs(), "{r} -> {c}");
    }
    assert_ne!(raw, cal);
    // An `uncalibrated` record: the raw p, with its reason in the warning.
    write_calibration(
        &mdir,
        ScoreKind::PHappy,
        Method::Uncalibrated {
            reason: "only one class".into(),
        },
    );
    let (s, p) = p_happy(&mdir);
    assert_eq!(p, raw);
    let w = s.calibration.warning.expect("a warning");
    assert!(
        w.contains("was not calibrated") && w.contains("only one class"),
        "{w}"
    );
    // A file for another score kind is an error naming it, not a silent default.
    write_calibration(
        &mdir,
        ScoreKind::SvmDecision,
        Method::Platt { a: -1.0, b: 0.0 },
    );
    let e = Scorer::load(&mdir, &ModelOptions::default())
        .err()
        .expect("an error")
        .to_string();
    assert!(
        e.contains("calibration.json") && e.contains("svm_decision"),
        "{e}"
    );
    // An unreadable file too.
    std::fs::write(mdir.join(calfile::FILE), "{").unwrap();
    let e = Scorer::load(&mdir, &ModelOptions::default())
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("calibration.json"), "{e}");
}

#[test]
fn the_cli_warns_without_calibration_and_applies_it_with() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    tiny_model(&mdir, false, 8);
    let face = d.path().join("face.png");
    synthetic_face(0).save(&face).unwrap();
    let run = || {
        let out = bin()
            .args(["--no-detect", "--format", "jsonl", "--quiet", "--model"])
            .arg(&mdir)
            .arg(&face)
            .output()
            .unwrap();
        assert!(out.status.success());
        let row: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        (
            row["p_happy"].as_f64().unwrap(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (raw, err) = run();
    assert!(
        err.contains("warning:") && err.contains("calibration.json: not found"),
        "{err}"
    );
    write_calibration(
        &mdir,
        ScoreKind::PHappy,
        Method::Temperature { temperature: 0.5 },
    );
    let (cal, err) = run();
    assert!(!err.contains("calibration"), "{err}");
    assert!(
        (cal - apply_temperature(raw, 0.5)).abs() < 1e-12,
        "{raw} -> {cal}"
    );
}

#[test]
fn the_recommended_threshold_is_mapped_through_the_calibration() {
    let d = tempfile::tempdir().unwrap();
    let mdir = d.path().join("model");
    tiny_model(&mdir, false, 8);
    write_calibration(
        &mdir,
        ScoreKind::PHappy,
        Method::Temperature { temperature: 2.0 },
    );
    let hash = fer_core::hash::hash_file(&mdir.join("model.safetensors")).unwrap();
    let rec = d.path().join("recommendation.json");
    let v = serde_json::json!({
        "model_dir": mdir.display().to_string(),
        "svm_model": null,
        "score": "p_happy",
        "threshold": 0.8,
        "model_weights_blake3": hash,
    });
    std::fs::write(&rec, v.to_string()).unwrap();
    let s = Scorer::load(&mdir, &ModelOptions::default()).unwrap();
    let c = fer_predict::threshold::for_model(&rec, &s);
    assert_eq!(c.warning, None);
    // The report chose 0.8 on the raw p(happy); predict compares calibrated p with its map.
    assert_eq!(c.value, apply_temperature(0.8, 2.0));
    assert!(c.source.contains("calibration"), "{}", c.source);
}
