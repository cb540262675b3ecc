//! The gzip copy of a file, made at build time by `build.rs` (the library's tests check the round trip).

use std::io::Write;

/// `body` gzip-compressed at level 9, or `None` when that does not make it smaller.
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    let packed = encoder.finish().ok()?;
    (packed.len() < body.len()).then_some(packed)
}
