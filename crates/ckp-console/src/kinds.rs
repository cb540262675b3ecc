//! What a file of the console is, from its path and bytes alone: its content type, whether it is worth
//! compressing, whether its name is hashed, and its entity tag. Shared by `build.rs` (which decides everything at
//! build time) and the library's tests; std only.

/// The `Content-Type` of a file, by its extension (`application/octet-stream` when unknown).
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether a gzip copy of a file of this type is worth trying (text; PNG and WOFF2 are compressed already).
pub fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(content_type, "application/json" | "application/manifest+json" | "image/svg+xml" | "image/x-icon")
}

/// Whether a file's name carries its content hash (Vite writes those under `assets/`): it never changes, so
/// browsers may keep it for a year without asking again.
pub fn immutable(path: &str) -> bool {
    path.starts_with("assets/")
}

/// The entity tag of some content: 64-bit FNV-1a of the bytes and their length, in hex (no quotes).
pub fn etag(body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}-{:x}", body.len())
}
