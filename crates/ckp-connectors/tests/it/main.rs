//! Integration tests of ckp's connectors against real peer processes on 127.0.0.1.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

mod peers;
mod secrets;
