//! ckp-connectors against real peer processes on 127.0.0.1: secrets providers (a Vault-like and an Azure-like
//! server in python3, moto's AWS server), the MCP reference server (`@modelcontextprotocol/server-everything`,
//! installed by `scripts/test` into `tests/mcp/node_modules`) over stdio and streamable HTTP, and LangOrch's legacy
//! MCP fallback against a small HTTP server.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

mod legacy;
#[cfg(feature = "mcp")]
mod mcp;
mod peers;
mod ports;
mod secrets;
