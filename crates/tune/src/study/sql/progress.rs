//! What `make status` reads of a study in progress.

use super::conn::other;
use super::redact;
use super::rows;
use crate::TuneError;
use sqlx::Row;
use sqlx::any::AnyRow;

/// `make status`'s look at a study in progress (read-only, one connection): its trials by
/// status and how many rung results it holds ([`crate::workers::progress`]).
pub fn progress(url: &str, study: &str) -> Result<(Vec<(String, usize)>, usize), TuneError> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let shown = redact(url);
    let db = |e: sqlx::Error| other(format!("study {shown}: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| other(format!("study {shown}: cannot start its runtime: {e}")))?;
    rt.block_on(async {
        let mut c = sqlx::AnyConnection::connect(url).await.map_err(db)?;
        let rows: Vec<AnyRow> = sqlx::query(
            "SELECT status, COUNT(*) FROM fer_trial WHERE study = $1 GROUP BY status ORDER BY status",
        )
        .bind(study)
        .fetch_all(&mut c)
        .await
        .map_err(db)?;
        let counts = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, rows::count(r, 1, "trials")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db)?;
        let rungs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fer_rung WHERE study = $1")
            .bind(study)
            .fetch_one(&mut c)
            .await
            .map_err(db)?;
        let _ = c.close().await;
        Ok((counts, usize::try_from(rungs).unwrap_or(0)))
    })
}
