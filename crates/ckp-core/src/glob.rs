//! Globs over names: a CKP `file_watch_config.pattern` and an event trigger's `event_filter.subject`. Parsed once,
//! matched in time linear in the name whatever the pattern (one backtrack point: the last star).

/// A glob over names (file names, message subjects): `*` (any run of characters), `?` (one character), `[abc]`, `[a-z]`, `[!abc]`; other
/// characters match themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<Token>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

impl Glob {
    /// Parses a pattern; an unclosed `[` is the error.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::Any,
                '[' => {
                    let negated = chars.next_if(|c| *c == '!' || *c == '^').is_some();
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(c) = chars.next() else {
                            return Err(format!("glob `{pattern}`: `[` is not closed"));
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        match chars.next_if_eq(&'-') {
                            Some(_) => match chars.next_if(|c| *c != ']') {
                                Some(hi) => ranges.push((c, hi)),
                                None => ranges.extend([(c, c), ('-', '-')]),
                            },
                            None => ranges.push((c, c)),
                        }
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Char(c),
            });
        }
        Ok(Glob(tokens))
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let one = |t: &Token, c: char| match t {
            Token::Char(x) => *x == c,
            Token::Any => true,
            Token::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
            Token::Star => false,
        };
        // Iterative matching with one backtrack point (the last star): linear for any pattern.
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.0.get(p) {
                Some(Token::Star) => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(t) if one(t, name[n]) => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        p = sp + 1;
                        n = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        self.0[p..].iter().all(|t| *t == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let g = |p: &str| Glob::new(p).expect("a valid pattern");
        assert!(g("*.csv").matches("a.csv") && g("*.csv").matches(".csv") && !g("*.csv").matches("a.csv.tmp"));
        assert!(g("report-??.txt").matches("report-07.txt") && !g("report-??.txt").matches("report-7.txt"));
        assert!(g("[ab]*").matches("b1") && !g("[ab]*").matches("c1"));
        assert!(g("[!.]*").matches("x") && !g("[!.]*").matches(".hidden"));
        assert!(g("f[0-9].dat").matches("f5.dat") && !g("f[0-9].dat").matches("fx.dat"));
        assert!(g("[]]").matches("]") && g("[a-]").matches("-"));
        assert!(g("*a*b*c").matches("xxaybzzc") && !g("*a*b*c").matches("xxaybzz"));
        assert!(g("*").matches("") && g("").matches("") && !g("").matches("a"));
        assert!(g("é?").matches("éü"));
        assert!(Glob::new("[abc").is_err() && Glob::new("x[").is_err());
    }

    #[test]
    fn subjects_and_pathological_patterns() {
        let g = |p: &str| Glob::new(p).expect("a valid pattern");
        assert!(g("orders.*").matches("orders.created") && g("a?c").matches("abc") && !g("a?c").matches("ac"));
        assert!(g("*.pdf").matches("x.y.pdf") && !g("*.pdf").matches("x.pdf.txt"));
        assert!(g(&"*a".repeat(20)).matches(&"a".repeat(40)));
        assert!(!g(&"*a".repeat(20)).matches(&format!("{}b", "a".repeat(40))));
    }
}
