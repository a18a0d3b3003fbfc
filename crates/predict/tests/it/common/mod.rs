//! Fixtures shared by the tests: a tiny CNN artifact, synthetic faces, FER2013 if present.
#![allow(dead_code)]

use burn::module::Module;
use burn::tensor::Device;
use fer_core::Emotion;
use fer_core::transform::{Denoise, Equalize, Normalization, Transform};
use fer_models::ModelArtifact;
use fer_models::arch::{ModelConfig, Net};
use fer_models::settings::TrainSettings;
use image::GrayImage;
use std::path::{Path, PathBuf};

pub fn transform() -> Transform {
    Transform {
        size: 48,
        resize_filter: "triangle".into(),
        denoise: Denoise::None,
        equalize: Equalize::None,
        normalization: Normalization::Standardize {
            mean: 0.5,
            std: 0.25,
        },
    }
}

/// A small fer-small network, seeded, saved as a train_cnn model folder in `dir`.
pub fn tiny_model(dir: &Path, tta_flip: bool, eval_batch: usize) -> (Net, ModelArtifact) {
    tiny_model_seeded(dir, tta_flip, eval_batch, 7)
}

/// [`tiny_model`] with other initial weights (`seed`): a model "retrained" in the same folder.
pub fn tiny_model_seeded(
    dir: &Path,
    tta_flip: bool,
    eval_batch: usize,
    seed: u64,
) -> (Net, ModelArtifact) {
    tiny_model_of(dir, tta_flip, eval_batch, seed, &["happy", "not_happy"])
}

/// [`tiny_model_seeded`] of the classes `classes` (e.g. `LabelMode::Emotion7.class_names()`:
/// a seven-class CNN as train_cnn saves one).
pub fn tiny_model_of(
    dir: &Path,
    tta_flip: bool,
    eval_batch: usize,
    seed: u64,
    classes: &[&str],
) -> (Net, ModelArtifact) {
    let d = Device::flex();
    d.seed(seed);
    let mut cfg = ModelConfig::new("fer-small".into()).with_widths(vec![8, 16]);
    cfg.num_classes = classes.len();
    let net = cfg.init(&d);
    std::fs::create_dir_all(dir).unwrap();
    fer_models::checkpoint::save_weights(&net, &dir.join("model.safetensors")).unwrap();
    let art = ModelArtifact {
        model: cfg.clone(),
        settings: TrainSettings {
            name: "tiny".into(),
            eval_batch_size: eval_batch,
            tta_flip,
            widths: vec![8, 16],
            ..TrainSettings::default()
        },
        transform: transform(),
        class_names: classes.iter().map(|c| c.to_string()).collect(),
        tta_flip,
        params: net.num_params(),
        macs: Net::macs(&cfg),
    };
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_string_pretty(&art).unwrap(),
    )
    .unwrap();
    (net, art)
}

/// The `i`-th drawn face (alternately happy and sad).
pub fn synthetic_face(i: usize) -> GrayImage {
    let e = if i.is_multiple_of(2) {
        Emotion::Happy
    } else {
        Emotion::Sad
    };
    GrayImage::from_raw(
        48,
        48,
        fer_test_support::synthetic_face(e, 100 + i as u64, 4.0),
    )
    .unwrap()
}

pub fn png(img: &GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// FER2013 (`FER2013_DIR`, else the shared data folder), when present.
pub fn fer2013() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cands = [
        std::env::var_os("FER2013_DIR").map(PathBuf::from),
        Some(root.join("data/fer2013")),
        Some(root.join("../shared/data/fer2013")),
    ];
    cands
        .into_iter()
        .flatten()
        .find(|p| p.join("test").join("happy").is_dir())
}

/// The seed pipeline's fer-small model folder (or `FER_PREDICT_TEST_MODEL`), when present.
pub fn seed_model() -> Option<PathBuf> {
    let p = std::env::var_os("FER_PREDICT_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/seed/train_cnn/fer-small")
        });
    p.join("model.json").is_file().then_some(p)
}

/// CRC-32 (PNG's), bitwise.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header declares `w` x `h` 8-bit gray pixels, with an empty image and IEND: a
/// decompression bomb as far as the header goes.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// A PNG chunk: length, type, data, CRC.
pub fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    c.extend_from_slice(&body);
    c.extend_from_slice(&crc32(&body).to_be_bytes());
    c
}

/// A TCP connection to `to` from the loopback address `from` (e.g. 127.0.0.2), so that a
/// service sees distinct clients.
pub fn connect_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> std::net::TcpStream {
    connect_from_with(from, to, None)
}

/// [`connect_from`] with a receive buffer of `recv_buffer` bytes (a client that reads little).
pub fn connect_from_with(
    from: std::net::IpAddr,
    to: std::net::SocketAddr,
    recv_buffer: Option<u32>,
) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        if let Some(n) = recv_buffer {
            sock.set_recv_buffer_size(n).unwrap();
        }
        sock.connect(to).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// One request on its own connection (`Connection: close`) from `from`, with extra header
/// lines: (status, head, body).
pub fn request_from(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (code, head.to_string(), body.to_string())
}
