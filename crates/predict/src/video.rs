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

use crate::{Face, Outcome, PredictError, Predictor, Prepared};
use image::GrayImage;
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
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

/// The last bytes of ffmpeg's stderr kept for an error message.
const STDERR_KEEP: usize = 2048;

/// What went wrong with a video source. Every message names the source.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// ffmpeg could not be started.
    #[error(
        "cannot start {ffmpeg} to read {source_spec} (install Debian's ffmpeg package, or set FER_FFMPEG to an ffmpeg binary)"
    )]
    NoFfmpeg {
        ffmpeg: String,
        source_spec: String,
        #[source]
        source: std::io::Error,
    },
    /// The source is not something we read (checked before ffmpeg starts).
    #[error("video source {source_spec}: {message}")]
    Source {
        source_spec: String,
        message: String,
    },
    /// ffmpeg stopped with an error (its message, last lines).
    #[error("video source {source_spec}: ffmpeg stopped ({status}): {stderr}")]
    Ffmpeg {
        source_spec: String,
        status: String,
        stderr: String,
    },
    /// No frame arrived within the stall time.
    #[error(
        "video source {source_spec}: no frame for {seconds} s (the source stalled; --video-stall)"
    )]
    Stalled { source_spec: String, seconds: f64 },
    /// The pipe ended inside a frame.
    #[error("video source {source_spec}: the stream ended inside a frame ({got} of {want} bytes)")]
    Truncated {
        source_spec: String,
        got: usize,
        want: usize,
    },
    /// A live source's stream ended (a camera or stream does not end on its own).
    #[error("video source {source_spec}: the stream ended after {frames} frames")]
    Ended { source_spec: String, frames: u64 },
    /// Scoring a frame failed (the model; not the source).
    #[error(transparent)]
    Predict(#[from] PredictError),
}

impl VideoError {
    /// Whether opening the source again may help (a source's failure, not the model's, nor
    /// a missing ffmpeg or a bad source name).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            VideoError::Ffmpeg { .. }
                | VideoError::Stalled { .. }
                | VideoError::Truncated { .. }
                | VideoError::Ended { .. }
        )
    }
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A video file: read to its end, as fast as frames are scored; not retried.
    File,
    /// A capture device (`/dev/videoN`), through ffmpeg's `v4l2` input.
    Device,
    /// A stream URL.
    Stream,
}

/// A video source, checked by [`Source::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// As given (a path or a URL).
    pub spec: String,
    pub kind: SourceKind,
}

/// URL schemes handed to ffmpeg.
pub const SCHEMES: [&str; 8] = [
    "rtsp", "rtsps", "rtmp", "http", "https", "tcp", "udp", "srt",
];

impl Source {
    /// A file (which must exist), `/dev/video*` or a URL of one of [`SCHEMES`].
    pub fn parse(spec: &str) -> Result<Source, VideoError> {
        let bad = |message: String| VideoError::Source {
            source_spec: spec.to_string(),
            message,
        };
        if spec.is_empty() {
            return Err(bad("empty source".into()));
        }
        if let Some((scheme, rest)) = spec.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !SCHEMES.contains(&scheme.as_str()) {
                return Err(bad(format!(
                    "unknown URL scheme {scheme:?}: one of {}",
                    SCHEMES.join(", ")
                )));
            }
            if rest.is_empty() {
                return Err(bad("the URL has no address".into()));
            }
            return Ok(Source {
                spec: spec.to_string(),
                kind: SourceKind::Stream,
            });
        }
        let path = Path::new(spec);
        if spec.starts_with("/dev/video") {
            if !path.exists() {
                return Err(bad("no such capture device".into()));
            }
            return Ok(Source {
                spec: spec.to_string(),
                kind: SourceKind::Device,
            });
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Source {
                spec: spec.to_string(),
                kind: SourceKind::File,
            }),
            Ok(_) => Err(bad("not a file".into())),
            Err(e) => Err(bad(format!("cannot read it: {e}"))),
        }
    }

    /// A device or a stream: retried when it fails, since it may come back.
    pub fn live(&self) -> bool {
        self.kind != SourceKind::File
    }
}

/// How frames are read: rate, size, stall time, and the ffmpeg binary. Checked by
/// [`VideoOptions::check`].
#[derive(Debug, Clone)]
pub struct VideoOptions {
    /// Frames per second of source time.
    pub fps: f64,
    /// Every frame is scaled to fit inside this size and padded to it.
    pub width: u32,
    pub height: u32,
    /// No frame for this long: the source has stalled.
    pub stall: Duration,
    /// A live source that fails is opened again up to this many times in a row.
    pub retries: u32,
    /// The pause before the first retry; doubled each time, at most 30 s.
    pub retry_wait: Duration,
    /// A file is read at its own pace (ffmpeg's `-re`), as a camera would send it, rather
    /// than as fast as frames are scored (the service's live page; a live source keeps its
    /// own pace either way).
    pub realtime: bool,
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            fps: 5.0,
            width: 640,
            height: 480,
            stall: Duration::from_secs(10),
            retries: 5,
            retry_wait: Duration::from_secs(1),
            realtime: false,
            ffmpeg: std::env::var_os("FER_FFMPEG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("ffmpeg")),
        }
    }
}

impl VideoOptions {
    /// The rules: `0 < fps <= 30`; each side at least 48 (a FER2013 face) and the frame at
    /// most [`MAX_FRAME_PIXELS`]; a stall time over 0.
    pub fn check(&self) -> Result<(), String> {
        if !(self.fps > 0.0 && self.fps <= MAX_FPS) {
            return Err(format!("--fps {}: must be in (0, {MAX_FPS}]", self.fps));
        }
        let px = self.width as u64 * self.height as u64;
        if self.width < 48 || self.height < 48 || px > MAX_FRAME_PIXELS {
            return Err(format!(
                "--video-size {}x{}: each side at least 48 and at most {MAX_FRAME_PIXELS} pixels in all",
                self.width, self.height
            ));
        }
        if self.stall.is_zero() {
            return Err("--video-stall must be positive".into());
        }
        Ok(())
    }

    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// ffmpeg's arguments for `source` (after the binary's name): frames at `fps`, scaled to fit
/// inside `width x height` and padded to it (centred, black), gray, raw, on stdout.
pub fn ffmpeg_args(source: &Source, o: &VideoOptions) -> Vec<String> {
    let mut a: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error"]
        .map(String::from)
        .to_vec();
    match source.kind {
        SourceKind::Device => a.extend(["-f", "v4l2"].map(String::from)),
        SourceKind::File if o.realtime => a.push("-re".into()),
        SourceKind::Stream if source.spec.to_ascii_lowercase().starts_with("rtsp") => {
            a.extend(["-rtsp_transport", "tcp"].map(String::from))
        }
        _ => {}
    }
    let (w, h) = (o.width, o.height);
    a.extend([
        "-i".into(),
        source.spec.clone(),
        "-an".into(),
        "-sn".into(),
        "-dn".into(),
        "-vf".into(),
        format!(
            "fps={},scale={w}:{h}:force_original_aspect_ratio=decrease:flags=bilinear,\
             pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,format=gray",
            o.fps
        ),
        "-f".into(),
        "rawvideo".into(),
        "-pix_fmt".into(),
        "gray".into(),
        "pipe:1".into(),
    ]);
    a
}

/// One piece of what ffmpeg's stdout carried.
enum Piece {
    Frame(Vec<u8>),
    /// The pipe ended inside a frame after `got` bytes.
    Cut(usize),
}

/// Frames of one source, one ffmpeg child. Dropping it stops ffmpeg.
pub struct Frames {
    source: Source,
    o: VideoOptions,
    child: Child,
    rx: Receiver<Piece>,
    stderr: Arc<Mutex<String>>,
    /// Frames handed out so far.
    pub read: u64,
}

impl Frames {
    /// Start ffmpeg on `source`.
    pub fn open(source: &Source, o: &VideoOptions) -> Result<Frames, VideoError> {
        o.check().map_err(|message| VideoError::Source {
            source_spec: source.spec.clone(),
            message,
        })?;
        let mut child = Command::new(&o.ffmpeg)
            .args(ffmpeg_args(source, o))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| VideoError::NoFfmpeg {
                ffmpeg: o.ffmpeg.display().to_string(),
                source_spec: source.spec.clone(),
                source: e,
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || keep_tail(stderr_pipe, &keep));
        let (tx, rx) = sync_channel(QUEUED_FRAMES);
        let n = o.frame_bytes();
        std::thread::spawn(move || pump(stdout, n, &tx));
        Ok(Frames {
            source: source.clone(),
            o: o.clone(),
            child,
            rx,
            stderr,
            read: 0,
        })
    }

    /// The next frame; `Ok(None)` when the source ended cleanly.
    pub fn next_frame(&mut self) -> Result<Option<GrayImage>, VideoError> {
        // ffmpeg reads up to 5 s of a stream to learn its format before the first frame.
        let wait = if self.read == 0 {
            self.o.stall + OPEN_GRACE
        } else {
            self.o.stall
        };
        match self.rx.recv_timeout(wait) {
            Ok(Piece::Frame(bytes)) => {
                self.read += 1;
                let img = GrayImage::from_raw(self.o.width, self.o.height, bytes)
                    .expect("frame_bytes = width x height");
                Ok(Some(img))
            }
            Ok(Piece::Cut(got)) => {
                self.finish()?;
                Err(VideoError::Truncated {
                    source_spec: self.source.spec.clone(),
                    got,
                    want: self.o.frame_bytes(),
                })
            }
            Err(RecvTimeoutError::Timeout) => Err(VideoError::Stalled {
                source_spec: self.source.spec.clone(),
                seconds: wait.as_secs_f64(),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                self.finish()?;
                if self.read == 0 {
                    return Err(VideoError::Ffmpeg {
                        source_spec: self.source.spec.clone(),
                        status: "exit status 0".into(),
                        stderr: self.stderr_tail_or("no video frame in the source"),
                    });
                }
                Ok(None)
            }
        }
    }

    /// ffmpeg has closed its stdout: wait for it (at most the stall time) and turn a failure
    /// into an error with its message.
    fn finish(&mut self) -> Result<(), VideoError> {
        let deadline = std::time::Instant::now() + self.o.stall;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break None,
            }
        };
        match status {
            Some(s) if s.success() => Ok(()),
            other => {
                // Let the stderr thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                Err(VideoError::Ffmpeg {
                    source_spec: self.source.spec.clone(),
                    status: other.map_or("did not exit".into(), |s| s.to_string()),
                    stderr: self.stderr_tail_or("(no message)"),
                })
            }
        }
    }

    fn stderr_tail_or(&self, none: &str) -> String {
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let t = s.trim();
        if t.is_empty() {
            none.to_string()
        } else {
            t.lines().collect::<Vec<_>>().join("; ")
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read whole frames of `n` bytes from ffmpeg's stdout into the channel until it ends.
fn pump(mut r: impl Read, n: usize, tx: &SyncSender<Piece>) {
    loop {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let piece = match got {
            0 => return,
            g if g < n => Piece::Cut(g),
            _ => Piece::Frame(buf),
        };
        let cut = matches!(piece, Piece::Cut(_));
        if tx.send(piece).is_err() || cut {
            return;
        }
    }
}

/// Keep the last [`STDERR_KEEP`] bytes ffmpeg writes to stderr.
fn keep_tail(mut r: impl Read, into: &Mutex<String>) {
    let mut buf = [0u8; 1024];
    while let Ok(k) = r.read(&mut buf) {
        if k == 0 {
            break;
        }
        let mut s = into.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str(&String::from_utf8_lossy(&buf[..k]));
        if s.len() > STDERR_KEEP {
            let mut cut = s.len() - STDERR_KEEP;
            while !s.is_char_boundary(cut) {
                cut += 1;
            }
            s.drain(..cut);
        }
    }
}

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
                            source_spec: source.spec.clone(),
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

    #[test]
    fn sources_are_checked_before_ffmpeg_starts() {
        let e = Source::parse("ftp://example/x").unwrap_err().to_string();
        assert!(
            e.contains("ftp://example/x") && e.contains("unknown URL scheme"),
            "{e}"
        );
        assert!(Source::parse("rtsp://").is_err());
        let e = Source::parse("/no/such/clip.mp4").unwrap_err().to_string();
        assert!(
            e.contains("/no/such/clip.mp4") && e.contains("cannot read"),
            "{e}"
        );
        assert!(
            Source::parse("/tmp")
                .unwrap_err()
                .to_string()
                .contains("not a file")
        );
        let s = Source::parse("RTSP://127.0.0.1:8554/cam").unwrap();
        assert_eq!(s.kind, SourceKind::Stream);
        assert!(s.live());
        let a = ffmpeg_args(&s, &VideoOptions::default());
        assert!(
            a.windows(2).any(|w| w == ["-rtsp_transport", "tcp"]),
            "{a:?}"
        );
        let i = a.iter().position(|x| x == "-i").unwrap();
        assert_eq!(a[i + 1], "RTSP://127.0.0.1:8554/cam");
        let vf = &a[a.iter().position(|x| x == "-vf").unwrap() + 1];
        assert!(
            vf.starts_with("fps=5,scale=640:480:") && vf.ends_with("format=gray"),
            "{vf}"
        );
        assert_eq!(a.last().unwrap(), "pipe:1");
    }

    #[test]
    fn options_are_bounded() {
        let ok = VideoOptions::default();
        assert!(ok.check().is_ok());
        for bad in [
            VideoOptions {
                fps: 0.0,
                ..ok.clone()
            },
            VideoOptions {
                fps: f64::NAN,
                ..ok.clone()
            },
            VideoOptions {
                fps: 31.0,
                ..ok.clone()
            },
            VideoOptions {
                width: 40,
                ..ok.clone()
            },
            VideoOptions {
                width: 4000,
                height: 3000,
                ..ok.clone()
            },
            VideoOptions {
                stall: Duration::ZERO,
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn the_pump_hands_out_whole_frames_and_tells_a_cut() {
        let (tx, rx) = sync_channel(8);
        pump(&[1u8; 10][..], 4, &tx);
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Piece::Frame(b) if b.len() == 4));
        assert!(matches!(&got[1], Piece::Frame(_)));
        assert!(matches!(got[2], Piece::Cut(2)));
        let (tx, rx) = sync_channel(8);
        pump(&[0u8; 8][..], 4, &tx);
        assert_eq!(rx.try_iter().count(), 2);
    }
}
