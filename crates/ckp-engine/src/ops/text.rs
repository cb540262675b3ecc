//! Text actions: `extract_regex` and `hash`.
//!
//! Both read their input as text (strings as themselves, any other value as compact JSON) and return a new value;
//! neither changes variables. Patterns compiled here get the same size limit as the compiler's.

use base64::Engine as _;
use ckp_core::path::to_text;
use ckp_core::procedure::CompiledRegex;
use md5::Md5;
use regex::{Captures, Regex};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::{OpError, Params, describe, to_hex};

/// Size limit of a pattern compiled at run time (the compiler uses the same).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

enum Group {
    /// The first capture group when the pattern has one, else the whole match.
    Default,
    Index(usize),
    Name(String),
}

/// `extract_regex {source | value, pattern, group?, all = false}`: searches the text with the pattern (the one the
/// compiler precompiled, else `pattern` compiled now; a bad pattern is an error).
///
/// Each match gives its first capture group, or the whole match when the pattern has no group; `group` (a number,
/// 0 for the whole match, or a name) picks another. A group that did not take part in the match gives null, and a
/// group the pattern does not have is an error. Without `all`, the result is the first match's value, or no value
/// (`None`) when nothing matches; with `all`, the list of every match's value (empty when nothing matches).
pub(super) fn extract_regex(p: &Params<'_>, pattern: Option<&CompiledRegex>) -> Result<Option<Value>, OpError> {
    let text = to_text(p.input()?);
    let compiled;
    let re: &Regex = match pattern {
        Some(c) => &c.search,
        None => {
            let pat = p
                .text(&["pattern", "regex"])?
                .ok_or_else(|| p.err("missing `pattern`: the regular expression to search for"))?;
            compiled = regex::RegexBuilder::new(&pat).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| {
                let msg = e.to_string();
                let last = msg.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_owned();
                p.err(format!("pattern `{pat}` does not compile: {last}"))
            })?;
            &compiled
        }
    };
    let groups = re.captures_len() - 1;
    let group = match p.get(&["group"]) {
        None | Some(Value::Null) => Group::Default,
        Some(Value::Number(n)) => match n.as_u64().and_then(|i| usize::try_from(i).ok()) {
            Some(i) => Group::Index(i),
            None => return Err(p.err(format!("`group` must be a group number (0 to {groups}) or a name, not {n}"))),
        },
        Some(Value::String(s)) => match s.trim().parse::<usize>() {
            Ok(i) => Group::Index(i),
            Err(_) => Group::Name(s.trim().to_owned()),
        },
        Some(other) => return Err(p.err(format!("`group` must be a number or a name, not {}", describe(other)))),
    };
    match &group {
        Group::Index(i) if *i > groups => {
            return Err(p.err(format!("the pattern has {groups} capture group(s), so group {i} does not exist")));
        }
        Group::Name(n) if !re.capture_names().flatten().any(|c| c == n) => {
            return Err(p.err(format!("the pattern has no group named `{n}`")));
        }
        _ => {}
    }
    let pick = |caps: Captures<'_>| -> Value {
        let m = match &group {
            Group::Default => caps.get(if groups > 0 { 1 } else { 0 }),
            Group::Index(i) => caps.get(*i),
            Group::Name(n) => caps.name(n),
        };
        m.map_or(Value::Null, |m| Value::String(m.as_str().to_owned()))
    };
    if p.flag(&["all", "find_all", "global"], false)? {
        Ok(Some(Value::Array(re.captures_iter(&text).map(pick).collect())))
    } else {
        Ok(re.captures(&text).map(pick))
    }
}

/// `hash {source | value, algorithm = sha256, encoding = hex}`: the digest of the text (non-strings hashed as their
/// compact JSON). Algorithms: `sha256`, `sha512`, `sha1`, `md5` (dashes and case ignored: `SHA-256` works); the last
/// two only for compatibility with systems that need them. Encodings: `hex` (lower case), `base64`, `base64url`
/// (unpadded).
pub(super) fn hash(p: &Params<'_>) -> Result<Value, OpError> {
    let text = to_text(p.input()?);
    let bytes = text.as_bytes();
    let algorithm = p.text(&["algorithm", "algo"])?.unwrap_or_default().to_ascii_lowercase().replace(['-', '_'], "");
    let digest: Vec<u8> = match algorithm.as_str() {
        "" | "sha256" => Sha256::digest(bytes).to_vec(),
        "sha512" => Sha512::digest(bytes).to_vec(),
        "sha1" => Sha1::digest(bytes).to_vec(),
        "md5" => Md5::digest(bytes).to_vec(),
        other => return Err(p.err(format!("unknown algorithm `{other}`: use sha256, sha512, sha1 or md5"))),
    };
    let encoding = p.text(&["encoding", "output_encoding"])?.unwrap_or_default().to_ascii_lowercase();
    let out = match encoding.trim() {
        "" | "hex" => to_hex(&digest),
        "base64" => base64::engine::general_purpose::STANDARD.encode(&digest),
        "base64url" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest),
        other => return Err(p.err(format!("unknown encoding `{other}`: use hex, base64 or base64url"))),
    };
    Ok(Value::String(out))
}
