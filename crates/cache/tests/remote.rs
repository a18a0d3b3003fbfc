//! The shared run cache against a store: a `file://` folder always (object_store's
//! `LocalFileSystem`, the same client code as S3 above the transport), and an S3-compatible
//! server when `FER_TEST_S3_URL` names one (`.ci/run` starts s3s-fs and sets it, with the
//! `AWS_*` variables; the binary must be built with `--features fer-cache/s3`).

use fer_cache::{Pulled, Pushed, Remote};
use fer_core::cache;
use fer_core::manifest::{MANIFEST_FILE, Manifest, OutputEntry, RunStatus};
use std::path::{Path, PathBuf};

/// A stage folder `dir` as a stage leaves it: two outputs (one in a subfolder) and the
/// manifest listing them. `salt` makes its signature and contents its own.
fn stage_folder(dir: &Path, salt: &str) -> Manifest {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let files = [
        ("table.parquet", format!("rows of {salt}").repeat(1000)),
        ("sub/weights.safetensors", format!("weights {salt}")),
    ];
    let mut outputs = Vec::new();
    for (rel, body) in &files {
        std::fs::write(dir.join(rel), body).unwrap();
        outputs.push(OutputEntry {
            path: rel.to_string(),
            hash: fer_core::hash::hash_bytes(body.as_bytes()),
            bytes: body.len() as u64,
            rows: None,
        });
    }
    let m = Manifest {
        stage: "stats".into(),
        pipeline: "ci".into(),
        signature: fer_core::hash::hash_bytes(salt.as_bytes()),
        code_version: "c".into(),
        params: serde_json::json!({"salt": salt}),
        inputs: Vec::new(),
        outputs,
        section_hash: None,
        summary: serde_json::json!({}),
        status: RunStatus::Computed,
        started: "2026-12-07T00:00:00Z".into(),
        duration_s: 1.0,
        computed_duration_s: 1.0,
        tool: "test".into(),
    };
    m.write(&dir.join(MANIFEST_FILE)).unwrap();
    m
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Every file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(root)
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(p) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

/// Push a folder, pull it into an empty local cache: the entry there is complete and good,
/// byte for byte what was pushed; a second push sends nothing, a second pull copies nothing.
fn round_trip(remote: &Remote, work: &Path) {
    let dir = work.join("artifacts/ci/stats");
    let m = stage_folder(&dir, &format!("round trip {}", remote.shown()));
    assert_eq!(
        remote.push(&dir).unwrap(),
        Pushed::Stored {
            files: 2,
            bytes: m.outputs.iter().map(|o| o.bytes).sum(),
            sent: 2
        }
    );
    assert_eq!(remote.push(&dir).unwrap(), Pushed::Already);
    let local = work.join("local-cache");
    let got = remote.pull("stats", &m.signature, &local).unwrap();
    assert!(matches!(got, Pulled::Restored { files: 2, .. }), "{got:?}");
    let cdir = local.join("stats").join(&m.signature);
    assert!(matches!(
        cache::check(&cdir, &m.signature),
        cache::Entry::Good(_)
    ));
    for o in &m.outputs {
        assert_eq!(
            std::fs::read(cdir.join(&o.path)).unwrap(),
            std::fs::read(dir.join(&o.path)).unwrap()
        );
    }
    assert_eq!(
        remote.pull("stats", &m.signature, &local).unwrap(),
        Pulled::Local
    );
    let other = fer_core::hash::hash_bytes(b"never pushed");
    assert_eq!(
        remote.pull("stats", &other, &local).unwrap(),
        Pulled::Absent
    );
}

#[test]
fn a_pushed_stage_is_pulled_whole_into_the_local_cache() {
    let t = tempfile::tempdir().unwrap();
    let remote = Remote::open(&file_url(&t.path().join("store"))).unwrap();
    round_trip(&remote, t.path());
    // Content-addressed: blobs named by their hash, the manifest under the signature.
    let stored = files(&t.path().join("store"));
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored.iter().filter(|p| p.starts_with("blobs")).count() == 2);
    assert!(
        stored
            .iter()
            .any(|p| p.starts_with("entries/stats") && p.ends_with(MANIFEST_FILE))
    );
}

#[test]
fn a_pulled_entry_installs_as_a_stage_folder_for_a_machine_without_its_producers() {
    let t = tempfile::tempdir().unwrap();
    let remote = Remote::open(&file_url(&t.path().join("store"))).unwrap();
    let dir = t.path().join("a/artifacts/ci/preprocess");
    let m = stage_folder(&dir, "worker elsewhere");
    remote.push(&dir).unwrap();
    let local = t.path().join("b/cache");
    let into = t.path().join("b/artifacts/ci/preprocess");
    let e = fer_cache::install(&local, "stats", &m.signature, &into).unwrap_err();
    assert!(e.to_string().contains("pull it first"), "{e}");
    remote.pull("stats", &m.signature, &local).unwrap();
    fer_cache::install(&local, "stats", &m.signature, &into).unwrap();
    let got = Manifest::read(&into.join(MANIFEST_FILE)).unwrap();
    assert_eq!(got.signature, m.signature);
    assert!(cache::first_bad_output(&into, &got).is_none());
    assert_eq!(files(&into), files(&dir));
    assert!(
        files(&t.path().join("b/artifacts/ci"))
            .iter()
            .all(|p| p.starts_with("preprocess"))
    );
}

/// A file larger than a part goes as a multipart upload and comes back whole.
fn big_round_trip(remote: &Remote, work: &Path) {
    let dir = work.join("big");
    let mut m = stage_folder(&dir, &format!("big {}", remote.shown()));
    // Two and a half parts, not all one byte.
    let body: Vec<u8> = (0..fer_cache::entry::PART_BYTES * 5 / 2)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(dir.join("tensors.safetensors"), &body).unwrap();
    m.outputs.push(OutputEntry {
        path: "tensors.safetensors".into(),
        hash: fer_core::hash::hash_bytes(&body),
        bytes: body.len() as u64,
        rows: None,
    });
    m.write(&dir.join(MANIFEST_FILE)).unwrap();
    let pushed = remote.push(&dir).unwrap();
    assert!(
        matches!(
            pushed,
            Pushed::Stored {
                files: 3,
                sent: 3,
                ..
            }
        ),
        "{pushed:?}"
    );
    let local = work.join("big-local");
    remote.pull("stats", &m.signature, &local).unwrap();
    let got = std::fs::read(
        local
            .join("stats")
            .join(&m.signature)
            .join("tensors.safetensors"),
    );
    assert!(got.unwrap() == body);
}

#[test]
fn a_file_larger_than_a_part_goes_as_a_multipart_upload_and_comes_back_whole() {
    let t = tempfile::tempdir().unwrap();
    let remote = Remote::open(&file_url(&t.path().join("store"))).unwrap();
    big_round_trip(&remote, t.path());
}

#[test]
fn an_entry_whose_upload_stopped_before_its_manifest_is_never_restored() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let remote = Remote::open(&file_url(&store)).unwrap();
    let dir = t.path().join("stats");
    let m = stage_folder(&dir, "cut short");
    remote.push(&dir).unwrap();
    // What a push killed after its blobs leaves: no manifest.
    let mkey = store.join(format!("entries/stats/{}/{MANIFEST_FILE}", m.signature));
    std::fs::remove_file(&mkey).unwrap();
    let local = t.path().join("local");
    assert_eq!(
        remote.pull("stats", &m.signature, &local).unwrap(),
        Pulled::Absent
    );
    assert!(!local.join("stats").join(&m.signature).exists());
    // The next push completes it (the blobs it already has are not sent again).
    assert_eq!(
        remote.push(&dir).unwrap(),
        Pushed::Stored {
            files: 2,
            bytes: m.outputs.iter().map(|o| o.bytes).sum(),
            sent: 0
        }
    );
    assert!(matches!(
        remote.pull("stats", &m.signature, &local).unwrap(),
        Pulled::Restored { .. }
    ));
}

#[test]
fn a_blob_that_does_not_match_its_hash_quarantines_the_entry_and_installs_nothing() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let remote = Remote::open(&file_url(&store)).unwrap();
    let dir = t.path().join("stats");
    let m = stage_folder(&dir, "tampered");
    remote.push(&dir).unwrap();
    let o = &m.outputs[0];
    let blob = store.join(format!("blobs/{}/{}", &o.hash[..2], o.hash));
    // Same size, other bytes: only the hash can tell.
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[7] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let local = t.path().join("local");
    let got = remote.pull("stats", &m.signature, &local).unwrap();
    match &got {
        Pulled::Quarantined(why) => assert!(why.contains("table.parquet"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(!local.join("stats").join(&m.signature).exists());
    assert!(
        files(&local.join("stats")).is_empty(),
        "no temporary left behind"
    );
    let q = files(&store.join("quarantine"));
    assert!(q.iter().any(|p| p.ends_with(MANIFEST_FILE)), "{q:?}");
    assert!(
        q.iter().any(|p| p
            .to_string_lossy()
            .ends_with(&format!("{}.blob", &o.hash[..16]))),
        "{q:?}"
    );
    assert!(!blob.exists());
    // Never read again; the next push stores it afresh, and that one restores.
    assert_eq!(
        remote.pull("stats", &m.signature, &local).unwrap(),
        Pulled::Absent
    );
    assert!(matches!(
        remote.push(&dir).unwrap(),
        Pushed::Stored { sent: 1, .. }
    ));
    assert!(matches!(
        remote.pull("stats", &m.signature, &local).unwrap(),
        Pulled::Restored { .. }
    ));
}

#[test]
fn a_manifest_that_leaves_its_folder_or_claims_another_signature_is_quarantined() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let remote = Remote::open(&file_url(&store)).unwrap();
    let local = t.path().join("local");
    for (salt, edit) in [
        (
            "escape",
            Box::new(|m: &mut Manifest| m.outputs[1].path = "../../etc/x".into())
                as Box<dyn Fn(&mut Manifest)>,
        ),
        (
            "other sig",
            Box::new(|m: &mut Manifest| m.signature = fer_core::hash::hash_bytes(b"x")),
        ),
    ] {
        let dir = t.path().join(salt);
        let m = stage_folder(&dir, salt);
        remote.push(&dir).unwrap();
        let mut bad = m.clone();
        edit(&mut bad);
        let mkey = store.join(format!("entries/stats/{}/{MANIFEST_FILE}", m.signature));
        std::fs::write(&mkey, bad.to_text()).unwrap();
        let got = remote.pull("stats", &m.signature, &local).unwrap();
        assert!(matches!(got, Pulled::Quarantined(_)), "{salt}: {got:?}");
        assert!(!mkey.exists());
        assert!(!t.path().join("etc").exists());
    }
}

#[test]
fn a_bad_local_entry_is_moved_aside_and_pulled_afresh() {
    let t = tempfile::tempdir().unwrap();
    let remote = Remote::open(&file_url(&t.path().join("store"))).unwrap();
    let dir = t.path().join("stats");
    let m = stage_folder(&dir, "local bad");
    remote.push(&dir).unwrap();
    let local = t.path().join("local");
    remote.pull("stats", &m.signature, &local).unwrap();
    let cdir = local.join("stats").join(&m.signature);
    std::fs::write(cdir.join("table.parquet"), "changed").unwrap();
    assert!(matches!(
        remote.pull("stats", &m.signature, &local).unwrap(),
        Pulled::Restored { .. }
    ));
    assert!(matches!(
        cache::check(&cdir, &m.signature),
        cache::Entry::Good(_)
    ));
    assert_eq!(files(&local.join(cache::QUARANTINE)).len(), 3);
}

#[test]
fn a_folder_that_no_longer_matches_its_manifest_is_not_pushed() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let remote = Remote::open(&file_url(&store)).unwrap();
    let dir = t.path().join("stats");
    stage_folder(&dir, "edited");
    std::fs::write(dir.join("sub/weights.safetensors"), "edited by hand").unwrap();
    let e = remote.push(&dir).unwrap_err().to_string();
    assert!(
        e.contains("sub/weights.safetensors") && e.contains("not pushed"),
        "{e}"
    );
    assert!(files(&store).is_empty());
    let e = Remote::open(&file_url(&store))
        .unwrap()
        .pull("stats", "not-a-hash", &t.path().join("l"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not-a-hash"), "{e}");
}

/// The same round trip against a real S3-compatible server (`.ci/run`: s3s-fs).
#[test]
fn round_trip_through_an_s3_server() {
    let Ok(url) = std::env::var("FER_TEST_S3_URL") else {
        eprintln!(
            "skipped: no S3 server (set FER_TEST_S3_URL=s3://bucket/prefix and AWS_ENDPOINT, AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; .ci/run does)"
        );
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let remote = Remote::open(&format!("{url}/{}", std::process::id())).unwrap();
    round_trip(&remote, t.path());
    big_round_trip(&remote, t.path());
}
