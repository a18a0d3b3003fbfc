//! `fer-predict serve`: the checkout kiosk's HTTP service (axum routes on hyper's HTTP/1
//! server, tokio).
//!
//! - `POST /predict` with the image bytes (JPEG or PNG) as the body and a `Content-Type` of
//!   `image/jpeg`, `image/png` or `application/octet-stream` returns
//!   `{"status": "ok" | "no_face", "width", "height", "threshold", "faces_detected",
//!   "max_faces", "faces": [{"face", "box": {"x", "y", "width", "height", "score"}, "p_happy",
//!   "label"}]}` (a seven-class model's faces also have `"emotions"` (a CNN's probabilities)
//!   or `"decisions"` (an SVM's one-vs-rest decision values), objects keyed by class name,
//!   and `"emotion"`, the argmax class: see the crate doc; the drift check still watches
//!   p_happy). At most `max_faces` faces are scored (the most confident);
//!   `faces_detected` says how many were found. Query options: `detect=false` (the image is an
//!   already-cropped face) and `threshold=<p>`.
//! - `GET /health`: `{"status": "ok", "threshold", "threshold_source", "detect", "in_flight",
//!   "panics", "limits", ...}`; 503 with `"status": "broken"` when the scorer fails a probe
//!   (one blank face) after a scoring panic. A broken scorer is probed again on each
//!   `/health` and `/predict`, and reported ok once it works. The model's path, the failure's
//!   reason and the last panic's text are shown only to a request with the token
//!   ([`access`]).
//! - `GET /metrics`: Prometheus text ([`crate::monitor`]), `fer_refusals_total{reason}`
//!   among it.
//! - `GET /`: the shop manager's live page, one self-contained HTML file (no external asset;
//!   a content security policy allows nothing else) that polls `GET /live.json`: the share of
//!   happy faces and the alerts over the last 5 minutes, faces seen per minute, a chart and
//!   table per minute over the last 15, the drift check's state and the video source's
//!   ([`crate::live`]). Aggregates only, under the privacy rule of [`crate::video`]; open like
//!   `/health`.
//! - `POST /frames`: a camera frame (JPEG or PNG) under every limit of `/predict`, scored at
//!   the service's threshold and added to the live aggregates; the answer is its face count
//!   only. With `--video <source>` the service reads a file, device or stream through ffmpeg
//!   itself ([`crate::video`]; a file at its own pace), on a thread of its own beside the
//!   requests: at most a few frames in memory, failures shown on the page and retried
//!   without end (1 s, 2 s, ... at most 30 s apart).
//!
//! Errors are JSON `{"error": "..."}`: 400 empty body or bad query; 401 missing or wrong
//! token; 403 a cross-origin browser request; 408 a body that arrives too slowly or not within
//! `--timeout`; 413 body over `--max-body`, or an image over `--max-pixels`, too narrow
//! (`--max-aspect`) or costing more than the memory budget (all read from the image header,
//! before decoding: a decompression bomb costs nothing); 415 a `Content-Type` that is not an
//! image type, or a body that is not a whole JPEG or PNG image; 500 a panic while scoring (the
//! service stays up); 503 with `Retry-After` when the service is busy, when a prediction does
//! not finish within `--timeout`, or while the scorer is broken.
//!
//! # Limits, in the order a request meets them
//! 1. **Connections** ([`net`]): at most `--max-connections` (256) open, and
//!    `--max-connections-per-client` (32) from one address; over either, a short 503 and the
//!    connection is closed. A connection has `--header-timeout` (5 s) to send each request
//!    head (new or idle keep-alive), and `--write-timeout` (5 s) for the socket to take any
//!    byte of an answer (a client that does not read is dropped); after
//!    `--max-requests-per-connection` (1000) answers it is closed.
//! 2. **Access** ([`access`]): token, `Origin` and `Content-Type`.
//! 3. **The body**, read before any scoring slot is taken: at most `--max-bodies` (32) are
//!    being received at once (503 beyond), each at most `--max-body` bytes, arriving at
//!    `--min-body-rate` bytes per second (4096) or better after a grace of 2 s (else 408).
//! 4. **Admission**: at most `--max-inflight` (the number of cores) predictions decode and
//!    score at once, and `--queue` (16) more may wait; one client address may hold at most
//!    `--max-queued-per-client` (4) of these places; beyond, 503 with `Retry-After`.
//! 5. **Memory** ([`crate::decode`]): the image's header says what decoding and searching it
//!    will allocate; an image costing more than the whole `--memory-budget` (768 MiB) is
//!    refused (413, with the figures), else its share of the budget is held while it is
//!    decoded and scored (waiting, within the timeout, for others to give theirs back).
//! 6. **Time**: `--timeout` (10 s) bounds the whole request (body, queue, prediction). A
//!    request that times out is answered 503 and its work stops at the next step (after
//!    decoding, after detection, between groups of scoring batches); its slot and memory
//!    are freed only when the work has stopped, so abandoned work never piles up.
//!
//! SIGTERM or SIGINT ([`Bound::run`]): the service stops accepting, lets every request in
//! flight finish and be answered (at most `--drain-timeout`, 15 s), and exits 0.
//!
//! Memory goes back to the system after a burst: the service does not keep freed memory (the
//! training binaries do, for speed), and the detector searches a copy of bounded size, so its
//! per-thread buffers stay small.
//!
//! Binds to 127.0.0.1 unless told otherwise.

pub mod access;
mod live;
pub mod net;
mod score;
mod status;

use crate::live::Live;
use crate::monitor::{DriftOptions, Monitor};
use crate::video::{Source, VideoOptions};
use crate::{PredictError, Predictor};
use access::{Access, Refusal};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
pub use net::NetOptions;
use net::PerClient;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Whole-request budget: receiving the body, waiting for a slot and predicting.
    pub timeout: Duration,
    /// Tokio worker threads.
    pub threads: usize,
    /// Predictions decoding and scoring at once.
    pub max_inflight: usize,
    /// Requests that may wait for a prediction slot; more are shed (503).
    pub queue: usize,
    /// Places (in flight or waiting) one client address may hold.
    pub max_queued_per_client: usize,
    /// Bodies being received at once; more are shed (503).
    pub max_bodies: usize,
    /// Slowest accepted body, in bytes per second (after `body_grace`).
    pub min_body_rate: u64,
    /// Time a body may take before the rate rule applies.
    pub body_grace: Duration,
    /// Bytes of memory the predictions in flight may hold between them (decoding, detection).
    pub memory_budget: u64,
    /// The connection layer's settings: connection caps, header and write timeouts, requests
    /// per connection, the drain on shutdown.
    pub net: NetOptions,
    /// `Retry-After` of a 503, in seconds.
    pub retry_after: u64,
    /// The bearer token `/predict` and `/metrics` need (`None`: open).
    pub token: Option<String>,
    /// Origins allowed besides the service's own (`--allow-origin`).
    pub allow_origins: Vec<String>,
    /// The drift check's settings ([`crate::monitor`]).
    pub drift: DriftOptions,
    /// The model's validation scores, the drift check's reference (`None`: check off).
    pub reference: Option<Vec<f64>>,
    /// A video source the service reads and scores itself, for the live page (`--video`).
    pub video: Option<(Source, VideoOptions)>,
}

/// The number of cores (1 when unknown): the default `--max-inflight`.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Default `--memory-budget`: 768 MiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 768 << 20;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 10 << 20,
            timeout: Duration::from_secs(10),
            threads: 2,
            max_inflight: cores(),
            queue: 16,
            max_queued_per_client: 4,
            max_bodies: 32,
            min_body_rate: 4096,
            body_grace: Duration::from_secs(2),
            memory_budget: DEFAULT_MEMORY_BUDGET,
            net: NetOptions::default(),
            retry_after: 1,
            token: None,
            allow_origins: Vec::new(),
            drift: DriftOptions::default(),
            reference: None,
            video: None,
        }
    }
}

/// What `/health` reports about the scorer.
#[derive(Debug, Default)]
struct Health {
    panics: u64,
    last_panic: Option<String>,
    /// Why the scorer is broken (its probe failed), if it is.
    broken: Option<String>,
}

/// The memory budget, in KiB permits.
const KIB: u64 = 1024;

struct AppState {
    predictor: Arc<Predictor>,
    o: ServeOptions,
    access: Access,
    /// `max_bodies` permits: held while a body is received.
    bodies: Arc<Semaphore>,
    /// `max_inflight + queue` permits: held from admission to the end of the work.
    admit: Arc<Semaphore>,
    /// Admission places held per client address.
    admitted: Arc<PerClient>,
    /// `max_inflight` permits: held while decoding and scoring.
    compute: Arc<Semaphore>,
    /// The memory budget in KiB: held while decoding and scoring.
    memory: Arc<Semaphore>,
    health: Mutex<Health>,
    broken: AtomicBool,
    shed: AtomicU64,
    monitor: Monitor,
    /// The live page's aggregates (the video source and `POST /frames`).
    live: Live,
}

impl AppState {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // Never held across anything that panics; recover anyway.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_probe(&self, r: Result<(), String>) {
        let mut h = self.health();
        h.broken = r.err();
        self.broken.store(h.broken.is_some(), Ordering::SeqCst);
    }

    /// An error answer, counted under `why`.
    fn refuse(&self, why: Refusal, code: StatusCode, msg: impl std::fmt::Display) -> Response {
        self.monitor.refusal(why.label());
        let mut r = error(code, msg);
        if code == StatusCode::SERVICE_UNAVAILABLE {
            self.shed.fetch_add(1, Ordering::Relaxed);
            r.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(self.o.retry_after),
            );
        }
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }

    /// 503 with `Retry-After`.
    fn unavailable(&self, why: Refusal, msg: impl std::fmt::Display) -> Response {
        self.refuse(why, StatusCode::SERVICE_UNAVAILABLE, msg)
    }
}

fn reply(code: StatusCode, v: serde_json::Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string() + "\n",
    )
        .into_response()
}

fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    reply(code, json!({"error": msg.to_string()}))
}

fn budget_kib(o: &ServeOptions) -> u64 {
    (o.memory_budget / KIB).max(1)
}

/// The service's routes.
fn router(predictor: Predictor, o: &ServeOptions, addr: SocketAddr) -> (Router, Arc<AppState>) {
    let predictor_threshold = predictor.threshold;
    let st = Arc::new(AppState {
        predictor: Arc::new(predictor),
        access: Access::new(o.token.as_deref(), addr, &o.allow_origins),
        bodies: Arc::new(Semaphore::new(o.max_bodies)),
        admit: Arc::new(Semaphore::new(o.max_inflight + o.queue)),
        admitted: Arc::new(PerClient::default()),
        compute: Arc::new(Semaphore::new(o.max_inflight)),
        memory: Arc::new(Semaphore::new(budget_kib(o) as usize)),
        o: o.clone(),
        health: Mutex::new(Health::default()),
        broken: AtomicBool::new(false),
        shed: AtomicU64::new(0),
        monitor: Monitor::new(
            o.reference.clone(),
            o.drift.clone(),
            &Refusal::ALL.map(Refusal::label),
        ),
        live: Live::new(predictor_threshold),
    });
    let app = Router::new()
        .route("/", get(live::page))
        .route("/live.json", get(live::live_json))
        .route("/frames", post(score::frames))
        .route("/predict", post(score::predict))
        .route("/health", get(status::health))
        .route("/metrics", get(status::metrics))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            status::track,
        ))
        .with_state(st.clone());
    (app, st)
}

/// A bound service: its address, and `run` to serve until a signal.
pub struct Bound {
    pub addr: SocketAddr,
    listener: std::net::TcpListener,
    app: Router,
    state: Arc<AppState>,
    o: ServeOptions,
}

/// Bind the address (port 0 picks a free one) without serving yet.
pub fn bind(predictor: Predictor, o: &ServeOptions) -> Result<Bound, PredictError> {
    let positive = [
        (o.max_inflight, "--max-inflight"),
        (o.net.max_connections, "--max-connections"),
        (
            o.net.max_connections_per_client,
            "--max-connections-per-client",
        ),
        (o.max_bodies, "--max-bodies"),
        (o.max_queued_per_client, "--max-queued-per-client"),
        (
            o.net.max_requests_per_connection,
            "--max-requests-per-connection",
        ),
    ];
    if let Some((_, name)) = positive.iter().find(|(v, _)| *v == 0) {
        return Err(PredictError::Input(format!("{name} must be positive")));
    }
    if o.net.header_timeout.is_zero() || o.net.write_timeout.is_zero() || o.min_body_rate == 0 {
        return Err(PredictError::Input(
            "--header-timeout, --write-timeout and --min-body-rate must be positive".into(),
        ));
    }
    if o.memory_budget < (16 << 20) || o.memory_budget / KIB > u32::MAX as u64 {
        return Err(PredictError::Input(format!(
            "--memory-budget {} MiB: must be between 16 MiB and 4 TiB",
            o.memory_budget >> 20
        )));
    }
    if o.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(PredictError::Input("the token is empty".into()));
    }
    let listener = std::net::TcpListener::bind(o.addr).map_err(|e| PredictError::Io {
        path: o.addr.to_string().into(),
        source: e,
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| PredictError::Server(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| PredictError::Server(e.to_string()))?;
    let (app, state) = router(predictor, o, addr);
    Ok(Bound {
        addr,
        listener,
        app,
        state,
        o: o.clone(),
    })
}

impl Bound {
    fn net_options(&self) -> NetOptions {
        self.o.net.clone()
    }

    /// Serve until SIGTERM or SIGINT, then drain (see the module doc) and return.
    pub fn run(self) -> Result<(), PredictError> {
        self.run_until(async {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => eprintln!("fer-predict serve: SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => eprintln!("fer-predict serve: SIGINT: stopping"),
            }
        })
    }

    /// Serve until `shutdown` resolves, then stop accepting, finish the requests in flight
    /// (at most `drain_timeout`) and return.
    pub fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), PredictError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.o.threads.max(1))
            // Predictions are bounded by the permits; probes and stragglers need a few more.
            .max_blocking_threads(self.o.max_inflight * 2 + 4)
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| PredictError::Server(format!("tokio runtime: {e}")))?;
        let net = self.net_options();
        let stop_video = Arc::new(AtomicBool::new(false));
        let video = self.o.video.clone().map(|(source, vo)| {
            let (st, stop) = (self.state.clone(), stop_video.clone());
            std::thread::spawn(move || live::read_video(st, source, vo, stop))
        });
        let st = self.state.clone();
        let drained = rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(self.listener)
                .map_err(|e| PredictError::Server(e.to_string()))?;
            let on_refusal: net::OnRefusal =
                Arc::new(move |r: Refusal| st.monitor.refusal(r.label()));
            Ok::<_, PredictError>(net::serve(l, self.app, net, on_refusal, shutdown).await)
        })?;
        if !drained {
            eprintln!(
                "fer-predict serve: some connections were still open after {:.0} s (--drain-timeout); closing them",
                self.o.net.drain_timeout.as_secs_f64()
            );
        }
        rt.shutdown_timeout(Duration::from_secs(1));
        // The video thread stops at its next frame or retry pause; a source stalled inside
        // ffmpeg is not waited for past 2 s (its ffmpeg exits when the pipe closes).
        stop_video.store(true, Ordering::SeqCst);
        if let Some(h) = video {
            let until = Instant::now() + Duration::from_secs(2);
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        Ok(())
    }

    /// Serve on a background thread until the process ends; returns the address.
    pub fn spawn(self) -> SocketAddr {
        let addr = self.addr;
        std::thread::spawn(move || {
            if let Err(e) = self.run_until(std::future::pending()) {
                eprintln!("fer-predict serve: {e}");
            }
        });
        addr
    }

    /// Serve on a background thread until `stop` is sent (or dropped); the thread's handle
    /// ends once the service has drained.
    pub fn spawn_until(
        self,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> (
        SocketAddr,
        std::thread::JoinHandle<Result<(), PredictError>>,
    ) {
        let addr = self.addr;
        let h = std::thread::spawn(move || {
            self.run_until(async {
                let _ = stop.await;
            })
        });
        (addr, h)
    }
}
