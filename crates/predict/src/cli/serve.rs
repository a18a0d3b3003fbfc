//! `fer-predict serve`: the service's options checked and the service run.

use super::ServeArgs;
use anyhow::Context;
use fer_predict::monitor::DriftOptions;
use fer_predict::serve::{NetOptions, ServeOptions};
use fer_predict::video::Source;

pub(crate) fn serve(a: &ServeArgs) -> anyhow::Result<()> {
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
