//! The default threshold belongs to the model it was chosen for: `recommendation.json`'s
//! threshold is used only when the loaded model's weights hash (and score kind) match it;
//! retrained weights in the same folder, another model, an older report without the hash or
//! another score get 0.5 with a warning that says why.

use crate::common::*;
use fer_predict::threshold::{self, DEFAULT};
use fer_predict::{ModelOptions, Scorer};
use std::path::Path;
use std::process::Command;

/// `artifacts/p/report/recommendation.json` naming `model` with `threshold` and `hash`.
fn write_recommendation(artifacts: &Path, model: &Path, score: &str, t: f64, hash: Option<&str>) {
    let dir = artifacts.join("p").join("report");
    std::fs::create_dir_all(&dir).unwrap();
    let v = serde_json::json!({
        "model": "m",
        "display": "CNN m",
        "family": "cnn",
        "model_dir": model.display().to_string(),
        "svm_model": null,
        "score": score,
        "threshold": t,
        "model_weights_blake3": hash,
    });
    std::fs::write(dir.join("recommendation.json"), v.to_string()).unwrap();
}

fn load(dir: &Path) -> Scorer {
    Scorer::load(dir, &ModelOptions::default()).unwrap()
}

fn weights_hash(dir: &Path) -> String {
    fer_core::hash::hash_file(&dir.join("model.safetensors")).unwrap()
}

#[test]
fn recommended_threshold_only_for_the_weights_it_was_chosen_for() {
    let d = tempfile::tempdir().unwrap();
    let artifacts = d.path().join("artifacts");
    let m = artifacts.join("p/train_cnn/m");
    tiny_model(&m, false, 64);

    // No recommendation: 0.5, nothing to warn about.
    let c = threshold::for_pipeline(&artifacts, "p", &load(&m));
    assert_eq!((c.value, c.warning.is_none()), (DEFAULT, true), "{c:?}");

    // The same weights: the recommended threshold.
    write_recommendation(&artifacts, &m, "p_happy", 0.37, Some(&weights_hash(&m)));
    let c = threshold::for_pipeline(&artifacts, "p", &load(&m));
    assert_eq!(c.value, 0.37, "{c:?}");
    assert!(c.warning.is_none(), "{c:?}");
    assert!(c.source.ends_with("recommendation.json"), "{c:?}");

    // Another model (other weights, another folder): 0.5 and a warning naming both hashes.
    let other = artifacts.join("p/train_cnn/other");
    tiny_model_seeded(&other, false, 64, 8);
    let c = threshold::for_pipeline(&artifacts, "p", &load(&other));
    assert_eq!(c.value, DEFAULT, "{c:?}");
    let w = c.warning.unwrap();
    assert!(w.contains("retrained, or another model"), "{w}");
    assert!(w.contains(&weights_hash(&m)[..12]), "{w}");
    assert!(w.contains(&weights_hash(&other)[..12]), "{w}");

    // The same score kind but a score the CNN does not produce: 0.5.
    write_recommendation(
        &artifacts,
        &m,
        "svm_decision",
        -0.2,
        Some(&weights_hash(&m)),
    );
    let c = threshold::for_pipeline(&artifacts, "p", &load(&m));
    assert_eq!(c.value, DEFAULT, "{c:?}");
    assert!(c.warning.unwrap().contains("svm_decision"));

    // A report from before the hash was recorded: 0.5, and rerun the report.
    write_recommendation(&artifacts, &m, "p_happy", 0.37, None);
    let c = threshold::for_pipeline(&artifacts, "p", &load(&m));
    assert_eq!(c.value, DEFAULT, "{c:?}");
    assert!(c.warning.unwrap().contains("rerun the report"));

    // An unreadable file: 0.5 and the file named.
    let rec = artifacts.join("p/report/recommendation.json");
    std::fs::write(&rec, "{ not json").unwrap();
    let c = threshold::for_pipeline(&artifacts, "p", &load(&m));
    assert_eq!(c.value, DEFAULT, "{c:?}");
    assert!(c.warning.unwrap().contains("recommendation.json"));
}

#[test]
fn a_model_retrained_in_the_same_folder_does_not_inherit_the_threshold() {
    let d = tempfile::tempdir().unwrap();
    let artifacts = d.path().join("artifacts");
    let m = artifacts.join("p/train_cnn/m");
    tiny_model(&m, false, 64);
    write_recommendation(&artifacts, &m, "p_happy", 0.37, Some(&weights_hash(&m)));
    let face = d.path().join("face.png");
    std::fs::write(&face, png(&synthetic_face(0))).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_fer-predict"))
            .args(["--no-detect", "--format", "jsonl", "--model"])
            .arg(&m)
            .arg("--artifacts")
            .arg(&artifacts)
            .arg(&face)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let row: serde_json::Value =
            serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
        (
            row["threshold"].as_f64().unwrap(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (t, err) = run();
    assert_eq!(t, 0.37, "{err}");
    // The only warning: the tiny model has no calibration.json (issue 19).
    assert!(
        err.lines()
            .filter(|l| l.starts_with("warning:"))
            .all(|l| l.contains("calibration.json: not found")),
        "{err}"
    );

    // Retrained: new weights in the same folder, the old recommendation left behind.
    tiny_model_seeded(&m, false, 64, 9);
    let (t, err) = run();
    assert_eq!(t, DEFAULT, "{err}");
    assert!(
        err.contains("warning:") && err.contains("retrained, or another model"),
        "{err}"
    );
}
