//! `fer-bench` (`make bench`): wall-clock timings of the stages on this machine, as a table.
//!
//! Reads FER2013 from `--data-dir` (`FER2013_DIR`); writes only to a temporary folder (the
//! run cache is off and every stage is forced to compute). Rows that need the real data are
//! skipped, with a note, when it is absent. Each timing is the best of `--repeat` runs.

mod augment;
mod cnn;
mod compare;
mod peak;
mod predict;
#[cfg(feature = "study")]
mod study;
mod svm;

// The allocator the CNN binaries use (see fer-train-cnn's main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use augment::augment_rows;
use clap::Parser;
use cnn::cnn_rows;
use fer_core::cli::StageArgs;
use fer_core::pipeline::PipelineFile;
use predict::predict_rows;
use std::path::{Path, PathBuf};
use std::time::Instant;
use svm::svm_rows;

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
    /// named), study (claims against a study database; only when named). Default: all but
    /// compare and study.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print the compare rows as JSON lines (name, impl, threads, per_second) instead of a
    /// table: what `scripts/bench-compare.sh` reads.
    #[arg(long)]
    json: bool,
    /// Compare rows for these architectures only (fer-small, seed-base, fer-tiny; default all).
    #[arg(long, value_delimiter = ',')]
    archs: Vec<String>,
    /// Compare rows for these variants only (fer-ops, im2col, burn; default all three).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Compare rows: train only, infer only, or both (default).
    #[arg(long, value_parser = ["train", "infer", "both"], default_value = "both")]
    kind: String,
    /// `--only study`: the study database (`postgres://...`; needs the `study` feature).
    #[arg(long, env = "FER_BENCH_STUDY", hide_env_values = true)]
    study: Option<String>,
    /// `--only study`: workers, each with its own connections.
    #[arg(long, default_value_t = 64)]
    study_workers: usize,
    /// `--only study`: trials in the search (rungs of 1, 3, 9, 27 epochs, reduction 3).
    #[arg(long, default_value_t = 2000)]
    study_trials: usize,
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
        print_signature: false,
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
            Ok(step) => {
                for (what, gflops) in [("layers", step.layer_gflops), ("GEMMs", step.gemm_gflops)] {
                    rows.push(Row {
                        name: format!("train fer-small conv {what} ({isa}, {threads} thr)"),
                        items: (gflops * 1e3).round() / 1e3,
                        unit: "GFLOP",
                        seconds: 1.0,
                    });
                }
                notes.push(format!(
                    "fer-small training ({:.0} images/s): its convolutions ran {:.1} GFLOP/s of \
                     the layers' own FLOPs over the step, {:.0}% of the GEMM peak ({peak:.1} \
                     GFLOP/s, {isa}, {threads} threads); their GEMMs ran {:.1} GFLOP/s ({:.0}%), \
                     fewer FLOPs where Winograd took a pass",
                    step.images_per_second,
                    step.layer_gflops,
                    100.0 * step.layer_gflops / peak,
                    step.gemm_gflops,
                    100.0 * step.gemm_gflops / peak,
                ));
            }
            Err(e) => notes.push(format!("train fer-small (peak) failed: {e}")),
        }
    }
    if cli.only.iter().any(|o| o == "study") {
        study_rows(&cli, &mut rows, &mut notes);
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

/// `--only study` (only when named): claims against a study database.
#[cfg(feature = "study")]
fn study_rows(cli: &Cli, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let Some(url) = &cli.study else {
        notes.push("study: skipped (no --study URL or FER_BENCH_STUDY)".into());
        return;
    };
    match study::run(url, cli.study_workers, cli.study_trials) {
        Ok(b) => {
            rows.push(Row {
                name: format!(
                    "study claims ({} workers, zero-cost trials)",
                    cli.study_workers
                ),
                items: b.claims as f64,
                unit: "claims",
                seconds: b.seconds,
            });
            notes.push(format!(
                "study: {} claims in {:.2} s ({:.0}/s) by {} workers; claim latency p50 {:.2} ms, \
                 p99 {:.2} ms; double claims: {}",
                b.claims,
                b.seconds,
                b.claims as f64 / b.seconds,
                cli.study_workers,
                b.p50_ms,
                b.p99_ms,
                b.double_claims
            ));
        }
        Err(e) => notes.push(format!("study: failed: {e}")),
    }
}

#[cfg(not(feature = "study"))]
fn study_rows(_: &Cli, _: &mut Vec<Row>, notes: &mut Vec<String>) {
    notes.push(
        "study: skipped (fer-bench was built without its `study` feature: \
         cargo build --release -p fer-bench --features study)"
            .into(),
    );
}
