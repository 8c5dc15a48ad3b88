//! Okta `search`/`filter` expressions (SCIM-like), built safely from values or
//! validated when a caller wrote them, so nothing a caller sends can change the expression's
//! structure or escape its query parameter.

use std::fmt;

/// Longest expression [`Expression::parse`] accepts, in bytes.
const MAX_EXPRESSION_BYTES: usize = 2048;
/// Deepest parenthesis nesting [`Expression::parse`] accepts.
const MAX_NESTING_DEPTH: usize = 16;

/// A well-formed Okta search or filter expression.
///
/// Only built by the constructors below (values JSON-escaped) or by [`Expression::parse`]
/// (caller-written text validated against Okta's grammar), so it is always safe to send as
/// one percent-encoded query value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression(String);

/// Okta's comparison operators (`pr` has its own constructor, [`Expression::present`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal (not supported by users `search`).
    Ne,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `co`: contains (users `search`: only first/last name, email and login).
    Co,
}

impl Operator {
    /// The operator as Okta spells it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Co => "co",
        }
    }
}

/// Why a caller-written expression was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {position}")]
pub struct ExpressionError {
    /// Byte offset into the expression where the problem was found.
    pub position: usize,
    /// What was expected or found there.
    pub reason: String,
}

impl Expression {
    /// `attribute op "value"`, with `value` escaped as a JSON string (`"`, `\` and control
    /// characters), which is how Okta reads string literals.
    pub fn compare(attribute: &'static str, operator: Operator, value: &str) -> Self {
        Self(format!(
            "{attribute} {} {}",
            operator.as_str(),
            string_literal(value)
        ))
    }

    /// `attribute pr`: the attribute has a value.
    pub fn present(attribute: &'static str) -> Self {
        Self(format!("{attribute} pr"))
    }

    /// `(self) and (other)`; operands are parenthesized so precedence never surprises.
    pub fn and(self, other: Expression) -> Self {
        Self(format!("({}) and ({})", self.0, other.0))
    }

    /// `(self) or (other)`; operands are parenthesized so precedence never surprises.
    pub fn or(self, other: Expression) -> Self {
        Self(format!("({}) or ({})", self.0, other.0))
    }

    /// `(a) or (b) or …`; `None` for an empty list, the expression itself for one.
    pub fn any_of(expressions: Vec<Expression>) -> Option<Self> {
        match expressions.len() {
            0 => None,
            1 => expressions.into_iter().next(),
            _ => {
                let operands: Vec<String> = expressions
                    .into_iter()
                    .map(|expression| format!("({})", expression.0))
                    .collect();
                Some(Self(operands.join(" or ")))
            }
        }
    }

    /// Validates an expression a caller wrote and returns it normalized (single spaces,
    /// lowercase operators). Accepts `attribute op value`, `attribute pr`, `and`, `or` and
    /// balanced parentheses; values are JSON string literals, `true`, `false` or numbers.
    pub fn parse(raw: &str) -> Result<Self, ExpressionError> {
        if raw.len() > MAX_EXPRESSION_BYTES {
            return Err(error_at(
                MAX_EXPRESSION_BYTES,
                "expression is longer than 2048 bytes",
            ));
        }
        let tokens = tokenize(raw)?;
        if tokens.is_empty() {
            return Err(error_at(0, "expression is empty"));
        }
        let mut parser = Parser {
            tokens: &tokens,
            next_index: 0,
            end_position: raw.len(),
            normalized: String::new(),
        };
        parser.parse_or(0)?;
        if let Some(token) = parser.peek() {
            let reason = match token.kind {
                TokenKind::CloseParen => "unbalanced ')'".to_owned(),
                _ => format!(
                    "expected 'and', 'or' or the end, found {}",
                    token.describe()
                ),
            };
            return Err(error_at(token.position, reason));
        }
        Ok(Self(parser.normalized))
    }

    /// The expression text, to be sent as one query value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// `value` as a JSON string literal. JSON requires escaping only C0 controls; DEL and the C1
/// controls are escaped too (`\u007f`), so no control character reaches Okta, a URL or a log
/// raw.
fn string_literal(value: &str) -> String {
    let json = serde_json::Value::from(value).to_string();
    let mut literal = String::with_capacity(json.len());
    for character in json.chars() {
        if character.is_control() {
            literal.push_str(&format!("\\u{:04x}", u32::from(character)));
        } else {
            literal.push(character);
        }
    }
    literal
}

fn error_at(position: usize, reason: impl Into<String>) -> ExpressionError {
    ExpressionError {
        position,
        reason: reason.into(),
    }
}

// === tokenizer ===

#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    OpenParen,
    CloseParen,
    /// Attribute names, operators, `and`/`or`, `true`/`false`.
    Word,
    /// A JSON string literal, quotes included.
    String,
    /// A JSON number.
    Number,
}

struct Token<'a> {
    kind: TokenKind,
    text: &'a str,
    position: usize,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self.kind {
            TokenKind::OpenParen => "'('".to_owned(),
            TokenKind::CloseParen => "')'".to_owned(),
            TokenKind::String => "a string".to_owned(),
            TokenKind::Number => "a number".to_owned(),
            TokenKind::Word => format!("'{}'", self.text),
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }
}

fn tokenize(raw: &str) -> Result<Vec<Token<'_>>, ExpressionError> {
    let bytes = raw.as_bytes();
    let mut tokens = Vec::new();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let start = index;
        let kind = match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {
                index += 1;
                continue;
            }
            b'(' => {
                index += 1;
                TokenKind::OpenParen
            }
            b')' => {
                index += 1;
                TokenKind::CloseParen
            }
            b'"' => {
                index = end_of_string_literal(bytes, start)?;
                let literal = raw.get(start..index).unwrap_or_default();
                serde_json::from_str::<String>(literal).map_err(|error| {
                    error_at(start, format!("invalid string literal ({error})"))
                })?;
                // JSON lets DEL and the C1 controls stand raw in a string; they stay escaped.
                if let Some((offset, _)) = literal.char_indices().find(|(_, c)| c.is_control()) {
                    return Err(error_at(
                        start + offset,
                        "raw control character in a string literal; escape it as \\u00XX",
                    ));
                }
                TokenKind::String
            }
            b'-' | b'0'..=b'9' => {
                index = scan_while(bytes, start, |byte| {
                    byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-')
                });
                let literal = raw.get(start..index).unwrap_or_default();
                serde_json::from_str::<serde_json::Number>(literal)
                    .map_err(|_| error_at(start, format!("invalid number '{literal}'")))?;
                TokenKind::Number
            }
            byte if byte.is_ascii_alphabetic() => {
                index = scan_while(bytes, start, |byte| {
                    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.')
                });
                TokenKind::Word
            }
            _ => {
                let character = raw
                    .get(start..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or('?');
                return Err(error_at(
                    start,
                    format!("unexpected character {character:?}"),
                ));
            }
        };
        tokens.push(Token {
            kind,
            text: raw.get(start..index).unwrap_or_default(),
            position: start,
        });
    }
    Ok(tokens)
}

/// Index just past the closing quote of the string literal opening at `start`.
fn end_of_string_literal(bytes: &[u8], start: usize) -> Result<usize, ExpressionError> {
    let mut index = start + 1;
    loop {
        match bytes.get(index) {
            None => return Err(error_at(start, "unterminated string literal")),
            Some(b'\\') => index += 2,
            Some(b'"') => return Ok(index + 1),
            Some(_) => index += 1,
        }
    }
}

fn scan_while(bytes: &[u8], start: usize, accept: impl Fn(u8) -> bool) -> usize {
    let mut index = start;
    while bytes.get(index).is_some_and(|&byte| accept(byte)) {
        index += 1;
    }
    index
}

// === parser ===

const COMPARISON_OPERATORS: [&str; 9] = ["eq", "ne", "gt", "ge", "lt", "le", "sw", "ew", "co"];

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    next_index: usize,
    end_position: usize,
    normalized: String,
}

impl<'a> Parser<'_, 'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.next_index)
    }

    fn advance(&mut self) -> Option<&Token<'a>> {
        let token = self.tokens.get(self.next_index);
        self.next_index += 1;
        token
    }

    fn emit(&mut self, piece: &str) {
        if !self.normalized.is_empty() && !self.normalized.ends_with('(') && piece != ")" {
            self.normalized.push(' ');
        }
        self.normalized.push_str(piece);
    }

    fn position_of_next(&self) -> usize {
        self.peek()
            .map_or(self.end_position, |token| token.position)
    }

    /// `or` binds loosest.
    fn parse_or(&mut self, depth: usize) -> Result<(), ExpressionError> {
        self.parse_and(depth)?;
        while self.peek().is_some_and(|token| token.is_word("or")) {
            self.advance();
            self.emit("or");
            self.parse_and(depth)?;
        }
        Ok(())
    }

    fn parse_and(&mut self, depth: usize) -> Result<(), ExpressionError> {
        self.parse_operand(depth)?;
        while self.peek().is_some_and(|token| token.is_word("and")) {
            self.advance();
            self.emit("and");
            self.parse_operand(depth)?;
        }
        Ok(())
    }

    /// `( expression )`, `attribute pr` or `attribute op value`.
    fn parse_operand(&mut self, depth: usize) -> Result<(), ExpressionError> {
        let position = self.position_of_next();
        let Some(token) = self.advance() else {
            return Err(error_at(
                position,
                "expected an attribute name or '(', found the end",
            ));
        };
        let (kind, text) = (token.kind, token.text);
        match kind {
            TokenKind::OpenParen => {
                if depth >= MAX_NESTING_DEPTH {
                    return Err(error_at(position, "parentheses nested deeper than 16"));
                }
                self.emit("(");
                self.parse_or(depth + 1)?;
                let close_position = self.position_of_next();
                match self.advance() {
                    Some(token) if token.kind == TokenKind::CloseParen => {
                        self.emit(")");
                        Ok(())
                    }
                    _ => Err(error_at(
                        close_position,
                        format!("missing ')' for '(' at byte {position}"),
                    )),
                }
            }
            TokenKind::Word if !is_keyword(text) => {
                validate_attribute(text, position)?;
                self.emit(text);
                self.parse_comparison()
            }
            _ => Err(error_at(
                position,
                format!(
                    "expected an attribute name or '(', found {}",
                    describe(kind, text)
                ),
            )),
        }
    }

    fn parse_comparison(&mut self) -> Result<(), ExpressionError> {
        let position = self.position_of_next();
        let operator = match self.advance() {
            Some(token) if token.kind == TokenKind::Word => token.text.to_ascii_lowercase(),
            Some(token) => {
                return Err(error_at(
                    position,
                    format!("expected an operator, found {}", token.describe()),
                ));
            }
            None => return Err(error_at(position, "expected an operator, found the end")),
        };
        if operator == "pr" {
            self.emit("pr");
            return Ok(());
        }
        if !COMPARISON_OPERATORS.contains(&operator.as_str()) {
            return Err(error_at(position, format!("unknown operator '{operator}'")));
        }
        self.emit(&operator);
        let value_position = self.position_of_next();
        let value = match self.advance() {
            Some(token) if matches!(token.kind, TokenKind::String | TokenKind::Number) => {
                token.text
            }
            Some(token)
                if token.kind == TokenKind::Word && matches!(token.text, "true" | "false") =>
            {
                token.text
            }
            Some(token) => {
                return Err(error_at(
                    value_position,
                    format!(
                        "expected a value (string, number, true or false), found {}",
                        token.describe()
                    ),
                ));
            }
            None => return Err(error_at(value_position, "expected a value, found the end")),
        };
        self.emit(value);
        Ok(())
    }
}

fn describe(kind: TokenKind, text: &str) -> String {
    Token {
        kind,
        text,
        position: 0,
    }
    .describe()
}

/// Words that are never an attribute name: the logical operators and, as Okta's grammar reads
/// an operator where an attribute is expected as an error, the comparison operators.
fn is_keyword(word: &str) -> bool {
    ["and", "or", "pr"]
        .iter()
        .chain(&COMPARISON_OPERATORS)
        .any(|keyword| word.eq_ignore_ascii_case(keyword))
}

/// `^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$`
fn validate_attribute(name: &str, position: usize) -> Result<(), ExpressionError> {
    let valid = name.split('.').all(|segment| {
        let mut characters = segment.chars();
        characters
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
            && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
    });
    if valid {
        Ok(())
    } else {
        Err(error_at(
            position,
            format!("invalid attribute name '{name}'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_escapes_values_as_json_strings() {
        let expression = Expression::compare("profile.lastName", Operator::Eq, "bob\"smith");
        assert_eq!(expression.as_str(), r#"profile.lastName eq "bob\"smith""#);
        let expression = Expression::compare("profile.login", Operator::Sw, "a\\b\nc\u{1}é😀");
        assert_eq!(
            expression.as_str(),
            "profile.login sw \"a\\\\b\\nc\\u0001é😀\""
        );
        // DEL and C1 controls, which JSON would allow raw, are escaped too.
        let expression = Expression::compare("id", Operator::Eq, "a\u{7f}b\u{85}c\u{9f}");
        assert_eq!(expression.as_str(), r#"id eq "a\u007fb\u0085c\u009f""#);
        assert_eq!(Expression::parse(expression.as_str()).unwrap(), expression);
        for value in ["\"", "\\", "\n", "ünï", "x\" or id pr or id eq \""] {
            let expression = Expression::compare("id", Operator::Eq, value);
            assert_eq!(
                expression.as_str(),
                format!("id eq {}", serde_json::to_string(value).unwrap())
            );
            // What we build always passes our own validation, as one comparison.
            assert_eq!(Expression::parse(expression.as_str()).unwrap(), expression);
        }
    }

    #[test]
    fn combinators_parenthesize_operands() {
        let status = Expression::compare("status", Operator::Eq, "ACTIVE");
        let login = Expression::present("profile.login");
        assert_eq!(
            status.clone().and(login.clone()).as_str(),
            r#"(status eq "ACTIVE") and (profile.login pr)"#
        );
        assert_eq!(
            status.clone().or(login.clone()).as_str(),
            r#"(status eq "ACTIVE") or (profile.login pr)"#
        );
        assert_eq!(Expression::any_of(vec![]), None);
        assert_eq!(Expression::any_of(vec![login.clone()]), Some(login.clone()));
        assert_eq!(
            Expression::any_of(vec![status, login]).unwrap().as_str(),
            r#"(status eq "ACTIVE") or (profile.login pr)"#
        );
    }

    #[test]
    fn parse_accepts_oktas_documented_examples() {
        for example in [
            r#"profile.department eq "Engineering" and (created lt "2014-01-01T00:00:00.000Z" or status eq "ACTIVE")"#,
            r#"status eq "STAGED""#,
            r#"profile.lastName sw "Smi""#,
            r#"profile.lastName eq "bob\"smith""#,
            r#"lastUpdated gt "2013-06-01T00:00:00.000Z""#,
            r#"(status lt "STAGED" or status gt "STAGED")"#,
            "profile.age ge 21 and profile.admin eq true and profile.nickName pr",
        ] {
            assert_eq!(Expression::parse(example).unwrap().as_str(), example);
        }
    }

    #[test]
    fn parse_normalizes_spacing_and_operator_case() {
        let expression = Expression::parse("  ( status  EQ \"ACTIVE\"\n)  AND\tid Pr ").unwrap();
        assert_eq!(expression.as_str(), r#"(status eq "ACTIVE") and id pr"#);
        assert_eq!(
            Expression::parse(r#"id eq "\u00e9\t""#).unwrap().as_str(),
            r#"id eq "\u00e9\t""#
        );
    }

    fn rejected(raw: &str) -> ExpressionError {
        Expression::parse(raw).expect_err(raw)
    }

    #[test]
    fn parse_rejects_injections_and_malformed_input() {
        assert_eq!(
            rejected(r#"status eq "A") or (id pr"#),
            error_at(13, "unbalanced ')'")
        );
        assert_eq!(rejected("").position, 0);
        assert_eq!(rejected("   ").reason, "expression is empty");
        assert_eq!(
            rejected(r#"status eq "ACTIVE"#).reason,
            "unterminated string literal"
        );
        assert_eq!(
            rejected(r#"status eq "A\"#).reason,
            "unterminated string literal"
        );
        assert_eq!(
            rejected(r#"(status eq "A""#).reason,
            "missing ')' for '(' at byte 0"
        );
        assert_eq!(rejected(r#"status eq "A")"#).reason, "unbalanced ')'");
        assert_eq!(rejected(r#"status eq "A"&limit=1"#).position, 13);
        assert_eq!(rejected(r#"status eq "A"?x=1"#).position, 13);
        assert_eq!(
            rejected(r#"status like "A""#).reason,
            "unknown operator 'like'"
        );
        assert_eq!(rejected(r#"status eq ACTIVE"#).position, 10);
        assert_eq!(
            rejected(r#"status eq "A" and"#).reason,
            "expected an attribute name or '(', found the end"
        );
        assert_eq!(rejected(r#"status eq "A" status eq "B""#).position, 14);
        assert_eq!(rejected(r#"1status eq "A""#).position, 0);
        assert_eq!(
            rejected(r#"profile..login eq "A""#).reason,
            "invalid attribute name 'profile..login'"
        );
        assert_eq!(rejected(r#"profile._x eq "A""#).position, 0);
        assert_eq!(rejected(r#"and eq "A""#).position, 0);
        assert_eq!(
            rejected("eq pr"),
            error_at(0, "expected an attribute name or '(', found 'eq'")
        );
        assert_eq!(rejected(r#"(PR eq "A")"#).position, 1);
        assert!(
            rejected(r#"id eq "a\qb""#)
                .reason
                .starts_with("invalid string literal")
        );
        assert!(
            rejected("id eq \"a\u{1}\"")
                .reason
                .starts_with("invalid string literal")
        );
        assert_eq!(
            rejected("id eq \"a\u{7f}\""),
            error_at(
                8,
                "raw control character in a string literal; escape it as \\u00XX"
            )
        );
        assert_eq!(rejected("id eq \"\u{85}\"").position, 7);
        assert_eq!(rejected(r#"id eq 1.2.3"#).reason, "invalid number '1.2.3'");
        assert_eq!(rejected(r#"id eq "é" or é eq "x""#).position, 14);
        assert_eq!(rejected("id pr; drop").position, 5);
        assert_eq!(rejected("()").position, 1);
    }

    #[test]
    fn parse_never_panics_on_any_prefix_or_suffix_of_tricky_input() {
        let tricky = r#"(profile.nämé eq "a\"\u00e9\\" and (x pr or y ge -1.5e3)) or z eq "é\"#;
        for (index, _) in tricky.char_indices().chain([(tricky.len(), ' ')]) {
            let _ = Expression::parse(&tricky[..index]);
            let _ = Expression::parse(&tricky[index..]);
        }
        for raw in [
            "\"", "\"\\", "\"\\é", "-", "--1", "1e", "(((", ")))", "\u{0}", "a.", ".a", "a eq",
        ] {
            assert!(Expression::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn parse_enforces_size_and_depth_limits() {
        let deep_ok = format!("{}id pr{}", "(".repeat(16), ")".repeat(16));
        assert!(Expression::parse(&deep_ok).is_ok());
        let too_deep = format!("{}id pr{}", "(".repeat(17), ")".repeat(17));
        assert_eq!(
            rejected(&too_deep),
            error_at(16, "parentheses nested deeper than 16")
        );
        let long = format!(r#"id eq "{}""#, "a".repeat(2048));
        assert_eq!(rejected(&long).position, 2048);
    }
}
