//! Fuzz template parsing and rendering against a fixed scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(t) = ckp_core::template::Template::parse(text) else { return };
    let vars = json!({"a": 1, "s": "x{{a}}", "l": [1, {"b": null}], "o": {"k": [true]}});
    let scope = vars.as_object().cloned().unwrap_or_default();
    let _ = t.render(&scope);
    let rendered = t.render_text(&scope);
    if t.is_literal() {
        assert_eq!(rendered, text);
    }
});
