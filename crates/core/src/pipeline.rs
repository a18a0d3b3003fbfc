//! Pipeline files: `pipelines/<name>.toml`, one section per stage.
//!
//! The loader rejects unknown sections; each stage deserializes its own section with
//! `deny_unknown_fields` and validates it before any work starts. Every error names the file,
//! the section and the key.
//!
//! # `extends`
//! A file may start with `extends = "<pipeline>"`: it is then its parent (`<pipeline>.toml`,
//! in the same folder) with the child's keys laid over it, by these rules:
//! - tables (sections such as `[train_cnn]`, and inline or nested tables such as
//!   `[ingest.sizes]`) merge key by key, recursively: a key the child sets wins, the others
//!   come from the parent;
//! - everything else replaces: a value, an array, and an array of tables (`[[augment.ops]]`,
//!   `[[train_cnn.models]]`): a child that lists one `[[train_cnn.models]]` has exactly that
//!   one model;
//! - a parent may itself extend another file; a cycle is an error naming the files in it;
//! - the pipeline's name is always the child's file stem (its artifacts go to
//!   `artifacts/<child>/`); `[pipeline] description` is inherited like any key.
//!
//! Errors in a merged section name the child file; the parents are listed in
//! [`PipelineFile::parents`].
//!
//! # Names
//! A pipeline's name (its file's stem, or `--pipeline <name>`) becomes a folder,
//! `artifacts/<name>/`, so it must be a plain word ([`check_name`], [`NAME_RULE`]): ASCII
//! letters, digits, `-` and `_`, not empty (so never `..`, nor anything starting with `.`).
//! `pipelines/...toml` (whose stem is `..`) or `--pipeline ''` is an error naming the file or
//! the argument and the rule.

use crate::error::{Error, IoContext, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Sections a pipeline file may have: `[pipeline]` (name, description), one per stage of the
/// declared graph ([`fer_graph::STAGES`]), and `[predict]` (the serving tool's defaults).
pub fn known_sections() -> Vec<&'static str> {
    let mut v = vec!["pipeline"];
    v.extend(fer_graph::STAGES.iter().map(|s| s.name));
    v.push("predict");
    v
}

#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub path: PathBuf,
    /// The pipeline name: the file stem (`seed` for `pipelines/seed.toml`).
    pub name: String,
    /// The files this one extends, nearest first (empty without `extends`).
    pub parents: Vec<PathBuf>,
    table: toml::Table,
}

/// The top-level key naming the parent pipeline.
pub const EXTENDS_KEY: &str = "extends";

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineMeta {
    #[serde(default)]
    pub description: String,
}

/// `seed` -> `pipelines/seed.toml`; anything with a `/` or ending in `.toml` is a path.
pub fn resolve(name_or_path: &str) -> PathBuf {
    if is_path(name_or_path) {
        PathBuf::from(name_or_path)
    } else {
        PathBuf::from("pipelines").join(format!("{name_or_path}.toml"))
    }
}

/// Does `--pipeline` give a path (a `/`, or ending in `.toml`) rather than a name?
fn is_path(name_or_path: &str) -> bool {
    name_or_path.contains('/') || name_or_path.ends_with(".toml")
}

/// [`resolve`], refusing a `--pipeline` name that breaks [`NAME_RULE`] (the error names the
/// argument and the rule); a path is checked when it is loaded, by its file's stem.
pub fn resolve_checked(name_or_path: &str) -> Result<PathBuf> {
    if !is_path(name_or_path)
        && let Err(rule) = check_name(name_or_path)
    {
        return Err(Error::Other(format!(
            "--pipeline `{name_or_path}`: not a pipeline name: {rule}"
        )));
    }
    Ok(resolve(name_or_path))
}

/// The rule a pipeline name follows.
pub const NAME_RULE: &str = "a pipeline name is ASCII letters, digits, `-` and `_` only, not empty and not starting with `.`";

/// Check a pipeline name against [`NAME_RULE`] (it becomes the folder `artifacts/<name>/`).
pub fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    if is_pipeline_name(name) {
        Ok(())
    } else {
        Err(NAME_RULE)
    }
}

/// The pipeline name of a file: its stem, when it follows [`NAME_RULE`].
pub fn name_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    is_pipeline_name(stem).then(|| stem.to_string())
}

fn is_pipeline_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The same file, by canonical path when both exist.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `over` laid over `base`: tables merge key by key (recursively); any other value, arrays
/// and arrays of tables included, replaces.
pub fn merge(mut base: toml::Table, over: toml::Table) -> toml::Table {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                let b = std::mem::take(b);
                base.insert(k, toml::Value::Table(merge(b, o)));
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    base
}

/// A TOML value as JSON with every table's keys sorted (whatever order the file, or a map type
/// that keeps insertion order, gives them), so equal sections hash equal.
fn canonical(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::Table(t) => {
            let mut keys: Vec<&String> = t.keys().collect();
            keys.sort();
            let mut m = serde_json::Map::new();
            for k in keys {
                m.insert(k.clone(), canonical(&t[k]));
            }
            serde_json::Value::Object(m)
        }
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(canonical).collect()),
        other => serde_json::to_value(other).expect("a TOML scalar is JSON"),
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

    /// Parse `text` as the file at `path`; a parent named by `extends` is read from `path`'s
    /// folder.
    pub fn parse(path: &Path, text: &str) -> Result<PipelineFile> {
        Self::parse_chain(path, text, &mut Vec::new())
    }

    /// `chain`: the files already being read below this one (children first), for cycles.
    fn parse_chain(path: &Path, text: &str, chain: &mut Vec<PathBuf>) -> Result<PipelineFile> {
        let perr = |m: String| Error::Pipeline {
            file: path.to_path_buf(),
            message: m,
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            perr(format!("{line}{}", one_line(e.message())))
        })?;
        let extends = match table.remove(EXTENDS_KEY) {
            None => None,
            Some(toml::Value::String(s)) if is_pipeline_name(&s) => Some(s),
            Some(v) => {
                return Err(perr(format!(
                    "`{EXTENDS_KEY}` must name a pipeline in the same folder (letters, digits, `-`, `_`), got {v}"
                )));
            }
        };
        let known = known_sections();
        for (k, v) in &table {
            if !known.contains(&k.as_str()) {
                return Err(perr(format!(
                    "unknown section [{k}] (expected one of: {})",
                    known.join(", ")
                )));
            }
            if !v.is_table() {
                return Err(perr(format!(
                    "`{k}` must be a section ([{k}]), not a value"
                )));
            }
        }
        let Some(name) = name_of(path) else {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            return Err(perr(format!(
                "the pipeline name `{stem}` (the file's name without `.toml`) is refused: {NAME_RULE}"
            )));
        };
        let mut parents = Vec::new();
        if let Some(parent) = extends {
            let ppath = path
                .parent()
                .unwrap_or(Path::new(""))
                .join(format!("{parent}.toml"));
            chain.push(path.to_path_buf());
            if chain.iter().any(|c| same_file(c, &ppath)) {
                let names: Vec<String> = chain
                    .iter()
                    .chain(std::iter::once(&ppath))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(perr(format!(
                    "`{EXTENDS_KEY}` cycle: {}",
                    names.join(" -> ")
                )));
            }
            let ptext = std::fs::read_to_string(&ppath).map_err(|e| {
                perr(format!(
                    "{EXTENDS_KEY} = \"{parent}\": {}: {e}",
                    ppath.display()
                ))
            })?;
            let base = Self::parse_chain(&ppath, &ptext, chain)?;
            table = merge(base.table, table);
            parents.push(ppath);
            parents.extend(base.parents);
        }
        Ok(PipelineFile {
            path: path.to_path_buf(),
            name,
            parents,
            table,
        })
    }

    /// This pipeline in miniature ([`crate::mini`]): named `<name>-mini`, its sizes, epochs,
    /// trials and time limits capped, its code paths kept.
    pub fn miniature(self) -> PipelineFile {
        PipelineFile {
            name: format!("{}{}", self.name, crate::mini::SUFFIX),
            table: crate::mini::shrink(self.table),
            ..self
        }
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.table.contains_key(section)
    }

    /// Deserialize one section (an absent section gives the type's defaults).
    pub fn section<T: DeserializeOwned>(&self, section: &str) -> Result<T> {
        debug_assert!(known_sections().contains(&section));
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

    /// The hash of one section as written (after `extends`; an absent section hashes as an
    /// empty table). A stage records it in its manifest so a downstream stage can tell that
    /// the section changed since the stage ran ([`crate::stage::Input::current`]).
    pub fn section_hash(&self, section: &str) -> String {
        let value = self
            .table
            .get(section)
            .cloned()
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        crate::hash::hash_bytes(canonical(&value).to_string().as_bytes())
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

/// The side preprocess gives the images (`[preprocess] size`, [`crate::IMAGE_SIDE`] when
/// absent): what train_cnn's networks and train_svm's HOG layout must fit, checked when their
/// sections are validated. A size that is not a positive integer is an error naming the key.
pub fn image_side(pf: &PipelineFile) -> Result<usize> {
    let pre: toml::Table = pf.section("preprocess")?;
    match pre.get("size") {
        None => Ok(crate::IMAGE_SIDE),
        Some(toml::Value::Integer(n)) if *n > 0 => Ok(*n as usize),
        Some(v) => Err(pf.param_error(
            "preprocess",
            "size",
            format!("{v} is not a positive number of pixels"),
        )),
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
