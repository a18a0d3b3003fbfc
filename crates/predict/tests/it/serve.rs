//! fer-predict serve: 1,000 sequential requests, 413 for an oversized body or image (a
//! decompression bomb refused from its header), 415 for a body that is not a whole image
//! (truncated JPEG or PNG), 400 for an empty one; load shed with 503 + Retry-After and work
//! stopped at the timeout; the header-read timeout and the connection cap; `/health` after a
//! scoring panic.

use crate::common::*;
use fer_predict::serve::{ServeOptions, bind};
use fer_predict::{DetectOptions, FaceDetector, ModelOptions, Predictor, Scorer, scene};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let (code, _, body) = http_full(addr, method, path, body);
    (code, body)
}

/// One HTTP/1.1 request on its own connection: (status, head, body).
fn http_full(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading everything: a failed write is not the test.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (code, head.to_string(), body.to_string())
}

#[test]
fn service_answers_1000_requests_and_rejects_bad_bodies() {
    let d = tempfile::tempdir().unwrap();
    tiny_model(&d.path().join("m"), true, 64);
    let scorer = Scorer::load(&d.path().join("m"), &ModelOptions::default()).unwrap();
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    let p = Predictor::new(scorer, det, true, 0.5).unwrap();
    let max_body = 200_000;
    let o = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_body,
        timeout: Duration::from_secs(10),
        threads: 2,
        ..ServeOptions::default()
    };
    let addr = bind(p, &o).unwrap().spawn();
    assert!(addr.ip().is_loopback());

    let (code, body) = http(addr, "GET", "/health", b"");
    assert_eq!(code, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["threshold"], 0.5);

    let face = png(&synthetic_face(3));
    let (photo, _) = scene::scene(&[synthetic_face(4)], 160, 120, (64, 96), 9);
    let photo = scene::encode(&photo, true);
    let mut failures = Vec::new();
    for i in 0..1000 {
        let (code, body) = if i % 2 == 0 {
            http(addr, "POST", "/predict?detect=false", &face)
        } else {
            http(addr, "POST", "/predict", &photo)
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let ok = code == 200
            && match i % 2 {
                0 => v["status"] == "ok" && v["faces"][0]["p_happy"].as_f64().is_some(),
                _ => v["width"] == 160 && v["faces"].is_array(),
            };
        if !ok {
            failures.push((i, code, body));
        } else if i % 2 == 1 {
            let n = v["faces"].as_array().map_or(0, |f| f.len());
            assert!(v["faces_detected"].as_u64().unwrap() >= n as u64, "{v}");
            assert!(n <= v["max_faces"].as_u64().unwrap() as usize, "{v}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..1]
    );

    // Over the limit: 413, and the service still answers afterwards.
    let big = vec![7u8; max_body + 50_000];
    let (code, body) = http(addr, "POST", "/predict", &big);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("limit"));
    // Not an image: 415 with the reason.
    let (code, body) = http(addr, "POST", "/predict", b"name,p_happy\nnot,an image\n");
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("not a readable JPEG or PNG"));
    // A truncated PNG or JPEG is not an image either (the image crate would decode a cut
    // JPEG, padded with grey).
    let (code, body) = http(addr, "POST", "/predict", &face[..face.len() / 2]);
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("truncated PNG"), "{body}");
    let (code, body) = http(addr, "POST", "/predict", &photo[..photo.len() * 2 / 3]);
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("truncated JPEG"), "{body}");
    // A 16000x16000 PNG header: refused before decoding, naming the limit.
    let t = Instant::now();
    let (code, body) = http(addr, "POST", "/predict", &png_header_only(16_000, 16_000));
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("16000x16000") && body.contains("--max-pixels"),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let (code, _) = http(addr, "POST", "/predict", b"");
    assert_eq!(code, 400);
    let (code, body) = http(addr, "POST", "/predict?threshold=2", &face);
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(addr, "POST", "/predict?detect=false&threshold=0", &face);
    assert_eq!(code, 200);
    assert!(body.contains("\"label\":\"happy\""), "threshold 0: {body}");
    let (code, _) = http(addr, "GET", "/predict", b"");
    assert_eq!(code, 405);
}

/// A service whose scorer is `f` (no detection by default), with options `o`.
fn fn_service(
    f: fer_predict::model::ScoreFn,
    o: impl FnOnce(&mut ServeOptions),
) -> (SocketAddr, ServeOptions) {
    let scorer = Scorer::from_fn(transform(), "test scorer", f);
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    let p = Predictor::new(scorer, det, false, 0.5).unwrap();
    let mut opts = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::default()
    };
    o(&mut opts);
    (bind(p, &opts).unwrap().spawn(), opts)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_scoring_panic_does_not_break_the_service_and_health_is_honest() {
    // 0: works; 1: panics once; 2: always panics.
    let mode = Arc::new(AtomicUsize::new(0));
    let m = mode.clone();
    let (addr, _) = fn_service(
        Box::new(move |_, n| match m.load(Ordering::SeqCst) {
            0 => vec![0.75; n],
            1 => {
                m.store(0, Ordering::SeqCst);
                panic!("injected scoring panic")
            }
            _ => panic!("injected: the scorer is gone"),
        }),
        |o| o.token = Some("test-token".into()),
    );
    let auth = [
        "Authorization: Bearer test-token",
        "Content-Type: image/png",
    ];
    let local = "127.0.0.1".parse().unwrap();
    let http = |_: SocketAddr, method: &str, path: &str, body: &[u8]| {
        let (code, _, body) = request_from(local, addr, method, path, &auth, body);
        (code, body)
    };
    let http_full = |_: SocketAddr, method: &str, path: &str, body: &[u8]| {
        request_from(local, addr, method, path, &auth, body)
    };
    let face = png(&synthetic_face(1));
    let (code, body) = http(addr, "POST", "/predict", &face);
    assert_eq!(
        (code, json(&body)["faces"][0]["p_happy"].as_f64()),
        (200, Some(0.75))
    );

    // One panic: that request fails with 500, the next works, /health says ok and counts it.
    mode.store(1, Ordering::SeqCst);
    let (code, body) = http(addr, "POST", "/predict", &face);
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("injected scoring panic"), "{body}");
    let (code, body) = http(addr, "POST", "/predict", &face);
    assert_eq!(code, 200, "the panic poisoned the service: {body}");
    let (code, body) = http(addr, "GET", "/health", b"");
    let h = json(&body);
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{body}");
    assert_eq!(h["panics"], 1, "{body}");
    assert!(
        h["last_panic"].as_str().unwrap().contains("injected"),
        "{body}"
    );
    // Without the token: no panic text, no model.
    let (code, _, body) = request_from(local, addr, "GET", "/health", &[], b"");
    let h = json(&body);
    assert_eq!(code, 200);
    assert!(
        h.get("last_panic").is_none() && h.get("model").is_none(),
        "{body}"
    );

    // A scorer that keeps panicking: /health 503 with the reason, /predict 503 too.
    mode.store(2, Ordering::SeqCst);
    let (code, _) = http(addr, "POST", "/predict", &face);
    assert_eq!(code, 500);
    let (code, body) = http(addr, "GET", "/health", b"");
    let h = json(&body);
    assert_eq!(
        (code, h["status"].as_str()),
        (503, Some("broken")),
        "{body}"
    );
    assert!(
        h["reason"].as_str().unwrap().contains("the scorer is gone"),
        "{body}"
    );
    let (code, head, body) = http_full(addr, "POST", "/predict", &face);
    assert_eq!(code, 503, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(body.contains("broken"), "{body}");

    // Mended: the next health probe says so, and requests are served again.
    mode.store(0, Ordering::SeqCst);
    let (code, body) = http(addr, "GET", "/health", b"");
    assert_eq!(code, 200, "{body}");
    let (code, body) = http(addr, "POST", "/predict", &face);
    assert_eq!(code, 200, "{body}");
}

#[test]
fn busy_service_sheds_with_retry_after_and_stops_timed_out_work() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (addr, _) = fn_service(
        Box::new(move |_, n| {
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(700));
            vec![0.25; n]
        }),
        |o| {
            o.max_inflight = 1;
            o.queue = 1;
            o.timeout = Duration::from_millis(1000);
        },
    );
    let face = png(&synthetic_face(2));
    // Four at once: one scores, one waits, two are shed at once with Retry-After.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let face = face.clone();
            std::thread::spawn(move || http_full(addr, "POST", "/predict", &face))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let shed: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(ok + shed.len(), 4, "{results:?}");
    assert!(ok >= 1 && shed.len() >= 2, "{results:?}");
    for (_, head, body) in &shed {
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 1"),
            "{head}"
        );
        assert!(body.contains("retry later"), "{body}");
    }
    // Once the work is done, the slots are free again: nothing piled up.
    std::thread::sleep(Duration::from_millis(800));
    let (code, body) = http(addr, "GET", "/health", b"");
    assert_eq!(
        (code, json(&body)["in_flight"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let before = calls.load(Ordering::SeqCst);
    let (code, _) = http(addr, "POST", "/predict", &face);
    assert_eq!(code, 200);
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
}

#[test]
fn cancelled_scoring_stops_between_batches() {
    // Three groups of batches; the first call cancels (as a timeout would): one call made.
    let calls = Arc::new(AtomicUsize::new(0));
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (c, k) = (calls.clone(), cancel.clone());
    let mut scorer = Scorer::from_fn(
        transform(),
        "test scorer",
        Box::new(move |_, n| {
            c.fetch_add(1, Ordering::SeqCst);
            k.store(true, Ordering::SeqCst);
            vec![0.5; n]
        }),
    );
    scorer.batch = 1;
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    let p = Predictor::new(scorer, det, false, 0.5).unwrap();
    let g = synthetic_face(3);
    let per_group = rayon::current_num_threads();
    let items = (0..3 * per_group)
        .map(|_| Ok(p.prepare_gray(&g, false)))
        .collect();
    let r = p.score_until(items, 0.5, &cancel);
    assert!(
        matches!(r, Err(fer_predict::PredictError::Cancelled)),
        "{r:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn stalled_headers_time_out_and_connections_are_capped() {
    // The header timeout: half a header, then nothing, is closed by the service (however
    // long that takes on a loaded machine; the read below waits up to 60 s).
    let (addr, _) = fn_service(Box::new(|_, n| vec![0.5; n]), |o| {
        o.net.header_timeout = Duration::from_millis(300);
    });
    let stalled = |addr: SocketAddr, text: &[u8]| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(text).unwrap();
        s
    };
    let t = Instant::now();
    let mut half = stalled(addr, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le");
    let mut silent = stalled(addr, b"");
    let mut buf = Vec::new();
    // Closed (possibly after a 408), not timed out on our side.
    half.read_to_end(&mut buf).unwrap();
    silent.read_to_end(&mut buf).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    // The cap: a header timeout far longer than the test, so the three held connections
    // cannot time out in between; the service accepts in order, so the fourth is over the
    // cap whatever the machine's load.
    let (addr, _) = fn_service(Box::new(|_, n| vec![0.5; n]), |o| {
        o.net.header_timeout = Duration::from_secs(600);
        o.net.max_connections = 3;
    });
    let held: Vec<_> = (0..3).map(|_| stalled(addr, b"GET /hea")).collect();
    let (code, head, body) = http_full(addr, "GET", "/health", b"");
    assert_eq!(code, 503, "{head}{body}");
    assert!(body.contains("--max-connections"), "{body}");
    drop(held);
    // Once they are closed, connections are served again (the service sees the closes in
    // its own time: ask until it does).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = http(addr, "GET", "/health", b"");
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {code} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn faces_over_the_cap_are_not_scored_and_the_response_says_so() {
    let scored = Arc::new(AtomicUsize::new(0));
    let s = scored.clone();
    let scorer = Scorer::from_fn(
        transform(),
        "test scorer",
        Box::new(move |_, n| {
            s.fetch_add(n, Ordering::SeqCst);
            vec![0.5; n]
        }),
    );
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    let mut p = Predictor::new(scorer, det, true, 0.5).unwrap();
    p.max_faces = 2;
    let o = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::default()
    };
    let addr = bind(p, &o).unwrap().spawn();
    // A load-test scene in which the detector finds three faces.
    let scene = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load/scene-2.jpg"),
    )
    .unwrap();
    let (code, body) = http(addr, "POST", "/predict", &scene);
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["faces_detected"], 3, "{body}");
    assert_eq!(
        (
            v["max_faces"].as_u64(),
            v["faces"].as_array().unwrap().len()
        ),
        (Some(2), 2)
    );
    assert_eq!(scored.load(Ordering::SeqCst), 2);
}

/// `/metrics` answers in Prometheus's text format, and the drift check fires when the scores
/// served part from the validation scores (and not before).
#[test]
fn metrics_are_prometheus_text_and_the_drift_check_fires_on_shifted_scores() {
    // Validation's scores: an even spread over (0, 1).
    let reference: Vec<f64> = (0..1000).map(|i| (i as f64 + 0.5) / 1000.0).collect();
    let shifted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let (s, c) = (shifted.clone(), counter.clone());
    // Scores spread like validation's (a golden-ratio sequence), or squeezed into [0.8, 1).
    let f: fer_predict::model::ScoreFn = Box::new(move |_, n| {
        (0..n)
            .map(|_| {
                let u = (c.fetch_add(1, Ordering::SeqCst) as f64 * 0.618_033_988_75).fract();
                if s.load(Ordering::SeqCst) {
                    0.8 + 0.2 * u
                } else {
                    u
                }
            })
            .collect()
    });
    let (addr, _) = fn_service(f, |o| {
        o.reference = Some(reference);
        o.drift = fer_predict::monitor::DriftOptions {
            window: 200,
            min_scores: 100,
            alpha: 0.001,
        };
    });
    let face = png(&synthetic_face(1));
    let drift = |addr| json(&http(addr, "GET", "/health", b"").1)["drift"].clone();
    assert_eq!(drift(addr)["status"], "waiting");
    for _ in 0..150 {
        assert_eq!(http(addr, "POST", "/predict", &face).0, 200);
    }
    let d = drift(addr);
    assert_eq!(d["status"], "ok", "{d}");
    let (code, head, text) = http_full(addr, "GET", "/metrics", b"");
    assert_eq!(code, 200);
    assert!(head.contains("openmetrics-text"), "{head}");
    for line in [
        "# TYPE fer_requests counter",
        "fer_requests_total{route=\"/predict\",code=\"200\"} 150",
        "# TYPE fer_request_duration_seconds histogram",
        "fer_faces_scored_total 150",
        "# TYPE fer_p_happy histogram",
        "fer_p_happy_count 150",
        "fer_drift_detected 0",
        "# EOF",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    shifted.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        assert_eq!(http(addr, "POST", "/predict", &face).0, 200);
    }
    let d = drift(addr);
    assert_eq!(d["status"], "drifted", "{d}");
    assert!(d["ks"].as_f64().unwrap() > d["critical"].as_f64().unwrap());
    let text = http(addr, "GET", "/metrics", b"").1;
    assert!(text.contains("fer_drift_detected 1"), "{text}");
    // Unknown paths are counted under one label, whatever they are.
    assert_eq!(http(addr, "GET", "/no/such/path", b"").0, 404);
    let text = http(addr, "GET", "/metrics", b"").1;
    assert!(
        text.contains("fer_requests_total{route=\"other\",code=\"404\"} 1"),
        "{text}"
    );
}
