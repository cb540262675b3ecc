//! `calculate`: a small arithmetic language over the rendered expression text.
//!
//! Grammar (loosest first): `+ -`, then `* / // %`, then unary `- +`, then `**` / `^` (right-associative, binding
//! tighter than unary minus as in Python: `-2**2` is -4), then numbers, quoted numeric text (`"3"`), parentheses,
//! the constants `pi` and `e`, and the functions `abs`, `round(x[, digits])`, `floor`, `ceil`, `sqrt`, `pow(x, y)`,
//! `min`, `max`, `sum`, `avg` (the last four take any number of arguments, and a `[a, b, …]` list argument is spread,
//! so `sum({{prices}})` works on a list variable). Integers stay exact `i64` until they overflow or divide
//! unevenly, then the value becomes a float; a float result that is whole and fits `i64` is returned as an integer.
//! This module evaluates while it parses and never panics: division by zero, a non-finite result, text that is not
//! a number, and expressions over [`MAX_EXPRESSION_CHARS`] characters or [`MAX_DEPTH`] levels of nesting are errors.

use serde_json::Value;

use super::{OpError, Params, cut, describe, number, unresolved_hint};

/// Longest expression accepted, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 10_000;

/// Deepest nesting of parentheses, lists, unary signs and powers accepted.
pub const MAX_DEPTH: usize = 64;

/// `calculate {expression}`: evaluates the (rendered) arithmetic expression and returns a JSON number. An
/// expression that rendered to a number (`"{{n}}"`) is returned as is.
pub(super) fn calculate(p: &Params<'_>) -> Result<Value, OpError> {
    match p.require(&["expression", "value", "formula"], "the arithmetic to evaluate, e.g. {{price}} * 1.2")? {
        v @ Value::Number(_) => Ok(v.clone()),
        Value::String(text) => evaluate(text).map_err(|e| p.err(e)),
        other => Err(p.err(format!("`expression` must be text such as \"2 * (3 + 4)\", not {}", describe(other)))),
    }
}

/// Evaluates `text`; the error says what is wrong and where.
pub(super) fn evaluate(text: &str) -> Result<Value, String> {
    if text.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(format!("expression is longer than {MAX_EXPRESSION_CHARS} characters"));
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err("expression is empty".to_owned());
    }
    let mut parser = Parser { tokens, pos: 0, depth: 0 };
    let result = parser.expr()?;
    if let Some((tok, at)) = parser.tokens.get(parser.pos) {
        return Err(format!("unexpected {} at character {at}", tok.describe()));
    }
    let value = match result {
        Num::Int(i) => Some(Value::from(i)),
        Num::Float(f) => number(f),
    };
    value.ok_or_else(|| "the result is not a finite number".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn is_zero(self) -> bool {
        self.f() == 0.0
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Num),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(Num::Int(i)) => format!("number `{i}`"),
            Tok::Num(Num::Float(f)) => format!("number `{f}`"),
            Tok::Ident(name) => format!("name `{name}`"),
            Tok::Op(op) => format!("`{op}`"),
            Tok::Open => "`(`".to_owned(),
            Tok::Close => "`)`".to_owned(),
            Tok::OpenList => "`[`".to_owned(),
            Tok::CloseList => "`]`".to_owned(),
            Tok::Comma => "`,`".to_owned(),
        }
    }
}

/// Splits the text into tokens with their 1-based character positions.
fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let at = i + 1;
        let next = chars.get(i + 1).copied();
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '0'..='9' | '.' => {
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                    i += 1;
                }
                if chars.get(i).is_some_and(|c| *c == 'e' || *c == 'E') {
                    let mut j = i + 1;
                    if chars.get(j).is_some_and(|c| *c == '+' || *c == '-') {
                        j += 1;
                    }
                    if chars.get(j).is_some_and(char::is_ascii_digit) {
                        i = j;
                        while chars.get(i).is_some_and(char::is_ascii_digit) {
                            i += 1;
                        }
                    }
                }
                let lexeme: String = chars.get(start..i).unwrap_or_default().iter().collect();
                out.push((Tok::Num(parse_number(&lexeme).ok_or_else(|| bad_number(&lexeme, at))?), at));
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    i += 1;
                }
                let name: String = chars.get(start..i).unwrap_or_default().iter().collect();
                out.push((Tok::Ident(name), at));
                continue;
            }
            '"' | '\'' => {
                let close = chars.get(i + 1..).and_then(|rest| rest.iter().position(|d| *d == c));
                let Some(len) = close else { return Err(format!("unclosed quote at character {at}")) };
                let inner: String = chars.get(i + 1..i + 1 + len).unwrap_or_default().iter().collect();
                let n = parse_number(inner.trim()).ok_or_else(|| {
                    format!("text \"{}\" at character {at} is not a number", cut(&inner, 40)) + &unresolved_hint(&inner)
                })?;
                i += len + 2;
                out.push((Tok::Num(n), at));
                continue;
            }
            '*' if next == Some('*') => Tok::Op("**"),
            '/' if next == Some('/') => Tok::Op("//"),
            '+' => Tok::Op("+"),
            '-' | '−' => Tok::Op("-"),
            '*' | '×' => Tok::Op("*"),
            '/' | '÷' => Tok::Op("/"),
            '%' => Tok::Op("%"),
            '^' => Tok::Op("^"),
            '(' => Tok::Open,
            ')' => Tok::Close,
            '[' => Tok::OpenList,
            ']' => Tok::CloseList,
            ',' => Tok::Comma,
            '{' => {
                let rest: String = chars.get(i..).unwrap_or_default().iter().take(60).collect();
                let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
                return Err(
                    format!("unexpected `{{` at character {at}") + &unresolved_hint(rest.get(..end).unwrap_or(""))
                );
            }
            other => return Err(format!("unexpected character `{other}` at character {at}")),
        };
        i += if matches!(tok, Tok::Op("**" | "//")) { 2 } else { 1 };
        out.push((tok, at));
    }
    Ok(out)
}

fn bad_number(lexeme: &str, at: usize) -> String {
    format!("`{}` at character {at} is not a number", cut(lexeme, 40))
}

/// A decimal number: an exact integer when it has no fraction or exponent and fits `i64`, else a float.
fn parse_number(text: &str) -> Option<Num> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    if body.is_empty() || !body.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    if !body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    if body.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Some(Num::Int(i));
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::Float)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

type Res = Result<Num, String>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> String {
        match self.tokens.get(self.pos) {
            Some((tok, at)) => format!("{} at character {at}", tok.describe()),
            None => "the end of the expression".to_owned(),
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), String> {
        if self.eat(tok) { Ok(()) } else { Err(format!("expected {what}, found {}", self.at())) }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression nests more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Res {
        let mut left = self.term()?;
        loop {
            if self.eat(&Tok::Op("+")) {
                left = add(left, self.term()?)?;
            } else if self.eat(&Tok::Op("-")) {
                left = add(left, neg(self.term()?)?)?;
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self) -> Res {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(op @ ("*" | "/" | "//" | "%"))) => *op,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = match op {
                "*" => mul(left, right)?,
                "/" => div(left, right)?,
                "//" => floor_div(left, right)?,
                _ => modulo(left, right)?,
            };
        }
    }

    fn unary(&mut self) -> Res {
        self.enter()?;
        let result = if self.eat(&Tok::Op("-")) {
            self.unary().and_then(neg)
        } else if self.eat(&Tok::Op("+")) {
            self.unary()
        } else {
            self.power()
        };
        self.depth -= 1;
        result
    }

    fn power(&mut self) -> Res {
        let base = self.primary()?;
        if self.eat(&Tok::Op("**")) || self.eat(&Tok::Op("^")) {
            let exp = self.unary()?;
            return pow(base, exp);
        }
        Ok(base)
    }

    fn primary(&mut self) -> Res {
        let Some((tok, _)) = self.tokens.get(self.pos).cloned() else {
            return Err("the expression ends where a number was expected".to_owned());
        };
        match tok {
            Tok::Num(n) => {
                self.pos += 1;
                Ok(n)
            }
            Tok::Open => {
                self.pos += 1;
                self.enter()?;
                let value = self.expr()?;
                self.depth -= 1;
                self.expect(&Tok::Close, "`)`")?;
                Ok(value)
            }
            Tok::Ident(name) => {
                self.pos += 1;
                let lower = name.to_ascii_lowercase();
                if self.peek() == Some(&Tok::Open) {
                    self.pos += 1;
                    let args = self.args()?;
                    return call(&lower, &args);
                }
                match lower.as_str() {
                    "pi" => Ok(Num::Float(std::f64::consts::PI)),
                    "e" => Ok(Num::Float(std::f64::consts::E)),
                    _ => Err(format!(
                        "unknown name `{name}`: calculate knows numbers, pi, e and the functions {FUNCTIONS}; insert a \
                         variable with {{{{{name}}}}}"
                    )),
                }
            }
            _ => Err(format!("expected a number, found {}", self.at())),
        }
    }

    /// Arguments after `(`, up to and including `)`. A `[…]` argument is spread into its elements.
    fn args(&mut self) -> Result<Vec<Num>, String> {
        let mut out = Vec::new();
        if self.eat(&Tok::Close) {
            return Ok(out);
        }
        loop {
            self.arg(&mut out)?;
            if self.eat(&Tok::Close) {
                return Ok(out);
            }
            self.expect(&Tok::Comma, "`,` or `)`")?;
        }
    }

    fn arg(&mut self, out: &mut Vec<Num>) -> Result<(), String> {
        if !self.eat(&Tok::OpenList) {
            out.push(self.expr()?);
            return Ok(());
        }
        self.enter()?;
        if !self.eat(&Tok::CloseList) {
            loop {
                self.arg(out)?;
                if self.eat(&Tok::CloseList) {
                    break;
                }
                self.expect(&Tok::Comma, "`,` or `]`")?;
            }
        }
        self.depth -= 1;
        Ok(())
    }
}

const FUNCTIONS: &str = "abs, round, floor, ceil, sqrt, pow, min, max, sum and avg";

fn call(name: &str, args: &[Num]) -> Res {
    let one = |what: &str| match args {
        [x] => Ok(*x),
        _ => Err(format!("{name}() takes one number ({what}), got {} arguments", args.len())),
    };
    match name {
        "abs" => match one("the value")? {
            Num::Int(i) => Ok(i.checked_abs().map_or(Num::Float((i as f64).abs()), Num::Int)),
            Num::Float(f) => Ok(Num::Float(f.abs())),
        },
        "floor" => Ok(whole(one("the value")?.f().floor())),
        "ceil" | "ceiling" => Ok(whole(one("the value")?.f().ceil())),
        "sqrt" => {
            let x = one("the value")?.f();
            if x < 0.0 { Err(format!("sqrt of a negative number ({x})")) } else { finite(x.sqrt()) }
        }
        "round" => match args {
            [Num::Int(i)] => Ok(Num::Int(*i)),
            [x] => Ok(whole(x.f().round())),
            [x, digits] if digits.f().fract() == 0.0 => round_to(*x, digits.f() as i64),
            [_, _] => Err("round(x, digits): digits must be a whole number".to_owned()),
            _ => Err(format!("round() takes a number and optional digits, got {} arguments", args.len())),
        },
        "pow" | "power" => match args {
            [x, y] => pow(*x, *y),
            _ => Err(format!("pow() takes two numbers (base, exponent), got {} arguments", args.len())),
        },
        "sum" => args.iter().try_fold(Num::Int(0), |acc, x| add(acc, *x)),
        "avg" | "mean" | "average" => {
            if args.is_empty() {
                return Err("avg() of no values".to_owned());
            }
            let total = args.iter().try_fold(Num::Int(0), |acc, x| add(acc, *x))?;
            div(total, Num::Int(i64::try_from(args.len()).unwrap_or(i64::MAX)))
        }
        "min" | "max" => {
            let mut best: Option<Num> = None;
            for x in args {
                let better = |b: Num| if name == "min" { x.f() < b.f() } else { x.f() > b.f() };
                best = match best {
                    Some(b) if !better(b) => Some(b),
                    _ => Some(*x),
                };
            }
            best.ok_or_else(|| format!("{name}() of no values"))
        }
        _ => Err(format!("unknown function `{name}`: use {FUNCTIONS}")),
    }
}

/// A whole float as an exact integer when it fits.
fn whole(f: f64) -> Num {
    if f.is_finite() && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        Num::Int(f as i64)
    } else {
        Num::Float(f)
    }
}

fn finite(f: f64) -> Res {
    if f.is_nan() {
        Err("the result is not a real number".to_owned())
    } else if f.is_infinite() {
        Err("the result is too large".to_owned())
    } else {
        Ok(Num::Float(f))
    }
}

/// Rounds half away from zero (not Python's half-to-even: `round(2.5)` is 3, as people expect) to `digits` decimal
/// places; negative digits round to tens, hundreds, ….
fn round_to(x: Num, digits: i64) -> Res {
    if !(-15..=15).contains(&digits) {
        return Err(format!("round(x, digits): digits must be between -15 and 15, got {digits}"));
    }
    if let (Num::Int(_), true) = (x, digits >= 0) {
        return Ok(x);
    }
    let scale = 10f64.powi(i32::try_from(digits).unwrap_or(0));
    let rounded = (x.f() * scale).round() / scale;
    if digits <= 0 { Ok(whole(rounded)) } else { finite(rounded) }
}

fn add(a: Num, b: Num) -> Res {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Ok(x.checked_add(y).map_or(Num::Float(x as f64 + y as f64), Num::Int)),
        _ => finite(a.f() + b.f()),
    }
}

fn neg(a: Num) -> Res {
    match a {
        Num::Int(x) => Ok(x.checked_neg().map_or(Num::Float(-(x as f64)), Num::Int)),
        Num::Float(f) => Ok(Num::Float(-f)),
    }
}

fn mul(a: Num, b: Num) -> Res {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Ok(x.checked_mul(y).map_or(Num::Float(x as f64 * y as f64), Num::Int)),
        _ => finite(a.f() * b.f()),
    }
}

fn div(a: Num, b: Num) -> Res {
    if b.is_zero() {
        return Err("division by zero".to_owned());
    }
    if let (Num::Int(x), Num::Int(y)) = (a, b)
        && x.checked_rem(y) == Some(0)
        && let Some(q) = x.checked_div(y)
    {
        return Ok(Num::Int(q));
    }
    finite(a.f() / b.f())
}

/// Python's `//`: the quotient rounded towards negative infinity.
fn floor_div(a: Num, b: Num) -> Res {
    if b.is_zero() {
        return Err("division by zero".to_owned());
    }
    if let (Num::Int(x), Num::Int(y)) = (a, b)
        && let (Some(q), Some(r)) = (x.checked_div(y), x.checked_rem(y))
    {
        return Ok(Num::Int(if r != 0 && ((r < 0) != (y < 0)) { q - 1 } else { q }));
    }
    finite((a.f() / b.f()).floor())
}

/// Python's `%`: the remainder takes the sign of the divisor.
fn modulo(a: Num, b: Num) -> Res {
    if b.is_zero() {
        return Err("modulo by zero".to_owned());
    }
    if let (Num::Int(x), Num::Int(y)) = (a, b)
        && let Some(r) = x.checked_rem(y)
    {
        return Ok(Num::Int(if r != 0 && ((r < 0) != (y < 0)) { r + y } else { r }));
    }
    let (x, y) = (a.f(), b.f());
    let r = x % y;
    finite(if r != 0.0 && ((r < 0.0) != (y < 0.0)) { r + y } else { r })
}

fn pow(base: Num, exp: Num) -> Res {
    if base.is_zero() && exp.f() < 0.0 {
        return Err("0 cannot be raised to a negative power".to_owned());
    }
    if let (Num::Int(b), Num::Int(e)) = (base, exp)
        && let Ok(e) = u32::try_from(e)
        && let Some(r) = b.checked_pow(e)
    {
        return Ok(Num::Int(r));
    }
    finite(base.f().powf(exp.f()))
}
