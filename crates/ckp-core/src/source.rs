//! Where things are in the source text: JSON pointer → line:column, and duplicate object keys.
//!
//! `serde_json` keeps no positions, so after it has accepted the text this module scans it once more with a small
//! JSON reader that records where every value starts. It assumes valid JSON (it runs only after `serde_json`
//! succeeded) but never panics on anything else; it performs no I/O.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, escape_token};

/// A line and column, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line number.
    pub line: u32,
    /// Column in characters.
    pub column: u32,
}

/// Positions of every value of a JSON document, by JSON pointer.
#[derive(Debug, Default)]
pub struct SourceMap {
    values: HashMap<String, Pos>,
    duplicates: Vec<(String, Pos)>,
}

impl SourceMap {
    /// Scans `text` (valid JSON) and records the position of every value.
    pub fn build(text: &str) -> SourceMap {
        let mut scanner = Scanner { text: text.as_bytes(), at: 0, line: 1, column: 0, src: text };
        let mut map = SourceMap::default();
        scanner.skip_ws();
        scanner.value(String::new(), &mut map, 0);
        map
    }

    /// The position of the value at `pointer`, or of its nearest ancestor that exists.
    pub fn locate(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.values.get("").copied().unwrap_or(Pos { line: 1, column: 1 }),
            }
        }
    }

    /// Fills line and column of each diagnostic from its pointer.
    pub fn place(&self, diags: &mut [Diagnostic]) {
        for d in diags {
            let pos = self.locate(&d.pointer);
            d.line = pos.line;
            d.column = pos.column;
        }
    }

    /// Warnings for object keys that occur twice in one object (JSON parsers keep the last one).
    pub fn duplicate_key_warnings(&self) -> Vec<Diagnostic> {
        self.duplicates
            .iter()
            .map(|(pointer, pos)| {
                let key = pointer.rsplit('/').next().unwrap_or_default();
                let mut d = Diagnostic::new(
                    Code::DuplicateKey,
                    pointer.clone(),
                    format!("key `{key}` appears more than once in this object; only the last one is used. Remove or rename the others"),
                );
                d.line = pos.line;
                d.column = pos.column;
                d
            })
            .collect()
    }
}

/// Deeper nesting than this is not indexed (serde_json refuses beyond 128 anyway).
const MAX_DEPTH: usize = 256;

struct Scanner<'a> {
    text: &'a [u8],
    src: &'a str,
    at: usize,
    line: u32,
    /// Characters from the start of the line to `at`, kept as the scan advances: counting them again at every
    /// value made a one-line document (the import API's compact JSON) quadratic.
    column: u32,
}

impl Scanner<'_> {
    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.column.saturating_add(1) }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn bump(&mut self) {
        match self.peek() {
            Some(b'\n') => {
                self.line += 1;
                self.column = 0;
            }
            // A character starts at every byte that is not a UTF-8 continuation byte.
            Some(b) if b & 0xC0 != 0x80 => self.column = self.column.saturating_add(1),
            _ => {}
        }
        self.at += 1;
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn value(&mut self, pointer: String, map: &mut SourceMap, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        map.values.entry(pointer.clone()).or_insert(self.pos());
        match self.peek() {
            Some(b'{') => self.object(&pointer, map, depth),
            Some(b'[') => self.array(&pointer, map, depth),
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.bump();
                }
            }
            None => {}
        }
    }

    fn object(&mut self, pointer: &str, map: &mut SourceMap, depth: usize) {
        self.bump();
        let mut seen = std::collections::HashSet::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') | None => {
                    self.bump();
                    return;
                }
                Some(b',') => {
                    self.bump();
                    continue;
                }
                Some(b'"') => {}
                Some(_) => {
                    self.bump();
                    continue;
                }
            }
            let key_pos = self.pos();
            let key = self.string();
            let child = format!("{pointer}/{}", escape_token(&key));
            if !seen.insert(key) {
                map.duplicates.push((child.clone(), key_pos));
                map.values.remove(&child);
            }
            self.skip_ws();
            if self.peek() == Some(b':') {
                self.bump();
            }
            self.skip_ws();
            self.value(child, map, depth + 1);
        }
    }

    fn array(&mut self, pointer: &str, map: &mut SourceMap, depth: usize) {
        self.bump();
        let mut index = 0usize;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') | None => {
                    self.bump();
                    return;
                }
                Some(b',') => {
                    self.bump();
                    index += 1;
                }
                Some(_) => self.value(format!("{pointer}/{index}"), map, depth + 1),
            }
        }
    }

    /// Reads a string token and returns its decoded value (escapes resolved well enough for keys).
    fn string(&mut self) -> String {
        let start = self.at;
        self.bump();
        while let Some(c) = self.peek() {
            match c {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => {
                    self.bump();
                    break;
                }
                _ => self.bump(),
            }
        }
        let raw = self.src.get(start..self.at).unwrap_or("\"\"");
        serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.trim_matches('"').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{\n  \"a\": {\"b\": [1, {\"c\": \"x\"}]},\n  \"k/e~y\": true,\n  \"é\": 1, \"z\": null\n}";

    #[test]
    fn locates_values() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.locate(""), Pos { line: 1, column: 1 });
        assert_eq!(map.locate("/a"), Pos { line: 2, column: 8 });
        assert_eq!(map.locate("/a/b/1/c"), Pos { line: 2, column: 24 });
        assert_eq!(map.locate("/k~1e~0y"), Pos { line: 3, column: 12 });
        assert_eq!(map.locate("/z"), Pos { line: 4, column: 16 });
    }

    #[test]
    fn missing_pointer_falls_back_to_ancestor() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.locate("/a/b/1/missing"), map.locate("/a/b/1"));
        assert_eq!(map.locate("/nothing/here"), map.locate(""));
    }

    #[test]
    fn finds_duplicate_keys() {
        let map = SourceMap::build("{\"a\": 1,\n \"a\": 2}");
        let warnings = map.duplicate_key_warnings();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].pointer, "/a");
        assert_eq!((warnings[0].line, warnings[0].column), (2, 2));
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let map = SourceMap::build(r#"{"a\"b": 1}"#);
        assert_eq!(map.locate("/a\"b"), Pos { line: 1, column: 10 });
    }
}
