//! `fer-predict serve`: the checkout kiosk's HTTP service (axum routes on hyper's HTTP/1
//! server, tokio).
//!
//! - `POST /predict` with the image bytes (JPEG or PNG) as the body returns
//!   `{"status": "ok" | "no_face", "width", "height", "threshold", "faces_detected",
//!   "max_faces", "faces": [{"face", "box": {"x", "y", "width", "height", "score"}, "p_happy",
//!   "label"}]}` (a seven-class model's faces also have `"emotions"` (a CNN's probabilities)
//!   or `"decisions"` (an SVM's one-vs-rest decision values), objects keyed by class name,
//!   and `"emotion"`, the argmax class: see the crate doc; the drift check still watches
//!   p_happy). At most `max_faces` faces are scored (the most confident);
//!   `faces_detected` says how many were found. Query options: `detect=false` (the image is an
//!   already-cropped face) and `threshold=<p>`.
//! - `GET /health`: `{"status": "ok", "model", "threshold", "threshold_source", "detect",
//!   "in_flight", "panics", "last_panic", "limits"}`; 503 with `"status": "broken"` and the
//!   `reason` when the scorer fails a probe (one blank face) after a scoring panic. A broken
//!   scorer is probed again on each `/health` and `/predict`, and reported ok once it works.
//!
//! Errors are JSON `{"error": "..."}`: 400 empty body or bad query; 413 body over `--max-body`
//! or image over `--max-pixels` (read from the image header, before decoding: a decompression
//! bomb costs nothing); 415 a body that is not a whole JPEG or PNG image (a truncated file is
//! refused, as ingest refuses it); 408 body not received within `--timeout`; 500 a panic while
//! scoring (the service stays up); 503 with `Retry-After` when the service is busy (more than
//! `--max-inflight` predictions running and `--queue` waiting), when a prediction does not
//! finish within `--timeout`, or while the scorer is broken.
//!
//! Limits (flags of `fer-predict serve`):
//! - `--max-inflight` (default: the number of cores) predictions decode and score at once;
//!   `--queue` more (default 16) may wait (their bodies buffered, at most `--max-body` each);
//!   beyond that a request is shed at once with 503 and `Retry-After: 1`.
//! - `--timeout`: the whole request (body, queue, prediction). A request that times out is
//!   answered 503 and its work stops at the next step (after decoding, after detection,
//!   between groups of scoring batches); its slot is freed only when the work has stopped,
//!   so abandoned work never piles up. The work is cancelled the same way whenever the
//!   request's handler is dropped before its end (e.g. hyper dropping it for a closed
//!   connection).
//! - `--header-timeout` (default 5 s): a connection that has not sent a whole request head
//!   within it (a new one, or an idle keep-alive one) is closed.
//! - `--max-connections` (default 256): connections over it are answered a short 503 and
//!   closed at once.
//! - `--max-pixels` (default 40 MP) and `--max-faces` (default 16): see above.
//!
//! Binds to 127.0.0.1 unless told otherwise.

use crate::monitor::{DriftOptions, Monitor};
use crate::{Outcome, PredictError, Predictor};
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// Open connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time a connection has to send a whole request head.
    pub header_timeout: Duration,
    /// `Retry-After` of a 503, in seconds.
    pub retry_after: u64,
    /// The drift check's settings ([`crate::monitor`]).
    pub drift: DriftOptions,
    /// The model's validation scores, the drift check's reference (`None`: check off).
    pub reference: Option<Vec<f64>>,
}

/// The number of cores (1 when unknown): the default `--max-inflight`.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 10 << 20,
            timeout: Duration::from_secs(10),
            threads: 2,
            max_inflight: cores(),
            queue: 16,
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            retry_after: 1,
            drift: DriftOptions::default(),
            reference: None,
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

struct AppState {
    predictor: Arc<Predictor>,
    o: ServeOptions,
    /// `max_inflight + queue` permits: held from admission to the end of the work.
    admit: Arc<Semaphore>,
    /// `max_inflight` permits: held while decoding and scoring.
    compute: Arc<Semaphore>,
    health: Mutex<Health>,
    broken: AtomicBool,
    shed: AtomicU64,
    monitor: Monitor,
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

/// 503 with `Retry-After`.
fn unavailable(st: &AppState, msg: impl std::fmt::Display) -> Response {
    st.shed.fetch_add(1, Ordering::Relaxed);
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(st.o.retry_after),
    );
    r
}

enum ReadError {
    TooLarge(usize),
    Failed(String),
}

/// Read at most `max` bytes. A larger body is drained (up to a few times the limit, so the
/// client gets the 413 rather than a reset connection) and refused.
async fn read_limited(mut body: Body, max: usize) -> Result<Bytes, ReadError> {
    let drain_cap = max.saturating_mul(4).max(max.saturating_add(8 << 20));
    let mut buf: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ReadError::Failed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= max {
                buf.extend_from_slice(&data);
            } else if total > drain_cap {
                return Err(ReadError::TooLarge(total));
            }
        }
    }
    if total > max {
        return Err(ReadError::TooLarge(total));
    }
    Ok(Bytes::from(buf))
}

/// `detect` and `threshold` from a query string.
fn options(q: Option<&str>, st: &AppState) -> Result<(bool, f64), String> {
    let (mut detect, mut threshold) = (st.predictor.detect, st.predictor.threshold);
    for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "detect" => {
                detect = match v {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("detect={v}: expected true or false")),
                }
            }
            "threshold" => {
                threshold = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| (0.0..=1.0).contains(t))
                    .ok_or_else(|| format!("threshold={v}: expected a number in [0, 1]"))?
            }
            _ => return Err(format!("unknown query parameter `{k}` (detect, threshold)")),
        }
    }
    Ok((detect, threshold))
}

/// Sets the flag when dropped: the request's work stops when its handler ends early (timeout,
/// client gone).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Probe the scorer (one blank face) on a blocking thread and record the result.
async fn reprobe(st: &Arc<AppState>) {
    let p = st.predictor.clone();
    let r = tokio::task::spawn_blocking(move || p.probe())
        .await
        .unwrap_or_else(|e| Err(format!("probe failed: {e}")));
    st.set_probe(r);
}

async fn predict(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery, req: Request) -> Response {
    let t0 = Instant::now();
    let (detect, threshold) = match options(q.as_deref(), &st) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Ok(admitted) = st.admit.clone().try_acquire_owned() else {
        return unavailable(
            &st,
            format!(
                "busy: {} predictions running and {} waiting (--max-inflight, --queue); retry later",
                st.o.max_inflight, st.o.queue
            ),
        );
    };
    if st.broken.load(Ordering::SeqCst) {
        reprobe(&st).await;
        if let Some(why) = st.health().broken.clone() {
            return unavailable(&st, format!("the scorer is broken: {why}"));
        }
    }
    let too_large = |n: usize| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {n}+ bytes is over the limit of {} bytes (--max-body)",
                st.o.max_body
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared
        && n > st.o.max_body.saturating_mul(4)
    {
        return too_large(n);
    }
    let bytes = match tokio::time::timeout(
        st.o.timeout,
        read_limited(req.into_body(), st.o.max_body),
    )
    .await
    {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the timeout",
            );
        }
        Ok(Err(ReadError::TooLarge(n))) => return too_large(n),
        Ok(Err(ReadError::Failed(e))) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
        Ok(Ok(b)) => b,
    };
    if bytes.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: POST the JPEG or PNG bytes",
        );
    }
    let left = || st.o.timeout.saturating_sub(t0.elapsed());
    let computing = match tokio::time::timeout(left(), st.compute.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            return unavailable(
                &st,
                "busy: no prediction slot freed within the timeout; retry later",
            );
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let p = st.predictor.clone();
    let job = tokio::task::spawn_blocking(move || {
        // Both permits live as long as the work, not as long as the request.
        let _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit) = (admitted, computing);
        let r = p.predict_bytes_until(&bytes, detect, threshold, &cancel);
        let probe = matches!(r, Err(PredictError::Panicked(_))).then(|| p.probe());
        (r, probe)
    });
    let (r, probe) = match tokio::time::timeout(left(), job).await {
        Err(_) => {
            return unavailable(
                &st,
                format!(
                    "prediction did not finish within the timeout of {:.1} s (stopped); retry later",
                    st.o.timeout.as_secs_f64()
                ),
            );
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Ok(v)) => v,
    };
    if let Err(PredictError::Panicked(m)) = &r {
        let mut h = st.health();
        h.panics += 1;
        h.last_panic = Some(m.clone());
        drop(h);
        st.set_probe(probe.unwrap_or(Ok(())));
    }
    match r {
        Err(e @ PredictError::Decode(_)) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, e),
        Err(e @ PredictError::TooManyPixels { .. }) => error(StatusCode::PAYLOAD_TOO_LARGE, e),
        Err(PredictError::Cancelled) => unavailable(&st, "prediction cancelled; retry later"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Outcome::Error(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok(Outcome::Faces {
            width,
            height,
            faces,
            detected,
        }) => {
            let scores: Vec<f64> = faces.iter().map(|f| f.p_happy).collect();
            if let Some(d) = st.monitor.image(detected, &scores) {
                eprintln!(
                    "drift: {} (Kolmogorov-Smirnov D {:.3}, critical {:.3}, last {} scores against {} validation scores)",
                    if d.drifted {
                        "the recent scores have parted from validation"
                    } else {
                        "the recent scores agree with validation again"
                    },
                    d.ks,
                    d.critical,
                    d.recent,
                    d.reference
                );
            }
            reply(
                StatusCode::OK,
                json!({
                    "status": if faces.is_empty() { "no_face" } else { "ok" },
                    "width": width,
                    "height": height,
                    "threshold": threshold,
                    "faces_detected": detected,
                    "max_faces": st.predictor.max_faces,
                    "faces": faces,
                }),
            )
        }
    }
}

/// `GET /metrics`: Prometheus's text format ([`crate::monitor`]).
async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.monitor.render(),
    )
        .into_response()
}

/// Count every request and its latency by route and status.
async fn track(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let t0 = Instant::now();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    st.monitor
        .request(&path, res.status().as_u16(), t0.elapsed().as_secs_f64());
    res
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    if st.broken.load(Ordering::SeqCst) {
        reprobe(&st).await;
    }
    let h = st.health();
    let o = &st.o;
    let in_flight = o.max_inflight - st.compute.available_permits();
    let body = json!({
        "status": if h.broken.is_some() { "broken" } else { "ok" },
        "reason": h.broken,
        "model": st.predictor.description,
        "threshold": st.predictor.threshold,
        "threshold_source": st.predictor.threshold_source,
        "detect": st.predictor.detect,
        "in_flight": in_flight,
        "admitted": (o.max_inflight + o.queue) - st.admit.available_permits(),
        "shed": st.shed.load(Ordering::Relaxed),
        "panics": h.panics,
        "last_panic": h.last_panic,
        "drift": st.monitor.drift_json(),
        "limits": {
            "max_inflight": o.max_inflight,
            "queue": o.queue,
            "max_connections": o.max_connections,
            "max_body": o.max_body,
            "max_pixels": st.predictor.max_pixels,
            "max_faces": st.predictor.max_faces,
            "timeout_s": o.timeout.as_secs_f64(),
            "header_timeout_s": o.header_timeout.as_secs_f64(),
        },
    });
    let code = if h.broken.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    reply(code, body)
}

/// The service's routes.
fn router(predictor: Predictor, o: &ServeOptions) -> Router {
    let st = Arc::new(AppState {
        predictor: Arc::new(predictor),
        admit: Arc::new(Semaphore::new(o.max_inflight + o.queue)),
        compute: Arc::new(Semaphore::new(o.max_inflight)),
        o: o.clone(),
        health: Mutex::new(Health::default()),
        broken: AtomicBool::new(false),
        shed: AtomicU64::new(0),
        monitor: Monitor::new(o.reference.clone(), o.drift.clone()),
    });
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(st.clone(), track))
        .with_state(st)
}

/// A bound service: its address, and `run` to serve until the process ends.
pub struct Bound {
    pub addr: SocketAddr,
    listener: std::net::TcpListener,
    app: Router,
    o: ServeOptions,
}

/// Bind the address (port 0 picks a free one) without serving yet.
pub fn bind(predictor: Predictor, o: &ServeOptions) -> Result<Bound, PredictError> {
    if o.max_inflight == 0 || o.max_connections == 0 || o.header_timeout.is_zero() {
        return Err(PredictError::Input(
            "--max-inflight, --max-connections and --header-timeout must be positive".into(),
        ));
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
    Ok(Bound {
        addr,
        listener,
        app: router(predictor, o),
        o: o.clone(),
    })
}

/// What a connection over `--max-connections` gets before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nContent-Length: 65\r\nConnection: close\r\n\r\n\
{\"error\":\"too many connections (--max-connections); retry later\"}";

/// Answer a connection over the cap with [`OVER_CAPACITY`] and close it, draining what the
/// client sends for at most 200 ms.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = stream.try_write(OVER_CAPACITY);
    let _ =
        std::future::poll_fn(|cx| tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut stream), cx))
            .await;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline, stream.readable()).await {
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
}

/// Accept connections, at most `max_connections` open, each served by hyper's HTTP/1 server
/// with a header-read timeout.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, o: ServeOptions) {
    let open = Arc::new(Semaphore::new(o.max_connections));
    let closing = Arc::new(Semaphore::new(64));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait for connections to close.
                eprintln!("fer-predict serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Over the cap: a short 503, then closed. Reading what the client sent for a
            // moment first lets it see the answer (closing with unread data resets the
            // connection, and the client may lose the 503); at most `closing` at a time.
            match closing.clone().try_acquire_owned() {
                Ok(p) => {
                    tokio::spawn(async move {
                        let _p = p;
                        refuse(stream).await;
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let header_timeout = o.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            // A client that times out or hangs up ends its connection; nothing to report.
            let _ = conn.await;
        });
    }
}

impl Bound {
    /// Serve (blocks).
    pub fn run(self) -> Result<(), PredictError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.o.threads.max(1))
            // Predictions are bounded by the permits; probes and stragglers need a few more.
            .max_blocking_threads(self.o.max_inflight * 2 + 4)
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| PredictError::Server(format!("tokio runtime: {e}")))?;
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(self.listener)
                .map_err(|e| PredictError::Server(e.to_string()))?;
            accept_loop(l, self.app, self.o).await;
            Ok(())
        })
    }

    /// Serve on a background thread; returns the address.
    pub fn spawn(self) -> SocketAddr {
        let addr = self.addr;
        std::thread::spawn(move || {
            if let Err(e) = self.run() {
                eprintln!("fer-predict serve: {e}");
            }
        });
        addr
    }
}
