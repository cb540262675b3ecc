//! Integration tests of the CKP compiler, one binary (STYLE.md).
#![expect(clippy::panic, reason = "test helpers fail by panicking with the diagnostics they saw")]

mod fixtures;
mod large;
mod props;
mod rules;
mod support;
