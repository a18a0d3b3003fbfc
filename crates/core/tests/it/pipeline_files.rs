//! The repository's own pipeline files: each loads (with `extends`), has a description, and
//! `make help` and the README's table (scripts/pipelines.sh) list every one with the
//! description the loader resolves; each also loads in miniature under its `-mini` name.

use fer_core::pipeline::PipelineFile;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pipeline_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "pipelines/ has {} files", files.len());
    files
}

fn script(arg: Option<&str>) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/pipelines.sh"));
    if let Some(a) = arg {
        c.arg(a);
    }
    c.output().expect("bash runs scripts/pipelines.sh")
}

#[test]
fn every_file_is_listed_with_the_description_the_loader_resolves() {
    let out = script(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\x1f').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect();
    let files = pipeline_files();
    assert_eq!(listed.len(), files.len(), "{listed:?}");
    for (file, (name, desc)) in files.iter().zip(&listed) {
        let pf = PipelineFile::load(file).unwrap();
        assert_eq!(&pf.name, name);
        let meta = pf.meta().unwrap();
        assert!(
            !meta.description.is_empty(),
            "{}: no description",
            file.display()
        );
        assert_eq!(&meta.description, desc, "{}", file.display());
        let mini = pf.miniature();
        assert_eq!(mini.name, format!("{name}-mini"));
        assert!(mini.meta().unwrap().description.ends_with("(in miniature)"));
    }
}

#[test]
fn the_readme_table_is_the_generated_one() {
    let out = script(Some("--check-readme"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
