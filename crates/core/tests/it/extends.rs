//! `extends` in pipeline files: the merge rules, the name, and the errors.

use fer_core::pipeline::PipelineFile;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[derive(Debug, serde::Deserialize)]
struct Ingest {
    seed: u64,
    sizes: Sizes,
}
#[derive(Debug, serde::Deserialize)]
struct Sizes {
    train: u64,
    test: u64,
}
#[derive(Debug, serde::Deserialize)]
struct Augment {
    ops: Vec<Op>,
    widths: Vec<u64>,
}
#[derive(Debug, serde::Deserialize)]
struct Op {
    kind: String,
}

const BASE: &str = r#"
[pipeline]
description = "base"

[ingest]
seed = 1
sizes = { train = 10, test = 5 }

[augment]
widths = [1, 2, 3]

[[augment.ops]]
kind = "hflip"

[[augment.ops]]
kind = "rotate"
"#;

#[test]
fn tables_merge_key_by_key_and_arrays_replace() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base", BASE);
    let child = write(
        d.path(),
        "child",
        "extends = \"base\"\n[ingest.sizes]\ntest = 7\n[augment]\nwidths = [4]\n[[augment.ops]]\nkind = \"scale\"\n",
    );
    let pf = PipelineFile::load(&child).unwrap();
    assert_eq!(pf.name, "child");
    assert_eq!(pf.parents, vec![d.path().join("base.toml")]);
    let i: Ingest = pf.section("ingest").unwrap();
    assert_eq!((i.seed, i.sizes.train, i.sizes.test), (1, 10, 7));
    let a: Augment = pf.section("augment").unwrap();
    assert_eq!(a.widths, vec![4]);
    let kinds: Vec<&str> = a.ops.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, ["scale"]);
    assert_eq!(pf.meta().unwrap().description, "base");
}

#[test]
fn a_chain_of_parents_applies_nearest_last() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base", BASE);
    write(d.path(), "mid", "extends = \"base\"\n[ingest]\nseed = 2\n");
    let leaf = write(
        d.path(),
        "leaf",
        "extends = \"mid\"\n[ingest.sizes]\ntrain = 3\n",
    );
    let pf = PipelineFile::load(&leaf).unwrap();
    let i: Ingest = pf.section("ingest").unwrap();
    assert_eq!((i.seed, i.sizes.train, i.sizes.test), (2, 3, 5));
    assert_eq!(pf.parents.len(), 2);
}

#[test]
fn a_cycle_names_every_file_in_it() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a", "extends = \"b\"\n[stats]\nseed = 1\n");
    write(d.path(), "b", "extends = \"a\"\n");
    let e = PipelineFile::load(&a).unwrap_err().to_string();
    assert!(e.contains("`extends` cycle"), "{e}");
    assert!(e.contains("a.toml -> ") && e.contains("b.toml -> "), "{e}");
    let s = write(d.path(), "self", "extends = \"self\"\n");
    let e = PipelineFile::load(&s).unwrap_err().to_string();
    assert!(e.contains("self.toml: `extends` cycle"), "{e}");
}

#[test]
fn a_missing_or_malformed_parent_names_the_child() {
    let d = tempfile::tempdir().unwrap();
    let c = write(d.path(), "c", "extends = \"nope\"\n");
    let e = PipelineFile::load(&c).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: extends = \"nope\": ", c.display())),
        "{e}"
    );
    assert!(e.contains("nope.toml"), "{e}");
    let c = write(d.path(), "c2", "extends = \"../x\"\n");
    let e = PipelineFile::load(&c).unwrap_err().to_string();
    assert!(e.contains("`extends` must name a pipeline"), "{e}");
    let c = write(d.path(), "c3", "extends = 3\n");
    assert!(PipelineFile::load(&c).is_err());
    // A parent with an unknown section fails as itself.
    write(d.path(), "bad", "[nope]\n");
    let c = write(d.path(), "c4", "extends = \"bad\"\n");
    let e = PipelineFile::load(&c).unwrap_err().to_string();
    assert!(e.contains("bad.toml: unknown section [nope]"), "{e}");
}
