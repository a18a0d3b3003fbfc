//! The inputs of a batch: files, folders (recursive) and `-` (paths on stdin).

use std::io::BufRead;
use std::path::PathBuf;

/// One input: its name as written in the output and its path, or why it cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub path: Result<PathBuf, String>,
}

/// Extensions picked up inside folders (case-insensitive).
pub const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

fn is_image(p: &std::path::Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Expand the arguments in order: a file is taken as is (whatever its extension), a folder
/// gives its images recursively in sorted order, `-` reads one path per line from `stdin`
/// (blank lines skipped; a folder there is expanded too). A missing path or unreadable folder
/// entry becomes an item with its error, so it turns into an error row.
pub fn expand(args: &[String], stdin: &mut dyn BufRead) -> Vec<Item> {
    let mut out = Vec::new();
    for a in args {
        if a == "-" {
            for line in stdin.lines() {
                match line {
                    Ok(l) if l.trim().is_empty() => {}
                    Ok(l) => one(l.trim_end_matches(['\r', '\n']), &mut out),
                    Err(e) => out.push(Item {
                        name: "-".into(),
                        path: Err(format!("cannot read stdin: {e}")),
                    }),
                }
            }
        } else {
            one(a, &mut out);
        }
    }
    out
}

fn one(a: &str, out: &mut Vec<Item>) {
    let p = PathBuf::from(a);
    if p.is_dir() {
        for e in walkdir::WalkDir::new(&p)
            .follow_links(true)
            .sort_by_file_name()
        {
            match e {
                Ok(e) if e.file_type().is_file() && is_image(e.path()) => out.push(Item {
                    name: e.path().display().to_string(),
                    path: Ok(e.into_path()),
                }),
                Ok(_) => {}
                Err(err) => out.push(Item {
                    name: err
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| a.to_string()),
                    path: Err(err.to_string()),
                }),
            }
        }
    } else if p.exists() {
        out.push(Item {
            name: a.to_string(),
            path: Ok(p),
        });
    } else {
        out.push(Item {
            name: a.to_string(),
            path: Err("no such file or folder".into()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_recurse_and_missing_paths_become_errors() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        for f in ["a/x.JPG", "a/b/y.png", "a/b/notes.txt", "z.jpeg"] {
            std::fs::write(d.path().join(f), b"").unwrap();
        }
        let root = d.path().display().to_string();
        let list = format!("{root}/z.jpeg\n\n{root}/nope.png\n");
        let items = expand(
            &[format!("{root}/a"), "-".into()],
            &mut std::io::Cursor::new(list),
        );
        let names: Vec<String> = items.iter().map(|i| i.name.replace(&root, "")).collect();
        assert_eq!(names, ["/a/b/y.png", "/a/x.JPG", "/z.jpeg", "/nope.png"]);
        assert!(items[..3].iter().all(|i| i.path.is_ok()));
        assert!(items[3].path.is_err());
    }
}
