//! The condition parser: a recursive-descent parser working directly on the source text (there is no separate
//! token stream, because "unquoted text on the right of an operator" is defined on raw text, not on tokens).
//!
//! ```text
//! condition  := or
//! or         := and ("or" and)*
//! and        := not ("and" not)*
//! not        := ("not" | "!") not | test
//! test       := "(" or ")"
//!             | ("is_empty" | "is_not_empty") operand
//!             | operand [ binop right | "is_empty" | "is_not_empty" ]
//! binop      := "==" | "!=" | ">=" | "<=" | ">" | "<" | "contains" | "not_contains" | "starts_with"
//!             | "ends_with" | "in"
//! right      := operand, if followed by "and" / "or" / ")" / end; otherwise raw text up to the next top-level
//!               " and " / " or " / ")" / end
//! operand    := "{{" path ["|" default] "}}" | quoted | number | true|false|null|none|yes|no | dotted-name
//! ```
//!
//! Every index into the source is kept on a character boundary; nothing here can panic on input.

use serde_json::Value;

use super::lexer::{PLACEHOLDER, RESERVED, lex_number, name_len, placeholder_len, strip_quotes, token_at};
use super::{Body, CmpOp, ConditionError, Expr, MAX_DEPTH, MAX_SOURCE_BYTES, MAX_TERMS, Operand};
use crate::path::{PathError, VarPath, is_word_char};
use crate::template::Template;

pub(super) fn parse(text: &str) -> Result<Body, ConditionError> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(err(
            0,
            format!(
                "the condition is {} bytes long, more than the limit of {MAX_SOURCE_BYTES}: split it into several \
                 rules or compute the value in a transform first",
                text.len()
            ),
        ));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(err(0, "the condition is empty: write a test such as `{{count}} > 0`, or `true`".to_owned()));
    }
    for (words, value) in [(["true", "yes", "1"], true), (["false", "no", "0"], false)] {
        if words.iter().any(|w| trimmed.eq_ignore_ascii_case(w)) {
            return Ok(Body::Constant(value));
        }
    }
    let mut p = Parser { src: text, pos: 0, depth: 0, terms: 0 };
    let expr = p.or()?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.unexpected());
    }
    Ok(Body::Expr(expr))
}

fn err(offset: usize, message: String) -> ConditionError {
    ConditionError { offset, message }
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    depth: usize,
    terms: usize,
}

impl<'s> Parser<'s> {
    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The run of word characters starting at `pos` (empty when `pos` is not on a word character).
    fn word_at(&self, pos: usize) -> &'s str {
        let rest = self.src.get(pos..).unwrap_or_default();
        let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Consumes the keyword `kw` (case-insensitive, whole word) if it is next.
    fn eat_word(&mut self, kw: &str) -> bool {
        self.skip_ws();
        if self.word_at(self.pos).eq_ignore_ascii_case(kw) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn count_term(&mut self, offset: usize) -> Result<(), ConditionError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(err(
                offset,
                format!("the condition has more than {MAX_TERMS} operators and operands: split it into several rules"),
            ));
        }
        Ok(())
    }

    fn enter(&mut self, offset: usize) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                offset,
                format!("parentheses and `not` are nested more than {MAX_DEPTH} deep: simplify the condition"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and()?];
        loop {
            self.skip_ws();
            let at = self.pos;
            if !self.eat_word("or") {
                break;
            }
            self.count_term(at)?;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.swap_remove(0) } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.not()?];
        loop {
            self.skip_ws();
            let at = self.pos;
            if !self.eat_word("and") {
                break;
            }
            self.count_term(at)?;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 { items.swap_remove(0) } else { Expr::And(items) })
    }

    fn not(&mut self) -> Result<Expr, ConditionError> {
        self.skip_ws();
        let at = self.pos;
        let bang = self.rest().starts_with('!') && !self.rest().starts_with("!=");
        if bang || self.eat_word("not") {
            if bang {
                self.pos += 1;
            }
            self.count_term(at)?;
            self.enter(at)?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.test()
    }

    fn test(&mut self) -> Result<Expr, ConditionError> {
        self.skip_ws();
        let at = self.pos;
        if self.rest().starts_with('(') {
            self.enter(at)?;
            self.pos += 1;
            let inner = self.or()?;
            self.skip_ws();
            if self.rest().starts_with(')') {
                self.pos += 1;
                self.depth -= 1;
                return Ok(inner);
            }
            if self.at_end() {
                return Err(err(at, "this `(` is never closed: add a `)`".to_owned()));
            }
            return Err(self.unexpected());
        }
        for (kw, negated) in [("is_empty", false), ("is_not_empty", true)] {
            if self.eat_word(kw) {
                self.count_term(at)?;
                let operand = self.operand()?;
                return Ok(Expr::Empty { negated, operand });
            }
        }
        let left = self.operand()?;
        let save = self.pos;
        self.skip_ws();
        let op_at = self.pos;
        if let Some((op, len)) = self.binop() {
            self.pos += len;
            self.count_term(op_at)?;
            let right = self.right(op_at, len)?;
            return Ok(Expr::Compare { op, left, right });
        }
        for (kw, negated) in [("is_empty", false), ("is_not_empty", true)] {
            if self.eat_word(kw) {
                self.count_term(op_at)?;
                return Ok(Expr::Empty { negated, operand: left });
            }
        }
        self.pos = save;
        Ok(Expr::Truthy(left))
    }

    /// The binary operator at `pos`, with its length in bytes.
    fn binop(&self) -> Option<(CmpOp, usize)> {
        let rest = self.rest();
        for (sym, op) in [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            (">=", CmpOp::Ge),
            ("<=", CmpOp::Le),
            (">", CmpOp::Gt),
            ("<", CmpOp::Lt),
        ] {
            if rest.starts_with(sym) {
                return Some((op, sym.len()));
            }
        }
        let word = self.word_at(self.pos);
        let op = [
            ("contains", CmpOp::Contains),
            ("not_contains", CmpOp::NotContains),
            ("starts_with", CmpOp::StartsWith),
            ("ends_with", CmpOp::EndsWith),
            ("in", CmpOp::In),
        ]
        .into_iter()
        .find(|(w, _)| word.eq_ignore_ascii_case(w))?;
        Some((op.1, word.len()))
    }

    /// A required operand (left side, or after `is_empty`): bare names are variable references.
    fn operand(&mut self) -> Result<Operand, ConditionError> {
        self.skip_ws();
        let at = self.pos;
        match self.try_operand(false)? {
            Some(o) => {
                self.count_term(at)?;
                Ok(o)
            }
            None => Err(self.expected_value()),
        }
    }

    /// The operand on the right of a binary operator at `op_at` (`op_len` bytes long).
    fn right(&mut self, op_at: usize, op_len: usize) -> Result<Operand, ConditionError> {
        let op = self.src.get(op_at..op_at + op_len).unwrap_or_default();
        self.skip_ws();
        let start = self.pos;
        let rest = self.rest();
        let word = self.word_at(start);
        let missing = rest.is_empty()
            || rest.starts_with(')')
            || word.eq_ignore_ascii_case("and")
            || word.eq_ignore_ascii_case("or");
        if missing {
            return Err(err(
                op_at,
                format!(
                    "`{op}` needs a value on its right: add one, e.g. `{{{{x}}}} {op} 1` or `{{{{x}}}} {op} 'text'`"
                ),
            ));
        }
        if rest.starts_with(['=', '<', '>']) {
            return Err(err(
                start,
                format!(
                    "two operators in a row after `{op}`: remove one (`==` tests equality and `!=` \
                     inequality; `=`, `===` and `<>` are not operators)"
                ),
            ));
        }
        self.count_term(start)?;
        if let Some(o) = self.try_operand(true)? {
            let end = self.pos;
            if self.at_operand_end() {
                self.pos = end;
                return Ok(o);
            }
        }
        // Unquoted text, as LangOrch reads `{{s}} == hello world`.
        let end = self.raw_end(start);
        let text = self.src.get(start..end).unwrap_or_default().trim_end();
        self.pos = start + text.len();
        let inner = strip_quotes(text);
        if inner.contains("{{") {
            let t = Template::parse(inner).map_err(|e| err(start, format!("{e}")))?;
            return Ok(Operand::TextTemplate(t));
        }
        Ok(Operand::Text(inner.into()))
    }

    /// True when, after optional spaces, the next thing ends an operand: `and`, `or`, `)`, `&&`, `||` or the end.
    fn at_operand_end(&mut self) -> bool {
        self.skip_ws();
        let rest = self.rest();
        let word = self.word_at(self.pos);
        rest.is_empty()
            || rest.starts_with([')'])
            || rest.starts_with("&&")
            || rest.starts_with("||")
            || word.eq_ignore_ascii_case("and")
            || word.eq_ignore_ascii_case("or")
    }

    /// Where unquoted text starting at `start` ends: before the next top-level ` and ` / ` or ` (also `&&`, `||`,
    /// so that the error about them is reported), before an unmatched `)`, or at the end. Placeholders and quoted
    /// sections that start a word are skipped whole.
    fn raw_end(&self, start: usize) -> usize {
        let src = self.src;
        let mut i = start;
        let mut depth = 0usize;
        let mut prev_ws = true;
        while let Some(rest) = src.get(i..) {
            let Some(c) = rest.chars().next() else { break };
            if rest.starts_with("{{")
                && let Some(len) = placeholder_len(rest)
            {
                i += len;
                prev_ws = false;
                continue;
            }
            if (c == '\'' || c == '"')
                && prev_ws
                && let Some(close) = rest[1..].find(c)
            {
                i += close + 2;
                prev_ws = false;
                continue;
            }
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => return i,
                ')' => depth -= 1,
                _ if c.is_whitespace() => {
                    let after = rest.trim_start();
                    let j = src.len() - after.len();
                    let word = self.word_at(j);
                    let connective = word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or");
                    if depth == 0 && (connective || after.starts_with("&&") || after.starts_with("||")) {
                        return i;
                    }
                }
                _ => {}
            }
            prev_ws = c.is_whitespace();
            i += c.len_utf8();
        }
        src.len()
    }

    /// Parses an operand at `pos` if one starts there. `Ok(None)` (with `pos` unchanged) means "not an operand";
    /// an error means it starts like an operand but is malformed.
    fn try_operand(&mut self, right: bool) -> Result<Option<Operand>, ConditionError> {
        let at = self.pos;
        let rest = self.rest();
        let Some(first) = rest.chars().next() else {
            return Ok(None);
        };
        if rest.starts_with("{{") {
            let caps = PLACEHOLDER.as_ref().and_then(|re| re.captures(rest));
            let Some((len, path, default)) =
                caps.and_then(|c| Some((c.get(0)?.end(), c.get(1)?.as_str(), c.get(2).map(|d| d.as_str()))))
            else {
                return Err(err(
                    at,
                    "`{{` starts a variable reference that is not well formed: write `{{name}}`, `{{a.b.0}}` or \
                     `{{name | default}}` (letters, digits, `_` and `.`), or put the text in quotes"
                        .to_owned(),
                ));
            };
            let inner = rest.strip_prefix("{{").unwrap_or_default();
            let path = parse_path(path, at + 2 + inner.len() - inner.trim_start().len())?;
            let default = default.map(|d| d.trim().trim_matches(['\'', '"']).into());
            self.pos += len;
            return Ok(Some(Operand::Var { path, default }));
        }
        if first == '\'' || first == '"' {
            let Some(close) = rest[1..].find(first) else {
                return Err(err(at, format!("this string is never closed: add the closing `{first}`")));
            };
            let inner = &rest[1..1 + close];
            self.pos += close + 2;
            if inner.contains("{{") {
                let t = Template::parse(inner).map_err(|e| err(at + 1, format!("{e}")))?;
                return Ok(Some(Operand::Quoted(t)));
            }
            return Ok(Some(Operand::Literal(Value::String(inner.to_owned()))));
        }
        if first.is_ascii_digit()
            || ((first == '-' || first == '+') && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
        {
            let Some((len, value)) = lex_number(rest) else {
                return Ok(None);
            };
            let next = rest[len..].chars().next();
            if next.is_some_and(|c| is_word_char(c) || c == '.') {
                return Ok(None);
            }
            self.pos += len;
            return Ok(Some(Operand::Literal(value)));
        }
        if !is_word_char(first) {
            return Ok(None);
        }
        let len = name_len(rest);
        let name = &rest[..len];
        if !name.contains('.') {
            let keyword = |ws: &[&str]| ws.iter().any(|w| name.eq_ignore_ascii_case(w));
            let literal = if keyword(&["true", "yes"]) {
                Some(Value::Bool(true))
            } else if keyword(&["false", "no"]) {
                Some(Value::Bool(false))
            } else if keyword(&["null", "none"]) {
                Some(Value::Null)
            } else if keyword(RESERVED) {
                return Ok(None);
            } else {
                None
            };
            if let Some(v) = literal {
                self.pos += len;
                return Ok(Some(Operand::Literal(v)));
            }
        }
        let path = parse_path(name, at)?;
        self.pos += len;
        Ok(Some(if right { Operand::NameOrText(path) } else { Operand::Var { path, default: None } }))
    }

    /// The error for "a value was expected at `pos`".
    fn expected_value(&self) -> ConditionError {
        let rest = self.rest();
        let found = token_at(rest);
        let word = self.word_at(self.pos);
        let what = "a value (`{{name}}`, a name, a number, a quoted string, true, false or null)";
        let message = if rest.is_empty() {
            format!("the condition ends too early: expected {what}")
        } else if RESERVED.iter().any(|r| word.eq_ignore_ascii_case(r)) {
            format!("expected {what} before `{word}`: `{word}` needs a value or condition on its left")
        } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
            format!("`{found}` is neither a number nor a name: put text in quotes ('{found}')")
        } else {
            format!("expected {what}, found `{found}`: put text in quotes")
        };
        err(self.pos, message)
    }

    /// The error for something unexpected at `pos` after a complete test.
    fn unexpected(&self) -> ConditionError {
        let rest = self.rest();
        let word = self.word_at(self.pos);
        let message = if rest.starts_with(')') {
            "this `)` has no matching `(`: remove it".to_owned()
        } else if rest.starts_with("&&") {
            "`&&` is not an operator: write `and`".to_owned()
        } else if rest.starts_with("||") {
            "`||` is not an operator: write `or`".to_owned()
        } else if rest.starts_with('=') && !rest.starts_with("==") {
            "`=` is not an operator: write `==` to compare".to_owned()
        } else if word.eq_ignore_ascii_case("not") {
            "`not` negates the condition that follows it and cannot come after a value: write `not (a in b)`, or use \
             `not_contains` / `!=`"
                .to_owned()
        } else if self.binop().is_some()
            || word.eq_ignore_ascii_case("is_empty")
            || word.eq_ignore_ascii_case("is_not_empty")
        {
            format!(
                "`{}` cannot follow a parenthesised group or another test: compare values, then combine the results \
                 with `and` / `or`",
                token_at(rest)
            )
        } else {
            format!(
                "unexpected `{}`: expected an operator (`==`, `!=`, `>`, `contains`, `in`, `is_empty`, …), `and`, `or`, \
                 `)` or the end of the condition; put text that contains spaces in quotes",
                token_at(rest)
            )
        };
        err(self.pos, message)
    }
}

fn parse_path(text: &str, at: usize) -> Result<VarPath, ConditionError> {
    VarPath::parse(text).map_err(|e| {
        let fix = match e {
            PathError::EmptySegment(_) => "remove the stray `.`",
            PathError::InvalidChar(_) => "use letters, digits, `_` and `.`",
            PathError::TooDeep(_) => "shorten the path",
        };
        err(at, format!("{e}: {fix}"))
    })
}
