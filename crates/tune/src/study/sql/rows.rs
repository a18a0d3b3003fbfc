//! The study's rows: the lock every claim and save takes, trials and rungs written and read
//! back into a [`SearchState`], and what a claim sees ([`view`]).

use super::Backend;
use crate::schedule::{Rung, SearchState, Status, Trial};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Lock the study (bump its `seq`) and add the time since its last update to its clock.
/// Returns (seq, elapsed, now).
pub(super) async fn lock(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    study: &str,
    started_ms: i64,
) -> Result<(i64, f64, i64), sqlx::Error> {
    let row = sqlx::query(
        "UPDATE fer_study SET seq = seq + 1 WHERE id = $1 RETURNING seq, elapsed, updated_ms",
    )
    .bind(study)
    .fetch_one(&mut **tx)
    .await?;
    let (seq, elapsed, updated): (i64, f64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let now: i64 = sqlx::query_scalar(backend.now())
        .fetch_one(&mut **tx)
        .await?;
    let elapsed = elapsed + (now - updated.max(started_ms)).max(0) as f64 / 1000.0;
    sqlx::query("UPDATE fer_study SET elapsed = $2, updated_ms = $3 WHERE id = $1")
        .bind(study)
        .bind(elapsed)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok((seq, elapsed, now))
}

pub(super) async fn insert_trial(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    study: &str,
    t: &Trial,
    worker: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fer_trial (study, id, config, status, epochs_run, seconds, error, finished, reused_from, worker) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fer_rung (study, trial, k, epochs, val_acc, val_loss, val_macro_f1, worker, recorded_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The study's trials (with their holders) and rungs.
pub(super) async fn load(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    study: &str,
) -> Result<(SearchState, Vec<Option<String>>), sqlx::Error> {
    let bad = |m: String| sqlx::Error::Decode(m.into());
    let rows: Vec<AnyRow> = sqlx::query(
        "SELECT id, config, status, epochs_run, seconds, error, finished, reused_from, worker \
         FROM fer_trial WHERE study = $1 ORDER BY id",
    )
    .bind(study)
    .fetch_all(&mut **tx)
    .await?;
    let mut st = SearchState::default();
    let mut holders = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let id = r.try_get::<i64, _>(0)? as usize;
        if id != i {
            return Err(bad(format!("trial ids are not 0..n (found {id} at {i})")));
        }
        let config = serde_json::from_str(&r.try_get::<String, _>(1)?)
            .map_err(|e| bad(format!("trial {id}: config: {e}")))?;
        let status_s: String = r.try_get(2)?;
        let status = Status::parse(&status_s)
            .ok_or_else(|| bad(format!("trial {id}: status {status_s}")))?;
        st.trials.push(Trial {
            id,
            config,
            status,
            rungs: vec![],
            epochs_run: r.try_get::<i64, _>(3)? as usize,
            seconds: r.try_get(4)?,
            error: r.try_get(5)?,
            finished: r.try_get::<i64, _>(6)? != 0,
            reused_from: r.try_get(7)?,
        });
        holders.push(r.try_get::<Option<String>, _>(8)?);
    }
    let rungs: Vec<AnyRow> = sqlx::query(
        "SELECT trial, k, epochs, val_acc, val_loss, val_macro_f1 FROM fer_rung \
         WHERE study = $1 ORDER BY trial, k",
    )
    .bind(study)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rungs {
        let (trial, k) = (
            r.try_get::<i64, _>(0)? as usize,
            r.try_get::<i64, _>(1)? as usize,
        );
        let t = st
            .trials
            .get_mut(trial)
            .ok_or_else(|| bad(format!("a rung of trial {trial}, which is not there")))?;
        if t.rungs.len() != k {
            return Err(bad(format!(
                "trial {trial}: rung {k} without the ones before"
            )));
        }
        t.rungs.push(Rung {
            epochs: r.try_get::<i64, _>(2)? as usize,
            val_acc: r.try_get(3)?,
            val_loss: r.try_get(4)?,
            val_macro_f1: r.try_get(5)?,
        });
    }
    Ok((st, holders))
}

/// What a claim sees, under the study's lock: the state with the trials other live workers
/// hold (`busy`), the lock's `seq` and the database's clock.
pub(super) async fn view(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    study: &str,
    me: &str,
    started: i64,
    stale: i64,
) -> Result<(SearchState, i64, i64), sqlx::Error> {
    let (seq, elapsed, now) = lock(tx, backend, study, started).await?;
    let (mut st, holders) = load(tx, study).await?;
    st.elapsed = elapsed;
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM fer_worker WHERE study = $1 AND state = 'working' AND heartbeat_ms >= $2",
    )
    .bind(study)
    .bind(now - stale)
    .fetch_all(&mut **tx)
    .await?;
    st.busy = st
        .trials
        .iter()
        .zip(&holders)
        .filter(|(t, h)| {
            t.status == Status::Running
                && h.as_deref()
                    .is_some_and(|h| h != me && live.iter().any(|l| l == h))
        })
        .map(|(t, _)| t.id)
        .collect();
    Ok((st, seq, now))
}
