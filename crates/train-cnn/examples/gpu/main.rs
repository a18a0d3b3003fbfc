//! `gpu`: the wgpu path checked and timed; built only with the `wgpu` feature
//! (`cargo build --release -p fer-train-cnn --features wgpu --example gpu`). What runs it:
//! `make gpu-check` (scripts/gpu-check.sh) and `scripts/gpu-run.sh`.
//!
//! - `gpu info [--require-gpu]`: the adapter wgpu picks (name, graphics API, kind); with
//!   `--require-gpu`, exit 3 when it runs on the CPU (Mesa's lavapipe, "llvmpipe").
//! - `gpu agree [--json FILE]`: every architecture on wgpu against the CPU backend from the
//!   same weights and batch ([`agree`]); the largest difference per tensor; exit 1 when a bound
//!   is crossed.
//! - `gpu faces --out DIR`: drawn faces as PNGs (smoke's synthetic ones), for fer-predict.
//! - `gpu run`: images/s of training and inference per model and, on the pipeline's data,
//!   epochs trained in the time given, with seconds per epoch and test accuracy ([`timing`]);
//!   one table, and `--json FILE`.
//!
//! Reads: `--pipelines`' files and `--data`'s preprocess outputs (`gpu run`). Writes: only
//! `--json` and a temporary folder. Errors are printed as a chain, exit code 2.

mod agree;
mod timing;

use clap::{Parser, Subcommand};
use fer_train_cnn::settings::TrainSettings;
use std::path::PathBuf;
use std::process::ExitCode;

// The allocator the CNN binaries use (see fer-train-cnn's main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gpu", about = "Check and time the wgpu path")]
struct Cli {
    /// The device checked or timed (`cpu` runs `gpu run` on the CPU backend, for comparison).
    #[arg(long, default_value = "wgpu", global = true)]
    device: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the adapter.
    Info {
        /// Exit 3 when the adapter is not a GPU (a Vulkan on the CPU such as lavapipe).
        #[arg(long)]
        require_gpu: bool,
    },
    /// Every architecture on the device against the CPU backend.
    Agree {
        /// Also write the table as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only these cases (seed-base, seed-tuned, fer-small, fer-vgg, "fer-small 7-class").
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Another batch size for every case.
        #[arg(long)]
        batch: Option<usize>,
    },
    /// Write drawn faces (smoke's synthetic ones) as PNGs, for fer-predict to score.
    Faces {
        #[arg(long)]
        out: PathBuf,
        /// Faces, half happy.
        #[arg(long, default_value_t = 40)]
        n: u64,
    },
    /// Speed per model, and epochs on the pipeline's data in the time given.
    Run {
        /// Models timed: names from the pipeline's [[train_cnn.models]], or an architecture
        /// (seed-base, seed-tuned, fer-small) with its default settings.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "seed-base,seed-tuned,fer-vgg"
        )]
        models: Vec<String>,
        /// Training batches timed per model (after a warm-up run of 2).
        #[arg(long, default_value_t = 20)]
        batches: usize,
        /// The pipeline whose models train on real data.
        #[arg(long, default_value = "seed-gpu")]
        pipeline: String,
        /// The folder of pipeline files.
        #[arg(long, default_value = "pipelines")]
        pipelines: PathBuf,
        /// The pipeline's preprocess outputs (seed-gpu's are seed's).
        #[arg(long, default_value = "artifacts/seed/preprocess")]
        data: PathBuf,
        /// Seconds for the whole run: the speed rows, then the epochs on real data in what
        /// they leave, shared among the pipeline's models (0: no epochs).
        #[arg(long, default_value_t = 300.0)]
        seconds: f64,
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    if let Cmd::Faces { out, n } = &cli.cmd {
        return faces(out, *n);
    }
    let (device, info) = fer_train::device_info(&cli.device).map_err(|e| e.to_string())?;
    println!("device: {info}");
    match cli.cmd {
        Cmd::Info { require_gpu } => {
            if require_gpu && !info.is_gpu() {
                eprintln!(
                    "error: the adapter is not a GPU ({info}): set GPU_RUN_SMOKE=1 to run on it anyway"
                );
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Agree { json, only, batch } => agree_all(&device, json, &only, batch),
        Cmd::Faces { .. } => unreachable!("handled above"),
        Cmd::Run {
            models,
            batches,
            pipeline,
            pipelines,
            data,
            seconds,
            json,
        } => {
            let t_run = std::time::Instant::now();
            let pf =
                fer_core::pipeline::PipelineFile::load(&pipelines.join(format!("{pipeline}.toml")))
                    .map_err(|e| e.to_string())?;
            let tp = fer_train_cnn::settings::parse(&pf).map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for name in &models {
                let s = settings_named(&tp.models, name)?;
                let mut row = timing::Row {
                    model: name.clone(),
                    ..Default::default()
                };
                eprintln!("gpu run: timing {name}");
                timing::speed(&mut row, &s, batches, &device);
                rows.push(row);
                save(json.as_deref(), &info, &rows)?;
            }
            let rest = seconds - t_run.elapsed().as_secs_f64();
            if rest > 0.0 {
                epochs_on_data(&mut rows, &tp, &data, rest, &device, &|rows| {
                    save(json.as_deref(), &info, rows)
                })?;
            }
            print_table(&rows, &info.to_string());
            save(json.as_deref(), &info, &rows)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `n` drawn faces, `happy-NNN.png` and `sad-NNN.png` / `neutral-NNN.png`, into `out`.
fn faces(out: &std::path::Path, n: u64) -> Result<ExitCode, String> {
    use fer_core::Emotion;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for i in 0..n {
        let (emotion, name) = match i % 4 {
            0 | 2 => (Emotion::Happy, "happy"),
            1 => (Emotion::Sad, "sad"),
            _ => (Emotion::Neutral, "neutral"),
        };
        let px = fer_ingest::synthetic::face(emotion, 1000 + i, 8.0);
        let side = fer_core::IMAGE_SIDE as u32;
        let path = out.join(format!("{name}-{i:03}.png"));
        image::save_buffer(&path, &px, side, side, image::ExtendedColorType::L8)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("{n} faces written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// The rows so far as JSON (after every row, so a run stopped by its time limit keeps them).
fn save(
    json: Option<&std::path::Path>,
    info: &fer_train::DeviceInfo,
    rows: &[timing::Row],
) -> Result<(), String> {
    let Some(p) = json else { return Ok(()) };
    let v = serde_json::json!({"device": info.to_string(), "rows": rows});
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap_or_default())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// The settings of `name`: the pipeline's model of that name, else an architecture's defaults.
fn settings_named(models: &[TrainSettings], name: &str) -> Result<TrainSettings, String> {
    if let Some(s) = models.iter().find(|s| s.name == name) {
        return Ok(s.clone());
    }
    if fer_train_cnn::model::ARCHS.contains(&name) {
        return Ok(TrainSettings {
            arch: name.into(),
            name: name.into(),
            ..TrainSettings::default()
        });
    }
    Err(format!(
        "--models {name}: neither a model of the pipeline ({}) nor an architecture ({})",
        models
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        fer_train_cnn::model::ARCHS.join(", ")
    ))
}

/// The pipeline's models on its data, `seconds` shared among them (what one leaves goes to
/// the next).
fn epochs_on_data(
    rows: &mut Vec<timing::Row>,
    tp: &fer_train_cnn::settings::TrainCnnParams,
    data: &std::path::Path,
    seconds: f64,
    device: &burn::tensor::Device,
    save: &dyn Fn(&[timing::Row]) -> Result<(), String>,
) -> Result<(), String> {
    if !data.join("train.safetensors").is_file() {
        eprintln!(
            "gpu run: {}: no preprocess outputs, so no epochs on real data (make preprocess PIPELINE=seed, or carry artifacts/seed/)",
            data.display()
        );
        return Ok(());
    }
    let prepared = fer_train::Prepared::load(data).map_err(|e| e.to_string())?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    let n = tp.models.len();
    for (i, s) in tp.models.iter().enumerate() {
        let left = seconds - t0.elapsed().as_secs_f64();
        let share = left / (n - i) as f64;
        let mut s = s.clone();
        let cfg = prepared.model_config(&s).map_err(|e| e.to_string())?;
        s.widths = cfg.widths.clone();
        let at = match rows.iter().position(|r| r.model == s.name) {
            Some(at) => at,
            None => {
                rows.push(timing::Row {
                    model: s.name.clone(),
                    ..Default::default()
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[at];
        if let Err(e) = timing::epochs(row, &s, &prepared, &tp.steps, share, device, scratch.path())
        {
            row.note = format!("epochs: {e}");
        }
        save(rows)?;
    }
    Ok(())
}

fn print_table(rows: &[timing::Row], device: &str) {
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    println!("\n{device}");
    println!(
        "| model | params | train images/s | infer images/s | epochs | s/epoch | test accuracy | note |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            if r.params > 0 {
                r.params.to_string()
            } else {
                "-".into()
            },
            f(r.train_images_per_s, 0),
            f(r.infer_images_per_s, 0),
            if r.planned_epochs > 0 {
                format!("{}/{}", r.epochs, r.planned_epochs)
            } else {
                "-".into()
            },
            f(r.seconds_per_epoch, 1),
            f(r.test_accuracy.map(|a| a * 100.0), 2),
            r.note
        );
    }
}

fn over(d: &agree::Diff) -> &'static str {
    if d.ok() { "" } else { "  OVER" }
}

fn agree_all(
    device: &burn::tensor::Device,
    json: Option<PathBuf>,
    only: &[String],
    batch: Option<usize>,
) -> Result<ExitCode, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut outcomes = Vec::new();
    for mut case in agree::cases() {
        if !only.is_empty() && !only.iter().any(|n| n == case.name) {
            continue;
        }
        if let Some(b) = batch {
            case.batch = b;
        }
        let t0 = std::time::Instant::now();
        let o = agree::check(&case, device, scratch.path())?;
        println!(
            "\n{} ({} parameters, batch {}, {:.1} s)",
            o.name,
            o.params,
            case.batch,
            t0.elapsed().as_secs_f64()
        );
        println!(
            "  fresh weights from seed 7: {}",
            if o.fresh_equal {
                "the same on both devices, bit for bit"
            } else {
                "DIFFER between the devices"
            }
        );
        println!(
            "  {:<32} {:>10}  {:>10}  {:>10}",
            "tensor", "wgpu", "bound", "nudged"
        );
        for d in [&o.logits, &o.loss] {
            println!(
                "  {:<32} {:>10.3e}  {:>10.0e}{}",
                d.tensor,
                d.value,
                d.bound,
                over(d)
            );
        }
        for (d, r) in o.grads.iter().zip(&o.reference) {
            println!(
                "  {:<32} {:>10.3e}  {:>10.0e}  {:>10.3e}{}",
                d.tensor,
                d.value,
                d.bound,
                r,
                over(d)
            );
        }
        outcomes.push(o);
    }
    println!(
        "\n| architecture | logits: max abs diff | loss: rel diff | gradients: max rel L2 diff (tensor) | CPU against itself, input nudged by 1e-6: max rel L2 | within bounds |"
    );
    println!("|---|---|---|---|---|---|");
    for o in &outcomes {
        let w = o.worst_grad();
        println!(
            "| {} | {:.2e} | {:.2e} | {:.2e} ({}) | {:.2e} | {} |",
            o.name,
            o.logits.value,
            o.loss.value,
            w.map_or(0.0, |d| d.value),
            w.map_or("", |d| d.tensor.as_str()),
            o.reference.iter().copied().fold(0.0, f64::max),
            if o.ok() { "yes" } else { "NO" }
        );
    }
    if let Some(p) = json {
        let rows: Vec<_> = outcomes
            .iter()
            .map(|o| {
                serde_json::json!({
                    "architecture": o.name,
                    "params": o.params,
                    "logits_max_abs": o.logits.value,
                    "loss_rel": o.loss.value,
                    "grads": o.grads.iter().zip(&o.reference).map(|(d, r)| serde_json::json!({"tensor": d.tensor, "rel_l2": d.value, "cpu_nudged_rel_l2": r})).collect::<Vec<_>>(),
                    "fresh_weights_equal": o.fresh_equal,
                    "ok": o.ok(),
                })
            })
            .collect();
        std::fs::write(&p, serde_json::to_string_pretty(&rows).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if outcomes.iter().all(agree::Outcome::ok) {
        println!("\nwgpu agrees with the CPU backend on every architecture");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: wgpu differs from the CPU backend beyond the bounds (OVER above)");
        Ok(ExitCode::from(1))
    }
}
