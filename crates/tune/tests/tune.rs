//! tune: interrupt-and-resume on the smoke pipeline, failed trials, successive halving's
//! pruning, invalid search spaces.

use arrow_array::{Array, Float64Array, StringArray, UInt32Array};
use clap::Parser;
use fer_core::pipeline::PipelineFile;
use fer_tune::{SearchState, Status, TuneParams};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fer-tune");

fn repo_pipeline(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../pipelines/{name}.toml")),
    )
    .unwrap()
}

/// The smoke pipeline with its `[tune]` section (and everything after it) replaced.
fn smoke_with(tune: &str) -> String {
    let text = repo_pipeline("smoke");
    let cut = text.find("\n[tune]").expect("smoke.toml has [tune]");
    let head = &text[..cut];
    // Keep sections after [tune] (if any) other than tune's own.
    format!("{head}\n{tune}\n")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    /// Ingest + preprocess the smoke pipeline (synthetic faces) into a temp artifacts folder.
    fn new(tune: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::write(root.join("smoke.toml"), smoke_with(tune)).unwrap();
        let f = Fixture { _tmp: tmp, root };
        fer_test_support::ingest_and_preprocess(&f.pipeline(), &f.artifacts());
        f
    }
    fn pipeline(&self) -> PathBuf {
        self.root.join("smoke.toml")
    }
    fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }
    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.args(["--pipeline", &self.pipeline().display().to_string()])
            .args(["--artifacts", &self.artifacts().display().to_string()])
            .args(["--cache-dir", "off", "--quiet"]);
        c
    }
    fn state(&self) -> Option<SearchState> {
        state_in(&self.artifacts())
    }
}

/// The saved state of the smoke search whose resume folder is under `root` (the artifacts
/// folder, or a `--shared` one); `None` before the first save.
fn state_in(root: &Path) -> Option<SearchState> {
    let resume = root.join("smoke/.tune.resume");
    let dir = std::fs::read_dir(resume).ok()?.flatten().next()?.path();
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).ok()?).ok()
}

const SEARCH: &str = r#"[tune]
strategy = "asha"
seed = 7
base = "fer-small"
max_trials = 8
max_epochs = 4
min_epochs = 1
reduction = 2
time_limit = "10m"

[tune.space]
filters = { choice = [8, 16] }
lr = { low = 1e-3, high = 1e-2, log = true }
batch_size = { choice = [16, 32] }
"#;

/// [`SEARCH`] with more `[tune]` keys (`extra`: TOML lines).
fn search_with(extra: &str) -> String {
    SEARCH.replace("[tune.space]", &format!("{extra}\n[tune.space]"))
}

/// The smoke pipeline's `[tune]` replaced by `tune`, parsed and validated.
fn tune_params(tune: &str) -> fer_core::Result<TuneParams> {
    TuneParams::parse(&PipelineFile::parse(Path::new("t.toml"), &smoke_with(tune)).unwrap())
}

struct Row {
    trial: u32,
    status: String,
    epochs_run: u32,
    rungs: Vec<serde_json::Value>,
    seconds: f64,
}

fn trials(dir: &Path) -> Vec<Row> {
    let (_, batches) = fer_core::parquet_io::read_batches(&dir.join("trials.parquet")).unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let trial = col("trial");
        let trial = trial.as_any().downcast_ref::<UInt32Array>().unwrap();
        let status = col("status");
        let status = status.as_any().downcast_ref::<StringArray>().unwrap();
        let epochs = col("epochs_run");
        let epochs = epochs.as_any().downcast_ref::<UInt32Array>().unwrap();
        let rungs = col("rungs");
        let rungs = rungs.as_any().downcast_ref::<StringArray>().unwrap();
        let secs = col("seconds");
        let secs = secs.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.push(Row {
                trial: trial.value(i),
                status: status.value(i).to_string(),
                epochs_run: epochs.value(i),
                rungs: serde_json::from_str(rungs.value(i)).unwrap(),
                seconds: secs.value(i),
            });
        }
    }
    rows
}

/// Kill the search `child` (kill -9) once its saved state (`state`) has at least two trials
/// with a finished rung, and return that state; fails if the search ends first or no trial
/// finishes in five minutes.
fn kill_after_two_rungs(
    mut child: std::process::Child,
    state: impl Fn() -> Option<SearchState>,
) -> SearchState {
    let t0 = Instant::now();
    loop {
        if let Some(st) = state()
            && st.trials.iter().filter(|t| !t.rungs.is_empty()).count() >= 2
        {
            child.kill().unwrap();
            child.wait().unwrap();
            return state().unwrap();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the search finished before it could be interrupted"
        );
        assert!(t0.elapsed() < Duration::from_secs(300), "no trial finished");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killed_search_resumes_without_rerunning_finished_trials() {
    let f = Fixture::new(SEARCH);
    // Start the search and kill it once at least two trials have finished a rung.
    let before = kill_after_two_rungs(f.command().spawn().unwrap(), || f.state());
    assert!(
        !f.artifacts().join("smoke/tune/manifest.json").exists(),
        "a killed search wrote no manifest"
    );
    // `make status` reads the interrupted search: how many trials, by status, and rungs.
    let status = f.command().arg("--status").output().unwrap();
    let line = String::from_utf8_lossy(&status.stdout).to_string();
    let rungs: usize = before.trials.iter().map(|t| t.rungs.len()).sum();
    assert!(
        line.contains(&format!(
            "search in progress: {} trial(s) (",
            before.trials.len()
        )) && line.contains(&format!("), {rungs} rung result(s)")),
        "{line}"
    );
    let out = f.command().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = f.artifacts().join("smoke/tune");
    let rows = trials(&dir);
    assert_eq!(rows.len(), 8, "every trial of the budget was sampled");
    for t in before.trials.iter().filter(|t| !t.rungs.is_empty()) {
        let r = &rows[t.id];
        assert_eq!(r.trial as usize, t.id);
        // Its finished rungs were kept as they were...
        for (k, rung) in t.rungs.iter().enumerate() {
            assert_eq!(r.rungs[k]["val_acc"].as_f64().unwrap(), rung.val_acc);
            assert_eq!(r.rungs[k]["epochs"].as_u64().unwrap() as usize, rung.epochs);
        }
        // ...and not trained again: a trial that was not promoted since has exactly the
        // seconds it had (a re-run would have added its own timings).
        if r.rungs.len() == t.rungs.len() {
            assert_eq!(r.seconds, t.seconds, "trial {} was re-run", t.id);
        } else {
            assert!(r.seconds > t.seconds);
        }
    }
    // Successive halving pruned some trials and trained the winner to max_epochs.
    assert!(rows.iter().any(|r| r.status == "pruned"));
    assert!(
        rows.iter()
            .any(|r| r.status == "completed" && r.epochs_run == 4)
    );
    assert!(rows.iter().filter(|r| r.epochs_run == 4).count() < rows.len());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let best = summary["best_trial"].as_u64().unwrap() as usize;
    assert_eq!(rows[best].epochs_run, 4);
    // The winner is a train_cnn model folder: its config rebuilds the network and loads.
    use fer_models::LoadModel;
    let art = fer_train_cnn::ModelArtifact::load(&dir.join("best")).unwrap();
    art.load_model(&dir.join("best"), &fer_train_cnn::device("cpu").unwrap())
        .unwrap();
    assert!(dir.join("best/predictions.parquet").exists());
    // Its calibration, fitted on val (the val rows of its predictions), listed as an output.
    let cal = fer_schema::calibration::read(&dir.join("best/calibration.json")).unwrap();
    let val_rows = fer_schema::predictions::read(&dir.join("best/predictions.parquet"))
        .unwrap()
        .iter()
        .filter(|r| r.split == fer_core::Split::Val)
        .count();
    assert_eq!((cal.fitted_on.as_str(), cal.models.len()), ("val", 1));
    assert_eq!(cal.models[0].n as usize, val_rows);
    let m = fer_core::manifest::Manifest::read(&dir.join("manifest.json")).unwrap();
    assert!(m.outputs.iter().any(|o| o.path == "best/calibration.json"));
    // Running again does nothing: the stage is up to date.
    let again = f.command().output().unwrap();
    assert!(again.status.success());
    assert_eq!(
        trials(&dir).iter().map(|r| r.seconds).collect::<Vec<_>>(),
        rows.iter().map(|r| r.seconds).collect::<Vec<_>>()
    );
}

/// The hash of `best/predictions.parquet` in a finished search's manifest.
fn best_predictions_hash(f: &Fixture) -> String {
    let m = fer_core::Manifest::read(&f.artifacts().join("smoke/tune/manifest.json")).unwrap();
    m.outputs
        .iter()
        .find(|o| o.path == "best/predictions.parquet")
        .expect("best/predictions.parquet in the manifest")
        .hash
        .clone()
}

/// Crash safety with a trial budget (no clock in the way): a search killed while a trial's
/// epoch checkpoint is half written (its generation folder has no state.json), and one whose
/// search state was damaged, each complete when run again and end with the uninterrupted
/// search's winner and predictions, hash for hash. `--force` clears the resume folder.
#[test]
fn a_torn_trial_checkpoint_or_a_damaged_state_ends_equal_to_an_uninterrupted_search() {
    let budget = SEARCH
        .replace("time_limit = \"10m\"", "time_limit = \"1000h\"")
        .replace("max_trials = 8", "max_trials = 4");
    let straight = Fixture::new(&budget);
    let out = straight.command().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = best_predictions_hash(&straight);

    for damage in ["torn epoch", "damaged state"] {
        let f = Fixture::new(&budget);
        let mut child = f.command().spawn().unwrap();
        let t0 = Instant::now();
        while f.state().is_none_or(|st| st.trials.len() < 2) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the search ended too soon"
            );
            assert!(t0.elapsed() < Duration::from_secs(300), "no trial started");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let resume = f.artifacts().join("smoke/.tune.resume");
        let work = std::fs::read_dir(&resume)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        match damage {
            "torn epoch" => {
                // Trial 0's newest epoch as a kill in mid-write leaves it: no state.json.
                let trial = work.join("trial-000");
                let (_, newest) =
                    fer_train_cnn::checkpoint::generations(&trial).unwrap()[0].clone();
                std::fs::remove_file(newest.join(fer_train_cnn::checkpoint::STATE)).unwrap();
            }
            _ => std::fs::write(work.join("state.json"), b"{\"trials\": [").unwrap(),
        }
        let out = f.command().output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{damage}: {stderr}");
        let warned = match damage {
            "torn epoch" => "broken checkpoint",
            _ => "the search starts over",
        };
        assert!(stderr.contains(warned), "{damage}: {stderr}");
        assert_eq!(best_predictions_hash(&f), want, "{damage}");
        assert!(
            !resume.exists(),
            "a finished search removes its resume folder"
        );
    }

    // --force: an old resume folder is cleared before the search runs again.
    let stale = straight
        .artifacts()
        .join("smoke/.tune.resume/0123456789abcdef");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("state.json"), b"junk").unwrap();
    let mut c = straight.command();
    let out = c.arg("--force").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stale.exists());
    assert_eq!(best_predictions_hash(&straight), want);
}

#[test]
fn random_search_trains_every_trial_for_max_epochs() {
    let random = SEARCH.replace("strategy = \"asha\"", "strategy = \"random\"");
    let f = Fixture::new(&random.replace("max_trials = 8", "max_trials = 3"));
    let out = f.command().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = trials(&f.artifacts().join("smoke/tune"));
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r.status == "completed" && r.epochs_run == 4 && r.rungs.len() == 1)
    );
}

#[test]
fn a_failing_trial_is_recorded_and_the_search_goes_on() {
    // A learning rate of 1e30 makes every trial diverge: each is recorded as failed with
    // its error, the search tries the next, and the stage says all of them failed.
    let f = Fixture::new(SEARCH);
    let text = std::fs::read_to_string(f.pipeline())
        .unwrap()
        .replace("lr = { low = 1e-3, high = 1e-2, log = true }\n", "")
        .replace("[train_cnn]\n", "[train_cnn]\nmin_lr = 0.0\n")
        .replace("lr = 3e-3", "lr = 1e30");
    std::fs::write(f.pipeline(), &text).unwrap();
    let pf = PipelineFile::load(&f.pipeline()).unwrap();
    let p = TuneParams::parse(&pf).unwrap();
    assert_eq!(p.base.lr, 1e30);
    let dir_in = f.artifacts().join("smoke/preprocess");
    let (train, _) = fer_core::tensors::TensorSet::read(&dir_in.join("train.safetensors")).unwrap();
    let (val, _) = fer_core::tensors::TensorSet::read(&dir_in.join("val.safetensors")).unwrap();
    let transform = fer_core::transform::Transform::load(&dir_in.join("transform.json")).unwrap();
    let work = f.root.join("work");
    let data = fer_tune::SearchData {
        train: &train,
        val: &val,
        transform: &transform,
        incumbent: None,
    };
    let st = fer_tune::search(
        &p,
        &data,
        &fer_train_cnn::device("cpu").unwrap(),
        &work,
        &|_, _, _| {},
    )
    .unwrap();
    assert_eq!(st.trials.len(), 8, "the search went on after each failure");
    for t in &st.trials {
        assert_eq!(t.status, Status::Failed);
        assert!(
            t.error.as_deref().unwrap_or("").contains("diverged"),
            "{:?}",
            t.error
        );
    }
    let out = f.command().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("every one of the 8 trials failed"), "{err}");
}

#[test]
fn invalid_search_spaces_exit_2_naming_the_key() {
    let f = Fixture::new(SEARCH);
    for (from, to, key) in [
        (
            "filters = { choice = [8, 16] }",
            "filters = { choice = [] }",
            "[tune] space.filters.choice",
        ),
        (
            "lr = { low = 1e-3, high = 1e-2, log = true }",
            "lr = { low = 1e-2, high = 1e-3, log = true }",
            "[tune] space.lr",
        ),
        (
            "batch_size = { choice = [16, 32] }",
            "batch = { choice = [16, 32] }",
            "[tune] space.batch",
        ),
        ("min_epochs = 1", "min_epochs = 9", "[tune] min_epochs"),
        (
            "strategy = \"asha\"",
            "strategy = \"grid\"",
            "[tune] strategy",
        ),
        (
            "time_limit = \"10m\"",
            "time_limit = \"soon\"",
            "[tune] time_limit",
        ),
        ("base = \"fer-small\"", "base = \"resnet\"", "[tune] base"),
        // The search varies our architecture: its base must be one.
        (
            "base = \"fer-small\"",
            "base = \"seed-base\"",
            "is a `seed-base`: the search varies our architecture",
        ),
        ("seed = 7\nbase", "seeds = 7\nbase", "unknown field `seeds`"),
    ] {
        let text = smoke_with(&SEARCH.replace(from, to));
        assert_ne!(text, smoke_with(SEARCH), "{from}");
        std::fs::write(f.pipeline(), text).unwrap();
        let out = f.command().output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{to}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{to}: {err}");
        assert!(err.contains("smoke.toml"), "{err}");
    }
}

/// A pruned trial that reached one rung per entry of `accs` (its val accuracy there; val loss
/// 1 - accuracy), at 10 seconds an epoch.
fn pruned_trial(p: &TuneParams, id: usize, accs: &[f64]) -> fer_tune::Trial {
    let epochs = p.rungs()[accs.len() - 1];
    fer_tune::Trial {
        id,
        config: p.trial_config(id),
        status: Status::Pruned,
        rungs: accs
            .iter()
            .enumerate()
            .map(|(k, &a)| fer_tune::Rung {
                epochs: p.rungs()[k],
                val_acc: a,
                val_loss: 1.0 - a,
                val_macro_f1: None,
            })
            .collect(),
        epochs_run: epochs,
        seconds: 10.0 * epochs as f64,
        error: None,
        finished: false,
        reused_from: None,
    }
}

/// seed-transfer's search: train-cnn's pretrained fer-small (trial 0, reused) stopped early by
/// patience at 16 of 20 epochs with val 0.893; a challenger ran all three rungs to 0.858. The
/// finished incumbent competes with its last rung and wins; an unfinished (pruned) trial
/// with a higher score at a lower rung still does not.
#[test]
fn a_trial_that_stopped_early_competes_with_its_last_rung() {
    let p = tune_params(&search_with("include_base = true\nreuse_base = true")).unwrap();
    let mut early = pruned_trial(&p, 0, &[0.90, 0.893]);
    (early.status, early.finished) = (Status::Completed, true);
    early.reused_from = Some("train_cnn/fer-small".into());
    let mut full = pruned_trial(&p, 1, &[0.80, 0.85, 0.858]);
    (full.status, full.finished) = (Status::Completed, true);
    let hopeful = pruned_trial(&p, 2, &[0.95]);
    let st = SearchState {
        trials: vec![early, full, hopeful],
        ..SearchState::default()
    };
    assert_eq!(fer_tune::best_trial(&st).map(|t| t.id), Some(0));
    // Had the incumbent scored below the challenger, the challenger would win.
    let mut st = st;
    st.trials[0].rungs[1].val_acc = 0.80;
    st.trials[0].rungs[1].val_loss = 0.2;
    assert_eq!(fer_tune::best_trial(&st).map(|t| t.id), Some(1));
}

/// Seven classes: trials are promoted and chosen by validation macro F1, not accuracy. Trial 0
/// has the higher accuracy (it predicts the common classes), trial 1 the higher macro F1.
#[test]
fn seven_class_trials_are_ranked_by_macro_f1() {
    let p = tune_params(SEARCH).unwrap();
    let seven = |id: usize, accs: &[f64], f1s: &[f64]| {
        let mut t = pruned_trial(&p, id, accs);
        for (r, &f) in t.rungs.iter_mut().zip(f1s) {
            r.val_macro_f1 = Some(f);
        }
        t
    };
    let mut st = SearchState {
        trials: vec![seven(0, &[0.62], &[0.41]), seven(1, &[0.58], &[0.52])],
        ..SearchState::default()
    };
    assert_eq!(
        fer_tune::next_job(&p, &st),
        Some((1, 1)),
        "trial 1 promoted"
    );
    assert_eq!(fer_tune::best_trial(&st).unwrap().id, 1);
    // The same trials without macro F1 (binary) are ranked by accuracy.
    for t in &mut st.trials {
        t.rungs[0].val_macro_f1 = None;
    }
    assert_eq!(fer_tune::next_job(&p, &st), Some((0, 1)));
    assert_eq!(fer_tune::best_trial(&st).unwrap().id, 0);
}

#[test]
fn asha_promotes_the_top_fraction_of_each_rung() {
    let p = tune_params(SEARCH).unwrap();
    assert_eq!(p.rungs(), vec![1, 2, 4]);
    let trial = |id: usize, accs: &[f64]| pruned_trial(&p, id, accs);
    // One trial at rung 0: 1/2 of 1 is none, so start a new trial.
    let mut st = SearchState {
        trials: vec![trial(0, &[0.6])],
        ..SearchState::default()
    };
    assert_eq!(fer_tune::next_job(&p, &st), Some((1, 0)));
    // Two: the better one (trial 1) goes to rung 1.
    st.trials.push(trial(1, &[0.7]));
    assert_eq!(fer_tune::next_job(&p, &st), Some((1, 1)));
    st.trials[1] = trial(1, &[0.7, 0.72]);
    // Rung 1 has one trial (none promotable); rung 0's top half is already promoted: new trial.
    assert_eq!(fer_tune::next_job(&p, &st), Some((2, 0)));
    st.trials.push(trial(2, &[0.65]));
    st.trials.push(trial(3, &[0.9]));
    // Rung 0 has 4: top 2 are trials 3 and 1; 1 is promoted already, so 3 goes up.
    assert_eq!(fer_tune::next_job(&p, &st), Some((3, 1)));
    st.trials[3] = trial(3, &[0.9, 0.8]);
    // Rung 1 has 2: trial 3 (0.8) is the top half and goes to the last rung.
    assert_eq!(fer_tune::next_job(&p, &st), Some((3, 2)));
    st.trials[3] = trial(3, &[0.9, 0.8, 0.85]);
    assert_eq!(fer_tune::best_trial(&st).unwrap().id, 3);
    // A failed trial is never promoted or chosen.
    st.trials[3].status = Status::Failed;
    assert_eq!(fer_tune::best_trial(&st).unwrap().id, 1);
}

#[test]
fn the_leader_trains_to_max_epochs_before_the_clock_runs_out() {
    // Rungs 1, 2, 4 epochs; a 600 s limit; every epoch has taken 10 s.
    let p = tune_params(SEARCH).unwrap();
    let trial = |id: usize, accs: &[f64]| pruned_trial(&p, id, accs);
    let st = SearchState {
        trials: vec![trial(0, &[0.6]), trial(1, &[0.7, 0.72]), trial(2, &[0.65])],
        ..SearchState::default()
    };
    let next = fer_tune::next_job(&p, &st);
    assert_eq!(next, Some((3, 0)));
    // The leader (trial 1, at the highest rung) lacks 2 epochs: 22 s with the margin. A new
    // trial's first rung costs 10 s. Plenty of time: search on.
    assert_eq!(fer_tune::finish_leader(&p, &st, 100.0, next), None);
    // 570 s spent: 570 + 10 + 22 > 600, so the leader goes to the last rung now.
    assert_eq!(fer_tune::finish_leader(&p, &st, 570.0, next), Some((1, 2)));
    // Nothing else to run: finish the leader whatever the time.
    assert_eq!(fer_tune::finish_leader(&p, &st, 100.0, None), Some((1, 2)));
    // Too late even for the leader (more than 10% past the limit): keep its checkpoint.
    assert_eq!(fer_tune::finish_leader(&p, &st, 650.0, next), None);
    // A leader that has finished needs nothing.
    let mut done = st.clone();
    done.trials[1] = trial(1, &[0.7, 0.72, 0.8]);
    done.trials[1].finished = true;
    assert_eq!(fer_tune::finish_leader(&p, &done, 570.0, next), None);
}

#[test]
fn a_trial_another_worker_trains_is_never_handed_out_and_one_whose_worker_stopped_is() {
    use fer_tune::{Decision, decide};
    // Rungs 1, 2, 4 epochs; reduction 2; 8 trials at most; 600 s.
    let p = tune_params(SEARCH).unwrap();
    let trial = |id: usize, accs: &[f64]| pruned_trial(&p, id, accs);
    let run = |id, rung| Decision::Run {
        id,
        rung,
        last: false,
    };
    let mut st = SearchState {
        trials: vec![trial(0, &[0.6]), trial(1, &[0.7])],
        ..SearchState::default()
    };
    // One process: trial 1, the top half of rung 1, is promoted.
    assert_eq!(decide(&p, &st, 0.0), run(1, 1));
    // Another worker claimed that promotion and trains it: the next job is a new trial.
    st.trials[1].status = Status::Running;
    st.busy.insert(1);
    assert_eq!(decide(&p, &st, 0.0), run(2, 0));
    // That worker stopped beating (the trial is no longer busy): it is handed out again first,
    // to finish the rung it was on.
    st.busy.clear();
    assert_eq!(decide(&p, &st, 0.0), run(1, 1));

    // Eight trials (the budget) at the first rung; the top four are training elsewhere.
    let mut full = SearchState {
        trials: (0..8).map(|i| trial(i, &[0.5 + 0.01 * i as f64])).collect(),
        ..SearchState::default()
    };
    for id in 4..8 {
        full.trials[id].status = Status::Running;
        full.busy.insert(id);
    }
    // Nothing to start, but their rungs may earn promotions: wait, until the clock runs out.
    assert_eq!(decide(&p, &full, 0.0), Decision::Wait);
    assert_eq!(decide(&p, &full, 600.0), Decision::Done(None));
    // Every trial finished and none training: done.
    for t in &mut full.trials {
        t.status = Status::Completed;
        t.finished = true;
    }
    full.busy.clear();
    assert_eq!(decide(&p, &full, 0.0), Decision::Done(None));
}

#[test]
fn include_base_makes_trial_0_the_base_configuration() {
    let with = |extra: &str| tune_params(&search_with(extra)).unwrap();
    let (plain, based) = (with(""), with("include_base = true"));
    let b = &based.base;
    let c0 = based.trial_config(0);
    assert_eq!(
        (&c0.widths, c0.lr, c0.batch_size, c0.dropout),
        (&b.widths, b.lr, b.batch_size, b.dropout)
    );
    // The base's widths are not a point of this space (filters 8 or 16 per block) ...
    assert_ne!(plain.trial_config(0).widths, b.widths);
    // ... and the other trials are the same samples either way.
    assert_eq!(plain.trial_config(1), based.trial_config(1));
}

/// The best model's predictions (`best/predictions.parquet`: p_happy per row) and metrics.
fn best_of(dir: &Path) -> (Vec<f64>, serde_json::Value) {
    let (_, batches) =
        fer_core::parquet_io::read_batches(&dir.join("best/predictions.parquet")).unwrap();
    let mut probs = Vec::new();
    for b in batches {
        let c = b.column_by_name("p_happy").unwrap();
        let c = c.as_any().downcast_ref::<Float64Array>().unwrap();
        probs.extend((0..c.len()).map(|i| c.value(i)));
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("best/metrics.json")).unwrap())
            .unwrap();
    (probs, m)
}

#[test]
fn reuse_base_takes_trial_0_from_train_cnn_and_it_equals_training_it_again() {
    // max_trials = 1: the search has only trial 0, the base configuration. Once trained by
    // the search, once taken from train-cnn's run of fer-small (reuse_base).
    let tune = |extra: &str| {
        search_with(&format!("include_base = true\n{extra}"))
            .replace("max_trials = 8", "max_trials = 1")
    };
    let (trained, reused) = (
        Fixture::new(&tune("")),
        Fixture::new(&tune("reuse_base = true")),
    );
    // train-cnn on the reusing fixture: its fer-small is trial 0.
    let pf = PipelineFile::load(&reused.pipeline()).unwrap();
    let cli = fer_train_cnn::Cli::parse_from([
        "fer-train-cnn",
        "--pipeline",
        &reused.pipeline().display().to_string(),
        "--artifacts",
        &reused.artifacts().display().to_string(),
        "--cache-dir",
        "off",
        "--quiet",
    ]);
    fer_train_cnn::run(&fer_train_cnn::Params::from_pipeline(&pf, &cli).unwrap()).unwrap();
    for f in [&trained, &reused] {
        let out = f.command().output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (dt, dr) = (
        trained.artifacts().join("smoke/tune"),
        reused.artifacts().join("smoke/tune"),
    );
    let (rt, rr) = (&trials(&dt)[0], &trials(&dr)[0]);
    assert_eq!((rt.trial, rr.trial), (0, 0));
    assert_eq!((rt.epochs_run, rr.epochs_run), (4, 4));
    // The reused trial has every rung (1, 2, 4 epochs); the trained one skipped rung 2 (as
    // the leader it went straight on to max_epochs). Where both have a rung they agree.
    let rungs = |r: &Row| -> Vec<(u64, f64, f64)> {
        r.rungs
            .iter()
            .map(|v| {
                (
                    v["epochs"].as_u64().unwrap(),
                    v["val_acc"].as_f64().unwrap(),
                    v["val_loss"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (kt, kr) = (rungs(rt), rungs(rr));
    assert_eq!(kr.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 4]);
    assert_eq!(kt.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 4]);
    assert_eq!((kt[0], kt[1]), (kr[0], kr[2]));
    // Same model: identical predictions and test metrics, and nothing trained by the search.
    let ((pt, mt), (pr, mr)) = (best_of(&dt), best_of(&dr));
    assert_eq!(pt.len(), pr.len());
    assert_eq!(
        pt, pr,
        "the search's trial 0 reproduces train-cnn's fer-small exactly"
    );
    assert_eq!(mt["metrics"], mr["metrics"]);
    assert_eq!(mr["reused_from"], "train_cnn/fer-small");
    assert_eq!(mt["reused_from"], serde_json::Value::Null);
    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap()
    };
    assert_eq!(summary(&dr)["epochs_trained"], 4);
    assert_eq!(summary(&dr)["searched_trials"], 0);
    assert_eq!(summary(&dt)["searched_trials"], 1);
    assert!(
        summary(&dr)["seconds"].as_f64().unwrap() < 1.0,
        "no epoch was trained again"
    );
    // A stale train-cnn run (the pipeline's learning rate changed since) is refused rather
    // than taken as trial 0: core's upstream check names the section and the stage to rerun
    // (tune's own check, which names the setting, stays behind it for manifests written
    // before sections were recorded).
    let text = std::fs::read_to_string(reused.pipeline()).unwrap();
    assert!(text.contains("\nlr = 3e-3\n"));
    std::fs::write(
        reused.pipeline(),
        text.replace("\nlr = 3e-3\n", "\nlr = 4e-3\n"),
    )
    .unwrap();
    let out = reused.command().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("train_cnn/manifest.json")
            && err.contains("[train_cnn]")
            && err.contains("changed since it ran")
            && err.contains("make train-cnn PIPELINE=smoke"),
        "{err}"
    );
}

#[test]
fn reuse_base_needs_include_base_and_max_epochs_equal_to_the_base_epochs() {
    let parse = |extra: &str| {
        tune_params(&search_with(extra))
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(parse("include_base = true\nreuse_base = true"), None);
    let e = parse("reuse_base = true").unwrap();
    assert!(
        e.contains("reuse_base") && e.contains("include_base"),
        "{e}"
    );
    // train_cnn's fer-small trains 4 epochs (smoke): a 6-epoch trial 0 is another run.
    let e = tune_params(
        &search_with("include_base = true\nreuse_base = true")
            .replace("max_epochs = 4", "max_epochs = 6"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("reuse_base")
            && e.contains("max_epochs = 6")
            && e.contains("[train_cnn]")
            && e.contains("epochs = 4"),
        "{e}"
    );
}

#[test]
fn a_reused_pretrained_base_is_trial_0_with_its_pretraining_and_the_others_train_from_scratch() {
    // seed-transfer's case: the base fer-small is pretrained by train-cnn, and the search
    // reuses that run as trial 0.
    // (Pretraining needs the pool, [ingest] pretrain_pool, checked with the pipeline file.)
    let text = smoke_with(&search_with("include_base = true\nreuse_base = true"))
        .replace(
            "arch = \"fer-small\"\n",
            "arch = \"fer-small\"\npretrain_epochs = 3\npretrain_lr = 2e-3\n",
        )
        .replacen("[ingest]\n", "[ingest]\npretrain_pool = true\n", 1);
    let p = TuneParams::parse(&PipelineFile::parse(Path::new("t.toml"), &text).unwrap()).unwrap();
    assert_eq!(p.base.pretrain_epochs, 3, "the fixture pretrains its base");
    let trial0 = p.settings(0, &p.base_config());
    assert_eq!((trial0.pretrain_epochs, trial0.pretrain_lr), (3, 2e-3));
    // train-cnn's record of its base is trial 0's settings but for the name: reusable.
    let base = fer_schema::model::TrainSettings {
        name: trial0.name.clone(),
        ..p.base.clone()
    };
    assert_eq!(
        base,
        trial0,
        "{}",
        fer_tune::search::settings_diff(&trial0, &base)
    );
    assert!(p.pretrained(0));
    for id in 1..4 {
        let s = p.settings(id, &p.trial_config(id));
        assert_eq!((s.pretrain_epochs, s.init.as_str()), (0, ""), "trial {id}");
        assert!(!p.pretrained(id));
    }
    // Without reuse_base, the search trains trial 0 itself, from scratch.
    let text = text.replace("reuse_base = true", "reuse_base = false");
    let p = TuneParams::parse(&PipelineFile::parse(Path::new("t.toml"), &text).unwrap()).unwrap();
    assert_eq!(p.settings(0, &p.base_config()).pretrain_epochs, 0);
    // The diff names a field one side leaves out of its JSON (zero pretraining is omitted).
    let scratch = p.settings(0, &p.base_config());
    let d = fer_tune::search::settings_diff(&scratch, &base);
    assert!(
        d.contains("pretrain_epochs") && d.contains("pretrain_lr"),
        "{d}"
    );
}

#[test]
fn with_a_reused_incumbent_the_best_challenger_is_trained_to_max_epochs() {
    // Trial 0 is the incumbent taken from train-cnn (every rung, finished); it leads, but it
    // needs no training: the best trial of the search itself (trial 2, at rung 2) is the one
    // trained on to max_epochs, to meet the incumbent at full length.
    let p = tune_params(&search_with("include_base = true\nreuse_base = true")).unwrap();
    let epochs: Vec<fer_train_cnn::train::EpochRow> = (1..=4)
        .map(|e| fer_train_cnn::train::EpochRow {
            epoch: e,
            train_loss: 0.5,
            train_acc: 0.8,
            val_loss: [0.4, 0.3, 0.35, 0.2][e - 1],
            val_acc: [0.8, 0.85, 0.9, 0.88][e - 1],
            lr: 1e-3,
            seconds: 10.0,
            val_macro_f1: None,
        })
        .collect();
    let inc = fer_tune::incumbent_trial(&p, &epochs, 40.0, "train_cnn/fer-small");
    // Rungs at 1, 2, 4 epochs: the best checkpoint (lowest val loss) so far at each.
    let r: Vec<(usize, f64)> = inc.rungs.iter().map(|r| (r.epochs, r.val_acc)).collect();
    assert_eq!(r, [(1, 0.8), (2, 0.85), (4, 0.88)]);
    assert!(inc.finished && inc.status == Status::Completed && inc.epochs_run == 4);
    let st = SearchState {
        trials: vec![
            inc.clone(),
            pruned_trial(&p, 1, &[0.6]),
            pruned_trial(&p, 2, &[0.7, 0.72]),
            pruned_trial(&p, 3, &[0.65]),
        ],
        ..SearchState::default()
    };
    assert_eq!(fer_tune::best_trial(&st).map(|t| t.id), Some(0));
    assert_eq!(fer_tune::finish_leader(&p, &st, 100.0, None), Some((2, 2)));
    // An incumbent that stopped early (patience after 3 epochs) ends in the rung it stopped in.
    let short = fer_tune::incumbent_trial(&p, &epochs[..3], 30.0, "x");
    let r: Vec<(usize, f64)> = short.rungs.iter().map(|r| (r.epochs, r.val_acc)).collect();
    assert_eq!(r, [(1, 0.8), (2, 0.85), (3, 0.85)]);
}

#[test]
fn no_trial_starts_that_cannot_reach_its_first_rung_before_the_clock_ends() {
    // Rungs 1, 2, 4 epochs; a 600 s limit; every epoch so far has taken 10 s.
    let p = tune_params(SEARCH).unwrap();
    let trial = |id: usize, accs: &[f64]| pruned_trial(&p, id, accs);
    let st = SearchState {
        trials: vec![trial(0, &[0.6]), trial(1, &[0.7, 0.72]), trial(2, &[0.65])],
        ..SearchState::default()
    };
    // A first rung is 1 epoch, 10 s: it fits up to 590 s spent, not after.
    assert!(fer_tune::can_reach_first_rung(&p, &st, 590.0));
    assert!(!fer_tune::can_reach_first_rung(&p, &st, 590.5));
    // Nothing trained yet: no estimate, so the first trial always starts.
    let empty = SearchState::default();
    assert!(fer_tune::can_reach_first_rung(&p, &empty, 599.0));
    // A reused incumbent's seconds (not charged to this clock) do not count: 100 s an epoch
    // there leaves the estimate at 10 s.
    let mut reused = st.clone();
    reused.trials[0].reused_from = Some("train_cnn/fer-small".into());
    reused.trials[0].seconds = 100.0;
    assert!(fer_tune::can_reach_first_rung(&p, &reused, 590.0));
}

/// Every pipeline file's search validates as written and in miniature: a base that names a
/// trained fer-small model, and with `reuse_base` the search's `max_epochs` equal to the base
/// model's epochs (miniature caps both alike), so no pipeline fails at tune after training.
#[test]
fn every_pipeline_file_searches_a_trained_base_as_written_and_in_miniature() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let pf = PipelineFile::load(&path).unwrap();
        for pf in [pf.clone(), pf.miniature()] {
            let p = TuneParams::parse(&pf)
                .unwrap_or_else(|e| panic!("{} ({}): {e}", path.display(), pf.name));
            if p.reuse_base {
                assert_eq!(p.base.epochs, p.max_epochs, "{}", pf.name);
            }
        }
        n += 1;
    }
    assert!(n >= 12, "{n} pipeline files");
}

/// `--shared`: the search keeps its resume folder (state, checkpoints) under that folder, not
/// under the artifacts folder, so workers with artifacts folders of their own can share it; a
/// killed run resumes from it, and the finished search removes it. `--print-upstream` names
/// what a worker elsewhere pulls.
#[test]
fn a_shared_folder_holds_the_search_and_print_upstream_names_what_it_reads() {
    let f = Fixture::new(SEARCH);
    let shared = f.root.join("shared");
    let up = f.command().arg("--print-upstream").output().unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let pre =
        fer_core::manifest::Manifest::read(&f.artifacts().join("smoke/preprocess/manifest.json"))
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&up.stdout).trim(),
        format!("preprocess={}", pre.signature)
    );
    let child = f
        .command()
        .args(["--shared", &shared.display().to_string()])
        .spawn()
        .unwrap();
    let before = kill_after_two_rungs(child, || state_in(&shared));
    assert!(
        !f.artifacts().join("smoke/.tune.resume").exists(),
        "nothing of the search under the artifacts folder"
    );
    // Resumed from the shared folder: the finished rungs are kept, not trained again (a trial
    // not promoted since has exactly the seconds it had; a re-run adds its own).
    let out = f
        .command()
        .env("FER_TUNE_SHARED", &shared)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = trials(&f.artifacts().join("smoke/tune"));
    for t in before.trials.iter().filter(|t| !t.rungs.is_empty()) {
        let r = &rows[t.id];
        assert_eq!(r.rungs[0]["val_acc"].as_f64().unwrap(), t.rungs[0].val_acc);
        if r.rungs.len() == t.rungs.len() {
            assert_eq!(r.seconds, t.seconds, "trial {} was re-run", t.id);
        }
    }

    assert!(
        !shared.join("smoke/.tune.resume").exists(),
        "the finished search removed its resume folder"
    );
}
