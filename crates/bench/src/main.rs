//! `fer-bench` (`make bench`): wall-clock timings of the stages on this machine, as a table.
//!
//! Reads FER2013 from `--data-dir` (`FER2013_DIR`); writes only to a temporary folder (the
//! run cache is off and every stage is forced to compute). Rows that need the real data are
//! skipped, with a note, when it is absent. Each timing is the best of `--repeat` runs.

mod compare;
mod peak;

// The allocator the CNN binaries use (see fer-train-cnn's main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use fer_core::cli::StageArgs;
use fer_core::pipeline::PipelineFile;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "fer-bench",
    about = "Time the pipeline stages and print a table"
)]
struct Cli {
    #[arg(long, env = "FER2013_DIR", default_value = "data/fer2013")]
    data_dir: PathBuf,
    /// Runs per row; the best time is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Run only these groups (comma-separated): stages (ingest, stats, preprocess, SVMs),
    /// augment, cnn, predict, peak (the GEMM peak and a fer-small training step's GFLOP/s
    /// against it), compare (the rows `make bench-compare` sets beside PyTorch's; only when
    /// named). Default: all but compare.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print the compare rows as JSON lines (name, impl, threads, per_second) instead of a
    /// table: what `scripts/bench-compare.sh` reads.
    #[arg(long)]
    json: bool,
    /// Compare rows for these architectures only (fer-small, seed-base, fer-tiny; default all).
    #[arg(long, value_delimiter = ',')]
    archs: Vec<String>,
    /// Compare rows for these variants only (fer-ops, burn; default both).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Compare rows: train only, infer only, or both (default).
    #[arg(long, value_parser = ["train", "infer", "both"], default_value = "both")]
    kind: String,
}

struct Row {
    name: String,
    items: f64,
    unit: &'static str,
    seconds: f64,
}

fn common(artifacts: &Path, pipeline: &str) -> StageArgs {
    StageArgs {
        pipeline: pipeline.into(),
        artifacts: artifacts.to_path_buf(),
        mini: false,
        cache_dir: Some("off".into()),
        cache_max: None,
        force: true,
        quiet: true,
        print_params: false,
        no_wait: false,
        keep_mtime: false,
        print_cache_dir: false,
        status: false,
    }
}

fn best<T>(repeat: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(v);
    }
    (best, last.expect("ran once"))
}

fn main() -> std::process::ExitCode {
    fer_ops::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let pf_path = tmp.path().join("benchfull.toml");
    let text = "[ingest]\nsource = \"auto\"\nprotocol = \"full\"\n[stats]\n[preprocess]\n";
    std::fs::write(&pf_path, text).expect("write pipeline");
    let pf = PipelineFile::parse(&pf_path, text).expect("bench pipeline parses");
    let args = common(tmp.path(), pf_path.to_str().expect("utf-8 path"));
    let want = |g: &str| cli.only.is_empty() || cli.only.iter().any(|o| o == g);
    if cli.json && cli.only.iter().any(|o| o != "compare") {
        eprintln!("error: --json prints the compare rows only (use --only compare)");
        return std::process::ExitCode::from(2);
    }
    if !want("stages") {
    } else if cli.data_dir.is_dir() {
        let icli = fer_ingest::Cli {
            common: args.clone(),
            args: fer_ingest::IngestArgs {
                data_dir: cli.data_dir.clone(),
                ferplus_dir: std::env::var_os("FERPLUS_DIR")
                    .map_or_else(|| "data/ferplus".into(), Into::into),
            },
        };
        let ip = fer_ingest::Params::from_pipeline(&pf, &icli).expect("ingest params");
        let (s, m) = best(cli.repeat, || fer_ingest::run(&ip));
        match m {
            Ok(m) => {
                let n = m.summary["rows"].as_f64().unwrap_or(0.0);
                rows.push(Row {
                    name: "ingest full (decode + write Parquet)".into(),
                    items: n,
                    unit: "images",
                    seconds: s,
                });
                let sp = fer_stats::Params::from_pipeline(
                    &pf,
                    &fer_stats::Cli {
                        common: args.clone(),
                        args: fer_core::cli::NoArgs {},
                    },
                )
                .expect("stats params");
                let (s, m) = best(cli.repeat, || fer_stats::run(&sp));
                match m {
                    Ok(_) => rows.push(Row {
                        name: "stats full (moments, pHash audit, PNGs)".into(),
                        items: n,
                        unit: "images",
                        seconds: s,
                    }),
                    Err(e) => {
                        notes.push(format!("stats failed: {}", fer_core::cli::error_chain(&e)))
                    }
                }
                let pp = fer_preprocess::Params::from_pipeline(
                    &pf,
                    &fer_preprocess::Cli {
                        common: args.clone(),
                        args: fer_core::cli::NoArgs {},
                    },
                )
                .expect("preprocess params");
                let (s, m) = best(cli.repeat, || fer_preprocess::run(&pp));
                match m {
                    Ok(_) => rows.push(Row {
                        name: "preprocess full (fit, transform, safetensors)".into(),
                        items: n,
                        unit: "images",
                        seconds: s,
                    }),
                    Err(e) => notes.push(format!(
                        "preprocess failed: {}",
                        fer_core::cli::error_chain(&e)
                    )),
                }
                svm_rows(
                    &mut rows,
                    &mut notes,
                    &tmp.path().join("benchfull").join("preprocess"),
                    1,
                );
            }
            Err(e) => notes.push(format!("ingest failed: {}", fer_core::cli::error_chain(&e))),
        }
    } else {
        notes.push(format!(
            "{}: not found, real-data rows skipped (set FER2013_DIR)",
            cli.data_dir.display()
        ));
    }
    if want("augment") {
        augment_rows(&mut rows, cli.repeat);
    }
    if want("cnn") {
        cnn_rows(&mut rows, &mut notes);
    }
    if want("predict") {
        predict_rows(&mut rows, &mut notes, &cli.data_dir);
    }
    if want("peak") {
        let threads = rayon::current_num_threads();
        let isa = fer_ops::isa::selected();
        let peak = peak::gemm_peak(cli.repeat);
        rows.push(Row {
            name: format!("GEMM peak, {0}x{0}x{0} ({isa}, {threads} thr)", peak::SIDE),
            items: (peak * 1e3).round() / 1e3,
            unit: "GFLOP",
            seconds: 1.0,
        });
        let (a, widths, dropout) = compare::arch("fer-small").expect("fer-small is compared");
        match compare::train_rate_flops(a, widths, dropout) {
            Ok((images, gflops)) => {
                rows.push(Row {
                    name: format!("train fer-small conv GEMMs ({isa}, {threads} thr)"),
                    items: (gflops * 1e3).round() / 1e3,
                    unit: "GFLOP",
                    seconds: 1.0,
                });
                notes.push(format!(
                    "fer-small training ({images:.0} images/s): its convolution GEMMs ran at \
                     {gflops:.1} GFLOP/s over the step, {:.0}% of the GEMM peak ({peak:.1} \
                     GFLOP/s, {isa}, {threads} threads)",
                    100.0 * gflops / peak
                ));
            }
            Err(e) => notes.push(format!("train fer-small (peak) failed: {e}")),
        }
    }
    if cli.only.iter().any(|o| o == "compare") {
        let threads = rayon::current_num_threads();
        for r in compare::rates(&cli.archs, &cli.variants, &cli.kind, &mut notes) {
            if cli.json {
                println!(
                    "{{\"name\": \"{}\", \"impl\": \"{}\", \"threads\": {threads}, \"per_second\": {:.3}}}",
                    r.name, r.variant, r.per_second
                );
            } else {
                rows.push(Row {
                    name: format!("{} ({}, {threads} thr)", r.name, r.variant),
                    items: r.per_second.round(),
                    unit: "images",
                    seconds: 1.0,
                });
            }
        }
    }
    if !(cli.json && rows.is_empty()) {
        print_table(&rows);
    }
    for n in &notes {
        if cli.json {
            eprintln!("note: {n}");
        } else {
            println!("note: {n}");
        }
    }
    if notes.iter().any(|n| n.contains("failed")) {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// Online augmentation throughput: the typical chain (flip p=0.5, rotation ±15°, contrast
/// 0.8-1.2) over 20,480 48x48 images in batches of 64, on all threads and on one.
fn augment_rows(rows: &mut Vec<Row>, repeat: usize) {
    use fer_augment::{Augmenter, Op, Step};
    let aug = Augmenter {
        steps: vec![
            Step {
                op: Op::Hflip,
                p: 0.5,
            },
            Step {
                op: Op::Rotate { degrees: 15.0 },
                p: 1.0,
            },
            Step {
                op: Op::Contrast { min: 0.8, max: 1.2 },
                p: 1.0,
            },
        ],
        side: 48,
        range: (-2.0, 2.0),
    };
    let n = 20_480usize;
    let base: Vec<f32> = (0..n * 2304)
        .map(|i| ((i * 7919) % 997) as f32 / 250.0 - 2.0)
        .collect();
    let mut work = base.clone();
    let mut time_it = |name: String| {
        let (s, _) = best(repeat, || {
            work.copy_from_slice(&base);
            for (b, batch) in work.chunks_mut(64 * 2304).enumerate() {
                aug.apply_batch(batch, 1, b as u64);
            }
        });
        rows.push(Row {
            name,
            items: n as f64,
            unit: "images",
            seconds: s,
        });
    };
    let threads = rayon::current_num_threads();
    time_it(format!(
        "augment flip+rotate+contrast, batch 64, {threads} thr"
    ));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    one.install(|| time_it("augment flip+rotate+contrast, batch 64, 1 thr".into()));
}

/// CNN training (batch 64, AdamW, no augmentation) and inference (batch 256) throughput on
/// the CPU backend (burn flex), on random 48x48 inputs: speed does not depend on content.
fn cnn_rows(rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    use fer_train_cnn::settings::TrainSettings;
    let device = burn::tensor::Device::flex();
    let data = compare::data;
    let aug = fer_augment::Augmenter {
        steps: vec![],
        side: 48,
        range: (-2.0, 2.0),
    };
    let val = data(64);
    // workers = 2: each batch's halves on one core each (the CPU pipelines' setting).
    for (arch, n, workers) in [
        ("fer-small", 1280usize, 1usize),
        ("fer-small", 1280, 2),
        ("seed-base", 1280, 1),
        ("seed-base", 1280, 2),
        ("seed-tuned", 128, 1),
    ] {
        let s = TrainSettings {
            arch: arch.into(),
            name: arch.into(),
            epochs: 1,
            warmup_epochs: 0,
            patience: 0,
            augment: false,
            workers,
            ..TrainSettings::default()
        };
        let train = data(n);
        let ckpt = tempfile::tempdir().expect("temp dir");
        match fer_train_cnn::train::train(
            &s,
            &train,
            &val,
            &aug,
            &device,
            ckpt.path(),
            &|_, _, _| {},
        ) {
            Ok(t) => {
                let e = &t.state.epochs[0];
                // Epoch seconds include one pass over the 64 validation images.
                rows.push(Row {
                    name: format!(
                        "train {arch} (flex CPU, batch 64, {workers} worker{})",
                        if workers > 1 { "s" } else { "" }
                    ),
                    items: n as f64,
                    unit: "images",
                    seconds: e.seconds,
                });
                if workers > 1 {
                    continue;
                }
                let test = data(if arch == "seed-tuned" { 64 } else { 2048 });
                let t0 = Instant::now();
                let _ = fer_train_cnn::train::predict(&t.model, &test, 256, false, &device);
                rows.push(Row {
                    name: format!("infer {arch} (flex CPU, batch 256)"),
                    items: test.n as f64,
                    unit: "images",
                    seconds: t0.elapsed().as_secs_f64(),
                });
            }
            Err(e) => notes.push(format!("train {arch} failed: {e}")),
        }
    }
}

/// SVM training and inference on a preprocess output folder: HOG + PCA 150 fitted on train,
/// linfa-svm's RBF C-SVC on a stratified 2,000-row subsample (C = 3, gamma = scale), the
/// linear SVM (dual coordinate descent, C = 0.001) on every train row, and inference (HOG,
/// scaling, PCA, decision) on test.
fn svm_rows(rows: &mut Vec<Row>, notes: &mut Vec<String>, preprocess: &Path, repeat: usize) {
    use fer_train_svm::ndarray::Axis;
    use fer_train_svm::{Decision, FeatureKind, FeaturePipeline, HogParams, features, model};
    let data = match fer_train_svm::Data::read(preprocess) {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!("train_svm rows skipped: {e}"));
            return;
        }
    };
    let range = data.transform.value_range();
    let (s, fitted) = best(repeat, || {
        FeaturePipeline::fit(
            FeatureKind::Hog,
            HogParams::default(),
            range,
            150,
            &data.train,
        )
    });
    let (pipeline, x) = match fitted {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("train_svm features failed: {e}"));
            return;
        }
    };
    rows.push(Row {
        name: "svm features: HOG + scale + PCA 150 (fit)".into(),
        items: data.train.n as f64,
        unit: "images",
        seconds: s,
    });
    let happy: Vec<bool> = data.train.y.iter().map(|&v| v == 0).collect();
    let sub = fer_train_svm::stratified_subsample(&data.train.y, 2000, 42);
    let xs = x.select(Axis(0), &sub);
    let hs: Vec<bool> = sub.iter().map(|&i| happy[i]).collect();
    let gamma = features::gamma_scale(&x);
    let (s, rbf) = best(repeat, || {
        model::fit_smo(xs.view(), &hs, (3.0, 3.0), Some(gamma), 1e-3)
    });
    let rbf = match rbf {
        Ok((d, _)) => d,
        Err(e) => {
            notes.push(format!("train_svm rbf failed: {e}"));
            return;
        }
    };
    rows.push(Row {
        name: "svm rbf fit (linfa SMO), 2000 rows".into(),
        items: sub.len() as f64,
        unit: "images",
        seconds: s,
    });
    let (s, (w, bias, _)) = best(repeat, || model::fit_dcd(&x, &happy, (0.001, 0.001), 42));
    rows.push(Row {
        name: "svm linear fit (dual coord. descent), all".into(),
        items: data.train.n as f64,
        unit: "images",
        seconds: s,
    });
    let linear = Decision::Linear { w, bias };
    for (name, d) in [("rbf", &rbf), ("linear", &linear)] {
        let (s, out) = best(repeat, || {
            pipeline.transform(&data.test).map(|t| d.values(&t).len())
        });
        match out {
            Ok(n) => rows.push(Row {
                name: format!("svm {name} inference (HOG..decision), test"),
                items: n as f64,
                unit: "images",
                seconds: s,
            }),
            Err(e) => notes.push(format!("train_svm inference failed: {e}")),
        }
    }
}

/// `fer-predict` throughput with untrained CNNs (speed does not depend on the weights): faces
/// per second with `--no-detect` (decode, gray, transform, model) on 48x48 images (FER2013 test
/// files when present, else drawn faces) for `fer-small` with and without flip averaging and
/// for `fer-tiny` (pipelines/seed.toml's speed model, widths 8-16-32-64); and photos per
/// second with detection on 640x480 JPEG scenes holding one or two faces each (fer-small).
fn predict_rows(rows: &mut Vec<Row>, notes: &mut Vec<String>, data_dir: &Path) {
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
            class_names: vec!["happy".into(), "not_happy".into()],
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

fn print_table(rows: &[Row]) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("fer-pipeline bench: {threads} threads, best of the runs\n");
    // The name column fits the longest name.
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(9);
    println!(
        "| {:<w$} | {:>8} | {:<7} | {:>9} | {:>12} |",
        "benchmark", "items", "unit", "seconds", "items/second"
    );
    println!(
        "|{:-<w2$}|{:->10}|{:-<9}|{:->11}|{:->14}|",
        "",
        "",
        "",
        "",
        "",
        w2 = w + 2
    );
    for r in rows {
        println!(
            "| {:<w$} | {:>8} | {:<7} | {:>9.3} | {:>12.0} |",
            r.name,
            r.items,
            r.unit,
            r.seconds,
            r.items / r.seconds
        );
    }
}
