//! Rows on stdout: CSV or JSON lines, one per face, one per file without a face or unreadable.
//!
//! A seven-class model's rows also carry each class's score and the argmax class: CSV columns
//! `prob_<class>` (a CNN's probabilities) or `d_<class>` (an SVM's one-vs-rest decisions), in
//! class order after `p_happy`, then `emotion`; JSON lines an object `emotions` (CNN) or
//! `decisions` (SVM) keyed by class name, and `emotion`. A binary model's rows are as before.

use crate::{Classes, Outcome, PredictError};
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

/// The CSV header of a model with `classes` (seven-class: [`HEADER`] with the per-class
/// columns and `emotion` after `p_happy`; binary: [`HEADER`]).
pub fn header(classes: Option<&Classes>) -> Vec<String> {
    let mut h: Vec<String> = HEADER.iter().map(|c| c.to_string()).collect();
    if let Some(c) = classes {
        let at = HEADER
            .iter()
            .position(|&c| c == "p_happy")
            .expect("p_happy")
            + 1;
        let extra = c
            .names
            .iter()
            .map(|n| format!("{}{n}", c.score.prefix()))
            .chain(["emotion".to_string()]);
        h.splice(at..at, extra);
    }
    h
}

pub struct RowWriter<W: Write> {
    format: Format,
    csv: Option<csv::Writer<W>>,
    out: Option<W>,
    threshold: f64,
    classes: Option<Classes>,
}

fn io(e: impl std::fmt::Display) -> PredictError {
    PredictError::Input(format!("cannot write the output: {e}"))
}

impl<W: Write> RowWriter<W> {
    /// A binary model's rows.
    pub fn new(format: Format, out: W, threshold: f64) -> Result<RowWriter<W>, PredictError> {
        RowWriter::with_classes(format, out, threshold, None)
    }

    /// The rows of a model with `classes` (`None`: binary, as [`RowWriter::new`]).
    pub fn with_classes(
        format: Format,
        out: W,
        threshold: f64,
        classes: Option<&Classes>,
    ) -> Result<RowWriter<W>, PredictError> {
        let classes = classes.cloned();
        Ok(match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(header(classes.as_ref())).map_err(io)?;
                RowWriter {
                    format,
                    csv: Some(w),
                    out: None,
                    threshold,
                    classes,
                }
            }
            Format::Jsonl => RowWriter {
                format,
                csv: None,
                out: Some(out),
                threshold,
                classes,
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
                    let mut r = json!({
                        "file": file, "status": "ok", "face": f.face, "box": f.bbox,
                        "p_happy": f.p_happy, "label": f.label, "threshold": t,
                    });
                    let o = r.as_object_mut().expect("an object");
                    for (key, v) in [("emotions", &f.emotions), ("decisions", &f.decisions)] {
                        if let Some(v) = v {
                            let m: serde_json::Map<String, serde_json::Value> =
                                v.iter().map(|(k, x)| (k.clone(), json!(x))).collect();
                            o.insert(key.into(), m.into());
                        }
                    }
                    if let Some(e) = &f.emotion {
                        o.insert("emotion".into(), json!(e));
                    }
                    r
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
                    let mut rec = vec![
                        s(&r["file"]),
                        s(&r["status"]),
                        s(&r["face"]),
                        s(&b["x"]),
                        s(&b["y"]),
                        s(&b["width"]),
                        s(&b["height"]),
                        s(&b["score"]),
                        s(&r["p_happy"]),
                    ];
                    if let Some(c) = &self.classes {
                        let key = c.score.key();
                        rec.extend(c.names.iter().map(|n| s(&r[key][n])));
                        rec.push(s(&r["emotion"]));
                    }
                    rec.extend([s(&r["label"]), s(&r["threshold"]), s(&r["error"])]);
                    w.write_record(rec).map_err(io)?;
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

/// CSV columns of `--video`'s per-second rows ([`crate::video::Second`]).
pub const SECOND_HEADER: [&str; 8] = [
    "second",
    "frames",
    "frames_with_face",
    "faces",
    "happy",
    "alerts",
    "share_happy",
    "mean_p_happy",
];

/// `--video`'s rows: one per second of the source, CSV (a value the privacy rule withholds is
/// empty) or JSON lines (`null`), flushed row by row so a live source's seconds show at once.
pub struct SecondWriter<W: Write> {
    format: Format,
    out: W,
    header: bool,
}

impl<W: Write> SecondWriter<W> {
    pub fn new(format: Format, out: W) -> SecondWriter<W> {
        SecondWriter {
            format,
            out,
            header: false,
        }
    }

    pub fn write(&mut self, s: &crate::video::Second) -> Result<(), PredictError> {
        let io = |e: std::io::Error| PredictError::Io {
            path: "stdout".into(),
            source: e,
        };
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, s)
                    .map_err(|e| PredictError::Input(e.to_string()))?;
                writeln!(self.out).map_err(io)?;
            }
            Format::Csv => {
                if !self.header {
                    writeln!(self.out, "{}", SECOND_HEADER.join(",")).map_err(io)?;
                    self.header = true;
                }
                let opt = |v: Option<String>| v.unwrap_or_default();
                writeln!(
                    self.out,
                    "{},{},{},{},{},{},{},{}",
                    s.second,
                    s.frames,
                    s.frames_with_face,
                    s.faces,
                    opt(s.happy.map(|v| v.to_string())),
                    opt(s.alerts.map(|v| v.to_string())),
                    opt(s.share_happy.map(|v| format!("{v:.4}"))),
                    opt(s.mean_p_happy.map(|v| format!("{v:.4}"))),
                )
                .map_err(io)?;
            }
        }
        self.out.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::Second;

    #[test]
    fn per_second_rows_leave_withheld_values_empty() {
        let rows = [
            Second {
                second: 0,
                frames: 5,
                frames_with_face: 5,
                faces: 5,
                happy: Some(4),
                alerts: Some(1),
                share_happy: Some(0.8),
                mean_p_happy: Some(0.71234),
            },
            Second {
                second: 1,
                frames: 5,
                frames_with_face: 2,
                faces: 2,
                happy: None,
                alerts: None,
                share_happy: None,
                mean_p_happy: None,
            },
        ];
        let mut csv = SecondWriter::new(Format::Csv, Vec::new());
        let mut jl = SecondWriter::new(Format::Jsonl, Vec::new());
        for r in &rows {
            csv.write(r).unwrap();
            jl.write(r).unwrap();
        }
        assert_eq!(
            String::from_utf8(csv.out).unwrap(),
            "second,frames,frames_with_face,faces,happy,alerts,share_happy,mean_p_happy\n\
             0,5,5,5,4,1,0.8000,0.7123\n1,5,2,2,,,,\n"
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(jl.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["happy"], 4);
        assert!(lines[1]["share_happy"].is_null() && lines[1]["alerts"].is_null());
        assert_eq!(lines[1]["faces"], 2);
    }
}
