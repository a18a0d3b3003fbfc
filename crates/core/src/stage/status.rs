//! Why a stage would run (`--status`), and which params keys changed.

use super::StageRun;
use crate::cache;
use crate::error::Error;
use crate::manifest::{MANIFEST_FILE, Manifest};

/// The keys of two params objects whose values differ (nested keys joined by `.`, array
/// items of equal-length arrays as `[i]`), sorted.
pub fn changed_keys(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        &path,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            (serde_json::Value::Array(x), serde_json::Value::Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{prefix}[{i}]"), u, v, out);
                }
            }
            _ if a != b => out.push(if prefix.is_empty() {
                "(the whole section)".into()
            } else {
                prefix.to_string()
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

impl StageRun {
    /// Why the stage would run, by the same comparison [`StageRun::execute`] makes (`None`:
    /// up to date), like `dvc status`. Reasons, in order: no readable manifest; other code;
    /// other params (the keys of the stage's section that differ); other inputs (their
    /// names); an output changed or missing; and whether the run cache would restore it.
    pub fn status(&self, sig: &str) -> Option<String> {
        let dir = self.stage_dir();
        let m = match Manifest::read(&dir.join(MANIFEST_FILE)) {
            Ok(m) => m,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Some(self.with_cache_note(sig, "it has not run (no manifest.json)".into()));
            }
            Err(e) => {
                return Some(self.with_cache_note(sig, format!("its manifest is not usable: {e}")));
            }
        };
        let mut why: Vec<String> = Vec::new();
        if m.code_version != self.code_version {
            why.push(format!(
                "its code changed (code version {} -> {})",
                m.code_version, self.code_version
            ));
        }
        if m.params != self.params {
            why.push(format!(
                "[{}] changed: {}",
                self.stage,
                changed_keys(&m.params, &self.params).join(", ")
            ));
        }
        let changed: Vec<&str> = self
            .inputs
            .iter()
            .filter(|i| {
                m.inputs
                    .iter()
                    .find(|o| o.name == i.name)
                    .is_none_or(|o| o.hash != i.hash)
            })
            .map(|i| i.name.as_str())
            .collect();
        if !changed.is_empty() {
            why.push(format!("its input changed: {}", changed.join(", ")));
        }
        if why.is_empty() && m.signature != sig {
            why.push("its signature differs".into());
        }
        if why.is_empty()
            && let Some(bad) = cache::first_bad_output(&dir, &m)
        {
            why.push(format!("an output changed: {bad}"));
        }
        if self.force {
            why.push("--force".into());
        }
        (!why.is_empty()).then(|| self.with_cache_note(sig, why.join("; ")))
    }

    fn with_cache_note(&self, sig: &str, why: String) -> String {
        let hit = self.cache.as_ref().is_some_and(|root| {
            matches!(
                cache::check(&root.join(&self.stage).join(sig), sig),
                cache::Entry::Good(_)
            )
        });
        if hit {
            format!("{why} (the run cache holds the result: it would be restored)")
        } else {
            why
        }
    }
}
