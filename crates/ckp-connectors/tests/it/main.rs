//! ckp-connectors against real peers on 127.0.0.1: the MCP reference server
//! (`@modelcontextprotocol/server-everything`, installed by `scripts/test` into `tests/mcp/node_modules`) over
//! stdio and streamable HTTP, and LangOrch's legacy MCP fallback against a small HTTP server.
#![cfg_attr(feature = "mcp", expect(clippy::panic, reason = "test helpers fail by panicking"))]

mod legacy;
#[cfg(feature = "mcp")]
mod mcp;
