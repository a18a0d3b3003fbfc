//! `fer-predict serve`: the checkout kiosk's HTTP service (axum on tokio).
//!
//! - `POST /predict` with the image bytes (JPEG or PNG) as the body returns
//!   `{"status": "ok" | "no_face", "width", "height", "threshold", "faces": [{"face", "box":
//!   {"x", "y", "width", "height", "score"}, "p_happy", "label"}]}`. Query options:
//!   `detect=false` (the image is an already-cropped face) and `threshold=<p>`.
//! - `GET /health`: `{"status": "ok", "model", "threshold", "detect"}`.
//!
//! Errors are JSON `{"error": "..."}`: 400 empty body or bad query, 413 body over the limit,
//! 415 a body that is not a JPEG or PNG image, 408 body not received within the timeout, 503
//! prediction not finished within the timeout. Binds to 127.0.0.1 unless told otherwise.

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
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Whole-request budget: receiving the body and predicting.
    pub timeout: Duration,
    /// Tokio worker threads.
    pub threads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 10 << 20,
            timeout: Duration::from_secs(10),
            threads: 2,
        }
    }
}

struct AppState {
    predictor: Predictor,
    max_body: usize,
    timeout: Duration,
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

async fn predict(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery, req: Request) -> Response {
    let t0 = Instant::now();
    let (detect, threshold) = match options(q.as_deref(), &st) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let too_large = |n: usize| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {n}+ bytes is over the limit of {} bytes",
                st.max_body
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared
        && n > st.max_body.saturating_mul(4)
    {
        return too_large(n);
    }
    let bytes =
        match tokio::time::timeout(st.timeout, read_limited(req.into_body(), st.max_body)).await {
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
    let left = st.timeout.saturating_sub(t0.elapsed());
    let st2 = st.clone();
    let job =
        tokio::task::spawn_blocking(move || st2.predictor.predict_bytes(&bytes, detect, threshold));
    match tokio::time::timeout(left, job).await {
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "prediction did not finish within the timeout",
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Ok(Err(e @ PredictError::Decode(_)))) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, e),
        Ok(Ok(Err(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Ok(Ok(Outcome::Error(e)))) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok(Ok(Ok(Outcome::Faces {
            width,
            height,
            faces,
        }))) => reply(
            StatusCode::OK,
            json!({
                "status": if faces.is_empty() { "no_face" } else { "ok" },
                "width": width,
                "height": height,
                "threshold": threshold,
                "faces": faces,
            }),
        ),
    }
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    reply(
        StatusCode::OK,
        json!({
            "status": "ok",
            "model": st.predictor.description,
            "threshold": st.predictor.threshold,
            "detect": st.predictor.detect,
        }),
    )
}

/// The service's routes.
fn router(predictor: Predictor, o: &ServeOptions) -> Router {
    let st = Arc::new(AppState {
        predictor,
        max_body: o.max_body,
        timeout: o.timeout,
    });
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .with_state(st)
}

/// A bound service: its address, and `run` to serve until the process ends.
pub struct Bound {
    pub addr: SocketAddr,
    listener: std::net::TcpListener,
    app: Router,
    threads: usize,
}

/// Bind the address (port 0 picks a free one) without serving yet.
pub fn bind(predictor: Predictor, o: &ServeOptions) -> Result<Bound, PredictError> {
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
        threads: o.threads.max(1),
    })
}

impl Bound {
    /// Serve (blocks).
    pub fn run(self) -> Result<(), PredictError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| PredictError::Server(format!("tokio runtime: {e}")))?;
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(self.listener)
                .map_err(|e| PredictError::Server(e.to_string()))?;
            axum::serve(l, self.app)
                .await
                .map_err(|e| PredictError::Server(e.to_string()))
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
