//! A video source and its frames: [`Source`] (a file, a capture device or a stream URL,
//! checked before ffmpeg starts), [`VideoOptions`] (rate, size, stall time; bounded), and
//! [`Frames`], one ffmpeg child piping raw gray frames of exactly `width x height` bytes.

use super::{MAX_FPS, MAX_FRAME_PIXELS, OPEN_GRACE, QUEUED_FRAMES};
use crate::PredictError;
use image::GrayImage;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// As given (a path or a URL): what ffmpeg opens.
    pub spec: String,
    /// As shown in messages, logs and the live page: a URL's user and password and its query
    /// (where cameras take tokens) replaced by `***` ([`redact`]).
    pub shown: String,
    pub kind: SourceKind,
}

/// A URL with its credentials hidden: `rtsp://user:pass@host/p?token=t` ->
/// `rtsp://***@host/p?***`. A path is returned as it is.
pub fn redact(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// URL schemes handed to ffmpeg.
pub const SCHEMES: [&str; 8] = [
    "rtsp", "rtsps", "rtmp", "http", "https", "tcp", "udp", "srt",
];

impl Source {
    /// A file (which must exist), `/dev/video*` or a URL of one of [`SCHEMES`].
    pub fn parse(spec: &str) -> Result<Source, VideoError> {
        let bad = |message: String| VideoError::Source {
            source_spec: redact(spec),
            message,
        };
        let source = |kind| Source {
            spec: spec.to_string(),
            shown: redact(spec),
            kind,
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
            return Ok(source(SourceKind::Stream));
        }
        let path = Path::new(spec);
        if spec.starts_with("/dev/video") {
            if !path.exists() {
                return Err(bad("no such capture device".into()));
            }
            return Ok(source(SourceKind::Device));
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(source(SourceKind::File)),
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
            source_spec: source.shown.clone(),
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
                source_spec: source.shown.clone(),
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
                    source_spec: self.source.shown.clone(),
                    got,
                    want: self.o.frame_bytes(),
                })
            }
            Err(RecvTimeoutError::Timeout) => Err(VideoError::Stalled {
                source_spec: self.source.shown.clone(),
                seconds: wait.as_secs_f64(),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                self.finish()?;
                if self.read == 0 {
                    return Err(VideoError::Ffmpeg {
                        source_spec: self.source.shown.clone(),
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
                    source_spec: self.source.shown.clone(),
                    status: other.map_or("did not exit".into(), |s| s.to_string()),
                    stderr: self.stderr_tail_or("(no message)"),
                })
            }
        }
    }

    fn stderr_tail_or(&self, none: &str) -> String {
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        // ffmpeg's messages quote the URL: the shown form replaces it.
        let t = s.trim().replace(&self.source.spec, &self.source.shown);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Credentials never reach a message or the page.
        let cam = "rtsp://admin:s3cret@10.0.0.7:554/live?token=abc";
        let s = Source::parse(cam).unwrap();
        assert_eq!(s.shown, "rtsp://***@10.0.0.7:554/live?***");
        assert_eq!(s.spec, cam, "ffmpeg gets the URL as given");
        let e = Source::parse("ftp://u:s3cret@h/x?token=abc")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && !e.contains("abc"), "{e}");
        assert_eq!(redact("/tmp/clip.mp4"), "/tmp/clip.mp4");
        assert_eq!(redact("tcp://127.0.0.1:9000"), "tcp://127.0.0.1:9000");
        assert_eq!(redact("http://u@h#frag"), "http://***@h#frag");
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
