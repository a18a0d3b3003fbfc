//! `fer-cache`: push a stage's outputs to the shared run cache, or pull an entry into the
//! local one ([`fer_cache`]). `make` calls it around every stage when `FER_CACHE_URL` is set.
//!
//! A store that cannot be reached is a warning, never a failed run (the cache only saves
//! work); a URL that cannot be used, or a stage folder that no longer matches its manifest, is
//! an error (exit code 2).

use clap::{Parser, Subcommand};
use fer_cache::{CacheError, Pulled, Pushed, Remote};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "fer-cache",
    version,
    about = "The shared run cache in object storage (FER_CACHE_URL)"
)]
struct Cli {
    /// The store: `s3://bucket/prefix` (S3 or an S3-compatible server: AWS_ENDPOINT,
    /// AWS_REGION, AWS_ALLOW_HTTP; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
    /// or ~/.aws/credentials) or `file:///path`.
    #[arg(long, env = "FER_CACHE_URL", global = true, hide_env_values = true)]
    url: Option<String>,
    /// Print nothing but warnings and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Store stage folders (`artifacts/<pipeline>/<stage>/`) in the shared cache, blobs first
    /// and the manifest last; one already there is left alone.
    Push {
        /// Stage folders, each with its manifest.json.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Bring a stage's entry from the shared cache into the local run cache, where the stage
    /// binary restores it (checked by hash on the way, quarantined in the store when bad).
    Pull {
        /// The stage (`train_cnn`).
        #[arg(long)]
        stage: String,
        /// Its signature (`fer-<stage> --print-signature`); empty: nothing to pull.
        #[arg(long)]
        signature: String,
        /// The stage's folder: nothing is pulled when its manifest already has the signature.
        #[arg(long)]
        stage_dir: Option<PathBuf>,
        /// The local run cache (as the stage binaries resolve it).
        #[arg(long, env = "FER_CACHE_DIR")]
        cache_dir: Option<String>,
        /// Also install the entry as this stage folder (`artifacts/<pipeline>/<stage>`), for a
        /// machine that runs the stages after it without running it: a tune worker elsewhere,
        /// given the preprocess signature. Failing to is an error.
        #[arg(long)]
        install: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(url) = cli.url.as_deref().filter(|u| !u.is_empty()) else {
        eprintln!("error: no store: set FER_CACHE_URL or pass --url");
        return ExitCode::from(2);
    };
    let remote = match Remote::open(url) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let say = |msg: String| {
        if !cli.quiet {
            eprintln!("fer-cache: {msg}");
        }
    };
    match &cli.cmd {
        Cmd::Push { dirs } => {
            for dir in dirs {
                let what = dir.display();
                match remote.push(dir) {
                    Ok(Pushed::Already) => say(format!("{what}: already in {}", remote.shown())),
                    Ok(Pushed::Stored { files, bytes, sent }) => say(format!(
                        "{what}: pushed to {} ({files} files, {}, {sent} new)",
                        remote.shown(),
                        size(bytes)
                    )),
                    Err(e @ CacheError::Store { .. }) => warn(&e, "not pushed"),
                    Err(e) => return fail(&e),
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Pull {
            stage,
            signature,
            stage_dir,
            cache_dir,
            install,
        } => {
            let sig = signature.trim();
            if sig.is_empty() {
                say(format!(
                    "{stage}: no signature (a stage it reads is not current): nothing to pull"
                ));
                return ExitCode::SUCCESS;
            }
            if let Some(d) = stage_dir
                && fer_core::Manifest::read(&d.join(fer_core::manifest::MANIFEST_FILE))
                    .is_ok_and(|m| m.signature == sig)
            {
                return ExitCode::SUCCESS;
            }
            let Some(root) = fer_core::stage::default_cache_dir(cache_dir.as_deref()) else {
                eprintln!(
                    "error: FER_CACHE_URL needs the local run cache, its first level, but FER_CACHE_DIR is off"
                );
                return ExitCode::from(2);
            };
            let short = &sig[..12.min(sig.len())];
            match remote.pull(stage, sig, &root) {
                Ok(Pulled::Local) => {}
                Ok(Pulled::Absent) => say(format!("{stage}/{short}: not in {}", remote.shown())),
                Ok(Pulled::Restored { files, bytes }) => say(format!(
                    "{stage}/{short}: pulled from {} ({files} files, {})",
                    remote.shown(),
                    size(bytes)
                )),
                Ok(Pulled::Quarantined(_)) => {}
                Err(e @ CacheError::Store { .. }) if install.is_none() => warn(&e, "not pulled"),
                Err(e) => return fail(&e),
            }
            if let Some(dir) = install {
                if let Err(e) = fer_cache::install(&root, stage, sig, dir) {
                    return fail(&e);
                }
                say(format!("{stage}/{short}: installed as {}", dir.display()));
            }
            ExitCode::SUCCESS
        }
    }
}

fn size(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn warn(e: &CacheError, what: &str) {
    eprintln!(
        "fer-cache: warning: {what}: {}",
        fer_core::cli::error_chain(e)
    );
}

fn fail(e: &CacheError) -> ExitCode {
    eprintln!("error: {}", fer_core::cli::error_chain(e));
    ExitCode::from(2)
}
