//! Test scenes: 48x48 gray faces pasted, scaled up, into larger colour backgrounds, the way a
//! camera frame shows a face. Used by the tests, `make bench` and the detection-rate example.
//! Deterministic for a seed (a splitmix64 stream; no RNG crate needed).

use image::{GrayImage, Rgb, RgbImage, imageops};

/// Where a face was pasted: its square in the scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pasted {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

/// splitmix64: a tiny seeded stream.
pub struct Stream(u64);

impl Stream {
    pub fn new(seed: u64) -> Stream {
        Stream(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % (hi - lo).max(1) as u64) as u32
    }
}

/// A `w` x `h` colour background (a gradient, noise and a few coloured blocks) with `faces`
/// pasted at random non-overlapping places, each scaled to a side in `sides` (Catmull-Rom) and
/// turned to colour with equal channels (so its gray values are kept). Returns the scene and
/// where each face went (faces that do not fit are left out).
pub fn scene(
    faces: &[GrayImage],
    w: u32,
    h: u32,
    sides: (u32, u32),
    seed: u64,
) -> (RgbImage, Vec<Pasted>) {
    let mut r = Stream::new(seed);
    let (c0, c1) = (
        [r.range(0, 256), r.range(0, 256), r.range(0, 256)],
        [r.range(0, 256), r.range(0, 256), r.range(0, 256)],
    );
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let t = (x + y) as f32 / (w + h) as f32;
        let n = (r.next_u64() % 21) as f32 - 10.0;
        Rgb(std::array::from_fn(|k| {
            (c0[k] as f32 * (1.0 - t) + c1[k] as f32 * t + n).clamp(0.0, 255.0) as u8
        }))
    });
    for _ in 0..4 {
        let (bw, bh) = (r.range(20, w / 3), r.range(20, h / 3));
        let (bx, by) = (r.range(0, w - bw), r.range(0, h - bh));
        let c = Rgb([
            r.range(0, 256) as u8,
            r.range(0, 256) as u8,
            r.range(0, 256) as u8,
        ]);
        for y in by..by + bh {
            for x in bx..bx + bw {
                img.put_pixel(x, y, c);
            }
        }
    }
    let mut placed: Vec<Pasted> = Vec::new();
    for f in faces {
        let side = r.range(sides.0, sides.1 + 1).min(w).min(h);
        let spot = (0..50).find_map(|_| {
            let p = Pasted {
                x: r.range(0, w - side + 1),
                y: r.range(0, h - side + 1),
                side,
            };
            let apart = placed.iter().all(|q| {
                p.x + p.side + 8 <= q.x
                    || q.x + q.side + 8 <= p.x
                    || p.y + p.side + 8 <= q.y
                    || q.y + q.side + 8 <= p.y
            });
            apart.then_some(p)
        });
        let Some(p) = spot else { continue };
        let big = imageops::resize(f, side, side, imageops::FilterType::CatmullRom);
        for (x, y, v) in big.enumerate_pixels() {
            img.put_pixel(p.x + x, p.y + y, Rgb([v[0]; 3]));
        }
        placed.push(p);
    }
    (img, placed)
}

/// Encode a scene as PNG or JPEG (quality 92) bytes.
pub fn encode(img: &RgbImage, jpeg: bool) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    if jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
            .encode_image(img)
            .expect("encode JPEG");
    } else {
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encode PNG");
    }
    out.into_inner()
}

/// Intersection over union of two boxes `(x, y, w, h)`.
pub fn iou(a: (u32, u32, u32, u32), b: (u32, u32, u32, u32)) -> f64 {
    let ix = (a.0 + a.2).min(b.0 + b.2).saturating_sub(a.0.max(b.0)) as f64;
    let iy = (a.1 + a.3).min(b.1 + b.3).saturating_sub(a.1.max(b.1)) as f64;
    let i = ix * iy;
    let u = (a.2 * a.3 + b.2 * b.3) as f64 - i;
    if u > 0.0 { i / u } else { 0.0 }
}
