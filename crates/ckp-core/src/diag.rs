//! Diagnostics: what the compiler says about a CKP document.
//!
//! Every diagnostic has a severity, a stable code (documented in `docs/diagnostics.md`; never renamed once
//! released), a message that says how to fix the problem, the JSON pointer of the offending value and its
//! line:column in the source text. This module only describes diagnostics; locating and rendering live beside it
//! (`source.rs`, and the CLI for rustc-like output).

use serde::Serialize;

/// How bad a diagnostic is. Errors make a document unusable; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document cannot be compiled into a procedure.
    Error,
    /// The document compiles, but something is probably not what the author meant.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal, $sev:ident; )*) => {
        /// The stable code of a diagnostic.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $(#[doc = $doc])* $variant, )* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written in output, e.g. `edge-target-missing`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// The severity this code always has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
        }
    };
}

codes! {
    /// The text is not valid JSON.
    JsonSyntax = "json-syntax", Error;
    /// The document is larger than the compiler accepts.
    TooLarge = "too-large", Error;
    /// The root of the document is not a JSON object.
    NotAnObject = "not-an-object", Error;
    /// The document is written in another workflow dialect (root `id`, `nodes` as a list, ...).
    ForeignDialect = "foreign-dialect", Error;
    /// A required field is absent or empty.
    MissingField = "missing-field", Error;
    /// A field holds a value of the wrong JSON type.
    WrongType = "wrong-type", Error;
    /// A field holds a value outside its allowed set.
    InvalidEnum = "invalid-enum", Error;
    /// A number that must be non-negative (or in a range, or whole) is not.
    InvalidNumber = "invalid-number", Error;
    /// A node's `type` is not one of the 11 CKP node types.
    UnknownNodeType = "unknown-node-type", Error;
    /// `workflow_graph.start_node` names no node.
    StartNodeMissing = "start-node-missing", Error;
    /// An edge (next_node, rule target, branch start, handler fallback, ...) names no node.
    EdgeTargetMissing = "edge-target-missing", Error;
    /// `trigger.schedule` is not a valid cron expression.
    InvalidCron = "invalid-cron", Error;
    /// A regular expression does not compile.
    InvalidRegex = "invalid-regex", Error;
    /// A JSON Schema does not compile.
    InvalidJsonSchema = "invalid-json-schema", Error;
    /// A condition has a syntax error.
    ConditionSyntax = "condition-syntax", Error;
    /// A template exceeds a limit (size, placeholder count, nesting).
    TemplateLimit = "template-limit", Error;
    /// A subflow calls the procedure it belongs to.
    SubflowRecursion = "subflow-recursion", Error;
    /// A step's action has no executor: not internal, no agent channel, no MCP tool.
    NoExecutor = "no-executor", Error;
    /// A configuration that cannot work (orchestration with no branches, select_option without options, ...).
    InvalidConfig = "invalid-config", Error;
    /// A node cannot be reached from `start_node` by any edge.
    Unreachable = "unreachable-node", Warning;
    /// Two steps of one node share a `step_id`.
    DuplicateStepId = "duplicate-step-id", Warning;
    /// A variable is read but nothing defines it.
    UndefinedVariable = "undefined-variable", Warning;
    /// A JSON object has the same key twice; the last one wins.
    DuplicateKey = "duplicate-key", Warning;
    /// Text that looks like a `{{placeholder}}` but is not one; it stays literal.
    MalformedPlaceholder = "malformed-placeholder", Warning;
    /// An LLM output mapping ckp does not recognise; the whole response text is stored.
    UnknownOutputMapping = "unknown-output-mapping", Warning;
    /// An error handler's `error_type` matches no error ckp raises.
    UnknownErrorType = "unknown-error-type", Warning;
    /// A routing field that is absent, so that path ends the run.
    MissingRoute = "missing-route", Warning;
    /// A field that ckp accepts but ignores.
    IgnoredField = "ignored-field", Warning;
    /// A credential (token, client secret, secret key) written into the procedure instead of the server's settings.
    InlineCredential = "inline-credential", Warning;
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One finding of the compiler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning (always `code.severity()`).
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// What is wrong and how to fix it.
    pub message: String,
    /// RFC 6901 JSON pointer to the offending value (`""` is the whole document).
    pub pointer: String,
    /// 1-based line of the offending value in the source (of its nearest existing ancestor when it is absent).
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Diagnostic {
    /// A diagnostic not yet located in the source (line and column 0 until [`crate::source::SourceMap`] fills them).
    pub fn new(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            pointer: pointer.into(),
            line: 0,
            column: 0,
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Escapes one JSON pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains(['~', '/']) {
        std::borrow::Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        std::borrow::Cow::Borrowed(token)
    }
}

/// Builds `parent/token` with the token escaped.
pub fn child(parent: &str, token: impl std::fmt::Display) -> String {
    let token = token.to_string();
    format!("{parent}/{}", escape_token(&token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{code}");
        }
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(child("/a", "b/c~d"), "/a/b~1c~0d");
        assert_eq!(child("", 3), "/3");
    }
}
