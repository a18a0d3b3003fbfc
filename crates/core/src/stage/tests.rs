//! The stage runner's tests: skip, restore, recompute, the run cache, upstream checks, status.

use super::*;
use crate::manifest::{MANIFEST_FILE, RunStatus};
use crate::pipeline::PipelineFile;
use std::time::SystemTime;

fn run(root: &Path, cache: &Path, param: i64) -> StageRun {
    StageRun {
        pipeline: "p".into(),
        stage: "s".into(),
        artifacts: root.to_path_buf(),
        code_version: "v1".into(),
        params: serde_json::json!({ "x": param }),
        inputs: vec![],
        cache: Some(cache.to_path_buf()),
        force: false,
        verbose: false,
        touch_on_skip: true,
        section_hash: None,
        cache_max_bytes: None,
        status_only: false,
    }
}

fn compute(counter: &std::cell::Cell<u32>) -> impl FnOnce(&Path) -> Result<Outputs> + '_ {
    move |dir: &Path| {
        counter.set(counter.get() + 1);
        std::fs::write(dir.join("out.txt"), b"hello").unwrap();
        let mut o = Outputs::default();
        o.file("out.txt");
        Ok(o)
    }
}

#[test]
fn skip_restore_and_recompute() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0);
    let m1 = run(root.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    assert_eq!((n.get(), m1.status), (1, RunStatus::Computed));
    // Same signature: skipped.
    let m2 = run(root.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    assert_eq!(n.get(), 1);
    assert_eq!(m2.signature, m1.signature);
    // A fresh artifacts folder with a warm cache: restored, not computed.
    let root2 = tempfile::tempdir().unwrap();
    let m3 = run(root2.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    assert_eq!((n.get(), m3.status), (1, RunStatus::Restored));
    assert_eq!(
        std::fs::read(root2.path().join("p/s/out.txt")).unwrap(),
        b"hello"
    );
    // Changed params: computed again.
    let m4 = run(root.path(), cache.path(), 2)
        .execute(compute(&n))
        .unwrap();
    assert_eq!((n.get(), m4.status), (2, RunStatus::Computed));
    assert_ne!(m4.signature, m1.signature);
    // A tampered output is noticed and recomputed... from the cache of params=2.
    std::fs::write(root.path().join("p/s/out.txt"), b"HELLO").unwrap();
    let m5 = run(root.path(), cache.path(), 2)
        .execute(compute(&n))
        .unwrap();
    assert_eq!(m5.status, RunStatus::Restored);
    assert_eq!(
        std::fs::read(root.path().join("p/s/out.txt")).unwrap(),
        b"hello"
    );
}

#[test]
fn failure_leaves_no_manifest() {
    let root = tempfile::tempdir().unwrap();
    let r = run(root.path(), root.path(), 1);
    let res: Result<Manifest> = r.execute(|dir| {
        std::fs::write(dir.join("half.txt"), b"x").unwrap();
        Err(Error::Other("boom".into()))
    });
    assert!(res.is_err());
    assert!(!root.path().join("p/s/manifest.json").exists());
    assert!(!root.path().join("p/.s.tmp").exists());
}

#[test]
fn missing_upstream_names_the_stage_to_run() {
    let root = tempfile::tempdir().unwrap();
    let err = Input::stage(root.path(), "seed", "ingest")
        .unwrap_err()
        .to_string();
    assert!(err.contains("make ingest PIPELINE=seed"), "{err}");
}

#[test]
fn a_corrupt_cache_entry_is_quarantined_recomputed_and_stored_afresh() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0);
    let m1 = run(root.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    let cdir = cache.path().join("s").join(&m1.signature);
    std::fs::write(cdir.join("out.txt"), b"jello").unwrap();
    // A fresh artifacts folder: the cache would be asked, finds the entry bad.
    let root2 = tempfile::tempdir().unwrap();
    let m2 = run(root2.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    assert_eq!((n.get(), m2.status), (2, RunStatus::Computed));
    let q: Vec<_> = std::fs::read_dir(cache.path().join(crate::cache::QUARANTINE))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(q.len(), 1);
    assert_eq!(
        std::fs::read(q[0].path().join("out.txt")).unwrap(),
        b"jello"
    );
    // The entry was stored afresh: the next fresh folder restores it.
    assert_eq!(std::fs::read(cdir.join("out.txt")).unwrap(), b"hello");
    let root3 = tempfile::tempdir().unwrap();
    let m3 = run(root3.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    assert_eq!((n.get(), m3.status), (2, RunStatus::Restored));
    // An unreadable manifest is bad too.
    std::fs::write(cdir.join(MANIFEST_FILE), b"{").unwrap();
    let root4 = tempfile::tempdir().unwrap();
    let m4 = run(root4.path(), cache.path(), 1)
        .execute(compute(&n))
        .unwrap();
    assert_eq!((n.get(), m4.status), (3, RunStatus::Computed));
}

#[test]
fn the_cache_is_pruned_to_its_bound_least_recently_used_first() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0);
    // Each entry holds out.txt (5 bytes) and its manifest (well under 2 KB).
    let mut sigs = Vec::new();
    for x in 1..=3 {
        let mut r = run(root.path(), cache.path(), x);
        r.cache_max_bytes = Some(1 << 20);
        sigs.push(r.execute(compute(&n)).unwrap().signature);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let size_of = |sig: &str| {
        let d = cache.path().join("s").join(sig);
        std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum::<u64>()
    };
    let one = size_of(&sigs[2]);
    // Room for two entries: storing a fourth drops the least recently used (params 1).
    let mut r = run(root.path(), cache.path(), 4);
    r.cache_max_bytes = Some(2 * one + one / 2);
    let s4 = r.execute(compute(&n)).unwrap().signature;
    let left: Vec<bool> = sigs
        .iter()
        .chain([&s4])
        .map(|s| cache.path().join("s").join(s).exists())
        .collect();
    assert_eq!(left, [false, false, true, true]);
}

#[test]
fn temporaries_of_a_killed_run_are_removed_and_skips_can_keep_the_mtime() {
    let root = tempfile::tempdir().unwrap();
    let leftover = root.path().join("p").join(".s.tmp.4294967");
    std::fs::create_dir_all(&leftover).unwrap();
    let n = std::cell::Cell::new(0);
    let mut r = run(root.path(), root.path(), 1);
    r.cache = None;
    r.execute(compute(&n)).unwrap();
    assert!(!leftover.exists());
    let mpath = root.path().join("p/s").join(MANIFEST_FILE);
    let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::options()
        .append(true)
        .open(&mpath)
        .unwrap()
        .set_modified(old)
        .unwrap();
    r.touch_on_skip = false;
    r.execute(compute(&n)).unwrap();
    assert_eq!(std::fs::metadata(&mpath).unwrap().modified().unwrap(), old);
    r.touch_on_skip = true;
    r.execute(compute(&n)).unwrap();
    assert!(std::fs::metadata(&mpath).unwrap().modified().unwrap() > old);
    assert_eq!(n.get(), 1);
}

#[test]
fn an_upstream_made_with_another_section_or_code_is_named_for_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let pfile = dir.path().join("p.toml");
    std::fs::write(&pfile, "[stats]\nseed = 1\n").unwrap();
    let pf = PipelineFile::load(&pfile).unwrap();
    let artifacts = dir.path().join("artifacts");
    let n = std::cell::Cell::new(0);
    let mut r = run(&artifacts, dir.path(), 1);
    r.cache = None;
    r.stage = "stats".into();
    r.section_hash = Some(pf.section_hash("stats"));
    r.execute(compute(&n)).unwrap();
    let versions = "ingest=x;stats=v1";
    assert!(Input::current(&artifacts, &pf, "stats", versions).is_ok());
    // Other code.
    let err = Input::current(&artifacts, &pf, "stats", "stats=v2")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other code") && err.contains("make stats PIPELINE=p"),
        "{err}"
    );
    // The same section in another key order and layout: still current.
    std::fs::write(&pfile, "[stats]\n# a comment\nseed = 1\n").unwrap();
    let pf = PipelineFile::load(&pfile).unwrap();
    assert!(Input::current(&artifacts, &pf, "stats", versions).is_ok());
    // An edited section.
    std::fs::write(&pfile, "[stats]\nseed = 2\n").unwrap();
    let pf = PipelineFile::load(&pfile).unwrap();
    let err = Input::current(&artifacts, &pf, "stats", versions)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[stats]") && err.contains("changed since it ran"),
        "{err}"
    );
    assert!(err.contains("make stats PIPELINE=p"), "{err}");
    // Rerunning the stage (up to date, same params) records the new section.
    r.section_hash = Some(pf.section_hash("stats"));
    r.execute(compute(&n)).unwrap();
    assert_eq!(n.get(), 1);
    assert!(Input::current(&artifacts, &pf, "stats", versions).is_ok());
}

#[test]
fn status_names_what_changed_and_computes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0);
    let mut r = run(root.path(), root.path(), 1);
    r.cache = None;
    r.status_only = true;
    let never = r.execute(compute(&n)).unwrap_err().to_string();
    assert!(never.contains("has not run"), "{never}");
    r.status_only = false;
    r.execute(compute(&n)).unwrap();
    r.status_only = true;
    assert!(r.execute(compute(&n)).is_ok(), "up to date");
    let mut edited = r.clone();
    edited.params = serde_json::json!({ "x": 2 });
    edited.code_version = "v2".into();
    let why = edited.execute(compute(&n)).unwrap_err().to_string();
    assert!(why.contains("[s] changed: x"), "{why}");
    assert!(
        why.contains("code changed (code version v1 -> v2)"),
        "{why}"
    );
    assert_eq!(n.get(), 1, "status computes nothing");
    assert_eq!(
        changed_keys(
            &serde_json::json!({"a": 1, "b": {"c": 1, "d": 2}}),
            &serde_json::json!({"a": 1, "b": {"c": 3, "d": 2}, "e": true})
        ),
        ["b.c", "e"]
    );
    assert_eq!(
        changed_keys(
            &serde_json::json!({"models": [{"epochs": 4}, {"epochs": 4}]}),
            &serde_json::json!({"models": [{"epochs": 4}, {"epochs": 5}]})
        ),
        ["models[1].epochs"]
    );
}

/// `--force` clears every resume folder of the stage before a resumable run computes (a forced
/// run starts from scratch), even when that run then fails; without it, they are kept for the
/// next try.
#[test]
fn force_clears_the_resume_folders_first() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut r = run(root.path(), cache.path(), 1);
    let stale = root.path().join("p/.s.resume/0123456789abcdef/model");
    let fail = |_: &Path, resume: &Path| -> Result<Outputs> {
        Err(Error::Other(format!("failed with {}", resume.display())))
    };
    std::fs::create_dir_all(&stale).unwrap();
    assert!(r.execute_resumable(fail).is_err());
    assert!(
        stale.exists(),
        "a run without --force keeps the resume folders"
    );
    r.force = true;
    assert!(r.execute_resumable(fail).is_err());
    assert!(
        !root.path().join("p/.s.resume").exists(),
        "--force cleared the resume folders before the run"
    );
}
