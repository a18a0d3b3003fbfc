//! Pipeline files: `pipelines/<name>.toml`, one section per stage.
//!
//! The loader rejects unknown sections; each stage deserializes its own section with
//! `deny_unknown_fields` and validates it before any work starts. Every error names the file,
//! the section and the key.

use crate::error::{Error, IoContext, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Sections a pipeline file may have: `[pipeline]` (name, description) and one per stage.
pub const KNOWN_SECTIONS: &[&str] = &[
    "pipeline",
    "ingest",
    "stats",
    "preprocess",
    "augment",
    "train_svm",
    "train_cnn",
    "tune",
    "report",
    "predict",
];

#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub path: PathBuf,
    /// The pipeline name: the file stem (`seed` for `pipelines/seed.toml`).
    pub name: String,
    table: toml::Table,
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineMeta {
    #[serde(default)]
    pub description: String,
}

/// `seed` -> `pipelines/seed.toml`; anything with a `/` or ending in `.toml` is a path.
pub fn resolve(name_or_path: &str) -> PathBuf {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        PathBuf::from(name_or_path)
    } else {
        PathBuf::from("pipelines").join(format!("{name_or_path}.toml"))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl PipelineFile {
    pub fn load(path: &Path) -> Result<PipelineFile> {
        let text = std::fs::read_to_string(path).at(path)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<PipelineFile> {
        let perr = |m: String| Error::Pipeline {
            file: path.to_path_buf(),
            message: m,
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            perr(format!("{line}{}", one_line(e.message())))
        })?;
        for (k, v) in &table {
            if !KNOWN_SECTIONS.contains(&k.as_str()) {
                return Err(perr(format!(
                    "unknown section [{k}] (expected one of: {})",
                    KNOWN_SECTIONS.join(", ")
                )));
            }
            if !v.is_table() {
                return Err(perr(format!(
                    "`{k}` must be a section ([{k}]), not a value"
                )));
            }
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "pipeline".into());
        Ok(PipelineFile {
            path: path.to_path_buf(),
            name,
            table,
        })
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.table.contains_key(section)
    }

    /// Deserialize one section (an absent section gives the type's defaults).
    pub fn section<T: DeserializeOwned>(&self, section: &str) -> Result<T> {
        debug_assert!(KNOWN_SECTIONS.contains(&section));
        let value = self
            .table
            .get(section)
            .cloned()
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        T::deserialize(value).map_err(|e| Error::Pipeline {
            file: self.path.clone(),
            message: format!("[{section}] {}", one_line(e.message())),
        })
    }

    pub fn meta(&self) -> Result<PipelineMeta> {
        self.section("pipeline")
    }

    /// A parameter error naming this file, the section and the key.
    pub fn param_error(&self, section: &str, key: &str, message: impl Into<String>) -> Error {
        Error::Param {
            file: self.path.clone(),
            section: section.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct P {
        seed: u64,
        kind: String,
    }

    #[test]
    fn sections_and_errors() {
        let p = Path::new("pipelines/x.toml");
        let f = PipelineFile::parse(p, "[ingest]\nseed = 3\nkind = \"a\"\n").unwrap();
        assert_eq!(f.name, "x");
        let s: P = f.section("ingest").unwrap();
        assert_eq!((s.seed, s.kind.as_str()), (3, "a"));
        let d: P = f.section("stats").unwrap();
        assert_eq!(d.seed, 0);

        let f = PipelineFile::parse(p, "[ingest]\nsed = 3\n").unwrap();
        let e = f.section::<P>("ingest").unwrap_err().to_string();
        assert!(
            e.starts_with("pipelines/x.toml: [ingest] unknown field `sed`"),
            "{e}"
        );
        assert!(!e.contains('\n'));

        let e = PipelineFile::parse(p, "[ingset]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown section [ingset]"), "{e}");
        let e = PipelineFile::parse(p, "[ingest\n").unwrap_err().to_string();
        assert!(e.starts_with("pipelines/x.toml: line 1:"), "{e}");
        assert_eq!(resolve("seed"), PathBuf::from("pipelines/seed.toml"));
    }
}
