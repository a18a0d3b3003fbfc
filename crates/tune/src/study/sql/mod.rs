//! The study in a database (feature `study`): SQLite or PostgreSQL through sqlx's Any driver,
//! chosen by the URL at run time, with one schema and its versioned migrations
//! (`migrations/`, applied by sqlx's migrator; embedded in the binary, so a worker on another
//! machine needs no file beside it).
//!
//! - **Claims.** [`Study::claim`] runs in one transaction that first bumps the study row's
//!   `seq` (`UPDATE ... RETURNING`): on PostgreSQL that takes the study row's lock, on SQLite
//!   (`BEGIN IMMEDIATE`) the database's write lock. Under it the worker reads every trial,
//!   rung and heartbeat, applies ASHA's pure rule ([`decide`]), and writes its claim. Claims
//!   are serialized on the study, not handed out from a queue with `FOR UPDATE SKIP LOCKED`:
//!   ASHA's next job is a function of every rung result (which trial is in the top
//!   1/`reduction` of a rung), so there is no independent row to skip to, and a decision taken
//!   without the lock could promote a trial another worker is promoting. Two workers never get
//!   the same job: the decision and the claim are one transaction.
//! - **Heartbeats.** A background task updates the worker's `heartbeat_ms` every
//!   `FER_TUNE_HEARTBEAT` (default 5 s). A running trial whose worker has not beaten for six
//!   beats (or that exited) is no longer busy: the next claim hands it out again, and it
//!   resumes from its last checkpoint in the shared resume folder. A worker that finds its
//!   trial taken over (its save matches no row) drops it ([`Study::save`] returns false).
//! - **Times** are the database's clock (milliseconds), so workers on machines whose clocks
//!   disagree still agree on heartbeats and on the search's clock.
//! - **The clock** (`elapsed`): each claim and save adds the time since the study's last
//!   update, or since this worker started if that is later: wall time while a worker was
//!   working, counted once however many there are, and not the gap while none was.

mod conn;
mod progress;
mod rows;

use super::Study;
use crate::TuneError;
use crate::params::TuneParams;
use crate::schedule::{Decision, SearchState, Status, Trial, decide};
use conn::{Backend, Embedded, other};
pub use conn::{Heartbeat, redact};
pub use progress::progress;
use rows::{Cache, insert_rung, insert_trial, lock, view};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};
use std::time::{Duration, Instant};

/// A study in SQLite or PostgreSQL, as seen by one worker.
pub struct SqlStudy {
    rt: tokio::runtime::Runtime,
    pool: AnyPool,
    backend: Backend,
    study: String,
    me: String,
    started_ms: i64,
    stale_ms: i64,
    /// The search's clock at the last transaction, and when that was here.
    synced: (f64, Instant),
    /// This worker's copy of the study (brought up to date by each claim).
    cache: Cache,
    beat: Option<tokio::task::JoinHandle<()>>,
}

/// The SQLite URL of a study file.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl SqlStudy {
    /// Join (or start) study `study` (the tune run's signature) at `url` as a new worker.
    /// `params` must equal what the study was started with. `incumbent` becomes trial 0 of a
    /// new study.
    pub fn open(
        url: &str,
        study: &str,
        pipeline: &str,
        params: &serde_json::Value,
        incumbent: Option<&Trial>,
        hb: Heartbeat,
    ) -> Result<SqlStudy, TuneError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let shown = redact(url);
        let db =
            |what: &str, e: &dyn std::fmt::Display| other(format!("study {shown}: {what}: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| db("cannot start its runtime", &e))?;
        let pool = rt
            .block_on(async {
                let mut o = AnyPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(120));
                if backend == Backend::Sqlite {
                    o = o.after_connect(|c, _| {
                        Box::pin(async move {
                            c.execute("PRAGMA busy_timeout = 60000").await?;
                            c.execute("PRAGMA journal_mode = WAL").await?;
                            Ok(())
                        })
                    });
                }
                o.connect(url).await
            })
            .map_err(|e| db("cannot connect", &e))?;
        // Workers that start together race to migrate; the migrator locks on PostgreSQL, and on
        // SQLite the loser of the race finds the tables made (IF NOT EXISTS) on its retry.
        let mut attempt = 0;
        loop {
            let r = rt.block_on(async {
                let m = Migrator::new(Embedded).await?;
                m.run(&pool).await
            });
            match r {
                Ok(()) => break,
                Err(_) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
                Err(e) => return Err(db("cannot apply its migrations", &e)),
            }
        }
        let params = params.to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let me = format!(
            "{}-{}-{nanos:08x}",
            fer_core::atomic::host_name(),
            std::process::id()
        );
        let started_ms = rt
            .block_on(async {
                let mut tx = pool.begin_with(backend.begin()).await?;
                let now: i64 = sqlx::query_scalar(backend.now()).fetch_one(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO fer_study (id, pipeline, params, created_ms, elapsed, updated_ms, seq) \
                     VALUES ($1, $2, $3, $4, 0.0, $4, 0) ON CONFLICT (id) DO NOTHING",
                )
                .bind(study)
                .bind(pipeline)
                .bind(&params)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let have: String = sqlx::query_scalar("SELECT params FROM fer_study WHERE id = $1")
                    .bind(study)
                    .fetch_one(&mut *tx)
                    .await?;
                if have != params {
                    tx.rollback().await?;
                    return Ok(Err(format!(
                        "study `{study}` was started with other params ({have})"
                    )));
                }
                // Under the study's lock, so that two workers starting together do not both
                // insert trial 0.
                let (seq, _, _) = lock(&mut tx, backend, study, now).await?;
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fer_trial WHERE study = $1")
                    .bind(study)
                    .fetch_one(&mut *tx)
                    .await?;
                if n == 0
                    && let Some(t) = incumbent
                {
                    insert_trial(&mut tx, study, t, None, seq).await?;
                    for (k, r) in t.rungs.iter().enumerate() {
                        insert_rung(&mut tx, study, t.id, k, r, "incumbent", now, seq).await?;
                    }
                }
                sqlx::query(
                    "INSERT INTO fer_worker (study, id, host, pid, started_ms, heartbeat_ms, state) \
                     VALUES ($1, $2, $3, $4, $5, $5, 'working')",
                )
                .bind(study)
                .bind(&me)
                .bind(fer_core::atomic::host_name())
                .bind(i64::from(std::process::id()))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(Ok(now))
            })
            .map_err(|e| db("cannot join the study", &e))?
            .map_err(other)?;
        let beat = {
            let (pool, study, me) = (pool.clone(), study.to_string(), me.clone());
            let sql = backend.beat();
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(hb.every).await;
                    // A missed beat is retried at the next; six missed hand the trial out.
                    let _ = sqlx::query(sql).bind(&study).bind(&me).execute(&pool).await;
                }
            })
        };
        Ok(SqlStudy {
            rt,
            pool,
            backend,
            study: study.to_string(),
            me,
            started_ms,
            stale_ms: hb.stale_ms(),
            synced: (0.0, Instant::now()),
            cache: Cache::default(),
            beat: Some(beat),
        })
    }

    /// What a transaction needs: (backend, study, this worker, its start, the stale age).
    fn who(&self) -> (Backend, String, String, i64, i64) {
        (
            self.backend,
            self.study.clone(),
            self.me.clone(),
            self.started_ms,
            self.stale_ms,
        )
    }

    /// Keep the copy a transaction brought up to date (or, when it failed, start the next one
    /// from an empty copy) and the search's clock; the result and the state.
    fn settle<T>(
        &mut self,
        cache: Cache,
        r: Result<T, sqlx::Error>,
        what: &str,
    ) -> Result<(T, SearchState), TuneError> {
        match r {
            Ok(x) => {
                self.synced = (cache.st.elapsed, Instant::now());
                self.cache = cache;
                Ok((x, self.cache.st.clone()))
            }
            Err(e) => {
                self.cache = Cache::default();
                Err(self.err(what, e))
            }
        }
    }

    /// This worker's id in the study (`<host>-<pid>-<nonce>`).
    pub fn worker(&self) -> &str {
        &self.me
    }

    fn err(&self, what: &str, e: sqlx::Error) -> TuneError {
        other(format!("study `{}` ({what}): {e}", self.study))
    }

    /// Every claim so far: (trial, rung, worker, outcome), in claim order.
    pub fn jobs(&mut self) -> Result<Vec<(usize, usize, String, Option<String>)>, TuneError> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT trial, rung, worker, outcome FROM fer_job WHERE study = $1 ORDER BY seq",
                )
                .bind(&self.study)
                .fetch_all(&self.pool),
            )
            .map_err(|e| self.err("reading its jobs", e))?;
        rows.iter()
            .map(|r| {
                Ok((
                    rows::count(r, 0, "job's trial")?,
                    rows::count(r, 1, "job's rung")?,
                    r.try_get::<String, _>(2)?,
                    r.try_get::<Option<String>, _>(3)?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.err("reading its jobs", e))
    }

    /// Stop beating without leaving, as a worker killed with `-9` does (tests).
    pub fn stop_beating(&mut self) {
        if let Some(b) = self.beat.take() {
            b.abort();
        }
    }

    /// Mark this worker exited (its running trial, if any, is handed out at the next claim).
    pub fn leave(&mut self) -> Result<(), TuneError> {
        if let Some(b) = self.beat.take() {
            b.abort();
        }
        self.rt
            .block_on(
                sqlx::query("UPDATE fer_worker SET state = 'exited' WHERE study = $1 AND id = $2")
                    .bind(&self.study)
                    .bind(&self.me)
                    .execute(&self.pool),
            )
            .map_err(|e| self.err("leaving", e))?;
        Ok(())
    }
}

impl Drop for SqlStudy {
    fn drop(&mut self) {
        if self.beat.is_some() {
            let _ = self.leave();
        }
    }
}

impl Study for SqlStudy {
    fn claim(&mut self, p: &TuneParams) -> Result<(Decision, SearchState), TuneError> {
        let (backend, study, me, started, stale) = self.who();
        let pool = self.pool.clone();
        let mut cache = std::mem::take(&mut self.cache);
        let r = self.rt.block_on(async {
            let mut tx = pool.begin_with(backend.begin()).await?;
            let (seq, now) =
                view(&mut tx, backend, &study, &me, started, stale, &mut cache).await?;
            let st = &mut cache.st;
            let d = decide(p, st, st.elapsed);
            if let Decision::Run { id, rung, last } = d {
                if id == st.trials.len() {
                    st.trials.push(Trial::new(p, id));
                    cache.holders.push(Some(me.clone()));
                    insert_trial(&mut tx, &study, &st.trials[id], Some(&me), seq).await?;
                } else {
                    // A trial another worker held (stopped beating): its open job ends.
                    sqlx::query(
                        "UPDATE fer_job SET outcome = 'requeued', ended_ms = $3 \
                         WHERE study = $1 AND trial = $2 AND outcome IS NULL",
                    )
                    .bind(&study)
                    .bind(id as i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    st.trials[id].status = Status::Running;
                    cache.holders[id] = Some(me.clone());
                    sqlx::query(
                        "UPDATE fer_trial SET status = 'running', worker = $3, updated_seq = $4 \
                         WHERE study = $1 AND id = $2",
                    )
                    .bind(&study)
                    .bind(id as i64)
                    .bind(&me)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO fer_job (study, seq, trial, rung, last, worker, claimed_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&study)
                .bind(seq)
                .bind(id as i64)
                .bind(rung as i64)
                .bind(i64::from(last))
                .bind(&me)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            cache.seen = seq;
            Ok::<_, sqlx::Error>(d)
        });
        self.settle(cache, r, "claiming a job")
    }

    fn peek(&mut self, p: &TuneParams) -> Result<(Decision, SearchState), TuneError> {
        let st = self.state()?;
        Ok((decide(p, &st, st.elapsed), st))
    }

    fn save(&mut self, t: &Trial) -> Result<bool, TuneError> {
        // The rows written here reach this worker's copy at its next claim, as any other
        // worker's do.
        let (backend, study, me, started, _) = self.who();
        let pool = self.pool.clone();
        let t = t.clone();
        let (held, elapsed) = self
            .rt
            .block_on(async move {
                let mut tx = pool.begin_with(backend.begin()).await?;
                let (seq, elapsed, now) = lock(&mut tx, backend, &study, started).await?;
                let n = sqlx::query(
                    "UPDATE fer_trial SET status = $4, epochs_run = $5, seconds = $6, error = $7, \
                     finished = $8, updated_seq = $9 WHERE study = $1 AND id = $2 AND worker = $3",
                )
                .bind(&study)
                .bind(t.id as i64)
                .bind(&me)
                .bind(t.status.as_str())
                .bind(t.epochs_run as i64)
                .bind(t.seconds)
                .bind(t.error.clone())
                .bind(i64::from(t.finished))
                .bind(seq)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    // Taken over: this worker's job ends here, and its result is not recorded.
                    // The takeover already closed the job as `requeued` (its worker had stopped
                    // beating); it was in fact still running, so its last job is `lost`.
                    sqlx::query(
                        "UPDATE fer_job SET outcome = 'lost', ended_ms = $4 \
                         WHERE study = $1 AND trial = $2 AND worker = $3 \
                         AND (outcome IS NULL OR outcome = 'requeued') \
                         AND seq = (SELECT MAX(seq) FROM fer_job \
                                    WHERE study = $1 AND trial = $2 AND worker = $3)",
                    )
                    .bind(&study)
                    .bind(t.id as i64)
                    .bind(&me)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok((false, elapsed));
                }
                let have: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM fer_rung WHERE study = $1 AND trial = $2",
                )
                .bind(&study)
                .bind(t.id as i64)
                .fetch_one(&mut *tx)
                .await?;
                for (k, r) in t.rungs.iter().enumerate().skip(have as usize) {
                    insert_rung(&mut tx, &study, t.id, k, r, &me, now, seq).await?;
                }
                if t.status != Status::Running {
                    let outcome = match t.status {
                        Status::Stopped => "stopped",
                        Status::Failed => "failed",
                        _ => "rung",
                    };
                    sqlx::query(
                        "UPDATE fer_job SET outcome = $4, ended_ms = $5 \
                         WHERE study = $1 AND trial = $2 AND worker = $3 AND outcome IS NULL",
                    )
                    .bind(&study)
                    .bind(t.id as i64)
                    .bind(&me)
                    .bind(outcome)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>((true, elapsed))
            })
            .map_err(|e| self.err("saving a trial", e))?;
        self.synced = (elapsed, Instant::now());
        Ok(held)
    }

    fn spent(&mut self) -> f64 {
        self.synced.0 + self.synced.1.elapsed().as_secs_f64()
    }

    fn state(&mut self) -> Result<SearchState, TuneError> {
        let (backend, study, me, started, stale) = self.who();
        let pool = self.pool.clone();
        let mut cache = std::mem::take(&mut self.cache);
        let r = self.rt.block_on(async {
            let mut tx = pool.begin_with(backend.begin()).await?;
            let (seq, _) = view(&mut tx, backend, &study, &me, started, stale, &mut cache).await?;
            tx.commit().await?;
            cache.seen = seq;
            Ok::<_, sqlx::Error>(())
        });
        self.settle(cache, r, "reading the state").map(|(_, st)| st)
    }
}
