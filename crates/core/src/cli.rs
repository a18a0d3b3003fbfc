//! The command line every stage binary shares, and the pieces of `main` they all repeat.

use crate::error::Result;
use crate::pipeline::{self, PipelineFile};
use crate::stage::{self, Input, StageRun};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct StageArgs {
    /// Pipeline name (`pipelines/<name>.toml`) or a path to a pipeline file.
    #[arg(long, short, default_value = "seed")]
    pub pipeline: String,
    /// Root of the artifacts folder; the stage writes `<artifacts>/<pipeline>/<stage>/`.
    #[arg(long, default_value = "artifacts", env = "FER_ARTIFACTS")]
    pub artifacts: PathBuf,
    /// Run cache folder (`off` disables it). Default: the user's cache dir/fer-pipeline/runs.
    #[arg(long, env = "FER_CACHE_DIR")]
    pub cache_dir: Option<String>,
    /// Recompute even when the outputs are up to date or cached.
    #[arg(long)]
    pub force: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the stage's resolved params (what its signature hashes) as one JSON line and
    /// exit without running.
    #[arg(long)]
    pub print_params: bool,
}

impl StageArgs {
    pub fn load_pipeline(&self) -> Result<PipelineFile> {
        PipelineFile::load(&pipeline::resolve(&self.pipeline))
    }

    /// A [`StageRun`] for `stage` with these args; params and inputs are the stage's.
    pub fn stage_run(
        &self,
        pipeline: &PipelineFile,
        stage: &str,
        code_version: &str,
        params: serde_json::Value,
        inputs: Vec<Input>,
    ) -> StageRun {
        StageRun {
            pipeline: pipeline.name.clone(),
            stage: stage.to_string(),
            artifacts: self.artifacts.clone(),
            code_version: code_version.to_string(),
            params,
            inputs,
            cache: stage::default_cache_dir(self.cache_dir.as_deref()),
            force: self.force,
            verbose: !self.quiet,
        }
    }
}

/// `--print-params`: the stage's resolved params as one JSON line on stdout.
pub fn print_params(pipeline: &str, stage: &str, params: &serde_json::Value) {
    println!(
        "{}",
        serde_json::json!({"pipeline": pipeline, "stage": stage, "params": params})
    );
}

/// A progress bar on stderr (hidden when stderr is not a terminal or `quiet`).
pub fn progress(len: u64, what: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// The error and its chain of causes on one line: `outer: cause: root cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s += ": ";
            s += &t;
        }
        cur = c.source();
    }
    s
}

/// End a stage binary: on failure, remove the stage's old `manifest.json` (whatever failed,
/// before or during the computation, the old outputs no longer stand for this run, so neither
/// `make` nor a downstream stage may take them as finished), then [`exit_on_error`].
pub fn finish<T, E: std::error::Error>(
    common: &StageArgs,
    stage: &str,
    result: std::result::Result<T, E>,
) -> std::process::ExitCode {
    if result.is_err() {
        let path = pipeline::resolve(&common.pipeline);
        if let Some(name) = path.file_stem() {
            let m = common
                .artifacts
                .join(name)
                .join(stage)
                .join(crate::manifest::MANIFEST_FILE);
            let _ = std::fs::remove_file(m);
        }
    }
    exit_on_error(result)
}

/// End a binary: success, or the error chain on stderr and exit code 2.
pub fn exit_on_error<T, E: std::error::Error>(
    result: std::result::Result<T, E>,
) -> std::process::ExitCode {
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::from(2)
        }
    }
}
