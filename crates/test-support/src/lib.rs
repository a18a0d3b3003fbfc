//! fer-test-support: helpers the integration tests share (a dev-dependency only; no stage or
//! tool depends on it).
//!
//! Reads and writes only what a test points it at: [`Outcome`] runs a binary and checks how it
//! ended; [`run_stage`] runs any stage in-process on a pipeline file and an artifacts folder;
//! [`ingest_and_preprocess`] writes the two stages most tests start from. Takes no params.

use fer_core::cli::{Stage, StageCli};
use fer_core::manifest::Manifest;
use std::path::Path;
use std::process::Command;

/// Synthetic 48x48 faces (the `smoke` pipeline's data), for tests that need an image.
pub use fer_ingest::synthetic::face as synthetic_face;

/// How a run of a binary ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Run `cmd` to the end.
    pub fn of(cmd: &mut Command) -> Outcome {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit code 0 (else the stderr is shown).
    pub fn ok(self) -> Outcome {
        assert_eq!(
            self.code,
            Some(0),
            "expected success; stderr:\n{}",
            self.stderr
        );
        self
    }

    /// Exit code 2 and exactly one stderr line, `error: ...`, containing every needle.
    pub fn error(&self, needles: &[&str]) {
        assert_eq!(
            self.code,
            Some(2),
            "expected exit code 2; stderr:\n{}",
            self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one stderr line, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        for n in needles {
            assert!(lines[0].contains(n), "`{n}` not in: {}", lines[0]);
        }
    }
}

/// Run stage `S` in-process on the pipeline file `pipeline` into `artifacts`, quietly and
/// with the run cache off (`extra`: more command-line arguments, e.g. `--data-dir`).
pub fn run_stage<S: Stage>(
    pipeline: &Path,
    artifacts: &Path,
    extra: &[&str],
) -> Result<Manifest, S::Error> {
    let mut args: Vec<String> = vec![
        S::BIN.into(),
        "--pipeline".into(),
        pipeline.display().to_string(),
        "--artifacts".into(),
        artifacts.display().to_string(),
        "--cache-dir".into(),
        "off".into(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let cli = StageCli::<S::Args>::parse_from_for::<S, _, _>(args);
    let pf = cli.common.load_pipeline()?;
    S::from_pipeline(&pf, &cli)?.run()
}

/// Ingest and preprocess the pipeline file `pipeline` (synthetic faces, such as `smoke`'s)
/// into `artifacts`: the upstream stages of train-svm, train-cnn and tune.
pub fn ingest_and_preprocess(pipeline: &Path, artifacts: &Path) {
    run_stage::<fer_ingest::Params>(pipeline, artifacts, &[]).expect("ingest runs");
    run_stage::<fer_preprocess::Params>(pipeline, artifacts, &[]).expect("preprocess runs");
}
