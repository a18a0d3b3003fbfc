//! `FER_CACHE_URL`: which store, shown without secrets.
//!
//! - `file:///path`: a folder (a shared mount, or a test), through object_store's
//!   `LocalFileSystem`; created if missing.
//! - `s3://bucket/prefix` (the `s3` feature): S3 or any S3-compatible server, configured from
//!   the environment as object_store reads it (`AWS_ENDPOINT` for another server,
//!   `AWS_REGION`, `AWS_ALLOW_HTTP=true` for a plain-HTTP one on a private network) and the
//!   credentials of [`crate::credentials`].

use crate::error::CacheError;
use object_store::ObjectStore;
use std::sync::Arc;

/// `url` with any user and password taken out (`s3://user:secret@b/p` -> `s3://***@b/p`), so
/// that it can be printed.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{path}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

/// The store a URL names, and its URL as it may be printed.
pub fn open(url: &str) -> Result<(Arc<dyn ObjectStore>, String), CacheError> {
    let shown = redact(url);
    let bad = |message: String| CacheError::Url {
        url: shown.clone(),
        message,
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(
            "not a URL: say file:///path or s3://bucket/prefix".into()
        ));
    };
    match scheme {
        "file" => {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file URL needs an absolute path (file:///path)".into()
                ));
            }
            std::fs::create_dir_all(rest)
                .map_err(|e| bad(format!("cannot create the folder: {e}")))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(rest)
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(fs), shown))
        }
        "s3" | "s3a" => open_s3(rest, &shown).map(|s| (s, shown.clone())),
        other => Err(bad(format!(
            "the scheme `{other}` is not supported: say file:///path or s3://bucket/prefix"
        ))),
    }
}

/// `bucket/prefix` (any user info already refused): bucket and prefix.
fn bucket_and_prefix<'a>(rest: &'a str, shown: &str) -> Result<(&'a str, &'a str), CacheError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains('@') {
        return Err(CacheError::Url {
            url: shown.to_string(),
            message: "say s3://bucket/prefix; credentials go in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or ~/.aws/credentials, never in the URL".into(),
        });
    }
    Ok((bucket, prefix.trim_matches('/')))
}

#[cfg(not(feature = "s3"))]
fn open_s3(rest: &str, shown: &str) -> Result<Arc<dyn ObjectStore>, CacheError> {
    bucket_and_prefix(rest, shown)?;
    Err(CacheError::Url {
        url: shown.to_string(),
        message: "this fer-cache was built without S3 support: build it with `--features fer-cache/s3` (make does when FER_CACHE_URL starts with s3://)".into(),
    })
}

#[cfg(feature = "s3")]
fn open_s3(rest: &str, shown: &str) -> Result<Arc<dyn ObjectStore>, CacheError> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::prefix::PrefixStore;
    use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
    use std::time::Duration;
    let (bucket, prefix) = bucket_and_prefix(rest, shown)?;
    // reqwest is built without a crypto provider of its own: rustls uses ring's. A second call
    // (a test opening two stores) finds it installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // AmazonS3Builder::from_env, less the variables set to nothing (a CI workflow's unset
    // `vars.X` arrives as an empty string, and an empty endpoint or region is not "unset").
    let mut b = AmazonS3Builder::new();
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        if k.starts_with("AWS_")
            && !v.is_empty()
            && let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            b = b.with_config(key, v);
        }
    }
    let mut b = b.with_bucket_name(bucket);
    if let Some(c) = crate::credentials::from_file_unless_env() {
        b = b
            .with_access_key_id(c.access_key_id)
            .with_secret_access_key(c.secret_access_key);
        if let Some(t) = c.session_token {
            b = b.with_token(t);
        }
    }
    // A cache only saves work: a store that does not answer is given up on in well under a
    // minute, not object_store's default three.
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    };
    let s3 = b
        .with_retry(retry)
        // Set key by key: `with_client_options` would drop what the environment set
        // (AWS_ALLOW_HTTP among them).
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            "5s",
        )
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "120s")
        .build()
        .map_err(|e| CacheError::Url {
            url: shown.to_string(),
            message: e.to_string(),
        })?;
    Ok(if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(PrefixStore::new(s3, prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_url_are_never_shown() {
        assert_eq!(redact("s3://key:secret@bucket/p"), "s3://***@bucket/p");
        assert_eq!(redact("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(redact("file:///tmp/x"), "file:///tmp/x");
        let e = open("s3://key:secret@bucket/p").err().unwrap().to_string();
        assert!(!e.contains("secret") && e.contains("***@bucket"), "{e}");
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        for (url, want) in [
            ("bucket/p", "not a URL"),
            ("file://relative", "absolute path"),
            ("gs://b/p", "not supported"),
        ] {
            let e = open(url).err().unwrap().to_string();
            assert!(
                e.contains(want) && e.contains("FER_CACHE_URL"),
                "{url}: {e}"
            );
        }
    }
}
