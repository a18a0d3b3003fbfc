//! Video in: frames read through ffmpeg, scored face by face, summed per second.
//!
//! Reads: a video source ([`Source`]): a file, a capture device (`/dev/videoN`, through
//! ffmpeg's `v4l2` input) or a stream URL (`rtsp://`, `rtsps://`, `rtmp://`, `http(s)://`,
//! `tcp://`, `udp://`, `srt://`). ffmpeg (Debian's package; `FER_FFMPEG` names another binary)
//! runs as a child process and pipes raw gray frames to us: every frame is scaled to fit inside
//! `--video-size` (640x480 by default) and padded to exactly that size, at `--fps` frames per
//! second of the source's time (5 by default). So a source is bounded like an upload: one
//! frame is `width x height` bytes whatever the source sends, at most
//! [`MAX_FRAME_PIXELS`]; at most [`QUEUED_FRAMES`] frames wait between ffmpeg and the scorer,
//! and ffmpeg, blocked on a full pipe, reads the source no faster than the frames are scored.
//!
//! Writes: nothing itself. Each frame's faces are found and scored as an image's are
//! ([`crate::Predictor`]); [`PerSecond`] sums them into one [`Second`] per second of the
//! source: frames, frames with a face, faces, and, over those faces, how many are happy, how
//! many are alerts (not happy at the operating point's threshold), the share happy and the
//! mean p(happy). Never an image, a crop or one face's score.
//!
//! **Privacy rule.** A window with fewer than [`MIN_FACES`] faces shows its frame and face
//! counts only: `happy`, `alerts`, `share_happy` and `mean_p_happy` are left out (null), so
//! one face's answer cannot be read off a window. The rule holds for the per-second rows, the
//! service's live page and its JSON alike, and is not an option.
//!
//! Failures: ffmpeg missing, a source it cannot open or decode (its own message is quoted),
//! a source that sends no frame for `--video-stall` seconds (the first frame gets
//! [`OPEN_GRACE`] more), or a stream cut mid-frame are
//! each a [`VideoError`] naming the source; so is the end of a live source's stream (a camera
//! does not end). A live source (a device or a URL) is then opened again after a pause, up to
//! `--video-retries` times in a row ([`Retry`]); a file is not retried, and its end is the
//! end of the run. Nothing panics on what a source sends.

pub mod source;
pub mod tally;

pub use source::{
    Frames, SCHEMES, Source, SourceKind, VideoError, VideoOptions, ffmpeg_args, redact,
};
pub use tally::{PerSecond, Second, Tally};

use crate::{Outcome, PredictError, Predictor, Prepared};
use image::GrayImage;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Fewest faces a window must hold before its happy share, alerts and mean p(happy) are shown.
pub const MIN_FACES: u32 = 5;

/// Largest frame, in pixels (1920x1080).
pub const MAX_FRAME_PIXELS: u64 = 1920 * 1080;

/// Frames decoded and waiting to be scored, at most (the pipe holds some more bytes).
pub const QUEUED_FRAMES: usize = 2;

/// Most frames per second of source time.
pub const MAX_FPS: f64 = 30.0;

/// The first frame may take this much longer than `--video-stall`: ffmpeg reads up to 5 s of
/// a stream (its default `analyzeduration`) to learn its format before decoding a frame.
pub const OPEN_GRACE: Duration = Duration::from_secs(5);

/// When to open a failed live source again: after `retry_wait`, doubling up to 30 s, at most
/// `retries` times in a row; a frame read resets the count.
#[derive(Debug, Clone)]
pub struct Retry {
    pub retries: u32,
    pub wait: Duration,
    /// Failures in a row.
    pub failures: u32,
}

impl Retry {
    pub fn new(o: &VideoOptions) -> Retry {
        Retry {
            retries: o.retries,
            wait: o.retry_wait,
            failures: 0,
        }
    }

    /// A failure: the pause before the next try, or `None` when the tries are spent.
    pub fn failed(&mut self) -> Option<Duration> {
        self.failures += 1;
        if self.failures > self.retries {
            return None;
        }
        let doubled = self
            .wait
            .saturating_mul(1u32 << (self.failures - 1).min(16));
        Some(doubled.min(Duration::from_secs(30)))
    }

    /// A frame came through.
    pub fn ok(&mut self) {
        self.failures = 0;
    }
}

/// Score a group of frames: each frame's faces found in parallel, then all scored in batches.
/// One outcome per frame, in order.
pub fn score_frames(p: &Predictor, frames: &[GrayImage]) -> Result<Vec<Outcome>, PredictError> {
    let prepared: Vec<Result<Prepared, String>> = frames
        .par_iter()
        .map(|g| Ok(p.prepare_gray(g, p.detect)))
        .collect();
    p.score(prepared, p.threshold)
}

/// Counts of one source's run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub frames: u64,
    pub faces: u64,
    /// Times the source was opened again after a failure.
    pub reopened: u32,
    pub wall_seconds: f64,
}

/// What [`run`] tells its caller besides the frames.
#[derive(Debug)]
pub enum Event<'a> {
    /// ffmpeg started on the source.
    Opened,
    /// The source failed; `Some(wait)`: it is opened again after `wait`, `None`: given up.
    Failed(&'a VideoError, Option<Duration>),
}

/// Read `source` to its end (a file), until its retries are spent (a live source) or until
/// `stop` is set, scoring frames in groups of `group` and handing each frame's number and
/// outcome, in order, to `sink`. A live source that fails is opened again per [`Retry`];
/// frame numbers go on across a reopening. `on_event` hears each opening and failure.
pub fn run(
    p: &Predictor,
    source: &Source,
    o: &VideoOptions,
    group: usize,
    stop: &AtomicBool,
    sink: &mut dyn FnMut(u64, &Outcome) -> Result<(), PredictError>,
    on_event: &mut dyn FnMut(Event),
) -> Result<RunSummary, VideoError> {
    let t0 = std::time::Instant::now();
    let mut sum = RunSummary::default();
    let mut retry = Retry::new(o);
    loop {
        let result = (|| -> Result<(), VideoError> {
            let mut frames = Frames::open(source, o)?;
            on_event(Event::Opened);
            loop {
                let mut batch = Vec::with_capacity(group.max(1));
                let mut failure = None;
                while batch.len() < group.max(1) && !stop.load(Ordering::Relaxed) {
                    match frames.next_frame() {
                        Ok(Some(f)) => batch.push(f),
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                if !batch.is_empty() {
                    retry.ok();
                }
                // What came before a failure is scored first.
                for o in score_frames(p, &batch)? {
                    if let Outcome::Faces { faces, .. } = &o {
                        sum.faces += faces.len() as u64;
                    }
                    sink(sum.frames, &o)?;
                    sum.frames += 1;
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if batch.len() < group.max(1) {
                    if source.live() {
                        return Err(VideoError::Ended {
                            source_spec: source.shown.clone(),
                            frames: frames.read,
                        });
                    }
                    return Ok(());
                }
            }
        })();
        match result {
            Ok(()) => break,
            Err(e) if source.live() && e.retryable() && !stop.load(Ordering::Relaxed) => {
                match retry.failed() {
                    Some(wait) => {
                        on_event(Event::Failed(&e, Some(wait)));
                        sleep_unless(stop, wait);
                        sum.reopened += 1;
                    }
                    None => {
                        on_event(Event::Failed(&e, None));
                        return Err(e);
                    }
                }
            }
            Err(e) => {
                on_event(Event::Failed(&e, None));
                return Err(e);
            }
        }
    }
    sum.wall_seconds = t0.elapsed().as_secs_f64();
    Ok(sum)
}

/// Sleep `d`, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_reset_on_a_frame() {
        let mut r = Retry::new(&VideoOptions {
            retries: 3,
            retry_wait: Duration::from_secs(1),
            ..VideoOptions::default()
        });
        assert_eq!(r.failed(), Some(Duration::from_secs(1)));
        assert_eq!(r.failed(), Some(Duration::from_secs(2)));
        r.ok();
        assert_eq!(r.failed(), Some(Duration::from_secs(1)));
        assert_eq!(r.failed(), Some(Duration::from_secs(2)));
        assert_eq!(r.failed(), Some(Duration::from_secs(4)));
        assert_eq!(r.failed(), None);
        let mut long = Retry {
            retries: 40,
            wait: Duration::from_secs(1),
            failures: 0,
        };
        let waits: Vec<_> = std::iter::from_fn(|| long.failed()).collect();
        assert_eq!(waits.len(), 40);
        assert_eq!(*waits.last().unwrap(), Duration::from_secs(30));
    }
}
