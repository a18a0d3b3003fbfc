//! `fer-predict`: score photos per face (batch to stdout) or `fer-predict serve` (HTTP).
//! See the library's crate documentation for inputs, outputs and options.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fer_predict::monitor::DriftOptions;
use fer_predict::output::{Format, RowWriter, SecondWriter};
use fer_predict::serve::{NetOptions, ServeOptions};
use fer_predict::video::{Event, PerSecond, Source, VideoOptions};
use fer_predict::{DetectOptions, DetectorKind, FaceDetector, ModelOptions, Predictor, Scorer};
use std::io::Write;
use std::path::PathBuf;

// mimalloc, as the other CNN binaries; unlike the training binaries, fer-predict does not
// tell it to keep freed memory (fer_ops::alloc::keep_freed_memory): the service must give a
// burst's memory back, and mimalloc's default returns freed pages after 10 ms.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fer-predict",
    version,
    about = "Score photos: per face, p(happy) and a label (CSV or JSON lines on stdout)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    batch: BatchArgs,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP service: POST /predict (image body), GET /health.
    Serve(ServeArgs),
}

#[derive(Args)]
struct BatchArgs {
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
struct ServeArgs {
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

fn batch(a: &BatchArgs) -> anyhow::Result<()> {
    if let Some(spec) = &a.video {
        return video(a, spec);
    }
    if a.inputs.is_empty() {
        anyhow::bail!("no inputs: give image files, folders or `-` (see --help)");
    }
    let p = a.model.predictor()?;
    let items = fer_predict::inputs::expand(&a.inputs, &mut std::io::stdin().lock());
    let pb = fer_core::cli::progress(items.len() as u64, "predict", a.model.quiet);
    let stdout = std::io::stdout().lock();
    let mut w = RowWriter::with_classes(
        a.format,
        std::io::BufWriter::new(stdout),
        p.threshold,
        p.classes.as_ref(),
    )?;
    let chunk = 512;
    let s = p.run_files(&items, chunk, &pb, &mut |f, o| w.write(f, o))?;
    w.flush()?;
    pb.finish_and_clear();
    if !a.model.quiet {
        eprintln!(
            "{} files, {} faces, {} without a face, {} unreadable, {:.2} s ({:.0} files/s)",
            s.files,
            s.faces,
            s.no_face,
            s.errors,
            s.seconds,
            s.files as f64 / s.seconds.max(1e-9)
        );
    }
    std::io::stderr().flush().ok();
    Ok(())
}

/// `--video`: one row per second of the source on stdout.
fn video(a: &BatchArgs, spec: &str) -> anyhow::Result<()> {
    let source = Source::parse(spec)?;
    let spec = source.shown.as_str();
    let vo = a.vid.options(5, false)?;
    let p = a.model.predictor()?;
    let quiet = a.model.quiet;
    let pb = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} frames ({per_sec})")
                .expect("valid template"),
        );
        pb.set_message(format!("video {spec}:"));
        pb
    };
    let mut w = SecondWriter::new(a.format, std::io::BufWriter::new(std::io::stdout().lock()));
    let mut per = PerSecond::new(vo.fps, p.threshold);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let group = 2 * rayon::current_num_threads().max(1);
    // A log line every minute of video where stderr is not a terminal (the bar's stand-in in
    // a log file).
    let log_every = (60.0 * vo.fps).round().max(1.0) as u64;
    let r = fer_predict::video::run(
        &p,
        &source,
        &vo,
        group,
        &stop,
        &mut |k, o| {
            pb.inc(1);
            if (k + 1) % log_every == 0 {
                fer_core::cli::log_line(
                    "video",
                    quiet,
                    &format!(
                        "{spec}: {} frames, {:.0} s of video",
                        k + 1,
                        (k + 1) as f64 / vo.fps
                    ),
                );
            }
            match per.push(k, o) {
                Some(s) => w.write(&s),
                None => Ok(()),
            }
        },
        &mut |ev| match ev {
            Event::Opened if !quiet => pb.println(format!(
                "reading {spec} through ffmpeg: {} frames/s at {}x{}",
                vo.fps, vo.width, vo.height
            )),
            // Warnings show even with --quiet.
            Event::Failed(e, Some(wait)) => {
                let msg = format!(
                    "warning: {e}; opening it again in {:.0} s",
                    wait.as_secs_f64()
                );
                if pb.is_hidden() {
                    eprintln!("{msg}");
                } else {
                    pb.println(msg);
                }
            }
            _ => {}
        },
    );
    pb.finish_and_clear();
    // The last second is written whatever stopped the source: no scored frame is lost.
    if let Some(s) = per.finish() {
        w.write(&s)?;
    }
    let sum = r?;
    if !quiet {
        eprintln!(
            "{} frames ({:.1} s of video), {} faces, reopened {} times, {:.1} s ({:.1} frames/s)",
            sum.frames,
            sum.frames as f64 / vo.fps,
            sum.faces,
            sum.reopened,
            sum.wall_seconds,
            sum.frames as f64 / sum.wall_seconds.max(1e-9)
        );
    }
    Ok(())
}

fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    if !(a.timeout > 0.0 && a.timeout.is_finite()) {
        anyhow::bail!(
            "--timeout {}: must be a positive number of seconds",
            a.timeout
        );
    }
    if !(a.header_timeout > 0.0 && a.header_timeout.is_finite()) {
        anyhow::bail!(
            "--header-timeout {}: must be a positive number of seconds",
            a.header_timeout
        );
    }
    for (v, name) in [
        (a.write_timeout, "--write-timeout"),
        (a.drain_timeout, "--drain-timeout"),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            anyhow::bail!("{name} {v}: must be a positive number of seconds");
        }
    }
    let token = token(a)?;
    let video = match &a.video {
        Some(spec) => Some((
            Source::parse(spec)?,
            a.vid.options(u32::MAX, !a.video_fast)?,
        )),
        None => None,
    };
    let p = a.model.predictor()?;
    let o = ServeOptions {
        addr: a.addr,
        max_body: a.max_body,
        timeout: std::time::Duration::from_secs_f64(a.timeout),
        max_inflight: a.max_inflight.unwrap_or_else(fer_predict::serve::cores),
        queue: a.queue,
        max_queued_per_client: a.max_queued_per_client,
        max_bodies: a.max_bodies,
        min_body_rate: a.min_body_rate,
        memory_budget: a.memory_budget.saturating_mul(1 << 20),
        net: NetOptions {
            max_connections: a.max_connections,
            max_connections_per_client: a.max_connections_per_client,
            header_timeout: std::time::Duration::from_secs_f64(a.header_timeout),
            write_timeout: std::time::Duration::from_secs_f64(a.write_timeout),
            max_requests_per_connection: a.max_requests_per_connection,
            drain_timeout: std::time::Duration::from_secs_f64(a.drain_timeout),
        },
        token,
        allow_origins: a.allow_origin.clone(),
        drift: DriftOptions {
            window: a.drift_window,
            min_scores: a.drift_min_scores,
            alpha: a.drift_alpha,
        },
        // Validation's raw scores, on the served (calibrated) scale.
        reference: fer_predict::monitor::reference_scores(&a.model.dir(), p.svm_name().as_deref())
            .map(|v| v.into_iter().map(|x| p.served_p(x)).collect()),
        video,
        ..ServeOptions::default()
    };
    if !(a.drift_alpha > 0.0 && a.drift_alpha < 1.0) || a.drift_window == 0 {
        anyhow::bail!(
            "--drift-alpha {} must be in (0, 1) and --drift-window ({}) positive",
            a.drift_alpha,
            a.drift_window
        );
    }
    if !a.model.quiet {
        match &o.reference {
            Some(r) => eprintln!(
                "drift check: the last {} scores against {} validation scores (alpha {}; GET /metrics, /health)",
                a.drift_window,
                r.len(),
                a.drift_alpha
            ),
            None => eprintln!(
                "drift check: off ({} has no validation scores in predictions.parquet)",
                a.model.dir().display()
            ),
        }
    }
    let (max_pixels, max_faces) = (p.max_pixels, p.max_faces);
    let bound = fer_predict::serve::bind(p, &o).context("cannot start the service")?;
    if !a.model.quiet {
        eprintln!(
            "serving on http://{} (GET / the live page, POST /predict, POST /frames, GET /live.json, GET /health, GET /metrics; body limit {} bytes, {} pixels, \
             {} faces; timeout {} s, header timeout {} s; {} in flight + {} queued; {} \
             connections, {} per client; memory budget {} MiB; {})",
            bound.addr,
            o.max_body,
            max_pixels,
            max_faces,
            a.timeout,
            a.header_timeout,
            o.max_inflight,
            o.queue,
            o.net.max_connections,
            o.net.max_connections_per_client,
            o.memory_budget >> 20,
            if o.token.is_some() {
                "token required"
            } else {
                "no token"
            }
        );
    }
    bound.run()?;
    if !a.model.quiet {
        eprintln!("fer-predict serve: stopped");
    }
    Ok(())
}

/// The bearer token: `--token-file`'s first line, else `FER_PREDICT_TOKEN`, else none.
fn token(a: &ServeArgs) -> anyhow::Result<Option<String>> {
    let t = match &a.token_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                anyhow::bail!("{}: the token file is empty", f.display());
            }
            Some(line)
        }
        None => std::env::var("FER_PREDICT_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    };
    Ok(t)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Some(Command::Serve(a)) => serve(a),
        None => batch(&cli.batch),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
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
