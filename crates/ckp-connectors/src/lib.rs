//! ckp's real effects, implementing the engine's effect traits: agents reached over LangOrch's protocol
//! (`POST {base_url}/execute`, langorch.md B §6.1) chosen from the server's registry, the built-in HTTP executor
//! (`http_request`, A.2.15), workflow capabilities (`workflow.rs`: async dispatch with a signed callback URL), an
//! OpenAI-compatible LLM, MCP servers (`mcp/`; the `rmcp` client behind the cargo feature `mcp`) and secrets
//! providers (`secrets/`). What they need from the server's database they reach through ports this crate owns
//! (`ports.rs`: the agent registry and its leases, sealed secrets), never through a store.

pub mod agents;
pub mod egress;
pub mod http;
pub mod llm;
pub mod masked;
pub mod mcp;
pub mod ports;
pub mod secrets;
pub mod settings;
pub mod sigv4;
pub mod workflow;
