//! A video source and its frames: [`Source`] (a file, a capture device or a stream URL,
//! checked before ffmpeg starts), [`VideoOptions`] (rate, size, stall time; bounded), and
//! [`Frames`], one ffmpeg child piping raw gray frames of exactly `width x height` bytes.

mod frames;

pub use frames::Frames;

use super::{MAX_FPS, MAX_FRAME_PIXELS};
use crate::PredictError;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}
