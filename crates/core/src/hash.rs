//! blake3 hashing of bytes, files and folders (hex digests).

use crate::error::{IoContext, Result};
use std::path::{Path, PathBuf};

pub fn hash_bytes(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

/// Hash a file's contents.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let f = std::fs::File::open(path).at(path)?;
    h.update_reader(f).at(path)?;
    Ok(h.finalize().to_hex().to_string())
}

/// Every regular file under `root`, sorted, skipping hidden entries (names starting with `.`).
pub fn list_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(p).at(p)? {
            let e = e.at(p)?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            let ft = e.file_type().at(&path)?;
            if ft.is_dir() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    walk(root, &mut out)?;
    out.sort();
    Ok(out)
}

/// Hash of a folder's content: relative paths and contents of `files` (hashed in parallel).
pub fn hash_tree(root: &Path, files: &[PathBuf]) -> Result<String> {
    use rayon::prelude::*;
    let digests: Vec<[u8; 32]> = files
        .par_iter()
        .map(|f| Ok(*blake3::hash(&std::fs::read(f).at(f)?).as_bytes()))
        .collect::<Result<_>>()?;
    let mut h = blake3::Hasher::new();
    for (f, d) in files.iter().zip(&digests) {
        let rel = f.strip_prefix(root).unwrap_or(f);
        h.update(rel.to_string_lossy().replace('\\', "/").as_bytes());
        h.update(&[0]);
        h.update(d);
    }
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_hash_tracks_content_and_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("x")).unwrap();
        std::fs::write(d.path().join("x/a.txt"), b"1").unwrap();
        std::fs::write(d.path().join("b.txt"), b"2").unwrap();
        std::fs::write(d.path().join(".hidden"), b"3").unwrap();
        let files = list_files(d.path()).unwrap();
        assert_eq!(files.len(), 2);
        let h1 = hash_tree(d.path(), &files).unwrap();
        std::fs::write(d.path().join("b.txt"), b"3").unwrap();
        let h2 = hash_tree(d.path(), &files).unwrap();
        assert_ne!(h1, h2);
        assert_eq!(
            hash_file(&d.path().join("b.txt")).unwrap(),
            hash_bytes(b"3")
        );
    }
}
