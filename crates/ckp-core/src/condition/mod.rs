//! The condition language of logic rules, verification checks and transform filters (CKP.md A.4 over langorch.md B §3).
//!
//! This module owns the whole language: the grammar, the parser that turns a condition's text into an AST once at
//! compile time ([`Condition::parse`]), the evaluator that runs that AST on the run's **values** as many times as the
//! engine likes ([`Condition::eval`]), and the analysis the compiler needs ([`Condition::references`]). It must not
//! render a condition to text and re-parse it at run time (that is LangOrch's defect B §8.10: a value containing an
//! operator word would change the meaning), must not raise or panic on any input or any variables (a syntax error
//! is a [`ConditionError`] at compile time, a type mismatch at run time is simply `false`), and must not know about
//! nodes, steps or diagnostics: variable paths come from [`crate::path`], text placeholders inside quoted strings
//! from [`crate::template`], and the compiler decides what a [`ConditionError`] becomes.
//!
//! The user-facing description of the language lives in `docs/conditions.md`.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::path::{Scope, VarPath};
use crate::template::Template;

/// Longest condition accepted, in bytes of source text. Longer conditions are a compile error: logic that big
/// belongs in a transform or in several rules, and the bound keeps a hostile document cheap to compile.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024;

/// Deepest nesting of parentheses and `not` / `!` accepted.
pub const MAX_DEPTH: usize = 32;

/// Most operators plus operands accepted in one condition.
pub const MAX_TERMS: usize = 256;

/// A compiled condition: parsed once, evaluated many times against a [`Scope`].
#[derive(Debug, Clone)]
pub struct Condition {
    source: Box<str>,
    body: Body,
}

/// Why a condition's text is not a condition. The compiler turns it into a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ConditionError {
    /// Byte offset into the condition's text where the problem is (always on a character boundary).
    pub offset: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One variable reference that a condition reads, as reported by [`Condition::references`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The variable path.
    pub path: &'a VarPath,
    /// How the condition uses it, which tells the compiler whether an undefined variable deserves a warning.
    pub kind: ReferenceKind,
}

/// How a condition reads a variable; see [`Reference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    /// `{{x}}`, or a bare name anywhere but on the right of an operator: undefined reads as null.
    Value,
    /// `{{x | default}}` (also inside a quoted string): undefined reads as the default.
    Defaulted,
    /// A bare name on the right of an operator (`{{status}} == approved`): the variable when it is defined,
    /// otherwise the word itself. The compiler must not report it as an undefined variable.
    NameOrWord,
    /// A `{{x}}` placeholder inside a quoted string or unquoted text: undefined stays literal text (A.3).
    InText,
}

impl Reference<'_> {
    /// False for a right-side bare name, which may legitimately be a literal word rather than a variable.
    pub fn must_be_defined(&self) -> bool {
        self.kind != ReferenceKind::NameOrWord
    }
}

#[derive(Debug, Clone)]
enum Body {
    /// Whole-text constant (B §3 step 1): `true`/`yes`/`1`, `false`/`no`/`0`.
    Constant(bool),
    Expr(Expr),
}

/// The AST. `and` / `or` chains are flat so evaluation depth is bounded by [`MAX_DEPTH`].
#[derive(Debug, Clone)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare { op: CmpOp, left: Operand, right: Operand },
    Empty { negated: bool, operand: Operand },
    Truthy(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    In,
}

/// An operand. "Soft" strings (variable values, defaults, unquoted text) are coerced when compared with a
/// non-string; "strict" ones (quoted literals) never are.
#[derive(Debug, Clone)]
enum Operand {
    /// `{{path}}`, `{{path | default}}`, or a bare name that is not on the right of an operator.
    Var { path: VarPath, default: Option<Box<str>> },
    /// A bare name on the right of an operator: the variable when defined, else the name as soft text.
    NameOrText(VarPath),
    /// A number, `true`/`false`/`null`, or a quoted string without placeholders.
    Literal(Value),
    /// A quoted string containing `{{`: rendered at eval time to a strict string.
    Quoted(Template),
    /// Unquoted text on the right of an operator: a soft string.
    Text(Box<str>),
    /// Unquoted text containing `{{`: rendered at eval time to a soft string.
    TextTemplate(Template),
}

impl Condition {
    /// Compiles a condition. The text is kept for display; it is never re-parsed.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let body = parser::parse(text)?;
        Ok(Condition { source: text.into(), body })
    }

    /// Evaluates the condition on the values in `scope`. Never fails: a comparison that makes no sense for the
    /// values' types is false.
    pub fn eval(&self, scope: &dyn Scope) -> bool {
        match &self.body {
            Body::Constant(b) => *b,
            Body::Expr(e) => eval::expr(e, scope),
        }
    }

    /// The text the condition was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every variable reference the condition reads, in source order, including placeholders inside quoted
    /// strings. Check [`Reference::kind`] before warning about an undefined one.
    pub fn references(&self) -> impl Iterator<Item = Reference<'_>> {
        let mut out = Vec::new();
        if let Body::Expr(e) = &self.body {
            collect_expr(e, &mut out);
        }
        out.into_iter()
    }

    /// The paths of the references that must be defined (every reference except right-side bare names, see
    /// [`ReferenceKind::NameOrWord`]): what the compiler records as the condition's reads.
    pub fn reads(&self) -> impl Iterator<Item = &VarPath> {
        self.references().filter(Reference::must_be_defined).map(|r| r.path)
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

fn collect_expr<'a>(e: &'a Expr, out: &mut Vec<Reference<'a>>) {
    match e {
        Expr::Or(items) | Expr::And(items) => items.iter().for_each(|i| collect_expr(i, out)),
        Expr::Not(inner) => collect_expr(inner, out),
        Expr::Compare { left, right, .. } => {
            collect_operand(left, out);
            collect_operand(right, out);
        }
        Expr::Empty { operand, .. } | Expr::Truthy(operand) => collect_operand(operand, out),
    }
}

fn collect_operand<'a>(o: &'a Operand, out: &mut Vec<Reference<'a>>) {
    match o {
        Operand::Var { path, default } => {
            let kind = if default.is_some() { ReferenceKind::Defaulted } else { ReferenceKind::Value };
            out.push(Reference { path, kind });
        }
        Operand::NameOrText(path) => out.push(Reference { path, kind: ReferenceKind::NameOrWord }),
        Operand::Quoted(t) | Operand::TextTemplate(t) => {
            for p in t.placeholders() {
                let kind = if p.default.is_some() { ReferenceKind::Defaulted } else { ReferenceKind::InText };
                out.push(Reference { path: &p.path, kind });
            }
        }
        Operand::Literal(_) | Operand::Text(_) => {}
    }
}
