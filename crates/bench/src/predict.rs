//! `fer-bench --only predict`: `fer-predict`'s throughput, without and with face detection.

use crate::Row;
use std::path::Path;
use std::time::Instant;

/// `fer-predict` throughput with untrained CNNs (speed does not depend on the weights): faces
/// per second with `--no-detect` (decode, gray, transform, model) on 48x48 images (FER2013 test
/// files when present, else drawn faces) for `fer-small` with and without flip averaging and
/// for `fer-tiny` (pipelines/seed.toml's speed model, widths 8-16-32-64); and photos per
/// second with detection on 640x480 JPEG scenes holding one or two faces each (fer-small).
pub(crate) fn predict_rows(rows: &mut Vec<Row>, notes: &mut Vec<String>, data_dir: &Path) {
    use fer_predict::{DetectOptions, FaceDetector, Predictor, Scorer, scene};
    use rayon::prelude::*;
    let device = burn::tensor::Device::flex();
    let make = |widths: Vec<usize>,
                tta: bool,
                batch: usize|
     -> Result<Predictor, fer_predict::PredictError> {
        let cfg = fer_train_cnn::model::ModelConfig::new("fer-small".into()).with_widths(widths);
        let settings = fer_train_cnn::settings::TrainSettings {
            tta_flip: tta,
            eval_batch_size: batch,
            ..Default::default()
        };
        let art = fer_train_cnn::ModelArtifact {
            model: cfg.clone(),
            transform: fer_core::transform::Transform {
                size: 48,
                resize_filter: "triangle".into(),
                denoise: fer_core::transform::Denoise::None,
                equalize: fer_core::transform::Equalize::None,
                normalization: fer_core::transform::Normalization::Standardize {
                    mean: 0.5,
                    std: 0.25,
                },
            },
            class_names: fer_core::Classes::binary(),
            tta_flip: tta,
            settings,
            params: 0,
            macs: fer_train_cnn::model::Net::macs(&cfg),
        };
        let scorer = Scorer::from_cnn(cfg.init(&device), &art, device.clone())?;
        Predictor::new(
            scorer,
            FaceDetector::embedded(DetectOptions::default())?,
            true,
            0.5,
        )
    };
    let n = 1024;
    let files: Vec<Vec<u8>> = fer_predict::inputs::expand(
        &[data_dir.join("test").display().to_string()],
        &mut std::io::empty(),
    )
    .iter()
    .filter_map(|i| i.path.as_ref().ok())
    .step_by(7)
    .take(n)
    .filter_map(|p| std::fs::read(p).ok())
    .collect();
    let (faces, source) = if files.len() == n {
        (files, "FER2013")
    } else {
        let drawn = (0..n)
            .map(|i| {
                let e = if i % 2 == 0 {
                    fer_core::Emotion::Happy
                } else {
                    fer_core::Emotion::Sad
                };
                let g = image::GrayImage::from_raw(
                    48,
                    48,
                    fer_ingest::synthetic::face(e, i as u64, 4.0),
                )
                .expect("48x48");
                let mut out = std::io::Cursor::new(Vec::new());
                g.write_to(&mut out, image::ImageFormat::Png).expect("png");
                out.into_inner()
            })
            .collect();
        (drawn, "drawn")
    };
    let small = vec![32, 64, 128, 192];
    let build = |w: Vec<usize>, tta: bool, batch: usize, notes: &mut Vec<String>| {
        make(w, tta, batch)
            .map_err(|e| {
                notes.push(format!(
                    "predict failed: {}",
                    fer_core::cli::error_chain(&e)
                ))
            })
            .ok()
    };
    // fer-tiny as pipelines/seed.toml trains it: widths 8-16-32-64, scored in batches of 32.
    for (label, widths, tta, batch, reps) in [
        ("fer-small+flip", small.clone(), true, 256, 1),
        ("fer-small", small.clone(), false, 256, 2),
        ("fer-tiny", vec![8, 16, 32, 64], false, 32, 8),
    ] {
        let Some(p) = build(widths, tta, batch, notes) else {
            return;
        };
        // Warm up (allocations), then time `reps` passes over the faces.
        let warm: Vec<_> = faces[..64]
            .iter()
            .map(|b| p.prepare(b, false).map_err(|e| e.to_string()))
            .collect();
        let _ = p.score(warm, 0.5);
        let t0 = Instant::now();
        let mut ok = true;
        for _ in 0..reps {
            let prepared: Vec<Result<fer_predict::Prepared, String>> = faces
                .par_iter()
                .map(|b| p.prepare(b, false).map_err(|e| e.to_string()))
                .collect();
            if let Err(e) = p.score(prepared, 0.5) {
                notes.push(format!("predict failed: {e}"));
                ok = false;
                break;
            }
        }
        if ok {
            rows.push(Row {
                name: format!("predict --no-detect {label}, {source}"),
                items: (n * reps) as f64,
                unit: "faces",
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
    }
    let Some(p) = build(small, true, 256, notes) else {
        return;
    };
    let gray: Vec<image::GrayImage> = faces
        .iter()
        .take(48)
        .filter_map(|b| image::load_from_memory(b).ok().map(|i| i.to_luma8()))
        .collect();
    let photos: Vec<Vec<u8>> = gray
        .chunks(3)
        .enumerate()
        .flat_map(|(i, g)| {
            [&g[..1], &g[1..]].map(|part| {
                let (img, _) = scene::scene(part, 640, 480, (96, 192), i as u64);
                scene::encode(&img, true)
            })
        })
        .collect();
    let t0 = Instant::now();
    let prepared: Vec<Result<fer_predict::Prepared, String>> = photos
        .par_iter()
        .map(|b| p.prepare(b, true).map_err(|e| e.to_string()))
        .collect();
    match p.score(prepared, 0.5) {
        Ok(_) => rows.push(Row {
            name: "predict 640x480 JPEG, detect + fer-small+flip".into(),
            items: photos.len() as f64,
            unit: "images",
            seconds: t0.elapsed().as_secs_f64(),
        }),
        Err(e) => notes.push(format!("predict failed: {e}")),
    }
}
