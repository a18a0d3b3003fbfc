//! The "The data" section (counts, the mean/std table, sample faces, the data-quality audit)
//! and the "Preparation" section (preprocessing and augmentation).

use super::{Ctx, class_words, count, f2, pct, thousands};
use crate::ReportError;
use fer_core::classes::{HAPPY, NOT_HAPPY};
use serde_json::Value;

pub(super) fn data(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("The data");
    let s = cx.study;
    match s.stage("ingest") {
        Some(m) => {
            let counts = &m.summary["counts"];
            // Seven classes: ingest counts each emotion.
            let classes = s
                .seven
                .as_ref()
                .map_or_else(|| s.class_names.clone(), |sv| sv.classes.clone());
            let mut head: Vec<String> = vec!["Split".into()];
            head.extend(classes.iter().map(|c| class_words(c)));
            head.push("Total".into());
            let mut rows = Vec::new();
            let mut totals = vec![0u64; classes.len() + 1];
            for split in ["train", "val", "test"] {
                let mut row = vec![split.to_string()];
                let mut sum = 0;
                for (i, c) in classes.iter().enumerate() {
                    let n = counts[split][c].as_u64().unwrap_or(0);
                    sum += n;
                    totals[i] += n;
                    row.push(thousands(n));
                }
                totals[classes.len()] += sum;
                row.push(thousands(sum));
                rows.push(row);
            }
            let mut t = vec!["all".to_string()];
            t.extend(totals.iter().map(|n| thousands(*n)));
            rows.push(t);
            let splits = if m.summary["validation"] == "public_test" {
                "Validation images are FER2013's PublicTest images and are used to choose models and thresholds; test images are FER2013's PrivateTest images (the split the literature reports) and are only scored; every Training image trains"
            } else {
                "Validation images are carved from FER2013's training folder and are used to choose models and thresholds; test images are only scored"
            };
            cx.doc.p(format!(
                "Images per split and class. {splits}. Source: {}{}.",
                m.summary["source"].as_str().unwrap_or("?"),
                m.summary["rejected"].as_u64().filter(|r| *r > 0).map_or(
                    String::new(),
                    |r| format!(", {} files rejected", thousands(r))
                )
            ));
            let h: Vec<&str> = head.iter().map(String::as_str).collect();
            cx.doc.table(&h, rows);
        }
        None => cx.not_run("The counts per split and class", "ingest"),
    }
    let Some(stats) = s.stats.clone() else {
        cx.not_run("The mean/std table, sample faces and data audit", "stats");
        return Ok(());
    };
    cx.doc
        .h3("Pixel mean and standard deviation (the study's table)");
    let st = &cx.rp.study;
    let mut rows = Vec::new();
    for r in stats["mean_std"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let class = r["class"].as_str().unwrap_or("");
        if class.starts_with("emotion:") {
            continue;
        }
        let split = r["split"].as_str().unwrap_or("");
        let study = match (split, class) {
            ("train+val", HAPPY) => format!("{} / {}", f2(st.mean_happy), f2(st.std_happy)),
            ("train+val", NOT_HAPPY) => {
                format!("{} / {}", f2(st.mean_not_happy), f2(st.std_not_happy))
            }
            _ => String::new(),
        };
        rows.push(vec![
            if split == "train+val" {
                "train + val (FER2013 train)".into()
            } else {
                split.to_string()
            },
            class_words(class),
            thousands(r["images"].as_u64().unwrap_or(0)),
            f2(r["mean"].as_f64().unwrap_or(f64::NAN)),
            f2(r["std"].as_f64().unwrap_or(f64::NAN)),
            study,
        ]);
    }
    cx.doc.table(
        &[
            "Split",
            "Class",
            "Images",
            "Mean",
            "Std",
            "Study mean / std",
        ],
        rows,
    );
    cx.doc.p(if cx.seven() {
        "Pixel values are 0–255, all pixels of a group pooled. A model that could tell the emotions apart from overall brightness and contrast alone would be reading the photos, not the faces."
    } else {
        "Pixel values are 0–255, all pixels of a group pooled. Happy and not-happy faces have almost the same brightness and contrast, so a model cannot tell them apart from overall intensity alone."
    });
    cx.doc.h3("Sample faces");
    for split in ["train", "val", "test"] {
        cx.copy_image(
            "stats",
            &format!("samples_{split}.png"),
            &format!("Random {split} images per class (seeded)."),
        )?;
    }
    cx.copy_image(
        "stats",
        "histograms.png",
        "Pixel intensity histograms per split and class.",
    )?;
    cx.doc.h3("Data-quality audit");
    let a = &stats["audit"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut items = vec![
        format!(
            "**{}** of exact duplicate images and **{}** ({}).",
            count(n(&a["exact_pairs"]), "pair", "pairs"),
            count(
                n(&a["near_pairs"]),
                "near-duplicate pair",
                "near-duplicate pairs"
            ),
            a["method"].as_str().unwrap_or("perceptual hash")
        ),
        format!(
            "**{}** a twin among the training images ({} with a different label).",
            count(
                n(&a["test_with_train_twin"]),
                "test image has",
                "test images have"
            ),
            thousands(n(&a["test_with_train_twin_label_conflicts"]))
        ),
        format!(
            "**{}** (pixel std below {}).",
            count(
                n(&a["blank"]["count"]),
                "blank or near-constant image",
                "blank or near-constant images"
            ),
            a["blank"]["threshold_std"]
        ),
    ];
    if let Some(scopes) = a["by_scope"].as_object() {
        for (scope, v) in scopes {
            items.push(format!(
                "{scope}: {} exact, {} near, {} with conflicting labels.",
                thousands(n(&v["exact_pairs"])),
                thousands(n(&v["near_pairs"])),
                thousands(n(&v["label_conflicts"]))
            ));
        }
    }
    cx.doc.list(items);
    if n(&a["exact_pairs"]) + n(&a["near_pairs"]) > 0 {
        cx.copy_image(
            "stats",
            "duplicates.png",
            "Duplicate pairs found across splits, side by side.",
        )?;
    }
    if n(&a["blank"]["count"]) > 0 {
        cx.copy_image("stats", "blank.png", "Blank or near-constant images.")?;
    }
    Ok(())
}

fn op_words(op: &Value) -> String {
    let Some(o) = op.as_object() else {
        return String::new();
    };
    o.iter()
        .filter(|(k, _)| *k != "kind")
        .map(|(k, v)| {
            let v = v.as_f64().map_or(v.to_string(), |x| {
                format!("{}", (x * 1000.0).round() / 1000.0)
            });
            format!("{} {v}", k.replace('_', " "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn preparation(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("Preparation");
    match cx.study.transform.clone() {
        Some(t) => {
            let norm = &t["normalization"];
            let norm_words = match norm["kind"].as_str() {
                Some("standardize") => format!(
                    "standardize with the training images' mean {} and std {} (pixels as 0–1)",
                    norm["mean"]
                        .as_f64()
                        .map_or("?".into(), |x| format!("{x:.4}")),
                    norm["std"]
                        .as_f64()
                        .map_or("?".into(), |x| format!("{x:.4}"))
                ),
                Some("unit") => "scale to 0–1".into(),
                Some("symmetric") => "scale to −1–1".into(),
                Some(k) => k.to_string(),
                None => "?".into(),
            };
            let den = &t["denoise"];
            let den_words = match den["kind"].as_str() {
                Some("none") | None => "none".to_string(),
                Some(k) => format!("{k} ({})", op_words(den)),
            };
            cx.doc.table(
                &["Option", "Value"],
                vec![
                    vec!["Image size".into(), format!("{0}×{0} pixels", t["size"])],
                    vec![
                        "Resize filter".into(),
                        t["resize_filter"].as_str().unwrap_or("?").into(),
                    ],
                    vec!["Denoising".into(), den_words],
                    vec![
                        "Histogram equalization".into(),
                        t["equalize"].as_str().unwrap_or("?").into(),
                    ],
                    vec!["Normalization".into(), norm_words],
                ],
            );
        }
        None => cx.not_run("The preprocessing options", "preprocess"),
    }
    cx.doc.h3("Augmentation");
    match cx.study.chain.clone() {
        Some(ch) => {
            let rows: Vec<Vec<String>> = ch["steps"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    vec![
                        format!("{}. {}", i + 1, st["op"]["kind"].as_str().unwrap_or("?")),
                        pct(st["p"].as_f64().unwrap_or(1.0)),
                        op_words(&st["op"]),
                    ]
                })
                .collect();
            cx.doc.p("Training images are randomly altered, step by step, so the CNN sees a slightly different face every epoch (each step applies with its probability):");
            cx.doc.table(&["Step", "Probability", "Settings"], rows);
            cx.copy_image(
                "augment",
                "preview.png",
                "Originals (left) beside augmented versions of the same faces.",
            )?;
        }
        None => cx.not_run("The augmentation preview", "augment"),
    }
    Ok(())
}
