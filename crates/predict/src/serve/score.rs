//! `POST /predict` and `POST /frames`: one image through the limits, in the order the module
//! doc lists them (access, the body, admission, memory, time), scored, and answered with its
//! faces or, for `/frames`, added to the live aggregates.

use super::access::Refusal;
use super::net::Client;
use super::{AppState, KIB, error, reply};
use crate::live::unix_now;
use crate::monitor::Monitor;
use crate::video::Tally;
use crate::{Face, Outcome, PredictError};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::json;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

enum ReadError {
    TooLarge(usize),
    /// Slower than the minimum rate (bytes received, seconds).
    Slow(usize, f64),
    /// Not all received within the request's timeout.
    Late,
    Failed(String),
}

/// Read at most `max` bytes, each byte arriving in time: by `start + grace + received /
/// min_rate` (the minimum rate) and by `deadline`. A larger body is drained (up to a few
/// times the limit, so the client gets the 413 rather than a reset connection) and refused.
async fn read_limited(
    mut body: Body,
    max: usize,
    min_rate: u64,
    grace: Duration,
    deadline: tokio::time::Instant,
) -> Result<Bytes, ReadError> {
    let start = tokio::time::Instant::now();
    let drain_cap = max.saturating_mul(4).max(max.saturating_add(8 << 20));
    let mut buf: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let rate_due =
            start + grace + Duration::from_secs_f64(total as f64 / min_rate.max(1) as f64);
        let due = rate_due.min(deadline);
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(due, next).await {
            Err(_) if due == deadline => return Err(ReadError::Late),
            Err(_) => return Err(ReadError::Slow(total, start.elapsed().as_secs_f64())),
            Ok(None) => break,
            Ok(Some(f)) => f.map_err(|e| ReadError::Failed(e.to_string()))?,
        };
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
pub(super) async fn reprobe(st: &Arc<AppState>) {
    let p = st.predictor.clone();
    let r = tokio::task::spawn_blocking(move || p.probe())
        .await
        .unwrap_or_else(|e| Err(format!("probe failed: {e}")));
    st.set_probe(r);
}

/// The refusal, status and message of an image refused from its header or while decoding.
fn image_refusal(e: &PredictError) -> Option<(Refusal, StatusCode)> {
    match e {
        PredictError::TooManyPixels { .. }
        | PredictError::Aspect { .. }
        | PredictError::OverBudget { .. } => Some((Refusal::Budget, StatusCode::PAYLOAD_TOO_LARGE)),
        PredictError::Decode(_) => None,
        _ => None,
    }
}

/// What a scored image's answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `POST /predict`: every face, its box and score.
    Faces,
    /// `POST /frames`: the frame joins the live aggregates; the answer is its face count.
    Aggregate,
}

pub(super) async fn predict(st: State<Arc<AppState>>, q: RawQuery, req: Request) -> Response {
    score_image(st, q, req, Answer::Faces).await
}

/// `POST /frames`: a camera frame (JPEG or PNG), under the same limits as `/predict`, scored
/// at the service's threshold and added to the live aggregates. The answer is
/// `{"status": "ok", "faces": n}`: no box or score, so a client sees no more than the page.
pub(super) async fn frames(st: State<Arc<AppState>>, q: RawQuery, req: Request) -> Response {
    score_image(st, q, req, Answer::Aggregate).await
}

async fn score_image(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    req: Request,
    answer: Answer,
) -> Response {
    let t0 = tokio::time::Instant::now();
    let deadline = t0 + st.o.timeout;
    let headers = req.headers();
    let authorized = st.access.authorized(headers);
    if let Err(why) = st.access.check_token(headers) {
        return st.refuse(Refusal::Token, StatusCode::UNAUTHORIZED, why);
    }
    if let Err((why, msg)) = st.access.check_browser(headers) {
        let code = match why {
            Refusal::Origin => StatusCode::FORBIDDEN,
            _ => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        return st.refuse(why, code, msg);
    }
    let (detect, threshold) = match (answer, options(q.as_deref(), &st)) {
        (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        (Answer::Faces, Ok(v)) => v,
        // The live aggregates are all at the service's own settings.
        (Answer::Aggregate, Ok(_)) => (st.predictor.detect, st.predictor.threshold),
    };
    let client = req
        .extensions()
        .get::<Client>()
        .map(|c| c.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let too_large = |n: usize| {
        st.refuse(
            Refusal::Body,
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
    // 1. The body, under its own cap, before any scoring place is taken.
    let Ok(receiving) = st.bodies.clone().try_acquire_owned() else {
        return st.unavailable(
            Refusal::Shed,
            format!(
                "busy: {} bodies being received (--max-bodies); retry later",
                st.o.max_bodies
            ),
        );
    };
    let read = read_limited(
        req.into_body(),
        st.o.max_body,
        st.o.min_body_rate,
        st.o.body_grace,
        deadline,
    )
    .await;
    drop(receiving);
    let bytes = match read {
        Err(ReadError::Late) => {
            return st.refuse(
                Refusal::Timeout,
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the timeout",
            );
        }
        Err(ReadError::Slow(n, s)) => {
            return st.refuse(
                Refusal::Rate,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body too slow: {n} bytes in {s:.1} s, under the minimum of {} bytes/s (--min-body-rate)",
                    st.o.min_body_rate
                ),
            );
        }
        Err(ReadError::TooLarge(n)) => return too_large(n),
        Err(ReadError::Failed(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
        Ok(b) => b,
    };
    if bytes.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: POST the JPEG or PNG bytes",
        );
    }
    // 2. A place in flight or in the queue, within the client's share.
    let Some(mine) = st.admitted.take(client, st.o.max_queued_per_client) else {
        return st.unavailable(
            Refusal::Shed,
            format!(
                "busy: this address already has {} requests in flight or waiting (--max-queued-per-client); retry later",
                st.o.max_queued_per_client
            ),
        );
    };
    let Ok(admitted) = st.admit.clone().try_acquire_owned() else {
        return st.unavailable(
            Refusal::Shed,
            format!(
                "busy: {} predictions running and {} waiting (--max-inflight, --queue); retry later",
                st.o.max_inflight, st.o.queue
            ),
        );
    };
    if st.broken.load(Ordering::SeqCst) {
        reprobe(&st).await;
        if st.health().broken.is_some() {
            return st.unavailable(
                Refusal::Shed,
                "the scorer is broken (see /health with the token); retry later",
            );
        }
    }
    // 3. What the image will cost, from its header; its share of the memory budget.
    let need = match st.predictor.plan(&bytes, detect) {
        Ok(plan) => plan.bytes,
        Err(e) => return image_error(&st, e),
    };
    let budget_kib = st.o.memory_budget / KIB;
    let need_kib = need.div_ceil(KIB).max(1);
    if need_kib > budget_kib {
        let (w, h) = match st.predictor.plan(&bytes, detect) {
            Ok(p) => (p.width, p.height),
            Err(_) => (0, 0),
        };
        return image_error(
            &st,
            PredictError::OverBudget {
                width: w,
                height: h,
                need_mb: need >> 20,
                budget_mb: st.o.memory_budget >> 20,
            },
        );
    }
    let memory = match tokio::time::timeout_at(
        deadline,
        st.memory.clone().acquire_many_owned(need_kib as u32),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            return st.unavailable(
                Refusal::Timeout,
                "busy: the memory budget was not freed within the timeout; retry later",
            );
        }
    };
    // 4. A scoring slot.
    let computing =
        match tokio::time::timeout_at(deadline, st.compute.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return st.unavailable(
                    Refusal::Timeout,
                    "busy: no prediction slot freed within the timeout; retry later",
                );
            }
        };
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let p = st.predictor.clone();
    let job = tokio::task::spawn_blocking(move || {
        // The permits live as long as the work, not as long as the request.
        let _permits: (
            _,
            OwnedSemaphorePermit,
            OwnedSemaphorePermit,
            OwnedSemaphorePermit,
        ) = (mine, admitted, memory, computing);
        let r = p.predict_bytes_until(&bytes, detect, threshold, &cancel);
        let probe = matches!(r, Err(PredictError::Panicked(_))).then(|| p.probe());
        drop(bytes);
        // This thread's freed pages (the decoded image, its gray copies) back to the system
        // now, not when mimalloc next runs here.
        fer_ops::alloc::give_back_freed_memory();
        (r, probe)
    });
    let (r, probe) = match tokio::time::timeout_at(deadline, job).await {
        Err(_) => {
            return st.unavailable(
                Refusal::Timeout,
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
        Err(PredictError::Cancelled) => {
            st.unavailable(Refusal::Timeout, "prediction cancelled; retry later")
        }
        Err(e @ PredictError::Panicked(_)) => {
            eprintln!("fer-predict serve: {e}");
            if authorized {
                error(StatusCode::INTERNAL_SERVER_ERROR, e)
            } else {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "scoring failed; the service stays up (the message is in its log, and in /health with the token)",
                )
            }
        }
        Err(e) => image_error(&st, e),
        Ok(Outcome::Error(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok(Outcome::Faces {
            width,
            height,
            faces,
            detected,
        }) => {
            observe(&st.monitor, detected, &faces);
            if answer == Answer::Aggregate {
                let mut t = Tally::default();
                t.add_faces(&faces, threshold);
                st.live.add(unix_now(), &t);
                return reply(
                    StatusCode::OK,
                    json!({"status": "ok", "faces": faces.len()}),
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

/// Record one image's faces with the monitor, logging a change of the drift check's state.
pub(super) fn observe(monitor: &Monitor, detected: usize, faces: &[Face]) {
    let scores: Vec<f64> = faces.iter().map(|f| f.p_happy).collect();
    if let Some(d) = monitor.image(detected, &scores) {
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
}

/// The answer to an image refused or failed: 413 (budget), 415 (not a whole JPEG or PNG),
/// else 500.
fn image_error(st: &AppState, e: PredictError) -> Response {
    match (&e, image_refusal(&e)) {
        (_, Some((why, code))) => st.refuse(why, code, e),
        (PredictError::Decode(_), None) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, e),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
