//! Rows on stdout: CSV or JSON lines, one per face, one per file without a face or unreadable.

use crate::{Outcome, PredictError};
use serde_json::json;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// CSV columns.
pub const HEADER: [&str; 12] = [
    "file",
    "status",
    "face",
    "x",
    "y",
    "width",
    "height",
    "det_score",
    "p_happy",
    "label",
    "threshold",
    "error",
];

pub struct RowWriter<W: Write> {
    format: Format,
    csv: Option<csv::Writer<W>>,
    out: Option<W>,
    threshold: f64,
}

fn io(e: impl std::fmt::Display) -> PredictError {
    PredictError::Input(format!("cannot write the output: {e}"))
}

impl<W: Write> RowWriter<W> {
    pub fn new(format: Format, out: W, threshold: f64) -> Result<RowWriter<W>, PredictError> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(HEADER).map_err(io)?;
                RowWriter {
                    format,
                    csv: Some(w),
                    out: None,
                    threshold,
                }
            }
            Format::Jsonl => RowWriter {
                format,
                csv: None,
                out: Some(out),
                threshold,
            },
        })
    }

    /// The rows of one file.
    pub fn write(&mut self, file: &str, o: &Outcome) -> Result<(), PredictError> {
        let t = self.threshold;
        let rows: Vec<serde_json::Value> = match o {
            Outcome::Error(e) => vec![json!({"file": file, "status": "error", "error": e})],
            Outcome::Faces {
                width,
                height,
                faces,
                ..
            } if faces.is_empty() => vec![json!({
                "file": file, "status": "no_face", "width": width, "height": height,
            })],
            Outcome::Faces { faces, .. } => faces
                .iter()
                .map(|f| {
                    json!({
                        "file": file, "status": "ok", "face": f.face, "box": f.bbox,
                        "p_happy": f.p_happy, "label": f.label, "threshold": t,
                    })
                })
                .collect(),
        };
        match self.format {
            Format::Jsonl => {
                let w = self.out.as_mut().expect("jsonl writer");
                for r in rows {
                    serde_json::to_writer(&mut *w, &r).map_err(io)?;
                    w.write_all(b"\n").map_err(io)?;
                }
            }
            Format::Csv => {
                let w = self.csv.as_mut().expect("csv writer");
                for r in rows {
                    let s = |v: &serde_json::Value| match v {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    let b = &r["box"];
                    w.write_record([
                        s(&r["file"]),
                        s(&r["status"]),
                        s(&r["face"]),
                        s(&b["x"]),
                        s(&b["y"]),
                        s(&b["width"]),
                        s(&b["height"]),
                        s(&b["score"]),
                        s(&r["p_happy"]),
                        s(&r["label"]),
                        s(&r["threshold"]),
                        s(&r["error"]),
                    ])
                    .map_err(io)?;
                }
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), PredictError> {
        match (&mut self.csv, &mut self.out) {
            (Some(w), _) => w.flush().map_err(io),
            (_, Some(w)) => w.flush().map_err(io),
            _ => Ok(()),
        }
    }
}
