//! fer-predict serve's limits against hostile clients, each held in a known state rather
//! than raced against the clock (timeouts are the test's own, and the test waits for the
//! service to reach a state before it checks the next): the per-client connection cap
//! (clients on distinct loopback addresses), slow bodies, bodies read before a scoring slot,
//! clients that never read, the request cap per connection, the token, the browser rules,
//! `/health` without paths, the memory budget and the aspect rule, an iCCP bomb, and the
//! drain on shutdown. The whole service against real attacks: `scripts/hostile.py`.

use crate::common::*;
use fer_predict::serve::{ServeOptions, bind};
use fer_predict::{DetectOptions, FaceDetector, Predictor, Scorer};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const A: &str = "127.0.0.2";
const B: &str = "127.0.0.3";
const C: &str = "127.0.0.4";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn predictor(f: fer_predict::model::ScoreFn, detect: bool) -> Predictor {
    let scorer = Scorer::from_fn(transform(), "test scorer at /secret/path/model", f);
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    Predictor::new(scorer, det, detect, 0.5).unwrap()
}

fn options(o: impl FnOnce(&mut ServeOptions)) -> ServeOptions {
    let mut opts = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::default()
    };
    o(&mut opts);
    opts
}

fn service(o: impl FnOnce(&mut ServeOptions)) -> SocketAddr {
    bind(predictor(Box::new(|_, n| vec![0.5; n]), false), &options(o))
        .unwrap()
        .spawn()
}

const PNG: &str = "Content-Type: image/png";

fn get(from: &str, addr: SocketAddr, path: &str) -> (u16, String) {
    let (c, _, b) = request_from(ip(from), addr, "GET", path, &[], b"");
    (c, b)
}

fn post(from: &str, addr: SocketAddr, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let (c, _, b) = request_from(ip(from), addr, "POST", path, headers, body);
    (c, b)
}

/// Ask until `f` holds (the service reaches a state in its own time), at most 60 s.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(addr: SocketAddr, reason: &str) -> u64 {
    let (_, body) = get(C, addr, "/metrics");
    let key = format!("fer_refusals_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

fn health(from: &str, addr: SocketAddr) -> serde_json::Value {
    let (code, body) = get(from, addr, "/health");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A connection from `from` that has sent `text` and is held open.
fn held(from: &str, addr: SocketAddr, text: &[u8]) -> std::net::TcpStream {
    let mut s = connect_from(ip(from), addr);
    s.write_all(text).unwrap();
    s
}

#[test]
fn one_client_cannot_take_every_connection() {
    let addr = service(|o| {
        o.net.header_timeout = Duration::from_secs(600);
        o.net.max_connections_per_client = 3;
        o.net.max_connections = 10;
    });
    // Three half-sent heads from A: A's share is full; B is served.
    let _held: Vec<_> = (0..3).map(|_| held(A, addr, b"GET /hea")).collect();
    let (code, body) = get(A, addr, "/health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("--max-connections-per-client"), "{body}");
    assert_eq!(get(B, addr, "/health").0, 200);
    assert!(metric(addr, "connections") >= 1);
}

#[test]
fn slow_bodies_are_cut_and_never_hold_a_scoring_slot() {
    let addr = service(|o| {
        o.min_body_rate = 1000;
        o.body_grace = Duration::from_millis(200);
        o.max_inflight = 1;
        o.queue = 0;
    });
    // A body at a trickle: 408, naming the rule.
    let mut s = held(
        A,
        addr,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\nab",
    );
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("--min-body-rate"), "{out}");
    assert!(metric(addr, "rate") >= 1);

    // Bodies still arriving take no scoring place: with one place in all, three pending
    // bodies (within their grace) leave it to a whole request.
    let addr = service(|o| {
        o.body_grace = Duration::from_secs(600);
        o.max_inflight = 1;
        o.queue = 0;
    });
    let head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n12";
    let _pending: Vec<_> = (0..3).map(|_| held(A, addr, head)).collect();
    let face = png(&synthetic_face(1));
    assert_eq!(post(B, addr, "/predict", &[PNG], &face).0, 200);
}

#[test]
fn clients_that_never_read_are_dropped_and_connections_end_after_their_requests() {
    let addr = service(|o| {
        o.net.write_timeout = Duration::from_millis(300);
        o.net.max_requests_per_connection = usize::MAX;
    });
    // Pipelined requests, never read: the answers fill the socket buffers, and the write
    // timeout closes the connection.
    let mut s = connect_from_with(ip(A), addr, Some(4096));
    let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    // Until the service closes the connection (the write fails).
    let writer = std::thread::spawn(move || while s.write_all(&req).is_ok() {});
    until("the write timeout closes the connection", || {
        metric(addr, "write") >= 1
    });
    writer.join().unwrap();
    assert_eq!(get(B, addr, "/health").0, 200);

    // The request cap: the second answer says close, and the connection ends.
    let addr = service(|o| o.net.max_requests_per_connection = 2);
    let mut s = connect_from(ip(A), addr);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3))
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
}

#[test]
fn token_origin_and_content_type_rules_and_health_without_paths() {
    let face = png(&synthetic_face(2));
    // No token: open, but /health shows no path.
    let addr = service(|_| {});
    let h = health(A, addr);
    assert!(h.get("model").is_none(), "{h}");
    assert!(!h.to_string().contains("/secret/path"), "{h}");
    assert_eq!(post(A, addr, "/predict", &[PNG], &face).0, 200);
    // A page from another site (a simple cross-origin POST): 403; a form type (what curl's
    // --data-binary sends) or none: 415.
    let (code, body) = post(
        A,
        addr,
        "/predict",
        &[PNG, "Origin: http://evil.example"],
        &face,
    );
    assert_eq!(code, 403, "{body}");
    let own = format!("Origin: http://{addr}");
    assert_eq!(post(A, addr, "/predict", &[PNG, &own], &face).0, 200);
    let form = "Content-Type: application/x-www-form-urlencoded";
    let (code, body) = post(A, addr, "/predict", &[form], &face);
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("image/jpeg"), "{body}");
    assert_eq!(post(A, addr, "/predict", &[], &face).0, 415);
    assert_eq!(
        (metric(addr, "origin"), metric(addr, "content_type")),
        (1, 2)
    );

    // A token: 401 without it or with a wrong one, for /predict and /metrics; /health
    // answers, with the model only for the token.
    let addr = service(|o| o.token = Some("kiosk-7f3a".into()));
    assert_eq!(post(A, addr, "/predict", &[PNG], &face).0, 401);
    let wrong = "Authorization: Bearer kiosk-7f3b";
    assert_eq!(post(A, addr, "/predict", &[PNG, wrong], &face).0, 401);
    let right = "Authorization: Bearer kiosk-7f3a";
    assert_eq!(post(A, addr, "/predict", &[PNG, right], &face).0, 200);
    assert_eq!(get(A, addr, "/metrics").0, 401);
    let (code, _, body) = request_from(ip(A), addr, "GET", "/metrics", &[right], b"");
    assert_eq!(code, 200);
    assert!(
        body.contains("fer_refusals_total{reason=\"token\"} 3"),
        "{body}"
    );
    let h = health(A, addr);
    assert!(h.get("model").is_none() && h["token"] == true, "{h}");
    let (_, _, body) = request_from(ip(A), addr, "GET", "/health", &[right], b"");
    assert!(body.contains("/secret/path"), "{body}");
}

#[test]
fn images_are_held_to_the_memory_budget_and_strips_are_refused_from_the_header() {
    let addr = bind(
        predictor(Box::new(|_, n| vec![0.5; n]), true),
        &options(|o| o.memory_budget = 16 << 20),
    )
    .unwrap()
    .spawn();
    // 3000 x 3000: about 30 MB to decode and search, over a 16 MiB budget: 413 from the
    // header (the body holds no pixel data at all).
    let (code, body) = post(A, addr, "/predict", &[PNG], &png_header_only(3000, 3000));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("--memory-budget"), "{body}");
    // A 2,000,000 x 20 strip: 40 MP, within --max-pixels, but no face to find in it.
    let (code, body) = post(A, addr, "/predict", &[PNG], &png_header_only(2_000_000, 20));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("times the other"), "{body}");
    assert_eq!(metric(addr, "budget"), 2);
    assert_eq!(health(B, addr)["memory_held_mb"], 0);
}

#[test]
fn a_png_colour_profile_bomb_is_never_inflated() {
    // 64 x 64 gray, with an iCCP chunk inflating to 64 MiB of zeros: its chunk is dropped
    // before decoding, so the image decodes as it would without it.
    let face = synthetic_face(3);
    let plain = png(&face);
    let z = zlib_zeros(64 << 20);
    let mut icc = b"bomb\0\0".to_vec();
    icc.extend_from_slice(&z);
    let ihdr_end = 8 + 25;
    let mut bomb = plain[..ihdr_end].to_vec();
    bomb.extend(png_chunk(b"iCCP", &icc));
    bomb.extend_from_slice(&plain[ihdr_end..]);
    let kept = fer_predict::decode::png_essentials(&bomb).unwrap();
    assert!(kept.len() < plain.len() + 100, "{} bytes kept", kept.len());
    assert!(!kept.windows(4).any(|w| w == b"iCCP"));
    let t = Instant::now();
    let g = fer_predict::decode_gray(&bomb, 1 << 20).unwrap();
    assert_eq!(g, fer_predict::decode_gray(&plain, 1 << 20).unwrap());
    // Inflating 64 MiB would take far longer than reading the chunk list.
    assert!(t.elapsed() < Duration::from_secs(30));
}

/// A zlib stream of `n` zero bytes (about n / 1000 bytes).
fn zlib_zeros(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..n / block.len() {
        z.write_all(&block).unwrap();
    }
    z.finish().unwrap()
}

#[test]
fn shutdown_finishes_the_request_in_flight() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let slow = predictor(
        Box::new(move |_, n| {
            s.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(500));
            vec![0.5; n]
        }),
        false,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (addr, handle) = bind(slow, &options(|_| {})).unwrap().spawn_until(stopped);
    let face = png(&synthetic_face(4));
    let client = std::thread::spawn(move || post(A, addr, "/predict", &[PNG], &face));
    until("the request is being scored", || {
        started.load(Ordering::SeqCst) > 0
    });
    stop.send(()).unwrap();
    let (code, body) = client.join().unwrap();
    assert_eq!(code, 200, "{body}");
    handle.join().unwrap().unwrap();
    // No longer accepting.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
