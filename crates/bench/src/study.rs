//! `--only study` (feature `study`): `--study-workers` tune workers (threads, each with its own
//! connections and worker id, as separate machines would have) with zero-cost trials against
//! the study database `--study` (`FER_BENCH_STUDY`), a new study each run: claims per second,
//! the claim latency's median and 99th percentile, and double claims (jobs minus the distinct
//! (trial, rung) pairs claimed; it must be 0).

use fer_core::pipeline::PipelineFile;
use fer_tune::study::sql::{Heartbeat, SqlStudy};
use fer_tune::study::zero_cost_worker;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A search of `trials` trials over rungs of 1, 3, 9 and 27 epochs.
fn params(trials: usize) -> fer_tune::TuneParams {
    let text = format!(
        "[train_cnn]\n[[train_cnn.models]]\nname = \"fer-small\"\narch = \"fer-small\"\n\
         [tune]\nmax_trials = {trials}\nmax_epochs = 27\nmin_epochs = 1\nreduction = 3\n\
         time_limit = \"10h\"\n[tune.space]\nlr = {{ low = 1e-3, high = 1e-2, log = true }}\n"
    );
    let pf = PipelineFile::parse(Path::new("bench.toml"), &text).expect("bench pipeline parses");
    fer_tune::TuneParams::parse(&pf).expect("bench search is valid")
}

pub struct StudyBench {
    pub claims: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub double_claims: usize,
}

pub fn run(url: &str, workers: usize, trials: usize) -> Result<StudyBench, String> {
    let p = params(trials);
    let id = format!(
        "bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
    );
    let score = |t: usize, r: usize| {
        let q = ((t * 7919 + 13) % 101) as f64 / 1000.0;
        (0.6 + q + 0.01 * r as f64, 0.4 - q)
    };
    // Join first (the migrations and the study row), then start the clock.
    let mut studies = (0..workers)
        .map(|_| {
            SqlStudy::open(
                url,
                &id,
                "bench",
                &serde_json::json!({"bench": trials}),
                None,
                Heartbeat {
                    every: Duration::from_secs(5),
                },
            )
            .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let t0 = Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = studies
            .iter_mut()
            .map(|st| {
                let p = &p;
                s.spawn(move || {
                    let mut lat = Vec::new();
                    zero_cost_worker(p, st, &score, &mut |d| lat.push(d))
                        .map(|_| lat)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread"))
            .collect()
    });
    let seconds = t0.elapsed().as_secs_f64();
    let mut lat: Vec<Duration> = Vec::new();
    for r in results {
        lat.extend(r?);
    }
    let jobs = studies[0].jobs().map_err(|e| e.to_string())?;
    let distinct: BTreeSet<(usize, usize)> = jobs.iter().map(|j| (j.0, j.1)).collect();
    lat.sort();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    Ok(StudyBench {
        claims: lat.len(),
        seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        double_claims: jobs.len() - distinct.len(),
    })
}
