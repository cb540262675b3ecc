//! MCP server declarations: the one shape shared by a procedure's `global_config.mcp_servers.NAME` and `ckp serve`'s
//! `[mcp_servers.NAME]` table. A server is a command ckp starts and talks to over stdio, or the URL of a streamable
//! HTTP endpoint. This module only reads and checks declarations; connecting is `ckp-connectors`' job.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::parse::kind_of as kind;

/// Fields a declaration may have, for error messages.
const FIELDS: &str = "command, args, env, cwd, url, headers, timeout_ms";

/// One MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "Value")]
pub struct McpServer {
    /// How to reach it.
    pub transport: McpTransport,
    /// Limit of one tool call in milliseconds (the connector's default when absent).
    pub timeout_ms: Option<u64>,
}

/// How an MCP server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum McpTransport {
    /// A child process speaking MCP on its stdin/stdout.
    Stdio {
        /// Program to start (looked up in `PATH` when it has no `/`).
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Environment variables added to ckp's own.
        env: BTreeMap<String, String>,
        /// Working directory (ckp's when absent).
        cwd: Option<String>,
    },
    /// A streamable HTTP endpoint.
    Http {
        /// `http://` or `https://` URL of the endpoint (often ending in `/mcp`).
        url: String,
        /// Headers sent with every request (`Authorization`, ...).
        headers: BTreeMap<String, String>,
    },
}

impl McpServer {
    /// Reads a declaration; the error says what is wrong in words a user can act on.
    pub fn from_value(value: &Value) -> Result<McpServer, String> {
        let Value::Object(o) = value else {
            return Err(format!(
                "an MCP server is an object with `command` (a program ckp starts and talks to over stdio) or `url` (a streamable HTTP endpoint), not {}",
                kind(value)
            ));
        };
        if let Some(k) = o.keys().find(|k| !FIELDS.split(", ").any(|f| f == k.as_str())) {
            return Err(format!("unknown field `{k}` (an MCP server has {FIELDS})"));
        }
        let timeout_ms = match o.get("timeout_ms") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(ms) if ms > 0 => Some(ms),
                _ => return Err(format!("`timeout_ms` must be a whole number of milliseconds above 0, not {v}")),
            },
        };
        let transport = match (string(o, "command")?, string(o, "url")?) {
            (Some(command), None) => {
                if let Some(k) = ["headers"].iter().find(|k| o.contains_key(**k)) {
                    return Err(format!("`{k}` is for `url` servers; a `command` server takes args, env and cwd"));
                }
                if command.trim().is_empty() {
                    return Err("`command` is empty: name the program to start".into());
                }
                let args = match o.get("args") {
                    None => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("`args` must be a list of strings")?,
                    Some(v) => return Err(format!("`args` must be a list of strings, not {}", kind(v))),
                };
                McpTransport::Stdio { command, args, env: table(o, "env")?, cwd: string(o, "cwd")? }
            }
            (None, Some(url)) => {
                if let Some(k) = ["args", "env", "cwd"].iter().find(|k| o.contains_key(**k)) {
                    return Err(format!("`{k}` is for `command` servers; a `url` server takes headers"));
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("`url` must start with http:// or https://, not {url:?}"));
                }
                McpTransport::Http { url, headers: table(o, "headers")? }
            }
            (Some(_), Some(_)) => {
                return Err("give either `command` (stdio) or `url` (streamable HTTP), not both".into());
            }
            (None, None) => {
                return Err(
                    "missing `command` (a program ckp starts and talks to over stdio) or `url` (a streamable HTTP endpoint)"
                        .into(),
                );
            }
        };
        Ok(McpServer { transport, timeout_ms })
    }

    /// Checks a server name: it becomes the `<server>` of `mcp:<server>/<tool>`.
    pub fn check_name(name: &str) -> Result<(), String> {
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            Err(format!(
                "MCP server name {name:?} must be non-empty, without `/` or spaces (it is written mcp:<server>/<tool>)"
            ))
        } else {
            Ok(())
        }
    }

    /// Reads the command-line form `NAME=URL` (streamable HTTP) or `NAME=COMMAND ARG...` (stdio; the command line
    /// is split on spaces, and '…' or "…" keep spaces inside one argument). Env, cwd and headers need the file form.
    pub fn from_flag(flag: &str) -> Result<(String, McpServer), String> {
        let (name, rest) =
            flag.split_once('=').ok_or_else(|| format!("{flag:?}: expected NAME=URL or NAME=COMMAND ARGS..."))?;
        let name = name.trim();
        McpServer::check_name(name)?;
        let rest = rest.trim();
        let transport = if rest.starts_with("http://") || rest.starts_with("https://") {
            McpTransport::Http { url: rest.to_owned(), headers: BTreeMap::new() }
        } else {
            let mut words = split_words(rest).map_err(|e| format!("{flag:?}: {e}"))?.into_iter();
            let command = words.next().ok_or_else(|| format!("{flag:?}: no command after `{name}=`"))?;
            McpTransport::Stdio { command, args: words.collect(), env: BTreeMap::new(), cwd: None }
        };
        Ok((name.to_owned(), McpServer { transport, timeout_ms: None }))
    }

    /// `stdio` or `http`.
    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            McpTransport::Stdio { .. } => "stdio",
            McpTransport::Http { .. } => "http",
        }
    }
}

impl TryFrom<Value> for McpServer {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        McpServer::from_value(&value)
    }
}

/// Splits a command line on whitespace; single or double quotes group words (no escapes).
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.get_or_insert_with(String::new).push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            None if c.is_whitespace() => words.extend(word.take()),
            None => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    words.extend(word);
    Ok(words)
}

fn string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("`{key}` must be a string, not {}", kind(v))),
    }
}

fn table(o: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    match o.get(key) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("`{key}.{k}` must be a string, not {}", kind(other))),
            })
            .collect(),
        Some(v) => Err(format!("`{key}` must be an object of names to strings, not {}", kind(v))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_both_transports() {
        let s = McpServer::from_value(&json!({"command": "node", "args": ["x.js"], "env": {"A": "1"}, "cwd": "/tmp"}))
            .expect("stdio");
        assert_eq!(s.transport_name(), "stdio");
        assert_eq!(
            s.transport,
            McpTransport::Stdio {
                command: "node".into(),
                args: vec!["x.js".into()],
                env: BTreeMap::from([("A".into(), "1".into())]),
                cwd: Some("/tmp".into())
            }
        );
        let h = McpServer::from_value(&json!({"url": "http://h/mcp", "headers": {"X": "y"}, "timeout_ms": 5}))
            .expect("http");
        assert_eq!(h.timeout_ms, Some(5));
        assert_eq!(h.transport_name(), "http");
    }

    #[test]
    fn flags_name_a_url_or_a_command_line() {
        let (name, s) = McpServer::from_flag("web=http://127.0.0.1:3001/mcp").expect("url");
        assert_eq!((name.as_str(), s.transport_name()), ("web", "http"));
        let (_, s) = McpServer::from_flag(r#"fs = npx -y "@scope/server fs" '/tmp/my dir' """#).expect("command");
        assert_eq!(
            s.transport,
            McpTransport::Stdio {
                command: "npx".into(),
                args: vec!["-y".into(), "@scope/server fs".into(), "/tmp/my dir".into(), String::new()],
                env: BTreeMap::new(),
                cwd: None
            }
        );
        assert!(McpServer::from_flag("noequals").is_err());
        assert!(McpServer::from_flag("x=").is_err());
        assert!(McpServer::from_flag("x=node 'a b").is_err());
        assert!(McpServer::from_flag("a/b=node").is_err());
    }

    #[test]
    fn bad_declarations_say_what_is_wrong() {
        for (v, msg) in [
            (json!("node"), "not a string"),
            (json!({}), "missing `command`"),
            (json!({"command": "a", "url": "http://x"}), "not both"),
            (json!({"command": "a", "headers": {}}), "`headers` is for `url` servers"),
            (json!({"url": "http://x", "args": []}), "`args` is for `command` servers"),
            (json!({"url": "ftp://x"}), "must start with http://"),
            (json!({"command": "a", "args": [1]}), "list of strings"),
            (json!({"command": "a", "env": {"A": 1}}), "`env.A` must be a string"),
            (json!({"command": "a", "timeout_ms": 0}), "above 0"),
            (json!({"command": "a", "bogus": 1}), "unknown field `bogus`"),
            (json!({"command": " "}), "`command` is empty"),
        ] {
            let e = McpServer::from_value(&v).expect_err("rejected");
            assert!(e.contains(msg), "{v}: {e}");
        }
        assert!(McpServer::check_name("a/b").is_err());
        assert!(McpServer::check_name("").is_err());
        assert!(McpServer::check_name("everything").is_ok());
    }
}
