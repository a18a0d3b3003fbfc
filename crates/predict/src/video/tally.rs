//! Sums of frames: [`Tally`] (one window's counts and p(happy) sum, under the privacy rule of
//! [`super::MIN_FACES`]), [`Second`] (its row) and [`PerSecond`] (frames into seconds of source
//! time).

use super::MIN_FACES;
use crate::{Face, Outcome};

/// What one window of frames held. `happy`, `alerts`, `share_happy` and `mean_p_happy` are
/// `None` under the privacy rule ([`MIN_FACES`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Second {
    /// Seconds of source time from the first frame (frame `k` is at `k / fps`).
    pub second: u64,
    pub frames: u32,
    pub frames_with_face: u32,
    pub faces: u32,
    pub happy: Option<u32>,
    /// Faces not happy at the threshold (the operating point's alerts).
    pub alerts: Option<u32>,
    pub share_happy: Option<f64>,
    pub mean_p_happy: Option<f64>,
}

/// Running sums of one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub frames: u32,
    pub frames_with_face: u32,
    pub faces: u32,
    pub happy: u32,
    pub p_sum: f64,
}

impl Tally {
    /// Add one frame's outcome (an unreadable frame counts as a frame without a face).
    pub fn add(&mut self, o: &Outcome, threshold: f64) {
        match o {
            Outcome::Faces { faces, .. } => self.add_faces(faces, threshold),
            Outcome::Error(_) => self.add_faces(&[], threshold),
        }
    }

    /// Add one frame's faces.
    pub fn add_faces(&mut self, faces: &[Face], threshold: f64) {
        self.frames += 1;
        if !faces.is_empty() {
            self.frames_with_face += 1;
        }
        for f in faces {
            self.faces += 1;
            self.happy += u32::from(f.p_happy >= threshold);
            self.p_sum += f.p_happy;
        }
    }

    pub fn merge(&mut self, t: &Tally) {
        self.frames += t.frames;
        self.frames_with_face += t.frames_with_face;
        self.faces += t.faces;
        self.happy += t.happy;
        self.p_sum += t.p_sum;
    }

    /// Whether the window may show its answers ([`MIN_FACES`]).
    pub fn shown(&self) -> bool {
        self.faces >= MIN_FACES
    }

    pub fn row(&self, second: u64) -> Second {
        let show = self.shown();
        let n = self.faces.max(1) as f64;
        Second {
            second,
            frames: self.frames,
            frames_with_face: self.frames_with_face,
            faces: self.faces,
            happy: show.then_some(self.happy),
            alerts: show.then_some(self.faces - self.happy),
            share_happy: show.then_some(self.happy as f64 / n),
            mean_p_happy: show.then_some(self.p_sum / n),
        }
    }
}

/// Sums frames into seconds of source time: frame `k` belongs to second `floor(k / fps)`.
#[derive(Debug, Clone)]
pub struct PerSecond {
    fps: f64,
    threshold: f64,
    current: Option<(u64, Tally)>,
}

impl PerSecond {
    pub fn new(fps: f64, threshold: f64) -> PerSecond {
        PerSecond {
            fps,
            threshold,
            current: None,
        }
    }

    /// The second frame `k` belongs to.
    pub fn second_of(&self, k: u64) -> u64 {
        // The small term keeps k / fps on its second when the division rounds down.
        (k as f64 / self.fps + 1e-9).floor() as u64
    }

    /// Add frame `k` (frames in order); returns the second it closed, if any.
    pub fn push(&mut self, k: u64, o: &Outcome) -> Option<Second> {
        let s = self.second_of(k);
        let mut closed = None;
        match &mut self.current {
            Some((cur, t)) if *cur == s => t.add(o, self.threshold),
            _ => {
                closed = self.current.take().map(|(cur, t)| t.row(cur));
                let mut t = Tally::default();
                t.add(o, self.threshold);
                self.current = Some((s, t));
            }
        }
        closed
    }

    /// The last, unfinished second.
    pub fn finish(&mut self) -> Option<Second> {
        self.current.take().map(|(cur, t)| t.row(cur))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HAPPY, NOT_HAPPY};
    use fer_detect::FaceBox;

    fn faces(ps: &[f64]) -> Outcome {
        Outcome::Faces {
            width: 64,
            height: 64,
            detected: ps.len(),
            faces: ps
                .iter()
                .enumerate()
                .map(|(i, &p)| Face {
                    face: i,
                    bbox: FaceBox::whole(64, 64),
                    p_happy: p,
                    emotions: None,
                    decisions: None,
                    emotion: None,
                    label: if p >= 0.5 { HAPPY } else { NOT_HAPPY },
                })
                .collect(),
        }
    }

    #[test]
    fn frames_are_summed_into_seconds_of_source_time() {
        // 2.5 fps: frames 0-2 in second 0, 3-4 in second 1, 5-7 in second 2.
        let mut per = PerSecond::new(2.5, 0.5);
        assert_eq!(
            (0..8).map(|k| per.second_of(k)).collect::<Vec<_>>(),
            [0, 0, 0, 1, 1, 2, 2, 2]
        );
        // 3 fps: 1/3 + 1/3 + 1/3 must not fall short of second 1 at frame 3.
        let p3 = PerSecond::new(3.0, 0.5);
        assert_eq!(p3.second_of(3), 1);
        assert_eq!(p3.second_of(300), 100);
        let mut rows = Vec::new();
        for k in 0..5 {
            // Second 0: three frames of two faces, two happy each; second 1: one face, no face.
            let o = match k {
                0..=2 => faces(&[0.9, 0.6]),
                3 => faces(&[0.2]),
                _ => faces(&[]),
            };
            rows.extend(per.push(k, &o));
        }
        rows.extend(per.finish());
        assert_eq!(rows.len(), 2);
        let s0 = &rows[0];
        assert_eq!(
            (s0.second, s0.frames, s0.frames_with_face, s0.faces),
            (0, 3, 3, 6)
        );
        assert_eq!((s0.happy, s0.alerts), (Some(6), Some(0)));
        assert_eq!(s0.share_happy, Some(1.0));
        assert!((s0.mean_p_happy.unwrap() - 0.75).abs() < 1e-12);
        // Second 1 holds one face: under the privacy rule only its counts are shown.
        let s1 = &rows[1];
        assert_eq!(
            (s1.second, s1.frames, s1.frames_with_face, s1.faces),
            (1, 2, 1, 1)
        );
        assert_eq!(
            (s1.happy, s1.alerts, s1.share_happy, s1.mean_p_happy),
            (None, None, None, None)
        );
    }

    #[test]
    fn a_window_shows_its_answers_from_min_faces_on() {
        let mut t = Tally::default();
        for _ in 0..MIN_FACES - 1 {
            t.add(&faces(&[0.1]), 0.5);
        }
        assert_eq!(t.row(0).share_happy, None);
        t.add(&faces(&[0.7]), 0.5);
        let r = t.row(0);
        assert_eq!(r.faces, MIN_FACES);
        assert_eq!((r.happy, r.alerts), (Some(1), Some(MIN_FACES - 1)));
        assert_eq!(r.share_happy, Some(1.0 / MIN_FACES as f64));
        // An unreadable frame is a frame without a face.
        t.add(&Outcome::Error("bad".into()), 0.5);
        assert_eq!((t.frames, t.frames_with_face), (MIN_FACES + 1, MIN_FACES));
    }
}
