//! Fuzz the whole compiler: arbitrary text, and arbitrary text spliced into a valid document's string values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let c = ckp_core::compile(text);
    for d in &c.diagnostics {
        assert!(!d.message.is_empty());
    }
    if let Some(p) = &c.procedure {
        let _ = ckp_core::explain::explain(p, &c.uses);
        let _ = ckp_core::graph::render(p, ckp_core::graph::GraphFormat::Dot);
    }
});
