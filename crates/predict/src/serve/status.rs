//! `GET /health`, `GET /metrics`, and the middleware that counts every request for them.

use super::access::Refusal;
use super::score::reprobe;
use super::{AppState, budget_kib, reply};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// `GET /metrics`: Prometheus's text format ([`crate::monitor`]); the token rule applies.
pub(super) async fn metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(why) = st.access.check_token(&headers) {
        return st.refuse(Refusal::Token, StatusCode::UNAUTHORIZED, why);
    }
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
pub(super) async fn track(
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

pub(super) async fn health(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if st.broken.load(Ordering::SeqCst) {
        reprobe(&st).await;
    }
    let authorized = st.access.authorized(&headers);
    let h = st.health();
    let o = &st.o;
    let in_flight = o.max_inflight - st.compute.available_permits();
    let mut body = json!({
        "status": if h.broken.is_some() { "broken" } else { "ok" },
        "threshold": st.predictor.threshold,
        "threshold_source": st.predictor.threshold_source,
        "detect": st.predictor.detect,
        "in_flight": in_flight,
        "admitted": (o.max_inflight + o.queue) - st.admit.available_permits(),
        "memory_held_mb": (budget_kib(o) - st.memory.available_permits() as u64) / 1024,
        "shed": st.shed.load(Ordering::Relaxed),
        "panics": h.panics,
        "drift": st.monitor.drift_json(),
        "limits": {
            "max_inflight": o.max_inflight,
            "queue": o.queue,
            "max_queued_per_client": o.max_queued_per_client,
            "max_bodies": o.max_bodies,
            "min_body_rate": o.min_body_rate,
            "memory_budget_mb": o.memory_budget >> 20,
            "max_connections": o.net.max_connections,
            "max_connections_per_client": o.net.max_connections_per_client,
            "max_requests_per_connection": o.net.max_requests_per_connection,
            "max_body": o.max_body,
            "max_pixels": st.predictor.max_pixels,
            "max_aspect": st.predictor.max_aspect,
            "max_faces": st.predictor.max_faces,
            "timeout_s": o.timeout.as_secs_f64(),
            "header_timeout_s": o.net.header_timeout.as_secs_f64(),
            "write_timeout_s": o.net.write_timeout.as_secs_f64(),
        },
        "token": st.access.has_token(),
    });
    if authorized {
        body["model"] = json!(st.predictor.description);
        body["reason"] = json!(h.broken);
        body["last_panic"] = json!(h.last_panic);
    } else if h.broken.is_some() {
        body["reason"] = json!("the scorer failed its probe (details with the token)");
    }
    let code = if h.broken.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    reply(code, body)
}
