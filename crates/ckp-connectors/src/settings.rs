//! The machinery of ckp's one settings table: [`settings_group!`](crate::settings_group) declares each setting once
//! (field, type, default, help text, `CKP_*` variables, flag, validation) and derives from that declaration the
//! struct, its `Default`, and a [`Group`] that a loader walks to layer the TOML file, the environment and flags, and
//! that `ckp config` and `docs/settings.md` print. [`Secret`] holds a credential so that no `Debug`, `Display` or
//! printed setting ever shows it.
//!
//! This module parses and shows values; it never reads the environment or a file itself (the loader in
//! `ckp-server` passes what it read once at start).

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use serde_json::Value as Json;
use serde_json::Value;

/// A value that is never printed: `Debug` and `Display` show `***`, and a printed setting shows `"***"`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value, for the one place that must send it (a header, a signature, a key derivation).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The text of an optional credential, for the one place that must send it.
pub fn exposed(secret: &Option<Secret<String>>) -> Option<&str> {
    secret.as_ref().map(|s| s.0.as_str())
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Turns one occurrence of an entry-adding flag into the JSON its setting reads.
pub type FlagEntry = fn(&str) -> Result<Value, String>;

/// One setting as declared in the table (its path inside nested tables is given by the group that holds it).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The key in its TOML table (the struct field).
    pub key: &'static str,
    /// The doc comment of the field, one line per `///` line.
    pub help: &'static str,
    /// Environment variables, the first that is set wins (a `CKP_` name first, then names other tools use).
    pub env: &'static [&'static str],
    /// The long flag without `--` (only top-level settings have one).
    pub flag: Option<&'static str>,
    /// The flag's value name in `--help`.
    pub value_name: &'static str,
    /// `ckp run` takes the flag too (`ckp serve`, `ckp worker` and `ckp config` take every flag).
    pub run: bool,
    /// `ckp migrate` takes the flag too (the database's settings).
    pub migrate: bool,
    /// `ckp validate` takes the flag too (the limits on CKP documents).
    pub validate: bool,
    /// A flag whose occurrences add entries (`--mcp NAME=URL`): turns one into the JSON the value reads.
    pub flag_entry: Option<FlagEntry>,
    /// What a valid value looks like, for messages and the docs.
    pub expected: &'static str,
    /// The value is a credential: shown as `***`, never echoed in an error.
    pub secret: bool,
    /// An error may quote the value as given (not for credentials, nor for tables that may hold tokens).
    pub echo: bool,
}

impl Spec {
    /// The defaults of the optional parts of a declaration.
    pub const EMPTY: Spec = Spec {
        key: "",
        help: "",
        env: &[],
        flag: None,
        value_name: "VALUE",
        run: false,
        migrate: false,
        validate: false,
        flag_entry: None,
        expected: "",
        secret: false,
        echo: true,
    };

    /// A setting of type `T` with the defaults of the optional parts of a declaration.
    pub const fn of<T: SettingValue>(key: &'static str, help: &'static str) -> Spec {
        Spec { key, help, expected: T::EXPECTED, secret: T::SECRET, echo: T::ECHO && !T::SECRET, ..Spec::EMPTY }
    }

    /// The first line of the help text.
    pub fn summary(&self) -> &'static str {
        self.help.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
    }

    /// The help text as one paragraph.
    pub fn text(&self) -> String {
        self.help.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// A value as it arrives: text (environment, flags) or a TOML value converted to JSON (the file).
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// From the environment or a flag.
    Text(&'a str),
    /// From the file.
    Json(Value),
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// No setting has this key.
    Unknown(String),
    /// The value does not fit the setting; the message says what was expected.
    Invalid {
        /// The full dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl SetError {
    /// The same error for a key one table deeper.
    pub fn under(self, prefix: &str) -> SetError {
        match self {
            SetError::Unknown(k) => SetError::Unknown(format!("{prefix}.{k}")),
            SetError::Invalid { key, message } => SetError::Invalid { key: format!("{prefix}.{key}"), message },
        }
    }
}

/// A table of settings: walked to list, print and set them.
pub trait Group {
    /// Calls `f` with every setting (its full dotted key, its declaration, its value as printed) in declaration
    /// order, nested tables after the settings of this one.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &'static Spec, Value));

    /// Sets (or, for maps, adds to) the setting at the dotted `path`, checked.
    fn set(&mut self, path: &str, input: Input<'_>) -> Result<(), SetError>;
}

/// How a setting's type reads text and TOML values, layers over an earlier value, and prints.
pub trait SettingValue: Sized {
    /// What a valid value looks like.
    const EXPECTED: &'static str;
    /// Whether the value is a credential.
    const SECRET: bool = false;
    /// Whether an error may quote the value as given.
    const ECHO: bool = true;

    /// From the environment or a flag.
    fn from_text(text: &str) -> Result<Self, String>;

    /// From the file.
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Self::from_text(&s),
            other => Self::from_text(&other.to_string()),
        }
    }

    /// Replaces `self` (maps add their entries instead).
    fn layer(&mut self, over: Self) {
        *self = over;
    }

    /// As printed by `ckp config`.
    fn show(&self) -> Value;
}

impl SettingValue for String {
    const EXPECTED: &'static str = "text";
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Ok(s),
            _ => Err("expected text".into()),
        }
    }
    fn show(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl SettingValue for PathBuf {
    const EXPECTED: &'static str = "a path";
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Err("expected a path".into()),
            t => Ok(PathBuf::from(t)),
        }
    }
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Self::from_text(&s),
            _ => Err("expected a path".into()),
        }
    }
    fn show(&self) -> Value {
        Value::from(self.display().to_string())
    }
}

macro_rules! integer {
    ($($t:ty => $expected:literal),*) => {$(
        impl SettingValue for $t {
            const EXPECTED: &'static str = $expected;
            fn from_text(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| concat!("expected ", $expected).to_owned())
            }
            fn show(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}
integer!(usize => "a non-negative integer", u64 => "a non-negative integer", u8 => "a small non-negative integer",
    i64 => "an integer");

impl SettingValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err("expected a number".into()),
        }
    }
    fn show(&self) -> Value {
        Value::from(*self)
    }
}

impl SettingValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn show(&self) -> Value {
        Value::from(*self)
    }
}

impl SettingValue for Vec<String> {
    const EXPECTED: &'static str = "a list (comma-separated in the environment)";
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
    fn from_json(value: Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|_| "expected a list of text".to_owned())
    }
    fn show(&self) -> Value {
        Value::from(self.clone())
    }
}

impl SettingValue for Secret<String> {
    const EXPECTED: &'static str = "text (a credential)";
    const SECRET: bool = true;
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(Secret(text.to_owned()))
    }
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Ok(Secret(s)),
            _ => Err("expected text".into()),
        }
    }
    fn show(&self) -> Value {
        Value::from("***")
    }
}

/// Unset when absent; an empty text unsets it (`CKP_DATABASE_URL=` means SQLite again).
impl<T: SettingValue> SettingValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    const SECRET: bool = T::SECRET;
    const ECHO: bool = T::ECHO;
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Ok(None),
            _ => T::from_text(text).map(Some),
        }
    }
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            v => T::from_json(v).map(Some),
        }
    }
    fn show(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::show)
    }
}

fn map_from_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<BTreeMap<String, T>, String> {
    match text.trim() {
        "" => Ok(BTreeMap::new()),
        t => serde_json::from_str(t).map_err(|e| format!("expected a JSON object by name: {e}")),
    }
}

fn map_from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<BTreeMap<String, T>, String> {
    serde_json::from_value(value).map_err(|e| format!("expected a table by name: {e}"))
}

/// LLM prices by model: a later source adds models and replaces those of the same name.
impl SettingValue for BTreeMap<String, ckp_engine::pricing::ModelPrice> {
    const EXPECTED: &'static str = "prices by model (a JSON object in the environment)";
    fn from_text(text: &str) -> Result<Self, String> {
        map_from_text(text)
    }
    fn from_json(value: Value) -> Result<Self, String> {
        map_from_json(value)
    }
    fn layer(&mut self, over: Self) {
        self.extend(over);
    }
    fn show(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// MCP servers by name: a later source adds servers and replaces those of the same name. Printed with the values
/// of their `env` and `headers` masked (they hold tokens).
impl SettingValue for BTreeMap<String, ckp_core::mcp::McpServer> {
    const EXPECTED: &'static str = "servers by name (a JSON object in the environment)";
    const ECHO: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        map_from_text(text)
    }
    fn from_json(value: Value) -> Result<Self, String> {
        map_from_json(value)
    }
    fn layer(&mut self, over: Self) {
        self.extend(over);
    }
    fn show(&self) -> Value {
        self.iter()
            .map(|(name, server)| (name.clone(), mcp_server_json(server, true)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// An MCP server as the JSON its table reads (`command`/`args`/`env`/`cwd` or `url`/`headers`, `timeout_ms`);
/// `masked` hides the values of `env` and `headers` (they hold tokens).
pub fn mcp_server_json(server: &ckp_core::mcp::McpServer, masked: bool) -> Value {
    use ckp_core::mcp::McpTransport;
    let values = |m: &BTreeMap<String, String>| -> Value {
        m.iter()
            .map(|(k, v)| (k.clone(), Value::from(if masked { "***" } else { v.as_str() })))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut json = match &server.transport {
        McpTransport::Stdio { command, args, env, cwd } => {
            let mut json = serde_json::json!({"command": command, "args": args, "env": values(env)});
            if let Some(cwd) = cwd {
                json["cwd"] = Value::from(cwd.as_str());
            }
            json
        }
        McpTransport::Http { url, headers } => serde_json::json!({"url": url, "headers": values(headers)}),
    };
    if let Some(ms) = server.timeout_ms {
        json["timeout_ms"] = Value::from(ms);
    }
    json
}

/// Declares a struct of settings, each field once with its default, help text (the doc comment), `CKP_*`
/// variables, flag and validation, and implements `Default` and [`Group`] for it from that declaration.
///
/// ```text
/// settings_group! {
///     /// Doc of the struct.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct Name {
///         /// Help text (becomes the docs, `--help` and `ckp config`).
///         field: Type = default_expr, { env: &["CKP_FIELD"], flag: Some("field"), value_name: "N" }
///             check validate_fn;
///     }
///     groups { /// Doc. nested: NestedGroup; }
///     internal { /// Doc. field: Type = default_expr; }
/// }
/// ```
///
/// `check` takes a `fn(&Type) -> Result<(), String>`; `groups` are nested tables (`[name]` in TOML, keys
/// `name.field`); `internal` fields are not settings (set by the program, never read from a source).
#[macro_export]
macro_rules! settings_group {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $default:expr, { $($attr:ident : $val:expr),* $(,)? } $(check $check:expr)?;
            )*
        }
        $(groups { $( $(#[doc = $gdoc:literal])+ $gfield:ident : $gty:ty; )* })?
        $(internal { $( $(#[doc = $idoc:literal])+ $ifield:ident : $ity:ty = $idefault:expr; )* })?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
            $($( $(#[doc = $gdoc])+ pub $gfield: $gty, )*)?
            $($( $(#[doc = $idoc])+ pub $ifield: $ity, )*)?
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $default, )*
                    $($( $gfield: <$gty>::default(), )*)?
                    $($( $ifield: $idefault, )*)?
                }
            }
        }

        impl $name {
            /// The declarations of this table's own settings (nested tables excluded), in order.
            pub const SPECS: &'static [$crate::settings::Spec] = &[$(
                $crate::settings::Spec {
                    $($attr: $val,)*
                    ..$crate::settings::Spec::of::<$ty>(stringify!($field), concat!($($doc, "\n"),+))
                },
            )*];
        }

        impl $crate::settings::Group for $name {
            fn visit(
                &self,
                prefix: &str,
                f: &mut dyn FnMut(&str, &'static $crate::settings::Spec, $crate::settings::Json),
            ) {
                let mut specs = Self::SPECS.iter();
                $(
                    if let Some(spec) = specs.next() {
                        let key = if prefix.is_empty() {
                            stringify!($field).to_owned()
                        } else {
                            format!("{prefix}.{}", stringify!($field))
                        };
                        f(&key, spec, $crate::settings::SettingValue::show(&self.$field));
                    }
                )*
                $($(
                    let nested = if prefix.is_empty() {
                        stringify!($gfield).to_owned()
                    } else {
                        format!("{prefix}.{}", stringify!($gfield))
                    };
                    $crate::settings::Group::visit(&self.$gfield, &nested, f);
                )*)?
            }

            fn set(
                &mut self,
                path: &str,
                input: $crate::settings::Input<'_>,
            ) -> Result<(), $crate::settings::SetError> {
                let invalid = |message: String| $crate::settings::SetError::Invalid { key: path.to_owned(), message };
                match path {
                    $(
                        stringify!($field) => {
                            let value: $ty = match input {
                                $crate::settings::Input::Text(t) => {
                                    <$ty as $crate::settings::SettingValue>::from_text(t)
                                }
                                $crate::settings::Input::Json(j) => {
                                    <$ty as $crate::settings::SettingValue>::from_json(j)
                                }
                            }
                            .map_err(invalid)?;
                            $( ($check)(&value).map_err(invalid)?; )?
                            $crate::settings::SettingValue::layer(&mut self.$field, value);
                            Ok(())
                        }
                    )*
                    $($(
                        stringify!($gfield) => match input {
                            $crate::settings::Input::Json($crate::settings::Json::Object(entries)) => {
                                for (k, v) in entries {
                                    $crate::settings::Group::set(
                                        &mut self.$gfield, &k, $crate::settings::Input::Json(v),
                                    )
                                    .map_err(|e| e.under(stringify!($gfield)))?;
                                }
                                Ok(())
                            }
                            _ => Err(invalid("expected a table".into())),
                        },
                    )*)?
                    _ => {
                        $($(
                            if let Some(rest) = path.strip_prefix(concat!(stringify!($gfield), ".")) {
                                return $crate::settings::Group::set(&mut self.$gfield, rest, input)
                                    .map_err(|e| e.under(stringify!($gfield)));
                            }
                        )*)?
                        Err($crate::settings::SetError::Unknown(path.to_owned()))
                    }
                }
            }
        }
    };
}
