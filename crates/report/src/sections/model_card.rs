//! The "Model card" section: what the recommended model is for, the data it learned from,
//! its known limits and what the predict tool keeps, for whoever deploys it at a checkout.
//!
//! The model, threshold, data source and labels come from the artifacts; the rest is fixed
//! text: the in-the-wild figures are issue 19's measurements on a private set (fer-small,
//! 1,251 face crops), and the privacy paragraph describes `crates/predict` as of this code
//! (no image is written; what it prints is listed).

use super::recommendation::f1;
use super::{Ctx, pct, thousands};
use crate::recommend::Rec;

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
    cx.doc.list(vec![
        "**Posed and web faces, not a checkout camera.** On a private set of 1,251 in-the-wild face crops (143×181 colour, often dark), fer-small scored as crops reached **81%** balanced accuracy, against **88%** on FER2013's test set; and the face detector at its default settings found a face in only **57%** of them (80% with `--det-threshold 0.5`). Measure at the shop's own camera before acting on alerts.".into(),
        "**Demographics unknown.** FER2013 records no age, sex or skin tone, so how well the model reads different groups of people has not been measured; it may be worse for some.".into(),
        "**Label noise.** One annotator per FER2013 image: some labels are wrong, which caps and blurs every figure in this report.".into(),
        "**The mix and the threshold.** The alert threshold holds for the stated share of unhappy customers; if the shop's mix differs, the precision and the number of alerts move (see \"Operating point\").".into(),
    ]);

    cx.doc.h3("Privacy");
    cx.doc.p(
        "`fer-predict` stores no image: it decodes each photo or request body in memory, finds and scores the faces, and drops the pixels. In batch mode it prints one row per face to standard output (file name, face box, detection score, `p_happy`, the label at the threshold) and a summary line with counts and timing to standard error; the service answers each request with the same figures and logs only its start-up line, connection errors and changes of its drift check, with no request log; its `/metrics` hold counts and histograms only, and the drift check keeps the last scores (numbers, no faces) in memory. Whatever the deployer keeps of that output (file names, face boxes, times) is personal data to protect; customers should be told that the camera reads expressions.",
    );
}
