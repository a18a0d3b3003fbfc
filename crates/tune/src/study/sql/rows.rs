//! The study's rows: the lock every claim and save takes, trials and rungs written and read
//! back into a [`SearchState`], and what a claim sees ([`view`]).

use super::Backend;
use crate::schedule::{Rung, SearchState, Status, Trial};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Lock the study (bump its `seq`) and add the time since its last update, or since this
/// worker started if that is later, to its clock; one statement (the database's clock read
/// once). Returns (seq, elapsed, now).
pub(super) async fn lock(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    study: &str,
    started_ms: i64,
) -> Result<(i64, f64, i64), sqlx::Error> {
    let row = sqlx::query(backend.lock())
        .bind(study)
        .bind(started_ms)
        .fetch_one(&mut **tx)
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

pub(super) async fn insert_trial(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    study: &str,
    t: &Trial,
    worker: Option<&str>,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fer_trial (study, id, config, status, epochs_run, seconds, error, finished, reused_from, worker, updated_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(study)
    .bind(t.id as i64)
    .bind(serde_json::to_string(&t.config).expect("a config serializes"))
    .bind(t.status.as_str())
    .bind(t.epochs_run as i64)
    .bind(t.seconds)
    .bind(t.error.clone())
    .bind(i64::from(t.finished))
    .bind(t.reused_from.clone())
    .bind(worker.map(str::to_string))
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_rung(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    study: &str,
    trial: usize,
    k: usize,
    r: &Rung,
    worker: &str,
    now: i64,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fer_rung (study, trial, k, epochs, val_acc, val_loss, val_macro_f1, worker, recorded_ms, recorded_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(study)
    .bind(trial as i64)
    .bind(k as i64)
    .bind(r.epochs as i64)
    .bind(r.val_acc)
    .bind(r.val_loss)
    .bind(r.val_macro_f1)
    .bind(worker)
    .bind(now)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A worker's copy of the study: its trials (with the worker holding each) as of the study's
/// `seq` `seen`. Claims bring it up to date from the rows written since ([`refresh`]), so a
/// claim reads what changed, not the whole study.
#[derive(Debug, Clone)]
pub(super) struct Cache {
    pub st: SearchState,
    pub holders: Vec<Option<String>>,
    pub seen: i64,
}

impl Default for Cache {
    /// Nothing seen: the next [`refresh`] reads every row.
    fn default() -> Cache {
        Cache {
            st: SearchState::default(),
            holders: Vec::new(),
            seen: -1,
        }
    }
}

/// Column `i` of `r`, a count or an index: an integer the database holds as `i64`, which a
/// damaged (or hand-edited) row may make negative; that is an error naming the column, not a
/// huge `usize`.
pub(super) fn count(r: &AnyRow, i: usize, what: &str) -> Result<usize, sqlx::Error> {
    let v: i64 = r.try_get(i)?;
    usize::try_from(v).map_err(|_| sqlx::Error::Decode(format!("{what}: {v} is negative").into()))
}

/// Apply the trial and rung rows written after `cache.seen` (each row carries the `seq` of
/// the transaction that last wrote it; under the study's lock every earlier transaction has
/// committed). A row that does not fit the copy (a trial id past the end, a rung without the
/// ones before) is an error; the caller then starts from an empty copy.
pub(super) async fn refresh(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    study: &str,
    cache: &mut Cache,
) -> Result<(), sqlx::Error> {
    let bad = |m: String| sqlx::Error::Decode(m.into());
    let rows: Vec<AnyRow> = sqlx::query(
        "SELECT id, config, status, epochs_run, seconds, error, finished, reused_from, worker \
         FROM fer_trial WHERE study = $1 AND updated_seq > $2 ORDER BY id",
    )
    .bind(study)
    .bind(cache.seen)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        let id = count(r, 0, "trial id")?;
        let status_s: String = r.try_get(2)?;
        let status = Status::parse(&status_s)
            .ok_or_else(|| bad(format!("trial {id}: status {status_s}")))?;
        let (epochs_run, seconds, error, finished, reused_from) = (
            count(r, 3, "epochs_run")?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get::<i64, _>(6)? != 0,
            r.try_get(7)?,
        );
        let holder = r.try_get::<Option<String>, _>(8)?;
        if let Some(t) = cache.st.trials.get_mut(id) {
            (
                t.status,
                t.epochs_run,
                t.seconds,
                t.error,
                t.finished,
                t.reused_from,
            ) = (status, epochs_run, seconds, error, finished, reused_from);
            cache.holders[id] = holder;
        } else if id == cache.st.trials.len() {
            let config = serde_json::from_str(&r.try_get::<String, _>(1)?)
                .map_err(|e| bad(format!("trial {id}: config: {e}")))?;
            cache.st.trials.push(Trial {
                id,
                config,
                status,
                rungs: vec![],
                epochs_run,
                seconds,
                error,
                finished,
                reused_from,
            });
            cache.holders.push(holder);
        } else {
            return Err(bad(format!(
                "trial {id} after {} trials",
                cache.st.trials.len()
            )));
        }
    }
    let rungs: Vec<AnyRow> = sqlx::query(
        "SELECT trial, k, epochs, val_acc, val_loss, val_macro_f1 FROM fer_rung \
         WHERE study = $1 AND recorded_seq > $2 ORDER BY trial, k",
    )
    .bind(study)
    .bind(cache.seen)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rungs {
        let (trial, k) = (count(r, 0, "rung's trial")?, count(r, 1, "rung index")?);
        let t = cache
            .st
            .trials
            .get_mut(trial)
            .ok_or_else(|| bad(format!("a rung of trial {trial}, which is not there")))?;
        if t.rungs.len() != k {
            return Err(bad(format!(
                "trial {trial}: rung {k} without the ones before"
            )));
        }
        t.rungs.push(Rung {
            epochs: count(r, 2, "rung's epochs")?,
            val_acc: r.try_get(3)?,
            val_loss: r.try_get(4)?,
            val_macro_f1: r.try_get(5)?,
        });
    }
    Ok(())
}

/// What a claim sees, under the study's lock: the copy brought up to date, with the trials
/// other live workers hold (`busy`) and the search's clock; returns the lock's `seq` and the
/// database's clock. The caller sets `cache.seen = seq` once its own writes are in the copy.
pub(super) async fn view(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    study: &str,
    me: &str,
    started: i64,
    stale: i64,
    cache: &mut Cache,
) -> Result<(i64, i64), sqlx::Error> {
    let (seq, elapsed, now) = lock(tx, backend, study, started).await?;
    refresh(tx, study, cache).await?;
    cache.st.elapsed = elapsed;
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM fer_worker WHERE study = $1 AND state = 'working' AND heartbeat_ms >= $2",
    )
    .bind(study)
    .bind(now - stale)
    .fetch_all(&mut **tx)
    .await?;
    cache.st.busy = cache
        .st
        .trials
        .iter()
        .zip(&cache.holders)
        .filter(|(t, h)| {
            t.status == Status::Running
                && h.as_deref()
                    .is_some_and(|h| h != me && live.iter().any(|l| l == h))
        })
        .map(|(t, _)| t.id)
        .collect();
    Ok((seq, now))
}
