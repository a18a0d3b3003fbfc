//! The frames of each case for a face, and the test faces they are made of.

use crate::{
    BACKLIT_BG, BACKLIT_FACE, BLUR_LEN, CASES, DARK_NOISE, DARK_SCALE, Face, Frame, JPEG_QUALITY,
    LOWRES_FACTOR, MASK_COLS, MASK_GRAY, MASK_ROWS, SEED, SIDES, THREE_SIDES, TILT_DEGREES,
};
use fer_predict::scene;
use image::{GrayImage, Luma};
use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};
use std::path::{Path, PathBuf};

fn gray(img: &image::RgbImage) -> GrayImage {
    image::DynamicImage::ImageRgb8(img.clone()).to_luma8()
}

fn squares(p: &[scene::Pasted]) -> Vec<(u32, u32, u32, u32)> {
    p.iter().map(|p| (p.x, p.y, p.side, p.side)).collect()
}

/// Every case's frame for face `i` (the `three` frame uses faces i, i+1, i+2).
pub(crate) fn frames(faces: &[Face], i: usize) -> Vec<Frame> {
    let seed = SEED + i as u64;
    let f = &faces[i];
    let (w, h) = (640, 480);
    let (plain_rgb, pp) = scene::scene(std::slice::from_ref(&f.img), w, h, SIDES, seed);
    let plain = gray(&plain_rgb);
    let sq = squares(&pp);
    let one = |sq: &[(u32, u32, u32, u32)]| -> Vec<((u32, u32, u32, u32), bool)> {
        sq.iter().map(|s| (*s, f.happy)).collect()
    };
    let mut noise = scene::Stream::new(seed ^ 0x5eed);
    let dark = GrayImage::from_fn(w, h, |x, y| {
        let n = noise.range(0, 2 * DARK_NOISE + 1) as f32 - DARK_NOISE as f32;
        Luma([(plain.get_pixel(x, y)[0] as f32 * DARK_SCALE + n).clamp(0.0, 255.0) as u8])
    });
    let inside = |x: u32, y: u32| {
        sq.iter()
            .any(|s| x >= s.0 && x < s.0 + s.2 && y >= s.1 && y < s.1 + s.3)
    };
    let backlit = GrayImage::from_fn(w, h, |x, y| {
        let v = plain.get_pixel(x, y)[0] as f32;
        let out = if inside(x, y) {
            v * BACKLIT_FACE
        } else {
            BACKLIT_BG.0 + BACKLIT_BG.1 * v
        };
        Luma([out.clamp(0.0, 255.0) as u8])
    });
    let angle = if i % 2 == 0 {
        TILT_DEGREES
    } else {
        -TILT_DEGREES
    }
    .to_radians();
    let turned = rotate_about_center(&f.img, angle, Interpolation::Bilinear, Border::Replicate);
    let (tilted, tp) = scene::scene(&[turned], w, h, SIDES, seed + 1);
    let mut covered = plain.clone();
    for s in &sq {
        let (side_x, side_y) = (s.2 as f32, s.3 as f32);
        let rows = (s.1 + (MASK_ROWS.0 * side_y) as u32)..(s.1 + (MASK_ROWS.1 * side_y) as u32);
        for y in rows {
            for x in (s.0 + (MASK_COLS.0 * side_x) as u32)..(s.0 + (MASK_COLS.1 * side_x) as u32) {
                covered.put_pixel(x, y, Luma([MASK_GRAY]));
            }
        }
    }
    let blur = GrayImage::from_fn(w, h, |x, y| {
        let (lo, hi) = (
            x.saturating_sub(BLUR_LEN / 2),
            (x + BLUR_LEN / 2).min(w - 1),
        );
        let sum: u32 = (lo..=hi).map(|xx| plain.get_pixel(xx, y)[0] as u32).sum();
        Luma([(sum / (hi - lo + 1)) as u8])
    });
    let small = image::imageops::thumbnail(&plain, w / LOWRES_FACTOR, h / LOWRES_FACTOR);
    let lowres = image::imageops::resize(&small, w, h, image::imageops::FilterType::Triangle);
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&plain)
        .expect("encode JPEG");
    let jpeg30 = image::load_from_memory(&jpeg.into_inner())
        .expect("decode JPEG")
        .to_luma8();
    let next = [i, (i + 1) % faces.len(), (i + 2) % faces.len()];
    let three_imgs: Vec<GrayImage> = next.iter().map(|&k| faces[k].img.clone()).collect();
    // scene() leaves out a face that does not fit (in 50 tries), so that its order says which
    // face went where only when all three are placed: the first seed (seed + 2, then + 1000
    // each time) that places all three is taken.
    let (three_rgb, tp3) = (0..)
        .map(|k| scene::scene(&three_imgs, w, h, THREE_SIDES, seed + 2 + 1000 * k))
        .find(|(_, p)| p.len() == 3)
        .expect("three faces of at most 200 px fit a 640x480 frame");
    let three_faces = tp3
        .iter()
        .zip(next)
        .map(|(p, k)| ((p.x, p.y, p.side, p.side), faces[k].happy))
        .collect();
    let (empty, _) = scene::scene(&[], w, h, SIDES, seed + 3);
    let at = |c: &str| CASES.iter().position(|x| *x == c).expect("case");
    // Most cases are the plain frame's face, changed in place.
    let same = |case: &str, img: GrayImage| Frame {
        case: at(case),
        faces: one(&sq),
        img,
    };
    vec![
        same("plain", plain),
        same("dark", dark),
        same("backlit", backlit),
        Frame {
            case: at("tilted"),
            faces: one(&squares(&tp)),
            img: gray(&tilted),
        },
        same("covered", covered),
        same("blur", blur),
        same("lowres", lowres),
        same("jpeg30", jpeg30),
        Frame {
            case: at("three"),
            faces: three_faces,
            img: gray(&three_rgb),
        },
        Frame {
            case: at("empty"),
            faces: vec![],
            img: gray(&empty),
        },
    ]
}

pub(crate) fn load_faces(folder: &Path, per_class: usize) -> Vec<Face> {
    // The six other emotions' folders, by name (angry, disgust, fear, neutral, sad, surprise).
    let emotions = fer_core::Classes::emotions();
    let mut others: Vec<&str> = emotions
        .strs()
        .into_iter()
        .filter(|e| !fer_core::classes::is_happy(e))
        .collect();
    others.sort_unstable();
    let list = |emotion: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(folder.join(emotion))
            .unwrap_or_else(|e| panic!("{}: {e}", folder.join(emotion).display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let open = |p: &Path| {
        image::open(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .to_luma8()
    };
    let mut faces: Vec<Face> = list(fer_core::classes::HAPPY)
        .iter()
        .take(per_class)
        .map(|p| Face {
            img: open(p),
            happy: true,
        })
        .collect();
    let lists: Vec<Vec<PathBuf>> = others.iter().map(|e| list(e)).collect();
    let mut taken = 0;
    let mut k = 0;
    while taken < per_class {
        let l = &lists[taken % others.len()];
        if let Some(p) = l.get(k) {
            faces.push(Face {
                img: open(p),
                happy: false,
            });
        }
        taken += 1;
        if taken % others.len() == 0 {
            k += 1;
        }
    }
    // Interleave happy and not happy, so `three` frames mix them.
    let (h, n): (Vec<Face>, Vec<Face>) = faces.into_iter().partition(|f| f.happy);
    h.into_iter().zip(n).flat_map(|(a, b)| [a, b]).collect()
}
