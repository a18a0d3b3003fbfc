//! Pushing a stage's outputs to the store and pulling them into the local run cache.

use crate::error::CacheError;
use fer_core::atomic::unique_tag;
use fer_core::cache;
use fer_core::manifest::{MANIFEST_FILE, Manifest, output_path_problem, resolve_output};
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The store already had the entry (its manifest).
    Already,
    /// The entry was stored: its files, their bytes, and how many blobs were sent (a blob the
    /// store already had is not sent again).
    Stored {
        files: usize,
        bytes: u64,
        sent: usize,
    },
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// The local run cache already holds a good entry for the signature.
    Local,
    /// The store has no (complete) entry for it.
    Absent,
    /// The entry was downloaded, checked and put into the local run cache.
    Restored { files: usize, bytes: u64 },
    /// The store's entry failed its check (why) and was moved to the store's quarantine.
    Quarantined(String),
}

/// An open store.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    shown: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.shown)
    }
}

/// The largest file sent in one request, and the part size of a larger one's multipart upload
/// (S3 takes parts of 5 MiB to 5 GiB).
pub const PART_BYTES: usize = 16 << 20;

/// A blob's key: `blobs/<h[..2]>/<h>`.
pub fn blob_key(hash: &str) -> Key {
    Key::from(format!("blobs/{}/{hash}", &hash[..2.min(hash.len())]))
}

/// An entry's manifest key: `entries/<stage>/<signature>/manifest.json`.
pub fn manifest_key(stage: &str, sig: &str) -> Key {
    Key::from(format!("entries/{stage}/{sig}/{MANIFEST_FILE}"))
}

/// A signature or content hash as the stages write them: 64 lowercase hex digits.
fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A stage name as the graph spells them.
fn is_stage(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Remote {
    /// Open the store `url` names ([`crate::location::open`]).
    pub fn open(url: &str) -> Result<Self, CacheError> {
        let (store, shown) = crate::location::open(url)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| CacheError::Other(format!("cannot start the async runtime: {e}")))?;
        Ok(Self { store, shown, rt })
    }

    /// The URL, without secrets.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn store_err(&self, key: &Key) -> impl FnOnce(object_store::Error) -> CacheError + '_ {
        let key = key.to_string();
        move |source| CacheError::Store {
            url: self.shown.clone(),
            key,
            source,
        }
    }

    /// Does the store hold `key`?
    async fn exists(&self, key: &Key) -> Result<Option<u64>, CacheError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.store_err(key)(e)),
        }
    }

    /// Store the stage folder `dir` (its manifest and the outputs it lists): every blob
    /// first, the manifest last. The outputs are checked against the manifest's hashes before
    /// anything is sent; a folder that no longer matches its manifest is an error.
    pub fn push(&self, dir: &Path) -> Result<Pushed, CacheError> {
        let mpath = dir.join(MANIFEST_FILE);
        let m = Manifest::read(&mpath)?;
        if !is_stage(&m.stage) || !is_hash(&m.signature) {
            return Err(CacheError::Other(format!(
                "{}: stage `{}` / signature `{}` is not one a stage writes",
                mpath.display(),
                m.stage,
                m.signature
            )));
        }
        if let Some(why) = cache::first_bad_output(dir, &m) {
            return Err(CacheError::Other(format!(
                "{}: {why}: the folder no longer matches its manifest; not pushed (run the stage again)",
                dir.display()
            )));
        }
        let mkey = manifest_key(&m.stage, &m.signature);
        self.rt.block_on(async {
            if self.exists(&mkey).await?.is_some() {
                return Ok(Pushed::Already);
            }
            let (mut bytes, mut sent) = (0u64, 0usize);
            for o in &m.outputs {
                let key = blob_key(&o.hash);
                bytes += o.bytes;
                if self.exists(&key).await? == Some(o.bytes) {
                    continue;
                }
                let p = resolve_output(dir, &o.path).map_err(CacheError::Other)?;
                self.upload(&key, &p, o.bytes, &o.hash).await?;
                sent += 1;
            }
            let text = std::fs::read(&mpath).map_err(io(&mpath))?;
            self.store
                .put(&mkey, PutPayload::from(text))
                .await
                .map_err(self.store_err(&mkey))?;
            Ok(Pushed::Stored {
                files: m.outputs.len(),
                bytes,
                sent,
            })
        })
    }

    /// Send the file `p` as blob `key`, hashed as it is read (the bytes sent are the bytes
    /// hashed: a file changed since the check is refused). A file up to [`PART_BYTES`] goes
    /// in one request; a larger one (the full protocol's tensors are hundreds of megabytes) as
    /// a multipart upload of parts that size, never all in memory, aborted if the hash fails.
    async fn upload(&self, key: &Key, p: &Path, bytes: u64, hash: &str) -> Result<(), CacheError> {
        use std::io::Read;
        let changed = || CacheError::Other(format!("{}: changed while being pushed", p.display()));
        if bytes <= PART_BYTES as u64 {
            let data = std::fs::read(p).map_err(io(p))?;
            if fer_core::hash::hash_bytes(&data) != hash {
                return Err(changed());
            }
            self.store
                .put(key, PutPayload::from(data))
                .await
                .map_err(self.store_err(key))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(self.store_err(key))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut f = std::fs::File::open(p).map_err(io(p))?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(io(p)(e));
                }
            };
            h.update(&buf[..n]);
            if let Err(e) = w.wait_for_capacity(2).await {
                let _ = w.abort().await;
                return Err(self.store_err(key)(e));
            }
            w.write(&buf[..n]);
        }
        if h.finalize().to_hex().as_str() != hash {
            let _ = w.abort().await;
            return Err(changed());
        }
        w.finish().await.map_err(self.store_err(key))?;
        Ok(())
    }

    /// Bring the entry for (`stage`, `sig`) into the local run cache at `root`
    /// (`<root>/<stage>/<sig>/`), unless a good one is there. Every blob is checked against
    /// the manifest's size and hash as it is written; an entry that fails is quarantined in the
    /// store and nothing is installed. A bad local entry is quarantined locally first, as the
    /// stage binary would.
    pub fn pull(&self, stage: &str, sig: &str, root: &Path) -> Result<Pulled, CacheError> {
        if !is_stage(stage) || !is_hash(sig) {
            return Err(CacheError::Other(format!(
                "stage `{stage}` / signature `{sig}` is not one a stage writes"
            )));
        }
        let sdir = root.join(stage);
        let cdir = sdir.join(sig);
        match cache::check(&cdir, sig) {
            cache::Entry::Good(_) => return Ok(Pulled::Local),
            cache::Entry::Absent => {}
            cache::Entry::Bad(why) => {
                let q = cache::quarantine(root, stage, &cdir)?;
                eprintln!(
                    "fer-cache: warning: local run cache entry {} is bad ({why}): moved to {}",
                    cdir.display(),
                    q.display()
                );
            }
        }
        let mkey = manifest_key(stage, sig);
        self.rt.block_on(async {
            let text = match self.store.get(&mkey).await {
                Ok(r) => r.bytes().await.map_err(self.store_err(&mkey))?,
                Err(e) if is_not_found(&e) => return Ok(Pulled::Absent),
                Err(e) => return Err(self.store_err(&mkey)(e)),
            };
            let m: Manifest = match serde_json::from_slice(&text) {
                Ok(m) => m,
                Err(e) => {
                    return self
                        .quarantine(stage, sig, None, format!("manifest: {e}"))
                        .await;
                }
            };
            if m.signature != sig || m.stage != stage {
                let why = format!("manifest is of {}/{}", m.stage, m.signature);
                return self.quarantine(stage, sig, None, why).await;
            }
            if let Some((o, p)) = m
                .outputs
                .iter()
                .find_map(|o| output_path_problem(&o.path).map(|p| (o, p)))
            {
                let why = format!("output path `{}` {p}", o.path);
                return self.quarantine(stage, sig, None, why).await;
            }
            if let Some(o) = m.outputs.iter().find(|o| !is_hash(&o.hash)) {
                let why = format!("{}: `{}` is not a hash", o.path, o.hash);
                return self.quarantine(stage, sig, None, why).await;
            }
            std::fs::create_dir_all(&sdir).map_err(io(&sdir))?;
            cache::remove_stale_tmp(&sdir, cache::cache_tmp);
            let tmp = sdir.join(cache::cache_tmp_name(sig));
            let _ = std::fs::remove_dir_all(&tmp);
            let got = self.download(&m, &tmp).await;
            let bad = match got {
                Ok(None) => None,
                Ok(Some(bad)) => Some(bad),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
            };
            if let Some((hash, why)) = bad {
                let _ = std::fs::remove_dir_all(&tmp);
                return self.quarantine(stage, sig, Some(&hash), why).await;
            }
            let mp = tmp.join(MANIFEST_FILE);
            std::fs::write(&mp, &text).map_err(io(&mp))?;
            if let Err(e) = std::fs::rename(&tmp, &cdir) {
                let _ = std::fs::remove_dir_all(&tmp);
                // Another process installed it meanwhile: theirs is as good.
                if matches!(cache::check(&cdir, sig), cache::Entry::Good(_)) {
                    return Ok(Pulled::Local);
                }
                return Err(io(&cdir)(e));
            }
            Ok(Pulled::Restored {
                files: m.outputs.len(),
                bytes: m.outputs.iter().map(|o| o.bytes).sum(),
            })
        })
    }

    /// Download every output of `m` into `tmp`, hashing as it writes. `Some((hash, why))`
    /// for the first blob that is missing or not what the manifest says.
    async fn download(
        &self,
        m: &Manifest,
        tmp: &Path,
    ) -> Result<Option<(String, String)>, CacheError> {
        for o in &m.outputs {
            let key = blob_key(&o.hash);
            let dst = tmp.join(&o.path);
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            let mut stream = match self.store.get(&key).await {
                Ok(r) => r.into_stream(),
                Err(e) if is_not_found(&e) => {
                    return Ok(Some((
                        o.hash.clone(),
                        format!("{}: its blob is missing", o.path),
                    )));
                }
                Err(e) => return Err(self.store_err(&key)(e)),
            };
            let mut f = std::io::BufWriter::new(std::fs::File::create(&dst).map_err(io(&dst))?);
            let mut h = blake3::Hasher::new();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(self.store_err(&key))?;
                n += chunk.len() as u64;
                if n > o.bytes {
                    break;
                }
                h.update(&chunk);
                f.write_all(&chunk).map_err(io(&dst))?;
            }
            f.flush().map_err(io(&dst))?;
            if n != o.bytes {
                let why = format!(
                    "{}: {n}{} bytes, {} recorded",
                    o.path,
                    if n > o.bytes { "+" } else { "" },
                    o.bytes
                );
                return Ok(Some((o.hash.clone(), why)));
            }
            if h.finalize().to_hex().as_str() != o.hash {
                return Ok(Some((
                    o.hash.clone(),
                    format!("{}: content differs from its hash", o.path),
                )));
            }
        }
        Ok(None)
    }

    /// Move the entry's manifest (and the bad blob, if one) into
    /// `quarantine/<stage>-<sig[..12]>-<unix time>-<tag>/` (short keys: some S3-compatible
    /// servers keep a file per key, whose name must fit), and say so. What cannot be copied
    /// there is deleted all the same: taking the entry out of use is what matters.
    async fn quarantine(
        &self,
        stage: &str,
        sig: &str,
        blob: Option<&str>,
        why: String,
    ) -> Result<Pulled, CacheError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let q = format!("quarantine/{stage}-{}-{secs}-{}", &sig[..12], unique_tag());
        let mut lost = Vec::new();
        let mkey = manifest_key(stage, sig);
        if !self
            .move_aside(&mkey, &Key::from(format!("{q}/{MANIFEST_FILE}")))
            .await?
        {
            lost.push(MANIFEST_FILE.to_string());
        }
        if let Some(h) = blob {
            let to = Key::from(format!("{q}/{}.blob", &h[..16.min(h.len())]));
            if !self.move_aside(&blob_key(h), &to).await? {
                lost.push(format!("blob {h}"));
            }
        }
        let kept = if lost.is_empty() {
            String::new()
        } else {
            format!(" (could not keep a copy of {}: deleted)", lost.join(", "))
        };
        eprintln!(
            "fer-cache: warning: {} entry {stage}/{} is bad ({why}): moved to {q}{kept}",
            self.shown,
            &sig[..12]
        );
        Ok(Pulled::Quarantined(why))
    }

    /// Rename `from` to `to`; when the copy fails, delete `from` anyway. `Ok(true)`: kept
    /// under `to` (or already gone); `Ok(false)`: deleted without a copy.
    async fn move_aside(&self, from: &Key, to: &Key) -> Result<bool, CacheError> {
        match self.store.rename(from, to).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(_) => {
                // A half-made copy is of no use.
                let _ = self.store.delete(to).await;
                match self.store.delete(from).await {
                    Ok(()) => Ok(false),
                    Err(e) if is_not_found(&e) => Ok(false),
                    Err(e) => Err(self.store_err(from)(e)),
                }
            }
        }
    }
}

/// Install the local run cache's good entry for (`stage`, `sig`) at `root` as the stage folder
/// `dir`, the way a stage's restore does: the outputs copied into a temporary folder beside it,
/// the manifest written last, then renamed into place. For a machine that runs a stage's
/// consumer without its producers (a tune worker elsewhere, given the preprocess signature).
pub fn install(root: &Path, stage: &str, sig: &str, dir: &Path) -> Result<(), CacheError> {
    let cdir = root.join(stage).join(sig);
    let m = match cache::check(&cdir, sig) {
        cache::Entry::Good(m) => m,
        cache::Entry::Absent => {
            return Err(CacheError::Other(format!(
                "{}: no entry for {stage}/{sig} in the local run cache (pull it first)",
                cdir.display()
            )));
        }
        cache::Entry::Bad(why) => {
            return Err(CacheError::Other(format!(
                "{}: bad entry: {why}",
                cdir.display()
            )));
        }
    };
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // The name a stage's own temporary folder has, so the next run removes it if left.
    let tmp = parent.join(cache::stage_tmp_name(&name));
    let _ = std::fs::remove_dir_all(&tmp);
    let copied = (|| {
        for o in &m.outputs {
            let src = resolve_output(&cdir, &o.path).map_err(CacheError::Other)?;
            let dst = tmp.join(&o.path);
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            std::fs::copy(&src, &dst).map_err(io(&dst))?;
        }
        let mp = cdir.join(MANIFEST_FILE);
        std::fs::copy(&mp, tmp.join(MANIFEST_FILE)).map_err(io(&mp))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))
    })();
    if copied.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    copied
}
