//! ckp's real effects, implementing the engine's effect traits: agents reached over LangOrch's protocol
//! (`POST {base_url}/execute`, semantics B §6.1) chosen from the store's registry, and the built-in HTTP executor
//! (`http_request`, A.2.15), and workflow capabilities (`workflow.rs`: async dispatch with a signed callback URL). Issue 7 adds the OpenAI-compatible LLM, MCP clients, secrets providers, health checks,
//! circuit breakers and leases here.

pub mod agents;
pub mod http;
pub mod llm;
pub mod secrets;
pub mod workflow;
