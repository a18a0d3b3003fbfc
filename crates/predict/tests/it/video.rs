//! Video in and the live page: a clip read through ffmpeg and summed per second (skipped, with
//! a line saying so, where ffmpeg is not installed), a broken source reported by name, and the
//! service's `GET /`, `POST /frames` and `GET /live.json` showing aggregates only.

use crate::common::*;
use fer_predict::serve::{ServeOptions, bind};
use fer_predict::video::{self, Event, PerSecond, Source, VideoError, VideoOptions};
use fer_predict::{DetectOptions, FaceDetector, Outcome, Predictor, Scorer};
use image::GrayImage;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// A scorer that calls a face happy (0.9) when it is brighter than mid-gray, else 0.1
/// (`transform()` maps mid-gray to 0); each image is one face (no detection).
fn brightness_predictor() -> Predictor {
    let f: fer_predict::model::ScoreFn = Box::new(|x: &[f32], n: usize| {
        let side = x.len() / n.max(1);
        x.chunks(side)
            .map(|c| {
                let m = c.iter().sum::<f32>() / c.len() as f32;
                if m > 0.0 { 0.9 } else { 0.1 }
            })
            .collect()
    });
    let scorer = Scorer::from_fn(transform(), "brightness", f);
    let det = FaceDetector::embedded(DetectOptions::default()).unwrap();
    Predictor::new(scorer, det, false, 0.5).unwrap()
}

fn ffmpeg() -> Option<&'static str> {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: ffmpeg not found (Debian's ffmpeg package; .ci/run installs it)");
    }
    ok.then_some("ffmpeg")
}

/// Frames of uniform gray, 48x48, one per level, as a lossless 5 fps clip (FFV1, gray).
fn clip(dir: &Path, levels: &[u8]) -> std::path::PathBuf {
    for (i, &l) in levels.iter().enumerate() {
        GrayImage::from_pixel(48, 48, image::Luma([l]))
            .save(dir.join(format!("f{i:03}.png")))
            .unwrap();
    }
    let out = dir.join("clip.mkv");
    let st = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-framerate",
            "5",
            "-i",
        ])
        .arg(dir.join("f%03d.png"))
        .args(["-c:v", "ffv1", "-pix_fmt", "gray"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

#[test]
fn a_clip_is_read_through_ffmpeg_and_summed_per_second() {
    if ffmpeg().is_none() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // Second 0: five bright frames; second 1: three bright, two dark; second 2: five dark.
    let (b, k) = (200u8, 50u8);
    let levels = [b, b, b, b, b, b, k, b, k, b, k, k, k, k, k];
    let path = clip(d.path(), &levels);
    let p = brightness_predictor();
    let source = Source::parse(path.to_str().unwrap()).unwrap();
    assert!(!source.live());
    let o = VideoOptions {
        width: 48,
        height: 48,
        ..VideoOptions::default()
    };
    let mut per = PerSecond::new(o.fps, p.threshold);
    let mut rows = Vec::new();
    let mut scores = Vec::new();
    let mut opened = 0;
    let sum = video::run(
        &p,
        &source,
        &o,
        4,
        &AtomicBool::new(false),
        &mut |k, out| {
            assert_eq!(k as usize, scores.len(), "frames in order");
            if let Outcome::Faces { faces, .. } = out {
                scores.push(faces[0].p_happy);
            }
            rows.extend(per.push(k, out));
            Ok(())
        },
        &mut |ev| {
            if let Event::Opened = ev {
                opened += 1
            }
        },
    )
    .unwrap();
    rows.extend(per.finish());
    assert_eq!(
        (sum.frames, sum.faces, sum.reopened, opened),
        (15, 15, 0, 1)
    );
    let want: Vec<f64> = levels
        .iter()
        .map(|&l| if l == b { 0.9 } else { 0.1 })
        .collect();
    assert_eq!(scores, want, "every frame, exactly the pixels written");
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.second, r.frames, r.faces, r.happy, r.alerts))
        .collect();
    assert_eq!(
        got,
        [
            (0, 5, 5, Some(5), Some(0)),
            (1, 5, 5, Some(3), Some(2)),
            (2, 5, 5, Some(0), Some(5)),
        ]
    );
    assert_eq!(rows[1].share_happy, Some(0.6));

    // At 2 frames per second each second holds 2 faces: under the privacy rule, counts only.
    let o2 = VideoOptions { fps: 2.0, ..o };
    let mut per = PerSecond::new(2.0, p.threshold);
    let mut rows = Vec::new();
    video::run(
        &p,
        &source,
        &o2,
        4,
        &AtomicBool::new(false),
        &mut |k, out| {
            rows.extend(per.push(k, out));
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap();
    rows.extend(per.finish());
    assert_eq!(rows.iter().map(|r| r.faces).sum::<u32>(), 6);
    assert!(
        rows.iter()
            .all(|r| r.happy.is_none() && r.share_happy.is_none())
    );
}

#[test]
fn a_broken_source_is_reported_by_name_and_a_file_is_not_retried() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("garbage.mp4");
    std::fs::write(
        &bad,
        (0..200_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let source = Source::parse(bad.to_str().unwrap()).unwrap();
    let p = brightness_predictor();
    // No ffmpeg at all: said plainly, whatever the machine has.
    let none = VideoOptions {
        ffmpeg: d.path().join("no-ffmpeg-here"),
        ..VideoOptions::default()
    };
    let e = video::run(
        &p,
        &source,
        &none,
        2,
        &AtomicBool::new(false),
        &mut |_, _| Ok(()),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, VideoError::NoFfmpeg { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("garbage.mp4") && msg.contains("ffmpeg"),
        "{msg}"
    );
    if ffmpeg().is_none() {
        return;
    }
    let mut failures = Vec::new();
    let e = video::run(
        &p,
        &source,
        &VideoOptions::default(),
        2,
        &AtomicBool::new(false),
        &mut |_, _| Ok(()),
        &mut |ev| {
            if let Event::Failed(e, wait) = ev {
                failures.push((e.to_string(), wait))
            }
        },
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VideoError::Ffmpeg { .. }), "{msg}");
    assert!(
        msg.contains("garbage.mp4") && msg.contains("ffmpeg stopped"),
        "{msg}"
    );
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].1, None, "a file is not opened again");
}

/// One HTTP/1.1 request from the loopback address: (status, head, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let local = "127.0.0.1".parse().unwrap();
    request_from(
        local,
        addr,
        method,
        path,
        &["Content-Type: image/png"],
        body,
    )
}

#[test]
fn the_live_page_and_frames_show_aggregates_only() {
    let o = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::default()
    };
    let addr = bind(brightness_predictor(), &o).unwrap().spawn();
    let (code, head, page) = http(addr, "GET", "/", b"");
    assert_eq!(code, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(page.contains("live.json") && page.contains("id=\"share\""));
    // Self-contained: no external script, style, image or font.
    for external in ["http://", "https://", "src=", "@import", "url("] {
        assert!(!page.contains(external), "the page refers to {external}");
    }
    let live = |addr| {
        let (code, _, body) = http(addr, "GET", "/live.json", b"");
        assert_eq!(code, 200);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let s = live(addr);
    assert_eq!(s["totals"]["frames"], 0);
    assert!(s["source"].is_null());
    let bright = png(&GrayImage::from_pixel(48, 48, image::Luma([200])));
    let dark = png(&GrayImage::from_pixel(48, 48, image::Luma([50])));
    for img in [&bright, &bright, &dark] {
        let (code, _, body) = http(addr, "POST", "/frames?threshold=0.95", img);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status": "ok", "faces": 1}),
            "no score, no box"
        );
    }
    // Three faces: counts only.
    let s = live(addr);
    assert_eq!(s["rolling"]["faces"], 3);
    assert!(s["rolling"]["share_happy"].is_null() && s["rolling"]["happy"].is_null());
    for img in [&dark, &bright, &dark] {
        assert_eq!(http(addr, "POST", "/frames", img).0, 200);
    }
    // Six faces, three bright, at the service's threshold (0.5), not the query's.
    let s = live(addr);
    assert_eq!(s["totals"]["faces"], 6);
    assert_eq!(s["rolling"]["happy"], 3);
    assert_eq!(s["rolling"]["alerts"], 3);
    assert_eq!(s["rolling"]["share_happy"], 0.5);
    assert_eq!(s["threshold"], 0.5);
    assert_eq!(s["min_faces"], video::MIN_FACES);
    assert!(s["drift"]["status"].is_string());
    // A body that is no image is refused as /predict refuses it.
    assert_eq!(http(addr, "POST", "/frames", b"not an image").0, 415);
    let (_, _, metrics) = http(addr, "GET", "/metrics", b"");
    assert!(
        metrics.contains("route=\"/frames\"") && metrics.contains("route=\"/live.json\""),
        "{metrics}"
    );
}

/// `fer-predict --video`'s refusals: before any model is loaded, exit code 2, one line naming
/// the problem (and never a credential).
#[test]
fn the_command_line_refuses_bad_video_arguments_clearly() {
    let d = tempfile::tempdir().unwrap();
    let clip = d.path().join("clip.mp4");
    std::fs::write(&clip, b"not a video").unwrap();
    let clip = clip.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fer-predict"))
            .args(args)
            .arg("--model")
            .arg(d.path().join("no-model"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for (args, says) in [
        (vec!["--video", "/no/such/clip.mp4"], "cannot read it"),
        (
            vec!["--video", "ftp://u:s3cret@cam/x"],
            "unknown URL scheme",
        ),
        (vec!["--video", clip, "--fps", "0"], "--fps 0"),
        (vec!["--video", clip, "--fps", "31"], "--fps 31"),
        (
            vec!["--video", clip, "--video-size", "4000x3000"],
            "--video-size",
        ),
        (vec!["--video", clip, "--video-stall", "0"], "--video-stall"),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("s3cret") && !err.contains("panicked"),
            "{err}"
        );
    }
    // Clap refuses a malformed size and images given with a video.
    let (code, err) = run(&["--video", clip, "--video-size", "big"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("WIDTHxHEIGHT"), "{err}");
    let (code, err) = run(&["--video", clip, "photo.jpg"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot be used with"), "{err}");
}
