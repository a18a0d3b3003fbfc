//! The command line every stage binary shares, the [`Stage`] trait every stage implements, and
//! the one generic [`main`] their binaries call.
//!
//! A stage crate holds its params (validated from its pipeline section and the command line),
//! its inputs, its compute and its outputs; it implements [`Stage`] on its params type, and its
//! `main.rs` is `fn main() -> ExitCode { fer_core::cli::main::<fer_x::Params>() }`.

use crate::error::Result;
use crate::lock::{Contention, PipelineLock};
use crate::manifest::Manifest;
use crate::pipeline::{self, PipelineFile};
use crate::stage::{self, Input, StageRun};
use clap::{CommandFactory, FromArgMatches};
use std::path::PathBuf;

/// A pipeline stage, implemented on its validated params (by [`impl_stage!`]).
pub trait Stage: Sized {
    /// The section, the artifacts folder and the manifest's `stage` (`train_cnn`): a stage of
    /// [`fer_graph::STAGES`], which declares the stages it reads.
    const NAME: &'static str;
    /// The binary's name and one line about it (its `--help`).
    const BIN: &'static str;
    const ABOUT: &'static str;
    /// The code this build is (`FER_CODE_VERSION`, from the stage crate's build script,
    /// `fer_codeversion::emit`), and the code versions it expects of its upstream stages'
    /// outputs (`FER_UPSTREAM_CODE_VERSIONS`).
    const CODE_VERSION: &'static str;
    const UPSTREAM_CODE_VERSIONS: &'static str;
    /// The stage's own command-line options beside [`StageArgs`] ([`NoArgs`] if none).
    type Args: clap::Args + Clone + std::fmt::Debug;
    type Error: std::error::Error + From<crate::Error>;
    /// Read and validate the stage's section (and options) before any work starts.
    fn from_pipeline(
        pipeline: &PipelineFile,
        cli: &StageCli<Self::Args>,
    ) -> Result<Self, Self::Error>;
    /// The validated pipeline file and the shared command line.
    fn pipeline(&self) -> &PipelineFile;
    fn args(&self) -> &StageArgs;
    /// The params the stage's signature hashes (`--print-params` prints them).
    fn signature_params(&self) -> Result<serde_json::Value, Self::Error>;
    /// The upstream stages this run reads: those the graph declares for [`Self::NAME`], or
    /// fewer (tune reads train_cnn only with `reuse_base`).
    fn reads(&self) -> Vec<&'static str> {
        fer_graph::upstream(Self::NAME).to_vec()
    }
    /// Skip when up to date, restore from the run cache, or compute ([`StageRun::execute`]),
    /// after [`Self::prepare`].
    fn run(&self) -> Result<Manifest, Self::Error>;

    /// The preamble every stage shares: each stage [`Self::reads`] (which must be declared
    /// upstream of it) checked current ([`Input::current`]: there, complete, and made by the
    /// code this build expects), then the [`StageRun`] over [`Self::signature_params`] and
    /// those inputs, in that order, followed by `extra` (files the stage also reads: the data,
    /// weights). Returns the run and each upstream stage's folder and manifest.
    fn prepare(&self, extra: Vec<Input>) -> Result<Preamble, Self::Error> {
        let declared = fer_graph::upstream(Self::NAME);
        let (pipeline, args) = (self.pipeline(), self.args());
        let mut inputs = Vec::new();
        let mut upstream = Vec::new();
        for u in self.reads() {
            if !declared.contains(&u) {
                return Err(crate::Error::Other(format!(
                    "stage {} reads `{u}`, which crates/graph does not declare upstream of it ({declared:?})",
                    Self::NAME
                ))
                .into());
            }
            let (input, m) =
                Input::current(&args.artifacts, pipeline, u, Self::UPSTREAM_CODE_VERSIONS)?;
            upstream.push((input.path.clone(), m));
            inputs.push(input);
        }
        inputs.extend(extra);
        let params = self.signature_params()?;
        let run = args.stage_run(pipeline, Self::NAME, Self::CODE_VERSION, params, inputs);
        Ok(Preamble { run, upstream })
    }
}

/// What [`Stage::prepare`] gives a stage.
#[derive(Debug)]
pub struct Preamble {
    pub run: StageRun,
    /// Each stage read: its folder and manifest, in [`Stage::reads`] order.
    pub upstream: Vec<(PathBuf, Manifest)>,
}

/// Implement [`Stage`] for a stage crate's `Params` (with fields `pipeline: PipelineFile` and
/// `common: StageArgs`) from its inherent `Params::from_pipeline(&PipelineFile, &Cli)` and its
/// free `signature_params(&Params)` and `run(&Params)` (all resolved where the macro is
/// called); the code versions come from the calling crate's build script. `reads = f` names a
/// free `f(&Params) -> Vec<&'static str>` for a stage that reads fewer than it declares:
///
/// ```ignore
/// fer_core::impl_stage! { Params: STAGE, "fer-stats", StatsError, NoArgs,
///     "Stage stats: counts, mean/std, histograms, samples and a data audit" }
/// ```
#[macro_export]
macro_rules! impl_stage {
    ($params:ty : $name:expr, $bin:literal, $err:ty, $args:ty, $about:literal) => {
        $crate::impl_stage! { @impl $params : $name, $bin, $err, $args, $about; }
    };
    ($params:ty : $name:expr, $bin:literal, $err:ty, $args:ty, $about:literal; reads = $reads:expr) => {
        $crate::impl_stage! { @impl $params : $name, $bin, $err, $args, $about;
            fn reads(&self) -> ::std::vec::Vec<&'static str> {
                let f: fn(&$params) -> ::std::vec::Vec<&'static str> = $reads;
                f(self)
            }
        }
    };
    (@impl $params:ty : $name:expr, $bin:literal, $err:ty, $args:ty, $about:literal; $($reads:tt)*) => {
        impl $crate::cli::Stage for $params {
            const NAME: &'static str = $name;
            const BIN: &'static str = $bin;
            const ABOUT: &'static str = $about;
            const CODE_VERSION: &'static str = env!("FER_CODE_VERSION");
            const UPSTREAM_CODE_VERSIONS: &'static str = env!("FER_UPSTREAM_CODE_VERSIONS");
            type Args = $args;
            type Error = $err;
            fn from_pipeline(
                pipeline: &$crate::pipeline::PipelineFile,
                cli: &$crate::cli::StageCli<$args>,
            ) -> ::std::result::Result<Self, $err> {
                <$params>::from_pipeline(pipeline, cli)
            }
            fn pipeline(&self) -> &$crate::pipeline::PipelineFile {
                &self.pipeline
            }
            fn args(&self) -> &$crate::cli::StageArgs {
                &self.common
            }
            fn signature_params(&self) -> ::std::result::Result<::serde_json::Value, $err> {
                signature_params(self)
            }
            $($reads)*
            fn run(&self) -> ::std::result::Result<$crate::manifest::Manifest, $err> {
                run(self)
            }
        }
    };
}

/// A stage binary's command line: the shared [`StageArgs`] and the stage's own `X`.
#[derive(Debug, Clone, clap::Parser)]
pub struct StageCli<X: clap::Args> {
    #[command(flatten)]
    pub common: StageArgs,
    #[command(flatten)]
    pub args: X,
}

/// No options beyond [`StageArgs`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NoArgs {}

impl<X: clap::Args> StageCli<X> {
    /// Parse the process's arguments, named and described as stage `S`'s binary.
    pub fn parse_for<S: Stage<Args = X>>() -> Self {
        Self::parse_from_for::<S, _, _>(std::env::args_os())
    }
    /// [`Self::parse_for`] on the given arguments (the first is the program name).
    pub fn parse_from_for<S: Stage<Args = X>, I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command()
            .name(S::BIN)
            .bin_name(S::BIN)
            .about(S::ABOUT)
            .version(env!("CARGO_PKG_VERSION"))
            .get_matches_from(args);
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// A stage binary's `main`: parse the command line, load and validate the pipeline file, then
/// print the params (`--print-params`) or run the stage; errors print as one chain and exit 2.
pub fn main<S: Stage>() -> std::process::ExitCode {
    run_cli::<S>(&StageCli::parse_for::<S>())
}

/// [`main`] on an already parsed command line (for a binary with subcommands of its own).
pub fn run_cli<S: Stage>(cli: &StageCli<S::Args>) -> std::process::ExitCode {
    if cli.common.print_cache_dir {
        // What `make clean-cache` removes: the same folder on every platform.
        match stage::default_cache_dir(cli.common.cache_dir.as_deref()) {
            Some(d) => println!("{}", d.display()),
            None => println!(),
        }
        return std::process::ExitCode::SUCCESS;
    }
    let result = cli
        .common
        .load_pipeline()
        .map_err(S::Error::from)
        .and_then(|pipeline| {
            let p = S::from_pipeline(&pipeline, cli)?;
            if cli.common.print_params {
                print_params(&pipeline.name, S::NAME, &p.signature_params()?);
                return Ok(());
            }
            if cli.common.print_signature {
                // Read-only, like --status; what it would run under is the answer, whether
                // it is up to date or not. Never a failure: `make` then runs the stage, which
                // reports any problem itself.
                stage::request_signature();
                let r = p.run();
                if !stage::signature_printed()
                    && let Err(e) = r
                {
                    eprintln!(
                        "{}/{}: no signature yet: {}",
                        pipeline.name,
                        S::NAME,
                        error_chain(&e)
                    );
                }
                return Ok(());
            }
            if cli.common.status {
                // Read-only: no lock, and a stage that would run is an answer, not a failure.
                let name = format!("{}/{}", pipeline.name, S::NAME);
                match p.run() {
                    Ok(_) => println!("{name}: up to date"),
                    Err(e) => match waits_line::<S>(&p, cli, &pipeline) {
                        Some(line) => println!("{name}: {line}"),
                        None => println!("{name}: would run: {}", error_chain(&e)),
                    },
                }
                return Ok(());
            }
            // Validated first (a bad file never waits), then one stage at a time per pipeline.
            let _lock = cli.common.lock(&pipeline.name, S::BIN)?;
            p.run().map(|_| ())
        });
    finish(&cli.common, S::NAME, result)
}

/// `make status`'s line for a stage behind an upstream stage that must run first (`None`
/// when every stage it reads is current): it waits, then reruns only if that stage's outputs
/// change (a comment edit in its code changes none), unless its own code or section changed.
fn waits_line<S: Stage>(p: &S, cli: &StageCli<S::Args>, pipeline: &PipelineFile) -> Option<String> {
    let artifacts = &cli.common.artifacts;
    let waits: Vec<&str> = p
        .reads()
        .into_iter()
        .filter(|u| Input::current(artifacts, pipeline, u, S::UPSTREAM_CODE_VERSIONS).is_err())
        .collect();
    if waits.is_empty() {
        return None;
    }
    let own = artifacts
        .join(&pipeline.name)
        .join(S::NAME)
        .join(crate::manifest::MANIFEST_FILE);
    let then = match Manifest::read(&own) {
        Err(_) => "then runs: it has not run".to_string(),
        Ok(m) if m.code_version != S::CODE_VERSION => format!(
            "then reruns: its code changed (code version {} -> {})",
            m.code_version,
            S::CODE_VERSION
        ),
        Ok(m)
            if m.section_hash
                .as_ref()
                .is_some_and(|h| *h != pipeline.section_hash(S::NAME)) =>
        {
            format!("then reruns: [{}] changed", S::NAME)
        }
        Ok(_) if waits.len() == 1 => "then reruns only if its outputs change".to_string(),
        Ok(_) => "then reruns only if their outputs change".to_string(),
    };
    Some(format!("waits for {}; {then}", waits.join(", ")))
}

#[derive(Debug, Clone, clap::Args)]
pub struct StageArgs {
    /// Pipeline name (`pipelines/<name>.toml`) or a path to a pipeline file.
    #[arg(long, short, default_value = "seed")]
    pub pipeline: String,
    /// Root of the artifacts folder; the stage writes `<artifacts>/<pipeline>/<stage>/`.
    #[arg(long, default_value = "artifacts", env = "FER_ARTIFACTS")]
    pub artifacts: PathBuf,
    /// Run the pipeline in miniature (`make all MINI=1`): sizes, epochs, trials and time
    /// limits capped, every code path kept, written to `<artifacts>/<pipeline>-mini/`.
    #[arg(long, env = "FER_MINI", value_parser = clap::builder::BoolishValueParser::new())]
    pub mini: bool,
    /// Run cache folder (`off` disables it). Default: the user's cache dir/fer-pipeline/runs.
    #[arg(long, env = "FER_CACHE_DIR")]
    pub cache_dir: Option<String>,
    /// The run cache's size bound (`500M`, `20G`; `none`: unbounded); least recently used
    /// entries are pruned after each store. Default: 20G.
    #[arg(long, env = "FER_CACHE_MAX", value_parser = parse_cache_max)]
    pub cache_max: Option<CacheMax>,
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
    /// Say whether the stage is up to date and, if not, why it would run (which section's
    /// keys, code or inputs changed), and exit without running: `make status`.
    #[arg(long)]
    pub status: bool,
    /// Print the stage's signature (its run-cache key: code, params and inputs) as it would
    /// run now, and exit without running: `make` hands it to `fer-cache pull`. Prints nothing
    /// (and says why on stderr) when a stage it reads is not current.
    #[arg(long)]
    pub print_signature: bool,
    /// Print the run cache folder this binary uses (empty when the cache is off) and exit.
    #[arg(long)]
    pub print_cache_dir: bool,
    /// When another run holds the pipeline's lock, exit with an error naming it instead of
    /// waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// When the stage is up to date, leave its manifest's modification time alone (make's
    /// `ingest` target runs every time and relies on it: see the Makefile).
    #[arg(long)]
    pub keep_mtime: bool,
}

impl StageArgs {
    pub fn load_pipeline(&self) -> Result<PipelineFile> {
        let file = PipelineFile::load(&pipeline::resolve_checked(&self.pipeline)?)?;
        Ok(if self.mini { file.miniature() } else { file })
    }

    /// Take `pipeline`'s lock for the binary `who` ([`crate::lock`]), waiting unless
    /// `--no-wait`.
    pub fn lock(&self, pipeline: &str, who: &str) -> Result<PipelineLock> {
        let contention = if self.no_wait {
            Contention::Fail
        } else {
            Contention::Wait
        };
        PipelineLock::acquire(&self.artifacts, pipeline, who, contention)
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
            touch_on_skip: !self.keep_mtime,
            cache_max_bytes: self
                .cache_max
                .map_or(Some(crate::cache::DEFAULT_MAX_BYTES), |c| c.0),
            status_only: self.status || self.print_signature,
            section_hash: Some(pipeline.section_hash(stage)),
        }
    }
}

/// The run cache's size bound in bytes (`None`: unbounded), as `--cache-max` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMax(pub Option<u64>);

fn parse_cache_max(s: &str) -> std::result::Result<CacheMax, String> {
    crate::cache::parse_size(s)
        .map(CacheMax)
        .map_err(|e| e.to_string())
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

/// A plain progress line on stderr when it is not a terminal (a CI log, `make all > log
/// 2>&1`), where [`progress`]'s bar is hidden: `[<stage>] <msg>`. Nothing when `quiet` or on a
/// terminal (the bar shows it there).
pub fn log_line(stage: &str, quiet: bool, msg: &str) {
    use std::io::IsTerminal;
    if !quiet && !std::io::stderr().is_terminal() {
        eprintln!("[{stage}] {msg}");
    }
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
        // Only a valid name (never `..`): the manifest removed must be inside the artifacts.
        if let Some(name) = pipeline::name_of(&pipeline::resolve(&common.pipeline)) {
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
