//! The pipeline side of a shared or restored run cache (issue 27, item 9): output paths stay
//! inside their stage folder (a manifest with one that leaves it is not current, a run cache
//! entry with one is quarantined, an upstream with one is an error naming the file and the
//! path); temporary names are unique, created exclusively and carry the host, and a leftover of
//! another host is kept for a day; pipeline names are plain words.

use fer_core::atomic::{self, TempOwner};
use fer_core::cache::{self, QUARANTINE};
use fer_core::manifest::{MANIFEST_FILE, Manifest, RunStatus, output_path_problem};
use fer_core::pipeline::{self, PipelineFile};
use fer_core::stage::{Input, Outputs, StageRun};
use fer_core::{Error, Result};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn run(artifacts: &Path, cache: Option<&Path>) -> StageRun {
    StageRun {
        pipeline: "p".into(),
        stage: "s".into(),
        artifacts: artifacts.to_path_buf(),
        code_version: "v1".into(),
        params: serde_json::json!({ "x": 1 }),
        inputs: vec![],
        cache: cache.map(Path::to_path_buf),
        force: false,
        verbose: false,
        touch_on_skip: true,
        section_hash: None,
        cache_max_bytes: None,
        status_only: false,
    }
}

/// Writes `out.txt` = `hello` and counts its calls.
fn compute(n: &Cell<u32>) -> impl FnOnce(&Path) -> Result<Outputs> + '_ {
    move |dir: &Path| {
        n.set(n.get() + 1);
        std::fs::write(dir.join("out.txt"), b"hello").map_err(|e| Error::io(dir, e))?;
        let mut o = Outputs::default();
        o.file("out.txt");
        Ok(o)
    }
}

/// Set the path of the manifest's only output to `rel` (leaving its hash and size).
fn set_output_path(mpath: &Path, rel: &str) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mpath).unwrap()).unwrap();
    v["outputs"][0]["path"] = rel.into();
    std::fs::write(mpath, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn quarantined(cache: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache.join(QUARANTINE)) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn output_paths_must_stay_inside_by_their_words() {
    for ok in ["out.txt", "best/model.safetensors", "./a/b.json"] {
        assert_eq!(output_path_problem(ok), None, "{ok}");
    }
    for (bad, why) in [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("\\x", "absolute"),
        ("C:/x", "absolute"),
        ("../x", "`..`"),
        ("a/../../x", "`..`"),
        ("a\\..\\x", "`..`"),
        ("..", "`..`"),
    ] {
        let p = output_path_problem(bad);
        assert!(p.is_some_and(|p| p.contains(why)), "{bad}: {p:?}");
    }
    // Manifest::read refuses one, naming the file and the path.
    let d = tempfile::tempdir().unwrap();
    let n = Cell::new(0);
    run(d.path(), None).execute(compute(&n)).unwrap();
    let mpath = d.path().join("p/s").join(MANIFEST_FILE);
    set_output_path(&mpath, "../../escaped.txt");
    let e = Manifest::read(&mpath).unwrap_err();
    assert!(matches!(e, Error::UnsafePath { .. }), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains(&mpath.display().to_string()) && e.contains("`../../escaped.txt`"),
        "{e}"
    );
}

#[test]
fn a_stage_manifest_whose_output_leaves_the_folder_is_not_current() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside.txt");
    std::fs::write(&outside, b"hello").unwrap();
    let n = Cell::new(0);
    let m = run(d.path(), None).execute(compute(&n)).unwrap();
    assert_eq!(n.get(), 1);
    let dir = d.path().join("p/s");
    let mpath = dir.join(MANIFEST_FILE);

    // `..` to a file with the recorded content: recomputed, not taken as current.
    set_output_path(&mpath, "../../outside.txt");
    let again = run(d.path(), None).execute(compute(&n)).unwrap();
    assert_eq!((n.get(), again.status), (2, RunStatus::Computed));
    assert_eq!(again.outputs[0].path, "out.txt");
    assert_eq!(std::fs::read(&outside).unwrap(), b"hello", "never written");

    // An absolute path: the same.
    set_output_path(&mpath, &outside.display().to_string());
    run(d.path(), None).execute(compute(&n)).unwrap();
    assert_eq!(n.get(), 3);

    // The output replaced by a symbolic link to outside, with the recorded content: the old
    // runner hashed through it and skipped; now it is not current.
    #[cfg(unix)]
    {
        std::fs::remove_file(dir.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("out.txt")).unwrap();
        let st = run(d.path(), None);
        assert!(
            st.status(&m.signature)
                .is_some_and(|why| why.contains("symbolic link")),
            "status names the link"
        );
        st.execute(compute(&n)).unwrap();
        assert_eq!(n.get(), 4);
        assert!(
            !std::fs::symlink_metadata(dir.join("out.txt"))
                .unwrap()
                .is_symlink()
        );
        // A link that stays inside the folder is fine.
        std::fs::rename(dir.join("out.txt"), dir.join("real.txt")).unwrap();
        std::os::unix::fs::symlink("real.txt", dir.join("out.txt")).unwrap();
        run(d.path(), None).execute(compute(&n)).unwrap();
        assert_eq!(n.get(), 4, "a link inside the folder is up to date");
    }
}

/// A way to spoil a run cache entry (its folder).
type Spoil<'a> = Box<dyn Fn(&Path) + 'a>;

#[test]
fn a_cache_entry_whose_output_leaves_the_folder_is_quarantined() {
    let cache = tempfile::tempdir().unwrap();
    let victim = cache.path().join("victim.txt");
    std::fs::write(&victim, b"hello").unwrap();
    let n = Cell::new(0);
    let a = tempfile::tempdir().unwrap();
    let m = run(a.path(), Some(cache.path()))
        .execute(compute(&n))
        .unwrap();
    let cdir = cache.path().join("s").join(&m.signature);
    assert!(cdir.join(MANIFEST_FILE).exists(), "stored");

    let cases: Vec<(&str, Spoil)> = vec![
        (
            "`..`",
            Box::new(|c: &Path| set_output_path(&c.join(MANIFEST_FILE), "../../victim.txt")),
        ),
        (
            "absolute",
            Box::new(|c: &Path| {
                set_output_path(&c.join(MANIFEST_FILE), &victim.display().to_string())
            }),
        ),
        #[cfg(unix)]
        (
            "symbolic link",
            Box::new(|c: &Path| {
                std::fs::remove_file(c.join("out.txt")).unwrap();
                std::os::unix::fs::symlink(&victim, c.join("out.txt")).unwrap();
            }),
        ),
    ];
    for (i, (what, spoil)) in cases.iter().enumerate() {
        spoil(&cdir);
        let fresh = tempfile::tempdir().unwrap();
        let before = n.get();
        let got = run(fresh.path(), Some(cache.path()))
            .execute(compute(&n))
            .unwrap();
        assert_eq!(
            (n.get(), got.status),
            (before + 1, RunStatus::Computed),
            "{what}: recomputed, not restored"
        );
        assert_eq!(
            quarantined(cache.path()).len(),
            i + 1,
            "{what}: quarantined"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"hello", "{what}");
        // Stored afresh: the next fresh folder restores a good entry.
        let next = tempfile::tempdir().unwrap();
        let r = run(next.path(), Some(cache.path()))
            .execute(compute(&n))
            .unwrap();
        assert_eq!(r.status, RunStatus::Restored, "{what}");
        assert!(
            !std::fs::symlink_metadata(next.path().join("p/s/out.txt"))
                .unwrap()
                .is_symlink()
        );
    }
    // The check itself says why.
    set_output_path(&cdir.join(MANIFEST_FILE), "../x");
    match cache::check(&cdir, &m.signature) {
        cache::Entry::Bad(why) => assert!(why.contains("`../x`"), "{why}"),
        other => panic!("expected a bad entry, got {other:?}"),
    }
}

#[test]
fn an_upstream_whose_output_leaves_the_folder_is_an_error_naming_file_and_path() {
    let d = tempfile::tempdir().unwrap();
    let n = Cell::new(0);
    run(d.path(), None).execute(compute(&n)).unwrap();
    assert!(Input::stage(d.path(), "p", "s").is_ok());
    let mpath = d.path().join("p/s").join(MANIFEST_FILE);
    set_output_path(&mpath, "../../../etc/passwd");
    let e = Input::stage(d.path(), "p", "s").unwrap_err().to_string();
    assert!(
        e.contains(&mpath.display().to_string()) && e.contains("`../../../etc/passwd`"),
        "{e}"
    );
    #[cfg(unix)]
    {
        let outside = d.path().join("outside.txt");
        std::fs::write(&outside, b"hello").unwrap();
        set_output_path(&mpath, "link/out.txt");
        std::os::unix::fs::symlink(d.path(), d.path().join("p/s/link")).unwrap();
        std::fs::write(d.path().join("out.txt"), b"hello").unwrap();
        let e = Input::stage(d.path(), "p", "s").unwrap_err().to_string();
        assert!(
            e.contains("`link/out.txt`") && e.contains("symbolic link") && e.contains("make s"),
            "{e}"
        );
    }
}

#[test]
fn temporary_names_are_unique_and_carry_pid_and_host() {
    let p = Path::new("/some/dir/state.json");
    let a = atomic::temp_path(p);
    let b = atomic::temp_path(p);
    assert_ne!(a, b, "every call another name");
    assert_eq!(a.parent(), p.parent());
    let name = a.file_name().unwrap().to_string_lossy().to_string();
    let pid = std::process::id().to_string();
    assert!(
        name.starts_with(&format!(".state.json.tmp-{pid}."))
            && name.ends_with(&format!("@{}", atomic::host_name())),
        "{name}"
    );
    assert!(atomic::is_temp(&name));
    assert_eq!(
        atomic::temp_owner(&name),
        Some(TempOwner {
            pid: Some(std::process::id()),
            host: Some(atomic::host_name().to_string())
        })
    );
    assert!(atomic::temp_owner(&name).unwrap().is_this_process());
    // Older names are still recognised (no host: taken as this host's).
    assert!(atomic::is_temp(".state.json.tmp-4242"));
    assert_eq!(
        atomic::temp_owner(".state.json.tmp-4242"),
        Some(TempOwner {
            pid: Some(4242),
            host: None
        })
    );
    // A file name holding `@` or the marker itself.
    assert_eq!(
        atomic::temp_owner(".a@b.tmp-x.tmp-7.1.ff@host-1.example"),
        Some(TempOwner {
            pid: Some(7),
            host: Some("host-1.example".into())
        })
    );
    assert_eq!(atomic::temp_owner("state.json"), None);
    // Host names are made safe for a file name.
    assert_eq!(atomic::sanitize_host(" a/b@c\n"), "a_b_c");
    assert_eq!(atomic::sanitize_host(""), "unknown-host");
    assert!(!atomic::host_name().is_empty());
    // The folder temporaries too.
    let st = cache::stage_tmp_name("ingest");
    assert_eq!(
        cache::stage_tmp("ingest", &st),
        Some(TempOwner {
            pid: Some(std::process::id()),
            host: Some(atomic::host_name().to_string())
        })
    );
    let ct = cache::cache_tmp_name("abc");
    assert_eq!(
        cache::cache_tmp(&ct).map(|o| o.is_this_process()),
        Some(true)
    );
    assert_eq!(
        cache::cache_tmp("abc.tmp9@x.tmp3"),
        Some(TempOwner {
            pid: Some(9),
            host: Some("x.tmp3".into())
        })
    );
}

#[cfg(unix)]
#[test]
fn atomic_writes_replace_a_symbolic_link_and_never_write_through_it() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside.txt");
    std::fs::write(&outside, b"keep").unwrap();
    let dir = d.path().join("w");
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("state.json");
    std::os::unix::fs::symlink(&outside, &target).unwrap();
    atomic::write(&target, b"new").unwrap();
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
    assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    // A writer that only takes a path and truncates it (burn's stores) still works; the
    // temporary it is given exists already, empty.
    atomic::write_with(&target, |tmp| -> Result<()> {
        assert_eq!(std::fs::metadata(tmp).map(|m| m.len()).ok(), Some(0));
        std::fs::write(tmp, b"filled").map_err(|e| Error::io(tmp, e))
    })
    .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"filled");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["state.json"], "no temporary left");
}

/// Set a file's or folder's modification time to `age` ago.
fn age(path: &Path, age: Duration) {
    std::fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn another_hosts_temporaries_are_kept_for_a_day_this_hosts_by_pid() {
    let d = tempfile::tempdir().unwrap();
    let here = atomic::host_name();
    // A pid far above any pid_max (never alive here), and pid 1 (always alive here).
    let dead = 4294967u32;
    let other = format!("not-{here}");
    let files = [
        format!(".state.json.tmp-{dead}.0.ab@{other}"),
        format!(".state.json.tmp-{dead}.0.ab@{here}"),
        format!(".state.json.tmp-1.0.ab@{here}"),
        format!(".state.json.tmp-{dead}"),
    ];
    for f in &files {
        std::fs::write(d.path().join(f), b"torn").unwrap();
    }
    let dirs = [
        format!(".s.tmp.{dead}@{other}"),
        format!(".s.tmp.{dead}@{here}"),
        format!(".s.tmp.1@{here}"),
        format!(".s.tmp.{dead}"),
    ];
    for f in &dirs {
        std::fs::create_dir_all(d.path().join(f)).unwrap();
    }
    atomic::remove_temps(d.path()).unwrap();
    let removed = cache::remove_stale_tmp(d.path(), |n| cache::stage_tmp("s", n));
    assert_eq!(removed, 2);
    let left = |names: &[String]| -> Vec<bool> {
        names.iter().map(|n| d.path().join(n).exists()).collect()
    };
    // Another host's (its pid means nothing here) and a live one's stay; dead ones go.
    assert_eq!(left(&files), [true, false, true, false]);
    assert_eq!(left(&dirs), [true, false, true, false]);
    // Over a day old, another host's go too (and a live pid by then is a reused one).
    for f in files.iter().chain(&dirs) {
        if d.path().join(f).exists() {
            age(&d.path().join(f), Duration::from_secs(25 * 3600));
        }
    }
    atomic::remove_temps(d.path()).unwrap();
    assert_eq!(
        cache::remove_stale_tmp(d.path(), |n| cache::stage_tmp("s", n)),
        2
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    // The rule itself.
    let o = TempOwner {
        pid: Some(dead),
        host: Some(other.clone()),
    };
    assert!(!o.is_stale(Some(Duration::from_secs(23 * 3600))));
    assert!(!o.is_stale(None));
    assert!(o.is_stale(Some(atomic::STALE_AGE + Duration::from_secs(1))));
    let mine = TempOwner {
        pid: Some(std::process::id()),
        host: Some(here.to_string()),
    };
    assert!(
        !mine.is_stale(Some(Duration::from_secs(48 * 3600))),
        "never this process's"
    );
}

#[test]
fn pipeline_names_are_plain_words() {
    let d = tempfile::tempdir().unwrap();
    for bad in ["...toml", ".hidden.toml", "a b.toml", "ä.toml", ".toml"] {
        let p = d.path().join(bad);
        let e = PipelineFile::parse(&p, "[ingest]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&p.display().to_string()) && e.contains(pipeline::NAME_RULE),
            "{bad}: {e}"
        );
    }
    for good in ["seed", "full-gpu", "seed_2", "X9"] {
        let p = d.path().join(format!("{good}.toml"));
        assert_eq!(PipelineFile::parse(&p, "").unwrap().name, good);
    }
    // The argument: a name is checked before it becomes a path.
    for bad in ["..", "", ".x", "a b"] {
        let e = pipeline::resolve_checked(bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("--pipeline `{bad}`")) && e.contains(pipeline::NAME_RULE),
            "{e}"
        );
    }
    assert_eq!(
        pipeline::resolve_checked("seed").unwrap(),
        Path::new("pipelines/seed.toml")
    );
    // Every pipeline the project ships passes.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut n = 0;
    for e in std::fs::read_dir(&shipped).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            assert!(pipeline::check_name(&name).is_ok(), "{name}");
            n += 1;
        }
    }
    assert!(n > 0, "no pipelines found in {}", shipped.display());
}
