//! The search over workers: where the study lives, the stage run's local workers, and
//! `fer-tune --worker`.
//!
//! - **The stage run** (`fer-tune`, `make tune`) holds the pipeline's lock, as every stage
//!   does. With `--workers N` (`make tune WORKERS=N`) it starts N-1 `fer-tune --worker`
//!   children and works as the N-th, waits for them and for any trial still training
//!   elsewhere, then writes the stage's outputs and manifest, once.
//! - **A worker** (`fer-tune --worker`, on this machine or another) takes no lock and writes
//!   no outputs: it joins the study, claims jobs until the search has none left, and exits 0.
//!   It reads the preprocess outputs and checks them current, as the stage does, and keeps its
//!   checkpoints in the run's resume folder (`artifacts/<pipeline>/.tune.resume/<signature>/`),
//!   which every worker of the study must share (one machine, or a shared file system).
//! - **`fer-tune --finish`** is the stage run with no training: it writes the outputs of a
//!   study that workers elsewhere finished, and fails, naming what is left, when one is not.
//!
//! Where the study lives: `--study`, `FER_TUNE_STUDY`, `[tune] study` (a `postgres://` or
//! `sqlite://` URL), else SQLite in the resume folder (`study.sqlite`). Without the `study`
//! cargo feature, one process keeps the search in `state.json` ([`crate::study::FileStudy`]).

use crate::TuneError;
use crate::params::{Params, TuneParams};
use crate::schedule::{Decision, SearchState, Status};
use crate::search::SearchData;
use crate::study::Study;
use std::path::Path;

/// How the stage's search runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The study's URL (`None`: the default, SQLite beside the resume state).
    pub study: Option<String>,
    /// Local workers, this process included.
    pub workers: usize,
    /// `--finish`: write the outputs of a finished study, train nothing.
    pub finish_only: bool,
    /// The study's id (the run's signature) and what it was started with.
    pub id: String,
    pub pipeline: String,
    pub params: serde_json::Value,
    /// The arguments of a child worker (`--worker` and the pipeline, artifacts, device).
    pub child: Vec<String>,
    pub quiet: bool,
}

impl Plan {
    pub fn new(p: &Params, run: &fer_core::stage::StageRun) -> Result<Plan, TuneError> {
        let mut child = vec![
            "--worker".to_string(),
            "--pipeline".into(),
            p.common.pipeline.clone(),
            "--artifacts".into(),
            p.common.artifacts.display().to_string(),
            "--device".into(),
            p.device.clone(),
        ];
        if let Some(d) = &p.shared {
            child.push("--shared".into());
            child.push(d.display().to_string());
        }
        if p.common.mini {
            child.push("--mini".into());
        }
        if p.common.quiet {
            child.push("--quiet".into());
        }
        let plan = Plan {
            study: p.study.clone(),
            workers: p.workers,
            finish_only: p.finish,
            id: run.signature(),
            pipeline: p.pipeline.name.clone(),
            params: run.params.clone(),
            child,
            quiet: p.common.quiet,
        };
        if !cfg!(feature = "study") && (plan.study.is_some() || plan.workers > 1) {
            return Err(no_study_feature());
        }
        Ok(plan)
    }
}

/// The search's resume folder (its state or study id, the trials' checkpoints): the run's own
/// (`artifacts/<pipeline>/.tune.resume/<signature prefix>/`), or with `--shared` the same
/// path under that folder, `<shared>/<pipeline>/.tune.resume/<signature prefix>/`, which
/// workers on machines with artifacts folders of their own all read.
pub fn work_dir(p: &Params, run: &fer_core::stage::StageRun) -> std::path::PathBuf {
    let own = run.resume_dir();
    match &p.shared {
        None => own,
        Some(root) => {
            let rel = own.strip_prefix(&run.artifacts).unwrap_or(&own);
            root.join(rel)
        }
    }
}

/// `make status`'s line for a search that has started but not finished (its resume folder
/// `work` holds a study): `search in progress: 7 trials (3 completed, 2 pruned, 2 running),
/// 12 rung results`. `None` when no search of this run has started or the study cannot be
/// read (status is read-only and never fails for it).
pub fn progress(plan: &Plan, work: &Path) -> Option<String> {
    let (counts, rungs) = progress_counts(plan, work)?;
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let each: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    Some(format!(
        "search in progress: {total} trial(s) ({}), {rungs} rung result(s)",
        each.join(", ")
    ))
}

#[cfg(not(feature = "study"))]
fn progress_counts(_plan: &Plan, work: &Path) -> Option<(Vec<(String, usize)>, usize)> {
    let text = std::fs::read_to_string(work.join("state.json")).ok()?;
    let st: SearchState = serde_json::from_str(&text).ok()?;
    let mut counts = std::collections::BTreeMap::new();
    for t in &st.trials {
        *counts.entry(t.status.as_str().to_string()).or_insert(0) += 1;
    }
    let rungs = st.trials.iter().map(|t| t.rungs.len()).sum();
    Some((counts.into_iter().collect(), rungs))
}

#[cfg(feature = "study")]
fn progress_counts(plan: &Plan, work: &Path) -> Option<(Vec<(String, usize)>, usize)> {
    // Only a study this run started: the id file, never made here.
    let id = std::fs::read_to_string(work.join("study-id")).ok()?;
    let url = match &plan.study {
        Some(u) => u.clone(),
        None if work.join("study.sqlite").exists() => {
            crate::study::sql::sqlite_url(&work.join("study.sqlite"))
        }
        None => return None,
    };
    crate::study::sql::progress(&url, id.trim()).ok()
}

fn no_study_feature() -> TuneError {
    fer_core::Error::Other(
        "a shared study (--workers above 1, --worker, --study, FER_TUNE_STUDY or [tune] study) \
         needs fer-tune built with its `study` feature: `cargo build --release -p fer-tune \
         --features study` (make tune WORKERS=N builds it)"
            .into(),
    )
    .into()
}

/// The search as the stage runs it ([`Plan`]): returns the final state, every trial settled.
pub fn run_search(
    plan: &Plan,
    p: &TuneParams,
    data: &SearchData,
    device: &fer_train::Device,
    work: &Path,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<SearchState, TuneError> {
    #[cfg(not(feature = "study"))]
    {
        if plan.finish_only {
            let mut study = crate::study::FileStudy::open(work, data.incumbent.as_ref())?;
            return finished(p, &mut study);
        }
        crate::search::search(p, data, device, work, progress)
    }
    #[cfg(feature = "study")]
    {
        use crate::search::run_worker;
        let url = study_url(plan, work)?;
        let mut study = open(plan, &url, data, work)?;
        progress(
            &format!(
                "study {} (worker {})",
                crate::study::sql::redact(&url),
                study.worker()
            ),
            0,
            p.max_trials as u64,
        );
        if plan.finish_only {
            return finished(p, &mut study);
        }
        let mut children = spawn_workers(plan, &url)?;
        let r = (|| -> Result<(), TuneError> {
            run_worker(p, data, device, work, &mut study, progress)?;
            // Trials other workers still train (here or elsewhere), and jobs whose worker
            // stopped beating, are this process's to wait for or take over.
            loop {
                match study.peek(p)? {
                    (Decision::Done(_), st) if st.busy.is_empty() => return Ok(()),
                    (Decision::Run { .. }, _) => {
                        run_worker(p, data, device, work, &mut study, progress)?
                    }
                    (_, st) => {
                        progress(
                            &format!("waiting for {} trial(s) training elsewhere", st.busy.len()),
                            st.trials.len() as u64,
                            p.max_trials as u64,
                        );
                        std::thread::sleep(std::time::Duration::from_secs(2));
                    }
                }
            }
        })();
        let failed = wait_children(&mut children);
        r?;
        if failed > 0 {
            eprintln!(
                "[tune] warning: {failed} worker(s) failed (above); the others finished the search"
            );
        }
        finished(p, &mut study)
    }
}

/// The final state of a study with nothing left to run; an error naming what is left
/// otherwise. A trial still marked running (its worker stopped when the clock ran out)
/// counts as stopped.
fn finished(p: &TuneParams, study: &mut dyn Study) -> Result<SearchState, TuneError> {
    let (d, mut st) = study.peek(p)?;
    let left = match d {
        Decision::Run { id, rung, .. } => Some(format!(
            "trial-{id:03} waits for rung {} of {}",
            rung + 1,
            p.rungs().len()
        )),
        _ if !st.busy.is_empty() => Some(format!(
            "{} trial(s) are training: {:?}",
            st.busy.len(),
            st.busy
        )),
        _ => None,
    };
    if let Some(left) = left {
        return Err(fer_core::Error::Other(format!(
            "the search is not finished ({left}): start workers (fer-tune --worker) or run \
             fer-tune without --finish"
        ))
        .into());
    }
    for t in &mut st.trials {
        if t.status == Status::Running {
            t.status = Status::Stopped;
        }
    }
    Ok(st)
}

/// The study's id: the run's signature and a nonce kept in the resume folder
/// (`study-id`), made by the first process of the run that needs it. A forced run, or one after
/// a finished search (both start from an empty resume folder), thus starts a new study in a
/// database that outlives the folder (PostgreSQL), rather than resuming one whose checkpoints
/// are gone.
#[cfg(feature = "study")]
fn study_id(plan: &Plan, work: &Path) -> Result<String, TuneError> {
    use std::io::Write;
    std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
    let path = work.join("study-id");
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        ^ u128::from(std::process::id());
    let id = format!("{}-{nonce:x}", plan.id);
    match std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(id.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| fer_core::Error::io(&path, e))?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process of the run made it; it may still be writing it.
            for _ in 0..50 {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| fer_core::Error::io(&path, e))?;
                if text.starts_with(&plan.id) && text.len() > plan.id.len() + 1 {
                    return Ok(text.trim().to_string());
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(fer_core::Error::Other(format!(
                "{}: not this run's study id (expected `{}-<nonce>`)",
                path.display(),
                plan.id
            ))
            .into())
        }
        Err(e) => Err(fer_core::Error::io(&path, e).into()),
    }
}

#[cfg(feature = "study")]
fn study_url(plan: &Plan, work: &Path) -> Result<String, TuneError> {
    std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
    Ok(match &plan.study {
        Some(u) => u.clone(),
        None => crate::study::sql::sqlite_url(&work.join("study.sqlite")),
    })
}

#[cfg(feature = "study")]
fn open(
    plan: &Plan,
    url: &str,
    data: &SearchData,
    work: &Path,
) -> Result<crate::study::sql::SqlStudy, TuneError> {
    crate::study::sql::SqlStudy::open(
        url,
        &study_id(plan, work)?,
        &plan.pipeline,
        &plan.params,
        data.incumbent.as_ref(),
        crate::study::sql::Heartbeat::from_env()?,
    )
}

#[cfg(feature = "study")]
fn spawn_workers(plan: &Plan, url: &str) -> Result<Vec<std::process::Child>, TuneError> {
    let exe = std::env::current_exe().map_err(|e| {
        fer_core::Error::Other(format!("cannot find this binary to start workers: {e}"))
    })?;
    // A child that cannot be started means one worker fewer, not a failed search: those
    // already started are kept (and waited for), and this process works as well.
    let mut children = Vec::new();
    for i in 1..plan.workers {
        match std::process::Command::new(&exe)
            .args(&plan.child)
            .env("FER_TUNE_STUDY", url)
            .env("FER_TUNE_WORKERS", "1")
            .env("FER_TUNE_WORKER_INDEX", i.to_string())
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => eprintln!(
                "[tune] warning: could not start worker {i} ({}: {e}); going on with {}",
                exe.display(),
                children.len() + 1
            ),
        }
    }
    Ok(children)
}

/// Wait for every child worker; how many failed.
#[cfg(feature = "study")]
fn wait_children(children: &mut [std::process::Child]) -> usize {
    children
        .iter_mut()
        .map(|c| c.wait().is_ok_and(|s| s.success()))
        .filter(|ok| !ok)
        .count()
}

/// `fer-tune --worker`: join the study and work until it has nothing left; no lock, no
/// outputs. Errors print as one chain and exit 2 (the stage's manifest is left alone).
pub fn worker_main(cli: &crate::Cli) -> std::process::ExitCode {
    fer_core::cli::exit_on_error(worker(cli))
}

#[cfg(not(feature = "study"))]
fn worker(_cli: &crate::Cli) -> Result<(), TuneError> {
    Err(no_study_feature())
}

#[cfg(feature = "study")]
fn worker(cli: &crate::Cli) -> Result<(), TuneError> {
    use fer_core::cli::{Preamble, Stage as _};
    if cli.args.finish {
        return Err(
            fer_core::Error::Other("--worker and --finish exclude each other".into()).into(),
        );
    }
    let pipeline = cli.common.load_pipeline()?;
    let p = Params::from_pipeline(&pipeline, cli)?;
    if let Some(list) = cli
        .args
        .upstream
        .as_deref()
        .filter(|l| !l.trim().is_empty())
    {
        // A machine without the stages tune reads: from the shared run cache, by signature.
        let quiet = p.common.quiet;
        crate::upstream::install(&p, list, &|msg| {
            if !quiet {
                eprintln!("[tune worker] {msg}");
            }
        })?;
    }
    let Preamble { run, upstream: up } = p.prepare(Vec::new())?;
    let plan = Plan::new(&p, &run)?;
    let work = work_dir(&p, &run);
    let url = study_url(&plan, &work)?;
    let prepared = fer_train::Prepared::load(&up[0].0)?;
    let incumbent = match up.get(1) {
        Some((dir, _)) => Some(crate::search::load_incumbent(
            &p.tune,
            &dir.join(&p.tune.base.name),
        )?),
        None => None,
    };
    let data = SearchData {
        train: &prepared.train,
        val: &prepared.val,
        transform: &prepared.transform,
        incumbent,
    };
    let dev = fer_train::device(&p.device)?;
    let mut study = open(&plan, &url, &data, &work)?;
    let who = study.worker().to_string();
    let quiet = p.common.quiet;
    let last = std::cell::RefCell::new(String::new());
    let progress = |msg: &str, _: u64, _: u64| {
        if !quiet && *last.borrow() != msg {
            eprintln!("[tune {who}] {msg}");
            *last.borrow_mut() = msg.to_string();
        }
    };
    progress(
        &format!("joined study {}", crate::study::sql::redact(&url)),
        0,
        0,
    );
    crate::search::run_worker(&p.tune, &data, &dev, &work, &mut study, &progress)?;
    progress("nothing left for this worker: exiting", 0, 0);
    study.leave()
}
