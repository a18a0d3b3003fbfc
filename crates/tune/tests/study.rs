//! The study store with zero-cost trials (`--features study`; `.ci/run` runs these): SQLite in
//! a temporary folder always; PostgreSQL when `FER_TEST_POSTGRES_URL` names a database the
//! tests may create tables in (otherwise those tests print why they skipped).
#![cfg(feature = "study")]

use fer_core::pipeline::PipelineFile;
use fer_tune::study::sql::{Heartbeat, SqlStudy, sqlite_url};
use fer_tune::study::{Study, zero_cost_worker};
use fer_tune::{Decision, Status, TuneParams};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `pipelines/smoke.toml` with its `[tune]` section (the file's last) replaced by `tune`.
fn smoke_with_tune(tune: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/smoke.toml"),
    )
    .unwrap();
    let cut = text.find("\n[tune]").unwrap();
    format!("{}\n{tune}", &text[..cut])
}

/// The smoke pipeline with a 40-trial search over rungs of 1, 2, 4 and 8 epochs.
fn params() -> TuneParams {
    let text = smoke_with_tune(
        "[tune]\nstrategy = \"asha\"\nseed = 3\nbase = \"fer-small\"\nmax_trials = 40\n\
         max_epochs = 8\nmin_epochs = 1\nreduction = 2\ntime_limit = \"1h\"\n\
         [tune.space]\nlr = { low = 1e-3, high = 1e-2, log = true }\n",
    );
    TuneParams::parse(&PipelineFile::parse(Path::new("t.toml"), &text).unwrap()).unwrap()
}

/// A trial's validation accuracy and loss at a rung: a fixed pseudo-random quality per trial,
/// a little better at each rung.
fn score(trial: usize, rung: usize) -> (f64, f64) {
    let q = ((trial * 7919 + 13) % 101) as f64 / 1000.0;
    let acc = 0.6 + q + 0.01 * rung as f64;
    (acc, 1.0 - acc)
}

fn open(url: &str, id: &str, hb: Duration) -> SqlStudy {
    SqlStudy::open(
        url,
        id,
        "t",
        &serde_json::json!({"test": id}),
        None,
        Heartbeat { every: hb },
    )
    .unwrap()
}

/// `n` workers (threads, each its own connection and worker id) on study `id` at `url`, to
/// the end; then what every claim became, and the final state.
fn run_workers(
    url: &str,
    id: &str,
    n: usize,
) -> (
    Vec<(usize, usize, String, Option<String>)>,
    fer_tune::SearchState,
) {
    let p = params();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (p, url, id) = (p.clone(), url.to_string(), id.to_string());
            std::thread::spawn(move || {
                let mut s = open(&url, &id, Duration::from_secs(5));
                zero_cost_worker(&p, &mut s, &score, &mut |_| {}).unwrap()
            })
        })
        .collect();
    let jobs: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let mut s = open(url, id, Duration::from_secs(5));
    let all = s.jobs().unwrap();
    assert_eq!(all.len(), jobs, "every claim is a job some worker ran");
    (all, s.state().unwrap())
}

/// Every (trial, rung) was claimed once and recorded once; nothing is left running; each
/// rung's result is the trial's own; the winner is the best trial at the top rung.
fn check(jobs: &[(usize, usize, String, Option<String>)], st: &fer_tune::SearchState) {
    let p = params();
    let mut seen = BTreeMap::new();
    for (trial, rung, _, outcome) in jobs {
        assert_eq!(
            outcome.as_deref(),
            Some("rung"),
            "trial {trial} rung {rung}"
        );
        *seen.entry((*trial, *rung)).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "claimed twice: {twice:?}");
    assert_eq!(st.trials.len(), p.max_trials);
    for t in &st.trials {
        assert_ne!(t.status, Status::Running, "trial {}", t.id);
        for (k, r) in t.rungs.iter().enumerate() {
            assert_eq!((r.val_acc, r.val_loss), score(t.id, k));
        }
    }
    let top = st.trials.iter().map(|t| t.rungs.len()).max().unwrap();
    assert_eq!(top, p.rungs().len(), "some trial reached max_epochs");
    let best = fer_tune::best_trial(st).unwrap();
    let best_at_top = st
        .trials
        .iter()
        .filter(|t| t.rungs.len() == top)
        .max_by(|a, b| score(a.id, 0).0.total_cmp(&score(b.id, 0).0))
        .unwrap();
    assert_eq!(best.id, best_at_top.id);
}

#[test]
fn sqlite_workers_share_a_study_and_no_job_is_claimed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("study.sqlite"));
    let (one, st1) = run_workers(&url, "one", 1);
    check(&one, &st1);
    let (four, st4) = run_workers(&url, "four", 4);
    check(&four, &st4);
}

#[test]
fn a_worker_that_stops_beating_loses_its_trial_to_the_next_claim() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("study.sqlite"));
    let p = params();
    let beat = Duration::from_millis(50);
    let mut a = open(&url, "s", beat);
    let (d, _) = a.claim(&p).unwrap();
    assert_eq!(
        d,
        Decision::Run {
            id: 0,
            rung: 0,
            last: false
        }
    );
    // `a` stops beating (as a process killed with -9 does) while its trial is running.
    a.stop_beating();
    let mut b = open(&url, "s", beat);
    let (d, st) = b.claim(&p).unwrap();
    assert_eq!(
        d,
        Decision::Run {
            id: 1,
            rung: 0,
            last: false
        },
        "trial 0 is busy"
    );
    assert_eq!(st.busy.iter().copied().collect::<Vec<_>>(), vec![0]);
    std::thread::sleep(beat * 8);
    // Six missed beats later trial 0 is b's (b's own trial 1 is not busy to b either: its
    // interrupted job comes first, so b is given the lower id, trial 0).
    let (d, _) = b.claim(&p).unwrap();
    assert_eq!(
        d,
        Decision::Run {
            id: 0,
            rung: 0,
            last: false
        }
    );
    // a wakes up: its save finds the trial taken over, and a drops it.
    let mut t = b.state().unwrap().trials[0].clone();
    t.epochs_run = 1;
    assert!(!a.save(&t).unwrap());
    assert!(b.save(&t).unwrap());
    let outcomes: Vec<Option<String>> = b.jobs().unwrap().into_iter().map(|j| j.3).collect();
    assert_eq!(
        outcomes,
        [Some("lost".to_string()), None, None],
        "a's job on trial 0 was requeued, then lost when a came back; b holds trials 1 and 0"
    );
    // What `make status` reads of it (one read-only connection).
    assert_eq!(
        fer_tune::study::sql::progress(&url, "s").unwrap(),
        (vec![("running".to_string(), 2)], 0)
    );
}

#[test]
fn a_study_is_joined_only_with_its_own_params() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("study.sqlite"));
    let _a = open(&url, "s", Duration::from_secs(5));
    let err = SqlStudy::open(
        &url,
        "s",
        "t",
        &serde_json::json!({"other": 1}),
        None,
        Heartbeat {
            every: Duration::from_secs(5),
        },
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("was started with other params"),
        "{err}"
    );
}

#[test]
fn postgres_workers_share_a_study_and_no_job_is_claimed_twice() {
    let Ok(url) = std::env::var("FER_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped: no PostgreSQL server (set FER_TEST_POSTGRES_URL=postgres://user@host/db; \
             .ci/run starts one)"
        );
        return;
    };
    let id = format!("pg-{}", std::process::id());
    let (jobs, st) = run_workers(&url, &id, 16);
    check(&jobs, &st);
}

#[test]
fn a_password_is_never_shown() {
    assert_eq!(
        fer_tune::study::sql::redact("postgres://fer:s3cret@db:5432/study"),
        "postgres://fer:***@db:5432/study"
    );
    assert_eq!(
        fer_tune::study::sql::redact("postgres://fer@db/study"),
        "postgres://fer@db/study"
    );
    assert_eq!(
        fer_tune::study::sql::redact("postgres://fer@db/study?sslmode=disable&password=s3cret"),
        "postgres://fer@db/study?sslmode=disable&password=***"
    );
    // An `@` after the host (a socket folder) is not the userinfo's.
    assert_eq!(
        fer_tune::study::sql::redact("postgres://fer:pw@localhost/study?host=/tmp/a@b"),
        "postgres://fer:***@localhost/study?host=/tmp/a@b"
    );
}

/// A worker on "another machine": an artifacts folder of its own holding nothing, no data, and
/// only `--upstream` (what `--print-upstream` printed where preprocess ran) and a `file://`
/// shared run cache. It pulls preprocess by signature, runs the whole search with its
/// checkpoints and study in a `--shared` folder, and `--finish` where the pipeline ran writes
/// the outputs, equal to the same search run by the stage itself.
#[test]
fn a_worker_elsewhere_pulls_what_it_reads_by_signature_and_shares_only_a_folder() {
    use std::process::Command;
    const BIN: &str = env!("CARGO_BIN_EXE_fer-tune");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pipeline = root.join("smoke.toml");
    std::fs::write(
        &pipeline,
        smoke_with_tune(
            "[tune]\nstrategy = \"asha\"\nseed = 5\nbase = \"fer-small\"\nmax_trials = 3\n\
             max_epochs = 2\nmin_epochs = 1\nreduction = 2\ntime_limit = \"10m\"\n\
             [tune.space]\nfilters = { choice = [8, 16] }\n",
        ),
    )
    .unwrap();
    let here = root.join("here");
    fer_test_support::ingest_and_preprocess(&pipeline, &here);
    let run = |args: &[&str], env: &[(&str, &Path)]| {
        let mut c = Command::new(BIN);
        c.args(["--pipeline", &pipeline.display().to_string(), "--quiet"])
            .args(args)
            .env_remove("FER_TUNE_STUDY")
            .env_remove("FER_TUNE_UPSTREAM")
            .env_remove("FER_TUNE_SHARED")
            .env_remove("FER_CACHE_URL");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "fer-tune {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let here_s = here.display().to_string();
    let pre =
        fer_core::manifest::Manifest::read(&here.join("smoke/preprocess/manifest.json")).unwrap();
    let upstream = run(&["--artifacts", &here_s, "--print-upstream"], &[]);
    assert_eq!(upstream.trim(), format!("preprocess={}", pre.signature));

    // The stage run's own search, for the comparison.
    let alone = root.join("alone");
    let alone_s = alone.display().to_string();
    fer_test_support::ingest_and_preprocess(&pipeline, &alone);
    run(&["--artifacts", &alone_s, "--cache-dir", "off"], &[]);

    // Where preprocess ran, it was pushed to the shared cache.
    let store = root.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let url = format!("file://{}", store.display());
    fer_cache::Remote::open(&url)
        .unwrap()
        .push(&here.join("smoke/preprocess"))
        .unwrap();

    // A worker with none of it and a wrong pair first: the error names the pair.
    let far = root.join("far");
    let far_s = far.display().to_string();
    let shared = root.join("shared");
    let far_cache = root.join("far-cache");
    let far_cache_s = far_cache.display().to_string();
    let bad = Command::new(BIN)
        .args(["--pipeline", &pipeline.display().to_string(), "--worker"])
        .args(["--artifacts", &far_s, "--upstream", "ingest=abc"])
        .env("FER_CACHE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("`ingest=abc`") && err.contains("not `ingest`"),
        "{err}"
    );
    let worker = Command::new(BIN)
        .args([
            "--pipeline",
            &pipeline.display().to_string(),
            "--worker",
            "--quiet",
        ])
        .args(["--artifacts", &far_s, "--cache-dir", &far_cache_s])
        .args(["--upstream", upstream.trim()])
        .env("FER_CACHE_URL", &url)
        .env("FER_TUNE_SHARED", &shared)
        .env_remove("FER_TUNE_STUDY")
        .output()
        .unwrap();
    assert!(
        worker.status.success(),
        "{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    let got =
        fer_core::manifest::Manifest::read(&far.join("smoke/preprocess/manifest.json")).unwrap();
    assert_eq!(got.signature, pre.signature);
    assert!(
        !far.join("smoke/ingest").exists(),
        "the worker got only what tune reads"
    );
    assert!(
        !far.join("smoke/.tune.resume").exists(),
        "its checkpoints are in the shared folder"
    );

    // `make status` where the pipeline ran reads the study in the shared folder: the stage
    // would run (to write the outputs), and the search's progress is named.
    let status = Command::new(BIN)
        .args(["--pipeline", &pipeline.display().to_string(), "--status"])
        .args(["--artifacts", &here_s, "--cache-dir", "off"])
        .env("FER_TUNE_SHARED", &shared)
        .env_remove("FER_TUNE_STUDY")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&status.stdout).to_string()
        + &String::from_utf8_lossy(&status.stderr);
    assert!(
        line.contains("search in progress: 3 trial(s) (") && line.contains("rung result(s)"),
        "{line}"
    );
    // The outputs, where the pipeline ran, from the study the worker finished.
    run(
        &["--artifacts", &here_s, "--cache-dir", "off", "--finish"],
        &[("FER_TUNE_SHARED", &shared)],
    );
    assert!(
        !shared.join("smoke/.tune.resume").exists(),
        "a finished search leaves no resume folder"
    );
    // Every trial's status, epochs and rung results (the columns without timings), the
    // winner and its weights: the same.
    let trials = |a: &Path| {
        use arrow_array::Array;
        let (_, batches) =
            fer_core::parquet_io::read_batches(&a.join("smoke/tune/trials.parquet")).unwrap();
        let mut rows = Vec::new();
        for b in batches {
            for name in [
                "trial",
                "status",
                "epochs_run",
                "val_acc",
                "val_loss",
                "rungs",
            ] {
                let c = b.column_by_name(name).unwrap();
                rows.push((name, c.to_data()));
            }
        }
        rows
    };
    assert_eq!(trials(&here), trials(&alone));
    let best = |a: &Path| {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(a.join("smoke/tune/summary.json")).unwrap(),
        )
        .unwrap();
        let w = std::fs::read(a.join("smoke/tune/best/model.safetensors")).unwrap();
        (s["best_trial"].clone(), fer_core::hash::hash_bytes(&w))
    };
    assert_eq!(
        best(&here),
        best(&alone),
        "the same winner, the same weights"
    );
}
