//! YuNet through tract (feature `yunet`; without it, one test says it was skipped): it loads,
//! finds the face of a real photo with landmarks where a face has them, finds none in a blank
//! frame, stops at a set deadline, and keeps its working size and memory bounded for a huge
//! photo. The photo is predict's load-test scene (a FER2013 face pasted into a 320x240 frame).

#[cfg(not(feature = "yunet"))]
#[test]
fn yunet_tests_need_the_feature() {
    eprintln!(
        "skipped: fer-detect was built without the `yunet` feature \
         (cargo test -p fer-detect --features yunet runs these tests)"
    );
    assert!(!fer_detect::DetectorKind::Yunet.available());
    assert!(matches!(
        fer_detect::FaceDetector::embedded(fer_detect::DetectOptions::for_detector(
            fer_detect::DetectorKind::Yunet
        )),
        Err(fer_detect::DetectError::NotBuilt("yunet"))
    ));
}

#[cfg(feature = "yunet")]
mod with_yunet {
    use fer_detect::{Cancelled, DetectOptions, DetectorKind, FaceDetector};
    use image::GrayImage;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    fn yunet() -> FaceDetector {
        FaceDetector::embedded(DetectOptions::for_detector(DetectorKind::Yunet)).unwrap()
    }

    fn photo() -> GrayImage {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../predict/tests/fixtures/load/scene-0.jpg");
        image::open(&p).unwrap().to_luma8()
    }

    #[test]
    fn yunet_is_the_default_and_finds_the_face_with_landmarks() {
        assert_eq!(DetectorKind::default_kind(), DetectorKind::Yunet);
        let g = photo();
        let faces = yunet().detect(&g);
        assert_eq!(faces.len(), 1, "{faces:?}");
        let f = faces[0];
        assert!(f.score.unwrap() >= 0.5, "{f:?}");
        let l = f.landmarks.expect("YuNet gives landmarks");
        let inside = |p: [f32; 2]| {
            p[0] >= f.x as f32 - 2.0
                && p[0] <= (f.x + f.width) as f32 + 2.0
                && p[1] >= f.y as f32 - 2.0
                && p[1] <= (f.y + f.height) as f32 + 2.0
        };
        assert!(l.iter().all(|p| inside(*p)), "{l:?} outside {f:?}");
        // Eyes above the nose, the nose above the mouth corners; the first eye on the left.
        assert!(l[0][1] < l[2][1] && l[1][1] < l[2][1], "{l:?}");
        assert!(l[2][1] < l[3][1] && l[2][1] < l[4][1], "{l:?}");
        assert!(l[0][0] < l[1][0] && l[3][0] < l[4][0], "{l:?}");
        // The crop is a square inside the image.
        let (cx, cy, sx, sy) = f.crop;
        assert_eq!(sx, sy);
        assert!(cx + sx <= g.width() && cy + sy <= g.height());
    }

    #[test]
    fn blank_and_tiny_frames_have_no_face() {
        let d = yunet();
        assert!(d.detect(&GrayImage::new(640, 480)).is_empty());
        assert!(
            d.detect(&GrayImage::from_pixel(333, 201, image::Luma([200])))
                .is_empty()
        );
        assert!(d.detect(&GrayImage::new(10, 10)).is_empty());
    }

    #[test]
    fn a_set_deadline_stops_detection() {
        let d = yunet();
        assert_eq!(
            d.detect_until(&photo(), &AtomicBool::new(true)),
            Err(Cancelled)
        );
    }

    #[test]
    fn working_size_and_memory_stay_bounded_for_a_huge_photo() {
        let d = yunet();
        let (w, h) = d.working_size(8000, 6000);
        let o = d.options;
        // The frame plus its border fits the inference side.
        let long = w.max(h) as f32 * (1.0 + 2.0 * o.pad);
        assert!(long <= o.work_side as f32 + 1.0, "{w}x{h}");
        assert_eq!(d.working_bytes(8000, 6000), d.working_bytes(16000, 12000));
        assert!(d.working_bytes(8000, 6000) < 200_000_000);
        // A scaled-down search still finds the face, and boxes come back in the original's
        // pixels.
        let g = photo();
        let big = image::imageops::resize(&g, 1920, 1440, image::imageops::FilterType::Triangle);
        let small = d.detect(&g);
        let large = d.detect(&big);
        assert_eq!(large.len(), 1);
        let ratio = large[0].width as f32 / small[0].width as f32;
        assert!(
            (ratio - 6.0).abs() < 0.6,
            "box scales with the photo: {ratio}"
        );
    }

    #[test]
    fn options_out_of_range_are_errors_naming_the_flag() {
        let bad = DetectOptions {
            score_threshold: 1.5,
            ..DetectOptions::for_detector(DetectorKind::Yunet)
        };
        let e = FaceDetector::embedded(bad).err().unwrap().to_string();
        assert!(e.contains("--det-threshold"), "{e}");
        for k in [0.1, 1.5, f32::NAN] {
            let bad = DetectOptions {
                tilt_scale: k,
                ..DetectOptions::for_detector(DetectorKind::Yunet)
            };
            let e = FaceDetector::embedded(bad).err().unwrap().to_string();
            assert!(
                e.contains("--det-tilt-scale") && e.contains("0.25..=1"),
                "{e}"
            );
        }
        for (look, looks, flag) in [
            (-0.1, 8, "--det-second-look "),
            (f64::NAN, 8, "--det-second-look "),
            (0.02, 65, "--det-second-looks "),
        ] {
            let bad = DetectOptions {
                second_look: look,
                second_looks: looks,
                ..DetectOptions::for_detector(DetectorKind::Yunet)
            };
            let e = FaceDetector::embedded(bad).err().unwrap().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }
}

/// The centre of a detection's box.
#[cfg(feature = "yunet")]
fn centre(b: &fer_detect::FaceBox) -> (f32, f32) {
    (
        b.x as f32 + b.width as f32 / 2.0,
        b.y as f32 + b.height as f32 / 2.0,
    )
}

#[cfg(feature = "yunet")]
mod turned_passes {
    use fer_detect::{DetectOptions, DetectorKind, FaceDetector};
    use imageproc::geometric_transformations::{Border, Interpolation, rotate};
    use std::path::Path;

    #[test]
    fn a_face_tilted_40_degrees_is_found_where_it_is_with_the_turned_passes() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../predict/tests/fixtures/load/scene-0.jpg");
        let g = image::open(&p).unwrap().to_luma8();
        let g = image::imageops::resize(&g, 640, 480, image::imageops::FilterType::Triangle);
        let upright =
            FaceDetector::embedded(DetectOptions::for_detector(DetectorKind::Yunet)).unwrap();
        let f = upright.detect(&g)[0];
        let (fx, fy) = (
            f.x as f32 + f.width as f32 / 2.0,
            f.y as f32 + f.height as f32 / 2.0,
        );
        // Turn the frame 40 degrees about the face's centre: the face stays where it was.
        let turned = rotate(
            &g,
            (fx, fy),
            40f32.to_radians(),
            Interpolation::Bilinear,
            Border::Constant(image::Luma([128])),
        );
        // At the default size of the turned copies and at full size (the mapping back scales).
        for k in [0.5, 1.0] {
            let upright = FaceDetector::embedded(DetectOptions {
                tilt_scale: k,
                ..DetectOptions::for_detector(DetectorKind::Yunet)
            })
            .unwrap();
            let found = upright.detect(&turned);
            assert_eq!(found.len(), 1, "{found:?}");
            let b = found[0];
            let (bx, by) = super::centre(&b);
            assert!(
                (bx - fx).hypot(by - fy) < 0.25 * f.width as f32,
                "box centre ({bx}, {by}) against the face's ({fx}, {fy})"
            );
            // The best box came from the pass turned -25 degrees, its landmarks turned back: the eye
            // line is at least that pass's 25 degrees (YuNet's landmarks read less roll than a face
            // has: 5 degrees for this face upright, against 40), not the upright pass's 5.
            let angle = b.eye_angle().unwrap().to_degrees();
            assert!(
                (20.0..50.0).contains(&angle),
                "turned copies at {k}: eye line at {angle} degrees"
            );
        }
    }
}

#[cfg(feature = "yunet")]
mod second_looks {
    use fer_detect::{DetectOptions, DetectorKind, FaceDetector};
    use image::GrayImage;
    use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};
    use std::path::Path;

    /// The load-test photo's face (its box, half again as large), scaled to `side`, turned
    /// `degrees`, pasted at (`x`, `y`) into a 640x480 frame of flat gray.
    fn small_turned_face(side: u32, degrees: f32, x: i64, y: i64) -> GrayImage {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../predict/tests/fixtures/load/scene-0.jpg");
        let g = image::open(&p).unwrap().to_luma8();
        let d = FaceDetector::embedded(DetectOptions::for_detector(DetectorKind::Yunet)).unwrap();
        let f = d.detect(&g)[0];
        let s = (f.width.max(f.height) as f32 * 1.5) as u32;
        let cx = (f.x + f.width / 2).saturating_sub(s / 2);
        let cy = (f.y + f.height / 2).saturating_sub(s / 2);
        let face = image::imageops::crop_imm(&g, cx, cy, s, s).to_image();
        let face =
            image::imageops::resize(&face, side, side, image::imageops::FilterType::Triangle);
        let face = rotate_about_center(
            &face,
            degrees.to_radians(),
            Interpolation::Bilinear,
            Border::Constant(image::Luma([128])),
        );
        let mut frame = GrayImage::from_pixel(640, 480, image::Luma([128]));
        image::imageops::replace(&mut frame, &face, x, y);
        frame
    }

    #[test]
    fn a_small_tilted_face_the_whole_frame_passes_miss_is_found_by_a_second_look() {
        // The face is about 53 px, turned 30 degrees: the upright search scores it under the
        // threshold and the half-size turned copies make it 27 px.
        let frame = small_turned_face(80, 30.0, 300, 200);
        let without = FaceDetector::embedded(DetectOptions {
            second_look: 0.0,
            ..DetectOptions::for_detector(DetectorKind::Yunet)
        })
        .unwrap();
        assert!(without.detect(&frame).is_empty());
        let with =
            FaceDetector::embedded(DetectOptions::for_detector(DetectorKind::Yunet)).unwrap();
        let found = with.detect(&frame);
        assert_eq!(found.len(), 1, "{found:?}");
        let b = found[0];
        let (bx, by) = super::centre(&b);
        assert!(
            (bx - 340.0).hypot(by - 240.0) < 12.0 && (35..75).contains(&b.width),
            "{b:?}"
        );
        assert!(b.score.unwrap() >= with.options.score_threshold);
        // No candidate gets a look when none may.
        let capped = FaceDetector::embedded(DetectOptions {
            second_looks: 0,
            ..DetectOptions::for_detector(DetectorKind::Yunet)
        })
        .unwrap();
        assert!(capped.detect(&frame).is_empty());
    }
}
