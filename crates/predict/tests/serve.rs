//! fer-predict serve: 1,000 sequential requests, 413 for an oversized body, 415 for a body
//! that is not an image, 400 for an empty one.

mod common;

use common::*;
use fer_predict::serve::{ServeOptions, bind};
use fer_predict::{DetectOptions, FaceDetector, ModelOptions, Predictor, Scorer, scene};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
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
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (code, body)
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
    // A truncated PNG is not an image either.
    let (code, _) = http(addr, "POST", "/predict", &face[..face.len() / 2]);
    assert_eq!(code, 415);
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
