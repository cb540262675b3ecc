//! Lexical pieces shared by the parser and the evaluator: the placeholder pattern, reserved words, names, and
//! numbers as B §3's coerce() reads them (`+5`, `1_000`, `3.5`; not `1e3` in source text).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Number, Value};

use crate::path::is_word_char;

/// The placeholder syntax shared with templates (B §2.1), anchored at the current position.
pub(super) static PLACEHOLDER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\A\{\{\s*([\w.]+)\s*(?:\|\s*(.+?))?\s*\}\}").ok());

/// Words with a meaning in the grammar; they are never operands. Matched case-insensitively.
pub(super) const RESERVED: &[&str] =
    &["and", "or", "not", "contains", "not_contains", "starts_with", "ends_with", "in", "is_empty", "is_not_empty"];
/// Length of the placeholder at the start of `s`, if one is there.
pub(super) fn placeholder_len(s: &str) -> Option<usize> {
    Some(PLACEHOLDER.as_ref()?.find(s)?.end())
}

/// Length of a dotted name at the start of `s`: word characters, and dots followed by a word character.
pub(super) fn name_len(s: &str) -> usize {
    let mut chars = s.char_indices().peekable();
    let mut end = 0;
    while let Some((i, c)) = chars.next() {
        let ok = is_word_char(c) || (c == '.' && chars.peek().is_some_and(|&(_, n)| is_word_char(n)));
        if !ok {
            break;
        }
        end = i + c.len_utf8();
    }
    end
}

/// A short excerpt of what is at the start of `s`, for messages.
pub(super) fn token_at(s: &str) -> &str {
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let end = s.char_indices().nth(24).map_or(end, |(i, _)| end.min(i));
    &s[..end]
}

/// Removes one pair of matching surrounding quotes, as B §3's coerce() does (no unescaping).
pub(super) fn strip_quotes(text: &str) -> &str {
    for q in ['\'', '"'] {
        if text.len() >= 2 && text.starts_with(q) && text.ends_with(q) {
            return &text[1..text.len() - 1];
        }
    }
    text
}

/// Removes `_` digit separators, which Python accepts only between two digits. `None` when one is misplaced.
pub(super) fn strip_underscores(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c == '_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j)).is_some_and(u8::is_ascii_digit);
            let after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The JSON number for an integer text (`-5`, `+5`, `007`), falling back to a float beyond 64 bits.
pub(super) fn int_value(digits: &str) -> Option<Value> {
    let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(i) = digits.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = digits.strip_prefix('+').unwrap_or(digits).parse::<u64>() {
        return Some(Value::from(u));
    }
    digits.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
}

/// The JSON number for a finite float text.
pub(super) fn float_value(text: &str) -> Option<Value> {
    let t = text.strip_prefix(['+', '-']).unwrap_or(text);
    // Rust also reads `inf` / `nan`; only digits, one `.` and an exponent are numbers here.
    if !t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
}

/// A number literal at the start of `s`: `[+-]digits[_digits][.digits]`. Returns its length and value.
pub(super) fn lex_number(s: &str) -> Option<(usize, Value)> {
    let bytes = s.as_bytes();
    let digit_or_sep = |b: &u8| b.is_ascii_digit() || *b == b'_';
    let mut i = usize::from(bytes.first().is_some_and(|b| *b == b'+' || *b == b'-'));
    i += bytes.get(i..)?.iter().take_while(|b| digit_or_sep(b)).count();
    let mut is_float = false;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        is_float = true;
        i += 1;
        i += bytes.get(i..)?.iter().take_while(|b| digit_or_sep(b)).count();
    }
    let text = strip_underscores(s.get(..i)?)?;
    let value = if is_float { float_value(&text)? } else { int_value(&text)? };
    Some((i, value))
}
