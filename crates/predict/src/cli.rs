//! The command line's arguments: a batch (images or `--video`), `serve`, the video reading and
//! the model, detector and limits they share; and the parsers of their values.

mod batch;
mod serve;

pub(crate) use batch::batch;
pub(crate) use serve::serve;

use anyhow::Context;
use clap::Args;
use fer_predict::monitor::DriftOptions;
use fer_predict::output::Format;
use fer_predict::serve::{NetOptions, ServeOptions};
use fer_predict::video::VideoOptions;
use fer_predict::{DetectOptions, DetectorKind, FaceDetector, ModelOptions, Predictor, Scorer};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct BatchArgs {
    /// Image files, folders (recursive) or `-` (paths on stdin).
    inputs: Vec<String>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Score a video instead of images: a file, a capture device (/dev/videoN) or a stream URL
    /// (rtsp://, http://, tcp://, udp://, ...), read through ffmpeg; writes one row per second
    /// of the source (frames, faces, happy, alerts, share happy, mean p_happy), never an image.
    #[arg(long, conflicts_with = "inputs")]
    video: Option<String>,
    #[command(flatten)]
    vid: VideoArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct VideoArgs {
    /// --video: frames per second of the source's time that are scored (at most 30).
    #[arg(long, default_value_t = 5.0)]
    fps: f64,
    /// --video: every frame is scaled to fit inside WIDTHxHEIGHT and padded to it (at most
    /// 1920x1080 pixels in all).
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    video_size: (u32, u32),
    /// --video: seconds without a frame before the source counts as stalled.
    #[arg(long, default_value_t = 10.0)]
    video_stall: f64,
    /// --video: a live source (a device or a URL) that fails is opened again up to this many
    /// times in a row, after 1 s, 2 s, 4 s, ... (at most 30 s) (default 5; serve: without end).
    #[arg(long)]
    video_retries: Option<u32>,
}

impl VideoArgs {
    fn options(&self, default_retries: u32, realtime: bool) -> anyhow::Result<VideoOptions> {
        if !(self.video_stall > 0.0 && self.video_stall.is_finite()) {
            anyhow::bail!(
                "--video-stall {}: must be a positive number of seconds",
                self.video_stall
            );
        }
        let o = VideoOptions {
            fps: self.fps,
            width: self.video_size.0,
            height: self.video_size.1,
            stall: std::time::Duration::from_secs_f64(self.video_stall),
            retries: self.video_retries.unwrap_or(default_retries),
            realtime,
            ..VideoOptions::default()
        };
        o.check().map_err(anyhow::Error::msg)?;
        Ok(o)
    }
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Drift check: how many of the most recent scores are compared with validation's.
    #[arg(long, default_value_t = DriftOptions::default().window)]
    drift_window: usize,
    /// Drift check: fewest recent scores before it says anything.
    #[arg(long, default_value_t = DriftOptions::default().min_scores)]
    drift_min_scores: usize,
    /// Drift check: the Kolmogorov-Smirnov test's level.
    #[arg(long, default_value_t = DriftOptions::default().alpha)]
    drift_alpha: f64,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:8080", env = "FER_PREDICT_ADDR")]
    addr: std::net::SocketAddr,
    /// Largest accepted body, in bytes.
    #[arg(long, default_value_t = 10 << 20)]
    max_body: usize,
    /// Request timeout in seconds (receiving the body, waiting for a slot and predicting); a
    /// request over it gets 503 and its work stops.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Predictions decoding and scoring at once (default: the number of cores).
    #[arg(long)]
    max_inflight: Option<usize>,
    /// Requests that may wait for a prediction slot; more are shed with 503 and Retry-After.
    #[arg(long, default_value_t = ServeOptions::default().queue)]
    queue: usize,
    /// Open connections; more are answered 503 and closed at once.
    #[arg(long, default_value_t = NetOptions::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection has to send a whole request head (new or idle keep-alive), else
    /// it is closed.
    #[arg(long, default_value_t = 5.0)]
    header_timeout: f64,
    /// Open connections from one client address; more are answered 503 and closed at once.
    #[arg(long, default_value_t = NetOptions::default().max_connections_per_client)]
    max_connections_per_client: usize,
    /// Places (in flight or queued) one client address may hold; more are shed with 503.
    #[arg(long, default_value_t = ServeOptions::default().max_queued_per_client)]
    max_queued_per_client: usize,
    /// Request bodies being received at once; more are shed with 503.
    #[arg(long, default_value_t = ServeOptions::default().max_bodies)]
    max_bodies: usize,
    /// Slowest accepted body, in bytes per second (after a grace of 2 s); slower gets 408.
    #[arg(long, default_value_t = ServeOptions::default().min_body_rate)]
    min_body_rate: u64,
    /// Memory the predictions in flight may hold between them, in MiB (decoding and
    /// detection, computed from each image's header; an image needing more gets 413).
    #[arg(long, default_value_t = ServeOptions::default().memory_budget >> 20)]
    memory_budget: u64,
    /// Seconds the socket may refuse every byte of an answer (the client is not reading)
    /// before the connection is closed.
    #[arg(long, default_value_t = 5.0)]
    write_timeout: f64,
    /// Answers on one connection before it is closed.
    #[arg(long, default_value_t = NetOptions::default().max_requests_per_connection)]
    max_requests_per_connection: usize,
    /// On SIGTERM or SIGINT: seconds given to the requests in flight before exiting.
    #[arg(long, default_value_t = 15.0)]
    drain_timeout: f64,
    /// A file holding the bearer token /predict and /metrics then need (the environment
    /// variable FER_PREDICT_TOKEN is the other way; never a flag's value, which `ps` shows).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// An origin (e.g. https://kiosk.example) whose browser pages may POST /predict, besides
    /// the service's own; repeatable.
    #[arg(long)]
    allow_origin: Vec<String>,
    /// A video source the service reads and scores itself (a file, /dev/videoN or a stream
    /// URL, through ffmpeg); the live page (GET /) shows its aggregates. A file plays at its
    /// own pace unless --video-fast.
    #[arg(long)]
    video: Option<String>,
    /// --video: read a file as fast as its frames are scored, not at its own pace.
    #[arg(long)]
    video_fast: bool,
    #[command(flatten)]
    vid: VideoArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct ModelArgs {
    /// Model folder: a train_cnn model (model.json + model.safetensors) or train_svm.
    #[arg(long, env = "FER_PREDICT_MODEL")]
    model: Option<PathBuf>,
    /// Pipeline: with --arch, the model artifacts/<pipeline>/train_cnn/<arch>; also where the
    /// report's recommended threshold is read (default: from --model's path, else seed).
    #[arg(long, short)]
    pipeline: Option<String>,
    /// Model name under train_cnn (fer-small, seed-base, ...), `svm` or `tune`.
    #[arg(long, default_value = "fer-small")]
    arch: String,
    #[arg(long, default_value = "artifacts", env = "FER_ARTIFACTS")]
    artifacts: PathBuf,
    /// SVM folders: the saved model to use (e.g. hog/rbf; default the best on val).
    #[arg(long)]
    svm: Option<String>,
    /// Fitted transform to use instead of the model's.
    #[arg(long)]
    transform: Option<PathBuf>,
    /// p(happy) threshold (default: artifacts/<pipeline>/report/recommendation.json's when it
    /// was chosen for the loaded model's weights, else 0.5).
    #[arg(long)]
    threshold: Option<f64>,
    /// Each image is one already-cropped face (as FER2013 images are).
    #[arg(long)]
    no_detect: bool,
    /// Face detector: yunet (OpenCV Zoo's YuNet through tract-onnx; needs the `yunet` build
    /// feature, which `make` turns on) or seeta (rustface's SeetaFace cascade). Default: yunet
    /// where built, else seeta. The options below default to the chosen detector's values.
    #[arg(long, value_parser = parse_detector)]
    detector: Option<DetectorKind>,
    /// Margin around a detected face, per side, as a fraction of its side (default 0).
    #[arg(long)]
    margin: Option<f32>,
    /// Smallest face side kept, in pixels (seeta: >= 20, default 40; yunet: default 20).
    #[arg(long)]
    min_face: Option<u32>,
    /// Face detection score threshold, higher: fewer false faces (yunet: in (0, 1), default
    /// 0.3; seeta: > 0, default 1.0).
    #[arg(long)]
    det_threshold: Option<f64>,
    /// Frames darker than this mean gray level are equalized before detection (0: never;
    /// yunet 0, seeta 60).
    #[arg(long)]
    det_dark_below: Option<u8>,
    /// Border added around the frame before detection, as a fraction of its larger side, so a
    /// face that fills the frame is found (0: none; yunet 0, seeta 0.25).
    #[arg(long)]
    det_pad: Option<f32>,
    /// Largest image, in pixels (width x height, read from the header before decoding; a
    /// larger one is refused: 413 in the service, an error row in a batch).
    #[arg(long, default_value_t = fer_predict::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// When detecting: the longer side over the shorter one, at most (checked from the
    /// header; a narrower image is refused).
    #[arg(long, default_value_t = fer_predict::DEFAULT_MAX_ASPECT)]
    max_aspect: f64,
    /// The detector searches a copy scaled down to this many pixels on its longer side
    /// (faces are cropped from the original; yunet 640, its input size, seeta 1280).
    #[arg(long)]
    det_work_side: Option<u32>,
    /// yunet: the size of the turned copies searched for tilted heads, as a fraction of the
    /// searched frame (default 0.5; 0 turns them off, and second looks still turn). 1 finds
    /// small tilted faces a little more often and halves the frame rate (the README's
    /// camera-frames section has them measured).
    #[arg(long)]
    det_tilt_scale: Option<f32>,
    /// yunet: boxes scoring at least this (under --det-threshold) get a second look, a search
    /// of a window around each at a size and angles YuNet knows (default 0.02; 0 turns it off).
    #[arg(long)]
    det_second_look: Option<f64>,
    /// yunet: at most this many second looks per image (default 8), so a cluttered frame's
    /// time stays bounded.
    #[arg(long)]
    det_second_looks: Option<u32>,
    /// Faces scored per image: the most confident ones when more are found.
    #[arg(long, default_value_t = fer_predict::DEFAULT_MAX_FACES)]
    max_faces: usize,
    /// Faces per forward pass (default: 32 for a CNN on the CPU, else the model's eval batch
    /// size).
    #[arg(long)]
    batch_size: Option<usize>,
    /// `cpu` or `wgpu` (CNNs).
    #[arg(long, default_value = "cpu", env = "FER_DEVICE")]
    device: String,
    /// No progress bar or log lines.
    #[arg(long, short)]
    quiet: bool,
}

impl ModelArgs {
    /// The model folder: `--model`, else the pipeline's `--arch`.
    fn dir(&self) -> std::path::PathBuf {
        match &self.model {
            Some(m) => m.clone(),
            None => fer_predict::model_dir(
                &self.artifacts,
                self.pipeline.as_deref().unwrap_or("seed"),
                &self.arch,
            ),
        }
    }

    fn predictor(&self) -> anyhow::Result<Predictor> {
        let dir = self.dir();
        let pipeline = self
            .pipeline
            .clone()
            .or_else(|| fer_predict::pipeline_of(&dir, &self.artifacts))
            .unwrap_or_else(|| "seed".into());
        let scorer = Scorer::load(
            &dir,
            &ModelOptions {
                svm: self.svm.clone(),
                transform: self.transform.clone(),
                device: Some(self.device.clone()),
                batch: self.batch_size,
            },
        )
        .with_context(|| format!("cannot load the model {}", dir.display()))?;
        if let Some(w) = &scorer.calibration.warning {
            eprintln!("warning: {w}");
        }
        let (threshold, source) = match self.threshold {
            Some(t) => (t, "--threshold".to_string()),
            None => {
                let c = fer_predict::threshold::for_pipeline(&self.artifacts, &pipeline, &scorer);
                if let Some(w) = &c.warning {
                    eprintln!("warning: {w}");
                }
                (c.value, c.source)
            }
        };
        if self.max_pixels == 0 || self.max_faces == 0 {
            anyhow::bail!("--max-pixels and --max-faces must be positive");
        }
        // NaN fails too.
        if self.max_aspect.is_nan() || self.max_aspect < 1.0 {
            anyhow::bail!("--max-aspect {}: must be at least 1", self.max_aspect);
        }
        let kind = self.detector.unwrap_or(DetectorKind::default_kind());
        let d = DetectOptions::for_detector(kind);
        let detector = FaceDetector::embedded(DetectOptions {
            margin: self.margin.unwrap_or(d.margin),
            min_face: self.min_face.unwrap_or(d.min_face),
            score_threshold: self.det_threshold.unwrap_or(d.score_threshold),
            dark_below: self.det_dark_below.unwrap_or(d.dark_below),
            pad: self.det_pad.unwrap_or(d.pad),
            work_side: self.det_work_side.unwrap_or(d.work_side),
            tilt_scale: self.det_tilt_scale.unwrap_or(d.tilt_scale),
            second_look: self.det_second_look.unwrap_or(d.second_look),
            second_looks: self.det_second_looks.unwrap_or(d.second_looks),
            ..d
        })?;
        let mut p = Predictor::new(scorer, detector, !self.no_detect, threshold)?;
        p.max_pixels = self.max_pixels;
        p.max_aspect = self.max_aspect;
        p.max_faces = self.max_faces;
        p.threshold_source = source.clone();
        if !self.quiet {
            eprintln!(
                "model: {}; threshold {threshold} ({source}); {}",
                p.description,
                if p.detect {
                    format!("face detection: {kind}")
                } else {
                    "no detection: each image is a face".into()
                }
            );
        }
        Ok(p)
    }
}

/// `--video-size`: `WIDTHxHEIGHT`.
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: expected WIDTHxHEIGHT, e.g. 640x480");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

/// `--detector`: a name of [`DetectorKind`], refused when this binary lacks it.
fn parse_detector(s: &str) -> Result<DetectorKind, String> {
    let kind = DetectorKind::parse(s).ok_or_else(|| {
        format!(
            "unknown detector {s:?}: one of {}",
            DetectorKind::ALL.map(|k| k.name()).join(", ")
        )
    })?;
    if !kind.available() {
        return Err(fer_predict::DetectError::NotBuilt(kind.name()).to_string());
    }
    Ok(kind)
}
