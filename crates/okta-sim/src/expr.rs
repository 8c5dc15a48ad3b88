//! The SCIM-style expression language of Okta's `search` and `filter` parameters:
//! a parser (bounded in length and nesting, never panicking) and an evaluator.
//!
//! Grammar: `expr := and ("or" and)*`, `and := term ("and" term)*`,
//! `term := "(" expr ")" | attr "pr" | attr op value`; operators are case-insensitive,
//! attribute names case-sensitive, values JSON strings, `true`/`false` or numbers.

use serde_json::Value;

/// Longest accepted expression, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest accepted parenthesis nesting.
pub const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Contains.
    Co,
    /// Present (has a non-null value).
    Pr,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "co" => Op::Co,
            "pr" => Op::Pr,
            _ => return None,
        })
    }

    /// The operator's keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Co => "co",
            Op::Pr => "pr",
        }
    }

    /// Whether this is one of `gt ge lt le`.
    pub fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

/// A literal value on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A JSON string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(f64),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every operand holds (n-ary, so long chains do not nest deeply).
    And(Vec<Expr>),
    /// At least one operand holds.
    Or(Vec<Expr>),
    /// `attr op value`, or `attr pr` (then `value` is `None`).
    Cmp {
        /// Attribute path, e.g. `profile.login`.
        attr: String,
        /// Operator.
        op: Op,
        /// Right-hand value (absent for `pr`).
        value: Option<Literal>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Word(String),
    Str(String),
    Num(f64),
}

fn tokenize(input: &str) -> Result<Vec<Tok>, String> {
    let bytes = input.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                let lit = input
                    .get(start..i.min(bytes.len()))
                    .filter(|_| closed)
                    .ok_or_else(|| "Unterminated string literal".to_owned())?;
                let s: String = serde_json::from_str(lit)
                    .map_err(|_| format!("Invalid string literal: {lit}"))?;
                toks.push(Tok::Str(s));
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let text = input.get(start..i).unwrap_or("");
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("Invalid number: {text}"))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'$'))
                {
                    i += 1;
                }
                toks.push(Tok::Word(input.get(start..i).unwrap_or("").to_owned()));
            }
            _ => {
                let ch = input.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
                return Err(format!("Unexpected character '{ch}'"));
            }
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        let mut terms = vec![self.and(depth)?];
        while self.peek_keyword("or") {
            self.pos += 1;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut terms = vec![self.term(depth)?];
        while self.peek_keyword("and") {
            self.pos += 1;
            terms.push(self.term(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn term(&mut self, depth: usize) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LParen) => {
                if depth >= MAX_DEPTH {
                    return Err("Expression is nested too deeply".to_owned());
                }
                let e = self.or(depth + 1)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err("Missing ')'".to_owned()),
                }
            }
            Some(Tok::Word(attr)) => {
                if Op::parse(&attr).is_some()
                    || attr.eq_ignore_ascii_case("and")
                    || attr.eq_ignore_ascii_case("or")
                {
                    return Err(format!("Expected an attribute name, found '{attr}'"));
                }
                let op = match self.next() {
                    Some(Tok::Word(w)) => {
                        Op::parse(&w).ok_or_else(|| format!("Unknown operator '{w}'"))?
                    }
                    _ => return Err(format!("Expected an operator after '{attr}'")),
                };
                if op == Op::Pr {
                    return Ok(Expr::Cmp {
                        attr,
                        op,
                        value: None,
                    });
                }
                let value = match self.next() {
                    Some(Tok::Str(s)) => Literal::Str(s),
                    Some(Tok::Num(n)) => Literal::Num(n),
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
                    _ => return Err(format!("Expected a value after '{attr} {}'", op.as_str())),
                };
                Ok(Expr::Cmp {
                    attr,
                    op,
                    value: Some(value),
                })
            }
            Some(_) => Err("Expected an attribute name or '('".to_owned()),
            None => Err("Unexpected end of expression".to_owned()),
        }
    }
}

/// Parses an expression; the error text explains what is wrong.
pub fn parse(input: &str) -> Result<Expr, String> {
    if input.len() > MAX_LEN {
        return Err(format!("Expression longer than {MAX_LEN} bytes"));
    }
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Err("Empty expression".to_owned());
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or(0)?;
    if p.pos < p.toks.len() {
        return Err("Unexpected token after the end of the expression".to_owned());
    }
    Ok(e)
}

/// What an endpoint allows, and how it compares values.
pub struct Rules {
    /// Whether string comparisons are case-sensitive (`filter`) or not (`search`).
    pub case_sensitive: bool,
    /// Accepts or rejects (with a reason) an attribute/operator pair.
    pub allow: fn(&str, Op) -> Result<(), String>,
}

/// Checks every comparison against the endpoint's rules.
pub fn check(e: &Expr, rules: &Rules) -> Result<(), String> {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().try_for_each(|x| check(x, rules)),
        Expr::Cmp { attr, op, .. } => (rules.allow)(attr, *op),
    }
}

/// The user attribute compared case-insensitively whatever the endpoint's rules.
const LOGIN_ATTRIBUTE: &str = "profile.login";

/// Evaluates `e` against an object whose attributes `lookup` resolves.
pub fn eval(e: &Expr, case_sensitive: bool, lookup: &dyn Fn(&str) -> Option<Value>) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|x| eval(x, case_sensitive, lookup)),
        Expr::Or(v) => v.iter().any(|x| eval(x, case_sensitive, lookup)),
        Expr::Cmp { attr, op, value } => {
            let actual = lookup(attr);
            // Okta treats a login as case-insensitive everywhere (one user per login whatever
            // its case), so even `filter`'s case-sensitive comparison finds it in any case.
            let case_sensitive = case_sensitive && attr != LOGIN_ATTRIBUTE;
            match (op, value) {
                (Op::Pr, _) => actual.as_ref().is_some_and(present),
                (_, Some(lit)) => actual
                    .as_ref()
                    .is_some_and(|a| matches(a, *op, lit, case_sensitive)),
                (_, None) => false,
            }
        }
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

fn matches(actual: &Value, op: Op, lit: &Literal, cs: bool) -> bool {
    match actual {
        Value::Array(items) => items.iter().any(|x| matches(x, op, lit, cs)),
        Value::String(s) => match lit {
            Literal::Str(l) => cmp_str(s, l, op, cs),
            Literal::Num(n) => s
                .parse::<f64>()
                .is_ok_and(|x| cmp_ord(x.partial_cmp(n), op)),
            Literal::Bool(b) => cmp_str(s, if *b { "true" } else { "false" }, op, cs),
        },
        Value::Number(n) => {
            let x = n.as_f64();
            let y = match lit {
                Literal::Num(n) => Some(*n),
                Literal::Str(s) => s.parse::<f64>().ok(),
                Literal::Bool(_) => None,
            };
            match (x, y) {
                (Some(x), Some(y)) => cmp_ord(x.partial_cmp(&y), op),
                _ => false,
            }
        }
        Value::Bool(b) => match (lit, op) {
            (Literal::Bool(l), Op::Eq) => b == l,
            (Literal::Bool(l), Op::Ne) => b != l,
            (Literal::Str(l), Op::Eq) => l.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        },
        _ => false,
    }
}

fn cmp_str(actual: &str, lit: &str, op: Op, cs: bool) -> bool {
    let (a, l) = if cs {
        (actual.to_owned(), lit.to_owned())
    } else {
        (actual.to_lowercase(), lit.to_lowercase())
    };
    match op {
        Op::Sw => a.starts_with(&l),
        Op::Ew => a.ends_with(&l),
        Op::Co => a.contains(&l),
        _ => cmp_ord(Some(a.as_str().cmp(l.as_str())), op),
    }
}

fn cmp_ord(ord: Option<std::cmp::Ordering>, op: Op) -> bool {
    use std::cmp::Ordering::*;
    match (ord, op) {
        (Some(o), Op::Eq) => o == Equal,
        (Some(o), Op::Ne) => o != Equal,
        (Some(o), Op::Gt) => o == Greater,
        (Some(o), Op::Ge) => o != Less,
        (Some(o), Op::Lt) => o == Less,
        (Some(o), Op::Le) => o != Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_binds_tighter() {
        let e = parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        match e {
            Expr::Or(v) => assert!(matches!(v.as_slice(), [Expr::Cmp { .. }, Expr::And(_)])),
            other => panic!("{other:?}"),
        }
        let long = vec!["a pr"; 400].join(" and ");
        assert!(long.len() < MAX_LEN);
        assert!(matches!(parse(&long), Ok(Expr::And(v)) if v.len() == 400));
    }

    #[test]
    fn escapes_and_errors() {
        let e = parse(r#"profile.lastName eq "bob\"smith""#).unwrap();
        assert_eq!(
            e,
            Expr::Cmp {
                attr: "profile.lastName".into(),
                op: Op::Eq,
                value: Some(Literal::Str("bob\"smith".into()))
            }
        );
        for bad in [
            "",
            "status",
            "status eq",
            "status xx \"a\"",
            "(status eq \"a\"",
            "status eq \"a\")",
            "status eq \"a",
            "status eq \"a\" and",
            "status eq 'a'",
            "status eq \"\\",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn evaluation() {
        let e = parse(r#"status eq "active" and profile.n sw "ad""#).unwrap();
        let look = |a: &str| match a {
            "status" => Some(Value::from("ACTIVE")),
            "profile.n" => Some(Value::from("Ada")),
            _ => None,
        };
        assert!(eval(&e, false, &look));
        assert!(!eval(&e, true, &look));
    }
}
