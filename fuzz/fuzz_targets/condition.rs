//! Fuzz condition parsing and evaluation against a fixed scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = ckp_core::condition::Condition::parse(text) else { return };
    let vars = json!({"a": 5, "s": "10", "e": "", "l": [1, 2], "o": {"k": "v"}, "f": false, "n": null});
    let scope = vars.as_object().cloned().unwrap_or_default();
    let _ = c.eval(&scope);
});
