//! The web console (`web/`) as built into this binary: a table of its files sorted by path, each with its content
//! type, entity tag, cache class and a gzip copy when one is smaller, all decided at build time by `build.rs` (see
//! there for where the files come from and how to build without Node.js). It only hands out bytes; serving them
//! (headers, negotiation, client routes) is `ckp-server`'s `console` module.

#[cfg(test)]
mod kinds;
#[cfg(test)]
mod pack;

/// One file of the built console.
#[derive(Debug)]
pub struct Asset {
    /// Its path under the console's root, without a leading `/` (`index.html`, `assets/index-3f9a2c1b.js`).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// The same bytes gzip-compressed, when that is smaller and the type compresses.
    pub gzip: Option<&'static [u8]>,
    /// A hash of `body` (hex, without quotes), the base of its entity tag.
    pub etag: &'static str,
    /// Whether its name carries its content hash (under `assets/`), so it can be cached for good.
    pub immutable: bool,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file at `path` of a table sorted by path (the built one, or a test's own).
pub fn find(assets: &'static [Asset], path: &str) -> Option<&'static Asset> {
    assets.binary_search_by(|a| a.path.cmp(path)).ok().map(|i| &assets[i])
}

/// The file of the built console at `path` (no leading `/`).
pub fn get(path: &str) -> Option<&'static Asset> {
    find(ASSETS, path)
}

/// The console's `index.html`, the answer to every client route.
pub fn index() -> Option<&'static Asset> {
    get("index.html")
}

/// Whether this binary carries the web console.
pub fn built() -> bool {
    index().is_some()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("assets/index-3f9a2c1b.js", "text/javascript; charset=utf-8"),
            ("assets/worker-1.MJS", "text/javascript; charset=utf-8"),
            ("assets/index-3f9a2c1b.css", "text/css; charset=utf-8"),
            ("assets/index-3f9a2c1b.js.map", "application/json"),
            ("openapi.json", "application/json"),
            ("favicon.svg", "image/svg+xml"),
            ("logo.png", "image/png"),
            ("favicon.ico", "image/x-icon"),
            ("assets/inter-1a2b.woff2", "font/woff2"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("site.webmanifest", "application/manifest+json"),
            ("LICENSE", "application/octet-stream"),
            ("archive.tar.zst", "application/octet-stream"),
            ("dir.with.dot/file", "application/octet-stream"),
        ];
        for (path, expected) in cases {
            assert_eq!(kinds::content_type(path), expected, "{path}");
        }
        assert!(kinds::compressible(kinds::content_type("a.js")));
        assert!(kinds::compressible(kinds::content_type("a.svg")));
        assert!(!kinds::compressible(kinds::content_type("a.png")));
        assert!(!kinds::compressible(kinds::content_type("a.woff2")));
        assert!(kinds::immutable("assets/index-3f9a2c1b.js"));
        assert!(!kinds::immutable("index.html"));
        assert!(!kinds::immutable("favicon.svg"));
    }

    #[test]
    fn entity_tags_change_with_the_content() {
        assert_eq!(kinds::etag(b"console"), kinds::etag(b"console"));
        assert_ne!(kinds::etag(b"console"), kinds::etag(b"consolf"));
        assert_ne!(kinds::etag(b""), kinds::etag(b"\0"));
        // It goes between quotes in a header: no quote or space in it.
        assert!(kinds::etag(b"x").chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }

    static TABLE: &[Asset] = &[
        Asset { path: "assets/a-1.js", content_type: "", body: b"a", gzip: None, etag: "1", immutable: true },
        Asset { path: "assets/b-2.css", content_type: "", body: b"b", gzip: None, etag: "2", immutable: true },
        Asset { path: "favicon.svg", content_type: "", body: b"f", gzip: None, etag: "3", immutable: false },
        Asset { path: "index.html", content_type: "", body: b"i", gzip: None, etag: "4", immutable: false },
    ];

    #[test]
    fn lookup_finds_every_file_and_nothing_else() {
        for asset in TABLE {
            assert_eq!(find(TABLE, asset.path).map(|a| a.body), Some(asset.body), "{}", asset.path);
        }
        for missing in ["", "/index.html", "assets", "assets/", "assets/a-1.jsx", "index.htm", "zzz"] {
            assert!(find(TABLE, missing).is_none(), "{missing}");
        }
        assert!(find(&[], "index.html").is_none());
    }

    #[test]
    fn the_built_table_is_sorted_and_consistent() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path), "sorted, no duplicates");
        for asset in ASSETS {
            assert_eq!(asset.etag, kinds::etag(asset.body), "{}", asset.path);
            assert_eq!(asset.content_type, kinds::content_type(asset.path), "{}", asset.path);
            if let Some(packed) = asset.gzip {
                assert_eq!(gunzip(packed), asset.body, "{}", asset.path);
            }
        }
        assert_eq!(built(), get("index.html").is_some());
    }

    #[test]
    fn gzip_copies_round_trip_and_only_when_smaller() {
        let text = "<!doctype html><title>ckp</title>".repeat(50);
        let packed = pack::gzip(text.as_bytes()).expect("repetitive text shrinks");
        assert!(packed.len() < text.len());
        assert_eq!(gunzip(&packed), text.as_bytes());
        assert!(pack::gzip(b"x").is_none(), "a gzip header alone outweighs one byte");
    }

    fn gunzip(packed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(packed).read_to_end(&mut out).expect("valid gzip");
        out
    }
}
