//! The shop manager's live page: `GET /` (one self-contained HTML file), `GET /live.json` (what
//! it polls) and the service's own video source (`--video`), whose frames feed both.

use super::score::observe;
use super::{AppState, reply};
use crate::Outcome;
use crate::live::unix_now;
use crate::video::{self, Source, Tally, VideoOptions};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// `GET /`: the live page, one self-contained HTML file (no external asset) that polls
/// `live.json`. Open like `/health`: it shows aggregates only.
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// The live page.
pub const PAGE: &str = include_str!("page.html");

/// `GET /live.json`: the live aggregates ([`crate::live::Live::snapshot`]) and the drift
/// check's state.
pub(super) async fn live_json(State(st): State<Arc<AppState>>) -> Response {
    let mut r = reply(
        StatusCode::OK,
        st.live.snapshot(unix_now(), st.monitor.drift_json()),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// Read the service's video source until `stop`: frames scored in groups, each group's
/// tallies added to the live aggregates at the second it was scored, its scores to the drift
/// check; failures shown on the page and retried.
pub(super) fn read_video(
    st: Arc<AppState>,
    source: Source,
    vo: VideoOptions,
    stop: Arc<AtomicBool>,
) {
    let spec = source.shown.clone();
    let p = st.predictor.clone();
    let group = rayon::current_num_threads().max(1);
    st.live.source(&spec, "reading", None, 0);
    let mut pending = 0u64;
    let r = video::run(
        &p,
        &source,
        &vo,
        group,
        &stop,
        &mut |_, o| {
            let mut t = Tally::default();
            t.add(o, p.threshold);
            if let Outcome::Faces {
                faces, detected, ..
            } = o
            {
                observe(&st.monitor, *detected, faces);
            }
            st.live.add(unix_now(), &t);
            pending += 1;
            if pending >= 25 {
                st.live.source(&spec, "reading", None, pending);
                pending = 0;
            }
            Ok(())
        },
        &mut |ev| match ev {
            video::Event::Opened => st.live.source(&spec, "reading", None, 0),
            video::Event::Failed(e, wait) => {
                eprintln!(
                    "fer-predict serve: {e}{}",
                    match wait {
                        Some(w) => format!("; opening it again in {:.0} s", w.as_secs_f64()),
                        None => "; giving up".into(),
                    }
                );
                let state = if wait.is_some() { "retrying" } else { "failed" };
                st.live.source(&spec, state, Some(e.to_string()), 0);
            }
        },
    );
    match r {
        Ok(sum) => {
            st.live.source(&spec, "ended", None, pending);
            eprintln!(
                "fer-predict serve: video {spec} ended: {} frames, {} faces",
                sum.frames, sum.faces
            );
        }
        Err(e) => st
            .live
            .source(&spec, "failed", Some(e.to_string()), pending),
    }
}
