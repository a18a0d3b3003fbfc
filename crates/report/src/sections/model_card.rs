//! The "Model card" section: what the recommended model is for, the data it learned from,
//! its known limits and what the predict tool keeps, for whoever deploys it at a checkout.
//!
//! The model, threshold, data source and labels come from the artifacts, and the camera-frame
//! figures from the scene benchmark (`scenes/scene_bench.json`, `make scenes`) when it measured
//! the recommended model's weights; the rest is fixed text: the privacy paragraph describes
//! `crates/predict` as of this code (no image is written; what it prints is listed).

use super::recommendation::f1;
use super::{Ctx, pct, thousands};
use crate::recommend::Rec;
use fer_schema::scenes::SceneBench;

pub(super) fn model_card(cx: &mut Ctx, rec: Option<&Rec>) {
    cx.doc.h2("Model card");
    let ingest = cx.study.stage("ingest");
    let synthetic = ingest.is_some_and(|m| m.summary["source"] == "synthetic");
    let labels = ingest
        .and_then(|m| m.params["labels"].as_str())
        .unwrap_or("fer2013");
    let rows = ingest.and_then(|m| m.summary["rows"].as_u64());

    let model = match rec {
        Some(r) => format!(
            "**Model:** {}, alert when `{}` < {:.3}, chosen for {} unhappy customers (about {} alerts per 100 customers expected{}).",
            r.model.display,
            r.model.score_name,
            r.threshold,
            pct(r.op.base_rate),
            f1(r.op.val.alerts_per_100),
            if r.op.choice.met {
                ""
            } else {
                "; the goal is not met"
            }
        ),
        None => "**Model:** none recommended (see the Recommendation section).".into(),
    };
    cx.doc.p(model);

    cx.doc.h3("Intended use");
    cx.doc.p(
        "An **aggregate** signal of customers' mood at a hotel or restaurant checkout: how many \"not happy\" alerts an hour or a day, and how that share moves, so a manager can see a bad shift or a queue that frustrates people. An alert may at most prompt staff to offer help. It is **not** for decisions about individual people (service, prices, security, or judging staff by their customers' faces): a single face's score is wrong often enough (see the test figures above) that no one should be treated differently because of it.",
    );

    cx.doc.h3("Data");
    let mut data = if synthetic {
        "This run trained on **synthetic drawn faces** (the smoke pipeline): nothing here describes real faces. The real pipelines use the data below. ".to_string()
    } else {
        String::new()
    };
    let task = if cx.seven() {
        "here the models learn all seven and the alerts read them as happy against the six others"
    } else {
        "here happy against the six others"
    };
    data += &format!(
        "**FER2013**: 48×48 grayscale face crops found by web image search, posed and in-the-wild, each labelled by a single annotator with one of seven emotions; {task} (\"not happy\" lumps neutral, sad, angry, surprised, fearful and disgusted faces){}. **FERPlus** relabelled the same images with 10 annotators each; on the full test set the two disagree on about 4.5% of the happy / not-happy labels (see \"Two truths\" when the votes are present). This model was trained on {} labels.",
        rows.filter(|_| !synthetic)
            .map(|n| format!("; this pipeline used {} of them", thousands(n)))
            .unwrap_or_default(),
        if labels == "ferplus" {
            "FERPlus's"
        } else {
            "FER2013's"
        }
    );
    cx.doc.p(data);

    cx.doc.h3("Limits");
    let weights = rec.and_then(|r| r.weights_blake3.as_deref());
    let dir = rec.map(|r| r.model.dir.display().to_string());
    cx.doc.list(vec![
        camera_limit(cx.study.scenes.as_ref(), weights, dir.as_deref()),
        "**Demographics unknown.** FER2013 records no age, sex or skin tone, so how well the model reads different groups of people has not been measured; it may be worse for some.".into(),
        "**Label noise.** One annotator per FER2013 image: some labels are wrong, which caps and blurs every figure in this report.".into(),
        "**The mix and the threshold.** The alert threshold holds for the stated share of unhappy customers; if the shop's mix differs, the precision and the number of alerts move (see \"Operating point\").".into(),
    ]);

    cx.doc.h3("Privacy");
    cx.doc.p(
        "`fer-predict` stores no image: it decodes each photo or request body in memory, finds and scores the faces, and drops the pixels. In batch mode it prints one row per face to standard output (file name, face box, detection score, `p_happy`, the label at the threshold) and a summary line with counts and timing to standard error; the service answers each request with the same figures and logs only its start-up line, connection errors and changes of its drift check, with no request log; its `/metrics` hold counts and histograms only, and the drift check keeps the last scores (numbers, no faces) in memory. Whatever the deployer keeps of that output (file names, face boxes, times) is personal data to protect; customers should be told that the camera reads expressions.",
    );
    cx.doc.p(
        "**Video and the live page.** `fer-predict --video` and the service's video source (`--video`, `POST /frames`) keep no frame, crop or per-face score: frames are scored in memory and only sums leave (per second on standard output; per second and per minute over the last 15 minutes in the service's memory, which the manager's page at `GET /` polls from `/live.json`). A window holding fewer than 5 faces shows its frame and face counts only, never its happy count, alerts, share or mean score, so one customer's answer cannot be read off it; the rule is built in, not an option. A face counts once in every frame it is seen in, so the counts are of sightings, not of people.",
    );
}

/// The limit bullet on camera frames: the scene benchmark's figures when it ran on the
/// recommended model's weights, else what is missing.
fn camera_limit(scenes: Option<&SceneBench>, weights: Option<&str>, dir: Option<&str>) -> String {
    let again = match dir {
        Some(d) => format!("`make scenes MODEL={d}`"),
        None => "`make scenes`".into(),
    };
    let head = "**Posed and web faces, not a checkout camera.** The model learned from cropped, \
                centred web faces; a camera frame goes through face detection and cropping first.";
    let tail = "Measure at the shop's own camera before acting on alerts.";
    let Some(b) = scenes else {
        return format!(
            "{head} The scene benchmark ({again}: FER2013 test faces composed into camera-like frames, read frame to answer) has not been run for this pipeline. {tail}"
        );
    };
    if weights != Some(b.model_weights_blake3.as_str()) {
        return format!(
            "{head} The scene benchmark of {} (`scenes/scene_bench.json`) measured another model ({}, weights `{}`), not this one: run {again}. {tail}",
            b.date,
            b.model,
            b.model_weights_blake3.get(..12).unwrap_or("?")
        );
    }
    // The detector the service runs by default when the benchmark had it, else the first.
    let detector = ["yunet", "seeta"]
        .into_iter()
        .find(|d| b.row(d, "plain").is_some())
        .or_else(|| b.rows.first().map(|r| r.detector.as_str()))
        .unwrap_or("?");
    let cell = |case: &str| {
        b.row(detector, case)
            .map(|r| {
                format!(
                    "{} of faces found, {} balanced accuracy",
                    pct(r.found as f64 / r.faces.max(1) as f64),
                    pct(r.balanced_accuracy)
                )
            })
            .unwrap_or_else(|| "not measured".into())
    };
    let cases = [
        ("dark", "dark"),
        ("backlit", "backlit"),
        ("tilted", "tilted 30°"),
        ("blur", "motion-blurred"),
        ("lowres", "low-resolution"),
        ("jpeg30", "JPEG at quality 30"),
        ("covered", "with the mouth covered"),
    ];
    let others: Vec<String> = cases
        .iter()
        .map(|(c, name)| format!("{name}: {}", cell(c)))
        .collect();
    format!(
        "{head} On the scene benchmark of {date} (`make scenes`: {n} FER2013 test faces, half happy, composed into 640×480 frames at 40 to 300 pixels; a missed face counts as a wrong answer), with the {detector} detector, this model's weights gave, from frame to answer, in plain frames {plain} (the same faces as crops: {crop} balanced accuracy); {others}. These are FER2013 faces in made-up scenes, not customers at a real camera. {tail}",
        date = b.date,
        n = b.faces,
        plain = cell("plain"),
        crop = pct(b.no_detect_balanced_accuracy),
        others = others.join("; "),
    )
}
