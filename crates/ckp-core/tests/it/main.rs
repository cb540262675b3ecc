//! Integration tests of the CKP compiler, one binary (STYLE.md).

mod fixtures;
mod rules;
mod support;
