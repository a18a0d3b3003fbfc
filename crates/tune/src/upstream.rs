//! What a worker on another machine needs of the stages tune reads, by signature: the stage
//! run's `--print-upstream` names them (`preprocess=<sig>`, and with `reuse_base`
//! `train_cnn=<sig>`), and a worker given them (`--upstream`, `FER_TUNE_UPSTREAM`) pulls each
//! from the shared run cache (`FER_CACHE_URL`, [`fer_cache`]) into its own artifacts folder,
//! checked by hash, rather than reading another machine's path.

use crate::TuneError;
use crate::params::Params;
use fer_core::cli::{Preamble, Stage as _};

/// `stage=signature` pairs, `;`-separated, in the order tune reads the stages.
pub fn print(p: &Params) -> Result<String, TuneError> {
    let Preamble { upstream, .. } = p.prepare(Vec::new())?;
    let pairs: Vec<String> = crate::reads(p)
        .iter()
        .zip(&upstream)
        .map(|(stage, (_, m))| format!("{stage}={}", m.signature))
        .collect();
    Ok(pairs.join(";"))
}

/// `fer-tune --print-upstream`: the pairs on stdout.
pub fn print_main(cli: &crate::Cli) -> Result<(), TuneError> {
    let pipeline = cli.common.load_pipeline()?;
    let p = Params::from_pipeline(&pipeline, cli)?;
    println!("{}", print(&p)?);
    Ok(())
}

/// Parse `--upstream`: each pair names a stage this search reads, once, with a signature of 64
/// hex digits. The error names the pair and what is wrong.
pub fn parse(p: &Params, list: &str) -> Result<Vec<(String, String)>, TuneError> {
    let reads = crate::reads(p);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in list.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: String| {
            TuneError::from(fer_core::Error::Other(format!(
                "--upstream (FER_TUNE_UPSTREAM) `{pair}`: {why}"
            )))
        };
        let Some((stage, sig)) = pair.split_once('=') else {
            return Err(bad("not stage=signature".into()));
        };
        let (stage, sig) = (stage.trim(), sig.trim());
        if !reads.contains(&stage) {
            return Err(bad(format!(
                "this search reads {reads:?}, not `{stage}` (print the list with fer-tune --print-upstream)"
            )));
        }
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("a signature is 64 hex digits".into()));
        }
        if pairs.iter().any(|(s, _)| s == stage) {
            return Err(bad(format!("`{stage}` is named twice")));
        }
        pairs.push((stage.to_string(), sig.to_ascii_lowercase()));
    }
    if pairs.is_empty() {
        return Err(fer_core::Error::Other(
            "--upstream (FER_TUNE_UPSTREAM) is set but names no stage".into(),
        )
        .into());
    }
    Ok(pairs)
}

/// Install each stage of `--upstream` whose folder is not already at its signature, from the
/// shared run cache through the local one (`--cache-dir`, `FER_CACHE_DIR`), the way `fer-cache pull
/// --install` does. `say` gets a line per stage.
#[cfg(feature = "study")]
pub fn install(p: &Params, list: &str, say: &dyn Fn(&str)) -> Result<(), TuneError> {
    use fer_core::manifest::{MANIFEST_FILE, Manifest};
    let pairs = parse(p, list)?;
    let other = |msg: String| TuneError::from(fer_core::Error::Other(msg));
    let base = p.common.artifacts.join(&p.pipeline.name);
    let wanted: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(stage, sig)| {
            Manifest::read(&base.join(stage).join(MANIFEST_FILE))
                .map_or(true, |m| m.signature != *sig)
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let url = std::env::var("FER_CACHE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            other(
                "--upstream (FER_TUNE_UPSTREAM) needs the shared run cache: set FER_CACHE_URL"
                    .into(),
            )
        })?;
    let root =
        fer_core::stage::default_cache_dir(p.common.cache_dir.as_deref()).ok_or_else(|| {
            other(
            "--upstream needs the local run cache, the shared one's first level, but it is off \
             (--cache-dir, FER_CACHE_DIR)"
                .into(),
        )
        })?;
    let cache = |e: fer_cache::CacheError| other(fer_core::cli::error_chain(&e));
    let remote = fer_cache::Remote::open(&url).map_err(cache)?;
    for (stage, sig) in wanted {
        let short = &sig[..12];
        match remote.pull(stage, sig, &root).map_err(cache)? {
            fer_cache::Pulled::Absent => {
                return Err(other(format!(
                    "{stage}/{short} is not in the shared run cache {}: run the stage where its \
                     data is, with FER_CACHE_URL set (make pushes it), then start the workers",
                    remote.shown()
                )));
            }
            fer_cache::Pulled::Quarantined(why) => {
                return Err(other(format!(
                    "{stage}/{short} in {} failed its check ({why}) and was quarantined: run \
                     the stage again where its data is",
                    remote.shown()
                )));
            }
            fer_cache::Pulled::Local | fer_cache::Pulled::Restored { .. } => {}
        }
        let dir = base.join(stage);
        fer_cache::install(&root, stage, sig, &dir).map_err(cache)?;
        say(&format!(
            "{stage}/{short}: from {} into {}",
            remote.shown(),
            dir.display()
        ));
    }
    Ok(())
}
