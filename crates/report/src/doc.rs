//! A small document model rendered twice: Markdown (`report.md`, images as relative links)
//! and one self-contained HTML file (`index.html`, images embedded as base64 data URIs), so
//! both always say the same thing.

use base64::Engine;
use std::fmt::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Info,
    Good,
    Warn,
    /// A section whose stage has not run.
    NotRun,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Level 2 or 3.
    Heading(u8, String),
    /// Text; `**bold**` and `` `code` `` are understood.
    Para(String),
    Callout(Tone, String),
    List(Vec<String>),
    /// Big numbers: (label, value, detail).
    Figures(Vec<(String, String, String)>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
        /// `true` = right-aligned (numbers).
        right: Vec<bool>,
    },
    /// A PNG in the report folder.
    Image {
        file: String,
        caption: String,
    },
    Pre(String),
}

#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub title: String,
    pub subtitle: String,
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn h2(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(2, s.into()));
    }
    pub fn h3(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(3, s.into()));
    }
    pub fn p(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Para(s.into()));
    }
    pub fn note(&mut self, tone: Tone, s: impl Into<String>) {
        self.blocks.push(Block::Callout(tone, s.into()));
    }
    pub fn not_run(&mut self, what: &str, target: &str, pipeline: &str) {
        self.note(
            Tone::NotRun,
            format!(
                "**Not run.** {what} needs stage `{target}`, which has not run for this pipeline (`make {target} PIPELINE={pipeline}`)."
            ),
        );
    }
    pub fn list(&mut self, items: Vec<String>) {
        self.blocks.push(Block::List(items));
    }
    /// A table; a column is right-aligned when most of its filled cells are numbers.
    pub fn table(&mut self, head: &[&str], rows: Vec<Vec<String>>) {
        let numeric = |c: &str| {
            c.trim_start_matches(['+', '-', '−'])
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit())
        };
        let right = (0..head.len())
            .map(|i| {
                let cells: Vec<&str> = rows
                    .iter()
                    .filter_map(|r| r.get(i).map(String::as_str))
                    .filter(|c| !c.is_empty() && *c != "–")
                    .collect();
                i > 0
                    && !cells.is_empty()
                    && cells.iter().filter(|c| numeric(c)).count() * 2 > cells.len()
            })
            .collect();
        self.blocks.push(Block::Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows,
            right,
        });
    }
    pub fn image(&mut self, file: impl Into<String>, caption: impl Into<String>) {
        self.blocks.push(Block::Image {
            file: file.into(),
            caption: caption.into(),
        });
    }
    pub fn pre(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Pre(s.into()));
    }
}

/// `Against the original study` -> `against-the-original-study`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render_md(doc: &Doc) -> String {
    let mut s = format!("# {}\n\n", doc.title);
    if !doc.subtitle.is_empty() {
        s += &format!("{}\n\n", doc.subtitle);
    }
    let toc: Vec<&String> = doc
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading(2, t) => Some(t),
            _ => None,
        })
        .collect();
    if !toc.is_empty() {
        s += "Contents: ";
        s += &toc
            .iter()
            .map(|t| format!("[{t}](#{})", slug(t)))
            .collect::<Vec<_>>()
            .join(" · ");
        s += "\n\n";
    }
    for b in &doc.blocks {
        match b {
            Block::Heading(l, t) => {
                let _ = write!(s, "{} {t}\n\n", "#".repeat(*l as usize));
            }
            Block::Para(t) => {
                let _ = write!(s, "{t}\n\n");
            }
            Block::Callout(tone, t) => {
                let tag = match tone {
                    Tone::Info => "Note",
                    Tone::Good => "Result",
                    Tone::Warn => "Caution",
                    Tone::NotRun => "Not run",
                };
                let t = t.replace("**Not run.** ", "");
                let _ = write!(s, "> **{tag}:** {t}\n\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(s, "- {i}");
                }
                s += "\n";
            }
            Block::Figures(f) => {
                for (label, value, detail) in f {
                    let _ = writeln!(s, "- **{label}: {value}** ({detail})");
                }
                s += "\n";
            }
            Block::Table { head, rows, right } => {
                let _ = writeln!(
                    s,
                    "| {} |",
                    head.iter()
                        .map(|h| md_cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let _ = writeln!(
                    s,
                    "|{}|",
                    right
                        .iter()
                        .map(|r| if *r { " ---: " } else { " --- " })
                        .collect::<Vec<_>>()
                        .join("|")
                );
                for r in rows {
                    let _ = writeln!(
                        s,
                        "| {} |",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                }
                s += "\n";
            }
            Block::Image { file, caption } => {
                let _ = write!(s, "![{}]({file})\n\n*{caption}*\n\n", md_cell(caption));
            }
            Block::Pre(t) => {
                let _ = write!(s, "```text\n{}\n```\n\n", t.trim_end());
            }
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escape, then `**bold**` -> `<strong>` and `` `code` `` -> `<code>`.
fn inline(s: &str) -> String {
    let e = esc(s);
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut it = e.chars().peekable();
    while let Some(c) = it.next() {
        if c == '`' {
            out += if code { "</code>" } else { "<code>" };
            code = !code;
        } else if c == '*' && !code && it.peek() == Some(&'*') {
            it.next();
            out += if bold { "</strong>" } else { "<strong>" };
            bold = !bold;
        } else {
            out.push(c);
        }
    }
    if code {
        out += "</code>";
    }
    if bold {
        out += "</strong>";
    }
    out
}

const CSS: &str = r#"
:root { --ink:#1d2733; --muted:#5b6b7c; --line:#d9e0e7; --bg:#f6f8fa; --accent:#1f6feb; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--ink); background:#fff; }
header { background: linear-gradient(135deg,#14365d,#1f6feb); color:#fff; padding:32px 40px 24px; }
header h1 { margin:0 0 6px; font-size:28px; }
header p { margin:0; opacity:.95; }
header code { background: rgba(255,255,255,.18); color:#fff; }
nav { position:sticky; top:0; background:#fff; border-bottom:1px solid var(--line); padding:8px 40px; font-size:14px; z-index:2; overflow-x:auto; white-space:nowrap; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; }
main { max-width: 1080px; margin: 0 auto; padding: 8px 40px 64px; }
h2 { margin-top:44px; padding-bottom:6px; border-bottom:2px solid var(--line); font-size:23px; }
h3 { margin-top:28px; font-size:18px; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size:14px; width:100%; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); vertical-align: top; }
th { background:var(--bg); text-align:left; font-weight:600; }
td.r, th.r { text-align:right; font-variant-numeric: tabular-nums; }
tr:hover td { background:#fbfcfd; }
figure { margin: 16px 0 24px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figcaption { color:var(--muted); font-size:14px; margin-top:4px; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:12px 14px; overflow-x:auto; font-size:13px; }
code { background:var(--bg); padding:1px 4px; border-radius:4px; font-size:90%; }
.callout { border-left:5px solid var(--accent); background:#eef5ff; padding:10px 14px; border-radius:4px; margin:14px 0; }
.callout.good { border-color:#1a7f37; background:#eaf7ee; }
.callout.warn { border-color:#bf8700; background:#fff8e5; }
.callout.notrun { border-color:#8c959f; background:#f3f4f6; color:#424a53; }
.figures { display:flex; flex-wrap:wrap; gap:14px; margin:16px 0 8px; }
.fig { flex:1 1 200px; border:1px solid var(--line); border-radius:8px; padding:12px 14px; background:#fff; }
.fig .label { color:var(--muted); font-size:13px; text-transform:uppercase; letter-spacing:.04em; }
.fig .value { font-size:26px; font-weight:700; margin:2px 0; }
.fig .detail { color:var(--muted); font-size:13px; }
footer { color:var(--muted); font-size:13px; max-width:1080px; margin:0 auto; padding:0 40px 40px; }
@media print { nav { display:none; } header { background:#14365d; -webkit-print-color-adjust:exact; print-color-adjust:exact; } }
"#;

/// Render the HTML page, embedding every image (read from `dir`) as a data URI.
pub fn render_html(doc: &Doc, dir: &Path) -> std::io::Result<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header><h1>{}</h1><p>{}</p></header>\n<nav>",
        esc(&doc.title),
        inline(&doc.title),
        inline(&doc.subtitle)
    );
    for b in &doc.blocks {
        if let Block::Heading(2, t) = b {
            let _ = write!(s, "<a href=\"#{}\">{}</a>", slug(t), esc(t));
        }
    }
    s += "</nav>\n<main>\n";
    for b in &doc.blocks {
        match b {
            Block::Heading(l, t) => {
                let _ = writeln!(s, "<h{l} id=\"{}\">{}</h{l}>", slug(t), inline(t));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Callout(tone, t) => {
                let class = match tone {
                    Tone::Info => "callout",
                    Tone::Good => "callout good",
                    Tone::Warn => "callout warn",
                    Tone::NotRun => "callout notrun",
                };
                let _ = writeln!(s, "<div class=\"{class}\">{}</div>", inline(t));
            }
            Block::List(items) => {
                s += "<ul>";
                for i in items {
                    let _ = write!(s, "<li>{}</li>", inline(i));
                }
                s += "</ul>\n";
            }
            Block::Figures(f) => {
                s += "<div class=\"figures\">";
                for (label, value, detail) in f {
                    let _ = write!(
                        s,
                        "<div class=\"fig\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"detail\">{}</div></div>",
                        inline(label),
                        inline(value),
                        inline(detail)
                    );
                }
                s += "</div>\n";
            }
            Block::Table { head, rows, right } => {
                let cls = |i: usize| {
                    if right.get(i) == Some(&true) {
                        " class=\"r\""
                    } else {
                        ""
                    }
                };
                s += "<table><thead><tr>";
                for (i, h) in head.iter().enumerate() {
                    let _ = write!(s, "<th{}>{}</th>", cls(i), inline(h));
                }
                s += "</tr></thead><tbody>";
                for r in rows {
                    s += "<tr>";
                    for (i, c) in r.iter().enumerate() {
                        let _ = write!(s, "<td{}>{}</td>", cls(i), inline(c));
                    }
                    s += "</tr>";
                }
                s += "</tbody></table>\n";
            }
            Block::Image { file, caption } => {
                let bytes = std::fs::read(dir.join(file))?;
                let _ = writeln!(
                    s,
                    "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{}</figcaption></figure>",
                    esc(caption),
                    b64.encode(bytes),
                    inline(caption)
                );
            }
            Block::Pre(t) => {
                let _ = writeln!(s, "<pre>{}</pre>", esc(t.trim_end()));
            }
        }
    }
    s += "</main>\n<footer>Generated by the fer-pipeline <code>report</code> stage from the artifacts of this pipeline; every number above is read from them. The same content is in <code>report.md</code>.</footer>\n</body>\n</html>\n";
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markup_and_slugs() {
        assert_eq!(
            inline("a **b** `c<d>` e"),
            "a <strong>b</strong> <code>c&lt;d&gt;</code> e"
        );
        assert_eq!(
            slug("Against the original study"),
            "against-the-original-study"
        );
        assert_eq!(slug("Models, side by side"), "models-side-by-side");
    }

    #[test]
    fn markdown_table_escapes_pipes() {
        let mut d = Doc::default();
        d.table(&["a", "b"], vec![vec!["x|y".into(), "1".into()]]);
        let md = render_md(&d);
        assert!(md.contains("| x\\|y | 1 |"), "{md}");
        assert!(md.contains("| --- | ---: |"), "{md}");
    }
}
