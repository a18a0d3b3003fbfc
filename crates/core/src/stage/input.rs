//! An input of a stage: an upstream stage's outputs, hashed and checked to be current.

use super::make_target;
use crate::error::{Error, Result};
use crate::hash;
use crate::manifest::{MANIFEST_FILE, Manifest, resolve_output};
use crate::pipeline::PipelineFile;
use std::path::{Path, PathBuf};

/// An input of a stage, with its content hash.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub path: PathBuf,
    pub hash: String,
}

impl Input {
    /// The outputs of an upstream stage, re-hashed and checked against its manifest.
    pub fn stage(artifacts: &Path, pipeline: &str, stage: &str) -> Result<(Input, Manifest)> {
        let dir = artifacts.join(pipeline).join(stage);
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.exists() {
            return Err(Error::Other(format!(
                "{}: not found: stage `{stage}` has not run for pipeline `{pipeline}` (run `make {} PIPELINE={pipeline}`)",
                mpath.display(),
                make_target(stage)
            )));
        }
        let m = Manifest::read(&mpath)?;
        let mut h = blake3::Hasher::new();
        for o in &m.outputs {
            let p = resolve_output(&dir, &o.path).map_err(|why| {
                Error::Other(format!(
                    "{}: {why} (run `make {} PIPELINE={pipeline}` again)",
                    mpath.display(),
                    make_target(stage)
                ))
            })?;
            let actual = hash::hash_file(&p)?;
            if actual != o.hash {
                return Err(Error::Other(format!(
                    "{}: changed since stage `{stage}` wrote it (run `make {} PIPELINE={pipeline}` again)",
                    p.display(),
                    make_target(stage)
                )));
            }
            h.update(o.path.as_bytes());
            h.update(o.hash.as_bytes());
        }
        Ok((
            Input {
                name: stage.to_string(),
                path: dir,
                hash: h.finalize().to_hex().to_string(),
            },
            m,
        ))
    }
}

impl Input {
    /// [`Input::stage`], and a check that the upstream stage is current: its manifest records
    /// the pipeline's section as it is now ([`PipelineFile::section_hash`]) and the code
    /// version this build expects of it. `code_versions` is the
    /// `FER_UPSTREAM_CODE_VERSIONS` a stage crate's build script emits
    /// (`fer_codeversion::emit`, from the stages `crates/graph` declares it reads):
    /// `stage=version` pairs separated by `;`.
    /// Otherwise the error names the stage to rerun and why.
    pub fn current(
        artifacts: &Path,
        pipeline: &PipelineFile,
        stage: &str,
        code_versions: &str,
    ) -> Result<(Input, Manifest)> {
        let (input, m) = Input::stage(artifacts, &pipeline.name, stage)?;
        let mpath = artifacts
            .join(&pipeline.name)
            .join(stage)
            .join(MANIFEST_FILE);
        let rerun = format!(
            "run `make {} PIPELINE={}`",
            make_target(stage),
            pipeline.name
        );
        if let Some(recorded) = &m.section_hash
            && *recorded != pipeline.section_hash(stage)
        {
            return Err(Error::Other(format!(
                "{}: stage `{stage}` is out of date: [{stage}] in {} changed since it ran ({rerun})",
                mpath.display(),
                pipeline.path.display()
            )));
        }
        match upstream_code_version(code_versions, stage) {
            Some(v) if v != m.code_version => Err(Error::Other(format!(
                "{}: stage `{stage}` is out of date: it was built from other code (code version {}, this build's is {v}) ({rerun})",
                mpath.display(),
                m.code_version
            ))),
            Some(_) => Ok((input, m)),
            None => Err(Error::Other(format!(
                "this build has no code version for stage `{stage}` (crates/graph must declare it upstream of the stage that reads it)"
            ))),
        }
    }
}

/// The code version of `stage` in a `FER_UPSTREAM_CODE_VERSIONS` list (`stage=version;...`).
pub fn upstream_code_version<'a>(code_versions: &'a str, stage: &str) -> Option<&'a str> {
    code_versions.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == stage).then_some(v)
    })
}
