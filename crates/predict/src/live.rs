//! The live page's numbers: what the service's video source and `POST /frames` saw, summed by
//! wall-clock second over the last [`KEEP_MINUTES`] minutes, in memory only.
//!
//! Reads: frame outcomes, as [`Tally`]s (counts and a sum of p(happy); never a face or its
//! score). Writes: nothing; [`Live::snapshot`] is the JSON `GET /live.json` answers and the
//! page (`GET /`) draws. Every window in it follows the privacy rule of [`crate::video`]:
//! fewer than [`MIN_FACES`] faces, and only its frame and face counts are shown.
//!
//! Memory is bounded: one small tally per second that saw a frame, [`KEEP_MINUTES`] minutes
//! of them at most.

use crate::video::{MIN_FACES, Tally};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Minutes of history kept (and drawn).
pub const KEEP_MINUTES: u64 = 15;

/// The rolling window of the headline numbers, in minutes.
pub const WINDOW_MINUTES: u64 = 5;

/// What the video source is doing, for the page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceStatus {
    /// The source as given.
    pub source: String,
    /// `reading`, `retrying`, `failed` (retries spent) or `ended` (a file's end).
    pub state: &'static str,
    /// The last failure's message.
    pub message: Option<String>,
    /// Frames read from it since the service started.
    pub frames: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// (unix second, what it saw), oldest first.
    seconds: VecDeque<(u64, Tally)>,
    source: Option<SourceStatus>,
    frames: u64,
    faces: u64,
    /// The unix second of the first frame.
    first: Option<u64>,
}

/// The service's live aggregates.
#[derive(Debug)]
pub struct Live {
    /// The threshold the faces were labelled at (shown on the page).
    pub threshold: f64,
    inner: Mutex<Inner>,
}

/// Now, in unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn window_json(t: &Tally) -> Value {
    let r = t.row(0);
    json!({
        "frames": r.frames,
        "frames_with_face": r.frames_with_face,
        "faces": r.faces,
        "happy": r.happy,
        "alerts": r.alerts,
        "share_happy": r.share_happy,
        "mean_p_happy": r.mean_p_happy,
    })
}

impl Live {
    pub fn new(threshold: f64) -> Live {
        Live {
            threshold,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while it is held; recover anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add what frames seen at unix second `now` held.
    pub fn add(&self, now: u64, t: &Tally) {
        let mut i = self.inner();
        i.frames += t.frames as u64;
        i.faces += t.faces as u64;
        i.first.get_or_insert(now);
        match i.seconds.back_mut() {
            Some((s, acc)) if *s == now => acc.merge(t),
            // A clock stepped back: the frame joins the newest second.
            Some((s, acc)) if *s > now => acc.merge(t),
            _ => i.seconds.push_back((now, t.clone())),
        }
        let oldest = now.saturating_sub(KEEP_MINUTES * 60);
        while i.seconds.front().is_some_and(|(s, _)| *s < oldest) {
            i.seconds.pop_front();
        }
    }

    /// Set the video source's state; `frames` are added to its count.
    pub fn source(&self, source: &str, state: &'static str, message: Option<String>, frames: u64) {
        let mut i = self.inner();
        let before = i.source.as_ref().map_or(0, |s| s.frames);
        i.source = Some(SourceStatus {
            source: source.to_string(),
            state,
            message,
            frames: before + frames,
        });
    }

    /// The numbers at unix second `now`: the last [`WINDOW_MINUTES`] minutes (`rolling`), one
    /// row per minute of the last [`KEEP_MINUTES`] (oldest first; minutes start on the clock's
    /// minute), totals and the source's state. `drift` is put in as given.
    pub fn snapshot(&self, now: u64, drift: Value) -> Value {
        let i = self.inner();
        let this_minute = now - now % 60;
        let first_minute = this_minute.saturating_sub((KEEP_MINUTES - 1) * 60);
        let mut minutes: Vec<Tally> = vec![Tally::default(); KEEP_MINUTES as usize];
        let mut rolling = Tally::default();
        let mut last_minute = Tally::default();
        let window_start = now.saturating_sub(WINDOW_MINUTES * 60);
        for (s, t) in &i.seconds {
            if *s >= first_minute && *s <= now {
                minutes[((s - first_minute) / 60) as usize].merge(t);
            }
            if *s > window_start && *s <= now {
                rolling.merge(t);
            }
            if *s > now.saturating_sub(60) && *s <= now {
                last_minute.merge(t);
            }
        }
        // Faces per minute over the window, or over the time since the first frame when the
        // service has seen frames for less than that.
        let span_s = i
            .first
            .map_or(0, |f| now.saturating_sub(f) + 1)
            .clamp(1, WINDOW_MINUTES * 60);
        let rows: Vec<Value> = minutes
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let mut v = window_json(t);
                v["start"] = json!(first_minute + 60 * k as u64);
                v
            })
            .collect();
        json!({
            "now": now,
            "threshold": self.threshold,
            "min_faces": MIN_FACES,
            "window_minutes": WINDOW_MINUTES,
            "rolling": window_json(&rolling),
            "last_minute": window_json(&last_minute),
            "faces_per_minute": rolling.faces as f64 * 60.0 / span_s as f64,
            "minutes": rows,
            "totals": {"frames": i.frames, "faces": i.faces},
            "source": i.source,
            "drift": drift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(faces: u32, happy: u32) -> Tally {
        Tally {
            frames: faces.max(1),
            frames_with_face: faces.min(1),
            faces,
            happy,
            p_sum: happy as f64 * 0.9 + (faces - happy) as f64 * 0.1,
        }
    }

    #[test]
    fn the_snapshot_sums_seconds_into_the_window_and_minutes() {
        let live = Live::new(0.5);
        let t0: u64 = 1_800_000_000; // on a minute (a multiple of 60)
        // Minute 0: 4 faces, 3 happy; minute 1: 6 faces, 2 happy.
        live.add(t0, &tally(2, 2));
        live.add(t0 + 30, &tally(2, 1));
        live.add(t0 + 60, &tally(3, 1));
        live.add(t0 + 61, &tally(3, 1));
        let s = live.snapshot(t0 + 90, json!({"state": "off"}));
        let m = s["minutes"].as_array().unwrap();
        assert_eq!(m.len(), KEEP_MINUTES as usize);
        let (a, b) = (&m[m.len() - 2], &m[m.len() - 1]);
        assert_eq!(a["start"], json!(t0));
        assert_eq!(b["start"], json!(t0 + 60));
        // 4 faces is under the privacy rule: counts only.
        assert_eq!(a["faces"], json!(4));
        assert!(a["share_happy"].is_null() && a["happy"].is_null() && a["alerts"].is_null());
        assert_eq!(b["faces"], json!(6));
        assert_eq!(b["happy"], json!(2));
        assert_eq!(b["alerts"], json!(4));
        assert!((b["share_happy"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(s["rolling"]["faces"], json!(10));
        assert_eq!(s["rolling"]["happy"], json!(5));
        // 10 faces in the 91 s since the first frame.
        assert!((s["faces_per_minute"].as_f64().unwrap() - 10.0 * 60.0 / 91.0).abs() < 1e-9);
        assert_eq!(s["last_minute"]["faces"], json!(6));
        assert_eq!(s["totals"]["faces"], json!(10));
        assert_eq!(s["drift"]["state"], json!("off"));
        assert!(s["source"].is_null());
    }

    #[test]
    fn old_seconds_are_dropped_and_memory_stays_bounded() {
        let live = Live::new(0.5);
        for s in 0..10_000u64 {
            live.add(1_000_000 + s, &tally(1, 1));
        }
        assert!(live.inner().seconds.len() as u64 <= KEEP_MINUTES * 60 + 1);
        let s = live.snapshot(1_000_000 + 9_999, Value::Null);
        assert_eq!(s["totals"]["faces"], json!(10_000));
        // The last five minutes: 300 seconds of one happy face.
        assert_eq!(s["rolling"]["faces"], json!(300));
        assert_eq!(s["rolling"]["share_happy"], json!(1.0));
        assert_eq!(s["faces_per_minute"], json!(60.0));
    }

    #[test]
    fn the_source_state_is_shown_with_its_frame_count() {
        let live = Live::new(0.5);
        live.source("clip.mp4", "reading", None, 0);
        live.source("clip.mp4", "retrying", Some("stalled".into()), 12);
        let s = live.snapshot(100, Value::Null);
        assert_eq!(s["source"]["state"], json!("retrying"));
        assert_eq!(s["source"]["message"], json!("stalled"));
        assert_eq!(s["source"]["frames"], json!(12));
    }
}
