//! Untrusted image bytes to a gray image, with every cost known before it is paid.
//!
//! [`plan`] reads only the header (format, size, colour type) and works out what decoding
//! and detecting the image will allocate at most ([`Plan::bytes`]); [`Plan::decode_gray`]
//! then decodes it. The service takes that many bytes from its memory budget before
//! decoding (`fer-predict serve --memory-budget`), and refuses at once (413) an image whose
//! plan is larger than the whole budget. Refused from the header alone, before any pixel is
//! decoded:
//! - more than `max_pixels` pixels (a decompression bomb, or a photo too large);
//! - when faces are to be detected, a side more than [`Limits::max_aspect`] times the other
//!   (a 2,000,000 x 20 strip holds no face, and costs like a square);
//! - a JPEG or PNG cut short (the end-marker rule ingest uses).
//!
//! What the plan counts ([`Plan::bytes`]), in order of the work:
//! 1. the body and at most two copies of it (the PNG filter below, the JPEG decoder's own);
//! 2. the decoded image at its colour type (16-bit RGBA: 8 bytes a pixel), and for a JPEG the
//!    decoder's coefficient planes (a progressive JPEG keeps them all: 2 bytes per sample, 4
//!    samples counted per pixel so that CMYK is covered too);
//! 3. an 8-bit RGB copy where the colour type is neither 8-bit gray, RGB nor RGBA (what
//!    [`gray`] converts through), and the gray image;
//! 4. a second gray image for an EXIF rotation (the rotation is applied to the gray image,
//!    not to the decoded one: the same pixels, a quarter to an eighth of the bytes);
//! 5. detection ([`fer_detect::FaceDetector::working_bytes`]): the copy the detector searches is scaled
//!    down to at most [`crate::DetectOptions::work_side`] pixels a side and padded, so its
//!    cost is bounded whatever the photo's size;
//! 6. one face crop, at most the image's smaller side squared.
//!
//! PNG colour profiles: the png crate inflates an `iCCP` chunk while reading the header, up to
//! the whole allocation limit (a 298 KB file can carry a 300 MiB profile). No colour profile
//! is used here (gray is computed from the pixel values as `preprocess` does), so a PNG's
//! ancillary chunks are dropped before it is decoded, all but `tRNS` (transparency, which
//! decides the decoded colour type) and `eXIf` (the orientation): [`png_essentials`]. The
//! chunk walk is written here because the image crate has no switch for it (the png crate's
//! `set_ignore_iccp_chunk` is not reachable through `image::ImageReader`).

use crate::PredictError;
use fer_core::transform::{ColorSpace, to_gray};
use image::{ColorType, DynamicImage, GrayImage, ImageDecoder, ImageFormat};
use std::borrow::Cow;

/// What an image may be, checked from its header before decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest image, width x height.
    pub max_pixels: u64,
    /// When detecting faces: the longer side over the shorter one, at most.
    pub max_aspect: f64,
}

/// Default [`Limits::max_aspect`]: 20 (a 360-degree panorama is about 8).
pub const DEFAULT_MAX_ASPECT: f64 = 20.0;

/// An image whose header has been read and checked: what decoding and detecting it will cost.
#[derive(Debug)]
pub struct Plan<'a> {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub color: ColorType,
    /// Bytes the decoding and the detection allocate at most (see the module doc).
    pub bytes: u64,
    /// The bytes to decode (a PNG without its ancillary chunks).
    data: Cow<'a, [u8]>,
}

/// A JPEG or PNG cut short, by ingest's rule ([`fer_core::imagefile`]): the image crate pads a
/// truncated JPEG with grey and may decode the first rows of a truncated PNG, so the end
/// marker is checked before decoding.
pub fn truncated(bytes: &[u8], format: ImageFormat) -> Option<&'static str> {
    match format {
        ImageFormat::Jpeg => (!fer_core::imagefile::jpeg_is_whole(bytes))
            .then_some("truncated JPEG (no end-of-image marker FF D9)"),
        ImageFormat::Png => {
            (!fer_core::imagefile::png_is_whole(bytes)).then_some("truncated PNG (no IEND chunk)")
        }
        _ => None,
    }
}

/// A PNG with only the chunks decoding needs: `IHDR`, `PLTE`, `tRNS`, `IDAT`, `eXIf`, `IEND`
/// (see the module doc). Borrowed unchanged when there is nothing to drop; an error when the
/// chunk structure is broken.
pub fn png_essentials(bytes: &[u8]) -> Result<Cow<'_, [u8]>, PredictError> {
    const SIGNATURE: usize = 8;
    const KEEP: [&[u8; 4]; 6] = [b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"eXIf", b"IEND"];
    let broken = |why: &str| PredictError::Decode(format!("broken PNG chunk structure: {why}"));
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut at = SIGNATURE;
    let mut dropped = false;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 8)
            .ok_or_else(|| broken("a chunk header is cut short"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = at
            .checked_add(12)
            .and_then(|v| v.checked_add(len))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| broken("a chunk runs past the end of the file"))?;
        let kind = &head[4..8];
        if KEEP.iter().any(|k| &k[..] == kind) {
            match spans.last_mut() {
                Some(last) if last.1 == at => last.1 = end,
                _ => spans.push((at, end)),
            }
        } else {
            dropped = true;
        }
        at = end;
        if kind == b"IEND" {
            break;
        }
    }
    if !dropped {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..SIGNATURE]);
    for (a, b) in spans {
        out.extend_from_slice(&bytes[a..b]);
    }
    Ok(Cow::Owned(out))
}

/// The allocation limit the image crate gets while reading a header (what a colour profile or
/// other metadata may take there).
const HEADER_ALLOC: u64 = 16 << 20;

fn reader(bytes: &[u8], max_alloc: u64) -> image::ImageReader<std::io::Cursor<&[u8]>> {
    let mut r = image::ImageReader::new(std::io::Cursor::new(bytes));
    r.set_format(image::guess_format(bytes).unwrap_or(ImageFormat::Png));
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    r.limits(limits);
    r
}

fn bad(e: image::ImageError) -> PredictError {
    PredictError::Decode(e.to_string())
}

/// Read and check an image's header. `detect`: faces will be searched, and this gives the
/// detector's cost for an image of a given width and height (the aspect rule applies too).
pub fn plan<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    detect: Option<&dyn Fn(u32, u32) -> u64>,
) -> Result<Plan<'a>, PredictError> {
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        Ok(f) => return Err(PredictError::Decode(format!("{f:?} is not supported"))),
        Err(_) => return Err(PredictError::Decode("unknown format".into())),
    };
    if let Some(why) = truncated(bytes, format) {
        return Err(PredictError::Decode(why.into()));
    }
    let data = match format {
        ImageFormat::Png => png_essentials(bytes)?,
        _ => Cow::Borrowed(bytes),
    };
    // The header alone: no pixel is decoded yet.
    let decoder = reader(&data, HEADER_ALLOC).into_decoder().map_err(bad)?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    drop(decoder);
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels {
        return Err(PredictError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(PredictError::Decode(format!(
            "image of {width}x{height} pixels"
        )));
    }
    let (long, short) = (width.max(height) as f64, width.min(height) as f64);
    if detect.is_some() && long > limits.max_aspect * short {
        return Err(PredictError::Aspect {
            width,
            height,
            max: limits.max_aspect,
        });
    }
    let body = bytes.len() as u64 * 3;
    let native = pixels * color.bytes_per_pixel() as u64;
    let scratch = if format == ImageFormat::Jpeg {
        pixels * 8
    } else {
        0
    };
    let rgb = match color {
        ColorType::L8 | ColorType::Rgb8 | ColorType::Rgba8 => 0,
        _ => pixels * 3,
    };
    let gray = pixels * 2;
    let detection = detect.map(|f| f(width, height)).unwrap_or(0);
    let crop = (short as u64).pow(2);
    Ok(Plan {
        format,
        width,
        height,
        color,
        bytes: body + native + scratch + rgb + gray + detection + crop,
        data,
    })
}

impl Plan<'_> {
    /// Decode to gray as `preprocess` makes it ([`gray`]), then apply the EXIF orientation
    /// (to the gray image: the same pixels as rotating first).
    pub fn decode_gray(self) -> Result<GrayImage, PredictError> {
        let pixels = self.width as u64 * self.height as u64;
        // The decoded image and the decoder's own buffers; the plan has counted them.
        let max_alloc = pixels * (self.color.bytes_per_pixel() as u64 + 8) + HEADER_ALLOC;
        let mut decoder = reader(&self.data, max_alloc).into_decoder().map_err(bad)?;
        let orientation = decoder.orientation().map_err(bad)?;
        let img = DynamicImage::from_decoder(decoder).map_err(bad)?;
        drop(self.data);
        let mut g = DynamicImage::ImageLuma8(into_gray(img));
        g.apply_orientation(orientation);
        Ok(g.into_luma8())
    }
}

/// Decode JPEG or PNG bytes to gray (EXIF orientation applied) after checking from the header
/// that the image has at most `max_pixels` pixels and from its end that it is whole (no
/// aspect rule: the image is not searched for faces).
pub fn decode_gray(bytes: &[u8], max_pixels: u64) -> Result<GrayImage, PredictError> {
    let limits = Limits {
        max_pixels,
        max_aspect: f64::INFINITY,
    };
    plan(bytes, &limits, None)?.decode_gray()
}

/// [`gray`] of an owned image (8-bit gray is moved, not copied).
pub fn into_gray(img: DynamicImage) -> GrayImage {
    match img {
        DynamicImage::ImageLuma8(g) => g,
        other => gray(&other),
    }
}

/// Gray as `preprocess` makes it: 8-bit gray kept, colour through
/// [`fer_core::transform::to_gray`] (alpha ignored; 16-bit first reduced to 8 bits).
pub fn gray(img: &DynamicImage) -> GrayImage {
    let (w, h) = (img.width(), img.height());
    let conv = |raw: &[u8], space| to_gray(raw, w, h, space).expect("buffer matches its size");
    match img {
        DynamicImage::ImageLuma8(g) => g.clone(),
        DynamicImage::ImageRgb8(c) => conv(c.as_raw(), ColorSpace::Rgb),
        DynamicImage::ImageRgba8(c) => conv(c.as_raw(), ColorSpace::Rgba),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLuma16(_) => img.to_luma8(),
        other => conv(other.to_rgb8().as_raw(), ColorSpace::Rgb),
    }
}
