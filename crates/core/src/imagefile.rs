//! Whether an image file's bytes are whole: the rule ingest and fer-predict share.
//!
//! Decoders do not tell a file cut short: the image crate pads a truncated JPEG with grey and
//! may decode the first rows of a truncated PNG. So, before decoding:
//! - a JPEG, after any trailing zero bytes, starts with SOI `FF D8` and ends with EOI `FF D9`;
//! - a PNG starts with its signature and holds its `IEND` chunk (type and CRC) after it (only
//!   bytes that are no part of the image may follow it).

/// The 8 bytes every PNG starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// The `IEND` chunk's type and CRC: the last chunk of a whole PNG.
pub const PNG_IEND: [u8; 8] = [b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

/// A whole JPEG: SOI first, EOI last (trailing zero bytes allowed).
pub fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| i + 1)
        .unwrap_or(0);
    end >= 4 && bytes[..2] == [0xFF, 0xD8] && bytes[end - 2..end] == [0xFF, 0xD9]
}

/// A whole PNG: the signature, then an `IEND` chunk somewhere after it.
pub fn png_is_whole(bytes: &[u8]) -> bool {
    bytes.starts_with(&PNG_SIGNATURE)
        && bytes[PNG_SIGNATURE.len()..]
            .windows(PNG_IEND.len())
            .rev()
            .any(|w| w == PNG_IEND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_cut_files() {
        assert!(jpeg_is_whole(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9, 0, 0]));
        assert!(!jpeg_is_whole(&[0xFF, 0xD8, 1, 2, 3]));
        assert!(!jpeg_is_whole(&[0xFF, 0xD9]));
        assert!(!jpeg_is_whole(&[]));
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&[0, 0, 0, 0]);
        assert!(!png_is_whole(&png));
        png.extend_from_slice(&PNG_IEND);
        assert!(png_is_whole(&png));
        assert!(!png_is_whole(&PNG_IEND));
    }
}
