//! Connecting: the backend a URL names and its SQL dialect's few differences (the clock, the
//! write transaction), the heartbeat's period, the embedded migrations, and [`redact`].

use crate::TuneError;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How often a worker beats; a trial whose worker missed six beats is handed out again.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub every: Duration,
}

impl Heartbeat {
    /// `FER_TUNE_HEARTBEAT` (a duration like `5s`; default 5 s).
    pub fn from_env() -> Result<Heartbeat, TuneError> {
        let every = match std::env::var("FER_TUNE_HEARTBEAT") {
            Ok(s) => humantime::parse_duration(&s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    other(format!(
                        "FER_TUNE_HEARTBEAT=`{s}` is not a duration like \"5s\""
                    ))
                })?,
            Err(_) => Duration::from_secs(5),
        };
        Ok(Heartbeat { every })
    }

    pub(super) fn stale_ms(self) -> i64 {
        6 * self.every.as_millis() as i64
    }
}

pub(super) fn other(m: String) -> TuneError {
    fer_core::Error::Other(m).into()
}

/// `url` with any password replaced by `***`: what may be printed.
pub fn redact(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[s + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(c) => format!("{}:***{}", &authority[..c], &authority[at..]),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    // A password given as a query parameter (`?password=...`, as libpq's URLs allow).
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{}{authority}{tail}", &url[..s + 3])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub(super) fn of(url: &str) -> Result<Backend, TuneError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(other(format!(
                "study `{}`: expected a sqlite: or postgres:// URL",
                redact(url)
            )))
        }
    }

    /// The database's clock, in milliseconds since 1970.
    pub(super) fn now(self) -> &'static str {
        match self {
            Backend::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Backend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
            }
        }
    }

    pub(super) fn beat(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "UPDATE fer_worker SET heartbeat_ms = CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT) \
                 WHERE study = $1 AND id = $2"
            }
            Backend::Postgres => {
                "UPDATE fer_worker SET heartbeat_ms = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) \
                 WHERE study = $1 AND id = $2"
            }
        }
    }

    /// The study's lock ([`super::rows::lock`]): bump `seq`, add the time since
    /// max(`updated_ms`, $2) to `elapsed`, set `updated_ms` to now; returns (seq, elapsed, now).
    pub(super) fn lock(self) -> &'static str {
        match self {
            // julianday('now') is the same throughout one statement.
            Backend::Sqlite => {
                "UPDATE fer_study SET seq = seq + 1, \
                 elapsed = elapsed + MAX(0, CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT) \
                     - MAX(updated_ms, $2)) / 1000.0, \
                 updated_ms = CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT) \
                 WHERE id = $1 RETURNING seq, elapsed, updated_ms"
            }
            // clock_timestamp(), not now() (the transaction's start, which may be long
            // before a contended lock is granted); its two readings are microseconds apart.
            Backend::Postgres => {
                "UPDATE fer_study SET seq = seq + 1, \
                 elapsed = elapsed + GREATEST(0, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) \
                     - GREATEST(updated_ms, $2)) / 1000.0, \
                 updated_ms = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) \
                 WHERE id = $1 RETURNING seq, elapsed, updated_ms"
            }
        }
    }

    /// A write transaction: SQLite takes its write lock at once (a deferred transaction that
    /// reads first could not wait for it), PostgreSQL locks rows as it goes.
    pub(super) fn begin(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

/// The embedded migrations (`migrations/NNNN_name.sql`).
#[derive(Debug)]
pub(super) struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "study", include_str!("../migrations/0001_study.sql")),
    (
        2,
        "changed since",
        include_str!("../migrations/0002_changed_since.sql"),
    ),
];

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>>
                + Send
                + 's,
        >,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, name, sql)| {
                    Migration::new(
                        *v,
                        (*name).into(),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}
