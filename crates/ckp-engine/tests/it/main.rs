//! Integration tests of the engine: node types, events, durability (crash at every commit point), approvals,
//! and ckp's fixes of LangOrch's defects (langorch.md B §8).
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

mod crash;
mod defects;
mod examples;
mod features;
mod nodes;
mod subflows;
mod support;
