//! Calibration fits (issue 19): temperature scaling fitted on one part of a deterministic,
//! over-confident score set lowers NLL (and ECE) on a held-out part; Platt scaling recovers
//! known parameters; a set with one class only gives an explicit error and an `uncalibrated`
//! record with the reason; `calibration.json` round-trips.

use fer_eval::calibration::{
    CalibrationError, apply_temperature, cnn_record, ece, fit_platt, fit_temperature, logit, nll,
    platt_p, sigmoid, svm_record,
};
use fer_schema::calibration::{self as calfile, Method, ScoreKind};

/// A deterministic uniform in [0, 1) (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` rows whose true p(happy) is `sigmoid(z)`, z uniform in [-3, 3], labels drawn from it,
/// and a model that reports `sigmoid(3 z)`: over-confident by a temperature of 3.
fn overconfident(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            let z = r.next() * 6.0 - 3.0;
            let happy = r.next() < sigmoid(z);
            (sigmoid(3.0 * z), happy)
        })
        .unzip()
}

#[test]
fn temperature_fitted_on_one_part_lowers_nll_on_the_held_out_part() {
    let (p, happy) = overconfident(6000, 19);
    let (fit_p, test_p) = p.split_at(3000);
    let (fit_y, test_y) = happy.split_at(3000);
    let t = fit_temperature(fit_p, fit_y).unwrap();
    assert!((2.5..3.5).contains(&t), "T = {t}, the truth is 3");
    let cal: Vec<f64> = test_p.iter().map(|&p| apply_temperature(p, t)).collect();
    let (nll0, nll1) = (nll(test_p, test_y), nll(&cal, test_y));
    let (ece0, ece1) = (ece(test_p, test_y), ece(&cal, test_y));
    assert!(nll1 < nll0 - 0.05, "held-out NLL {nll0} -> {nll1}");
    assert!(ece1 < ece0 / 2.0, "held-out ECE {ece0} -> {ece1}");
    // The map keeps the order of the scores (so no threshold changes its labels).
    assert!(apply_temperature(0.7, t) > apply_temperature(0.6, t));
    // The record says the same on the part it was fitted on.
    let r = cnn_record("fer-small", fit_p, fit_y);
    assert_eq!(r.method, Method::Temperature { temperature: t });
    let (b, a) = (r.before.unwrap(), r.after.unwrap());
    assert!(
        a.nll < b.nll && a.ece < b.ece && a.brier < b.brier,
        "{b:?} -> {a:?}"
    );
    assert_eq!(
        (r.n, r.n_happy as usize),
        (3000, fit_y.iter().filter(|&&h| h).count())
    );
    // An under-confident model (it reports sigmoid(z / 2)) is sharpened: T below 1.
    let p2: Vec<f64> = p.iter().map(|&p| sigmoid(logit(p) / 6.0)).collect();
    let t2 = fit_temperature(&p2, &happy).unwrap();
    assert!((0.4..0.6).contains(&t2), "T = {t2}, the truth is 0.5");
}

#[test]
fn platt_recovers_known_parameters() {
    let (a0, b0) = (-2.0, 0.5);
    let mut r = Rng(7);
    let (d, happy): (Vec<f64>, Vec<bool>) = (0..20_000)
        .map(|_| {
            let d = r.next() * 6.0 - 3.0;
            (d, r.next() < platt_p(a0, b0, d))
        })
        .unzip();
    let (a, b) = fit_platt(&d, &happy).unwrap();
    assert!(
        (a - a0).abs() < 0.1 && (b - b0).abs() < 0.1,
        "a = {a}, b = {b}"
    );
    let rec = svm_record("hog/rbf", &d, &happy);
    assert_eq!(rec.method, Method::Platt { a, b });
    // Before: the unfitted 1 / (1 + exp(-d)), which is too flat here (the truth's slope is 2).
    assert!(rec.after.unwrap().nll < rec.before.unwrap().nll);
}

#[test]
fn one_class_is_an_explicit_error_and_an_uncalibrated_record() {
    let d = [0.5, 1.5, -0.2, 2.0];
    let happy = [true; 4];
    let e = fit_platt(&d, &happy).unwrap_err();
    assert_eq!(e, CalibrationError::OneClass { n: 4, happy: 4 });
    assert_eq!(
        fit_temperature(&[0.2, 0.4], &[false, false]).unwrap_err(),
        CalibrationError::OneClass { n: 2, happy: 0 }
    );
    let rec = svm_record("hog/linear", &d, &happy);
    let Method::Uncalibrated { reason } = &rec.method else {
        panic!("{:?}", rec.method)
    };
    assert!(reason.contains("only one class"), "{reason}");
    assert!(rec.before.is_some() && rec.after.is_none());
    // A slope that reverses the order is refused too, not kept.
    let d = [-2.0, -1.0, 1.0, 2.0];
    let e = fit_platt(&d, &[true, true, false, false]);
    assert!(
        matches!(e, Err(CalibrationError::PlattReversed { .. })),
        "{e:?}"
    );
}

#[test]
fn calibration_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(calfile::FILE);
    let (p, happy) = overconfident(500, 3);
    let f =
        fer_eval::calibration::file(ScoreKind::PHappy, vec![cnn_record("fer-small", &p, &happy)]);
    calfile::write(&path, &f).unwrap();
    let back = calfile::read(&path).unwrap();
    assert_eq!(back, f);
    let text = std::fs::read_to_string(&path).unwrap();
    for key in [
        "\"method\": \"temperature\"",
        "\"temperature\":",
        "\"fitted_on\": \"val\"",
        "\"score\": \"p_happy\"",
        "\"ece_bins\": 15",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let rec = back.model(None).unwrap();
    let Method::Temperature { temperature } = rec.method else {
        panic!()
    };
    assert_eq!(back.apply(rec, 0.9), apply_temperature(0.9, temperature));
    std::fs::write(&path, "{\"score\": \"p_happy\"}").unwrap();
    let e = calfile::read(&path).unwrap_err().to_string();
    assert!(e.contains("calibration.json"), "{e}");
}
