//! SCIM 2.0 filter parsing and evaluation (RFC 7644 §3.4.2.2).
//!
//! A gateway in front of Okta receives `filter=` expressions from SCIM and
//! gRPC callers. This module turns that text into a small [`Filter`] tree
//! ([`parse`]), prints the tree back as a canonical filter (`Display`), and
//! evaluates it against a SCIM resource given as JSON ([`Filter::matches`]).
//!
//! It is hand-written on purpose: the grammar (Figure 1 of RFC 7644) is a
//! few lines of ABNF, there is no maintained crate for it, and the input comes
//! straight from callers, so every cost must be bounded. The parser refuses
//! text longer than [`MAX_FILTER_BYTES`], nesting deeper than [`MAX_DEPTH`]
//! (parentheses, `not ( … )` and value paths `attr[ … ]` each count one
//! level) and more than [`MAX_COMPARISONS`] attribute expressions. Recursion
//! happens only when entering one of those nesting levels, and the tree it
//! builds is at most `MAX_DEPTH + MAX_COMPARISONS` deep, so printing and
//! evaluating a parsed filter are bounded too. Nothing indexes or unwraps
//! caller data: all slicing goes through `str::get` or happens at ASCII
//! delimiters.
//!
//! Choices where the RFC is loose:
//! - Whitespace between tokens may be any run of spaces, tabs, CR or LF, and
//!   may be left out where the tokens are still unambiguous (`eq"x"`).
//! - Keywords (`and`, `or`, `not`, operators, `true`, `false`, `null`) are
//!   case-insensitive, as ABNF literals are. Words in those spots keep their
//!   role as attribute names elsewhere (`not eq "x"` compares an attribute
//!   called `not`).
//! - Value paths cannot be nested, and `attr[…].sub` is refused: the filter
//!   grammar has no such form (it belongs to PATCH paths, RFC 7644 §3.5.2).
//! - `eq null` matches an attribute that is absent or null, and `ne null`
//!   one that has a non-null value (RFC 7643 §2.5: null means unassigned).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use serde_json::Value as Json;

/// Longest filter text [`parse`] accepts, in bytes, so that a caller cannot
/// make the gateway scan an arbitrarily large string.
pub const MAX_FILTER_BYTES: usize = 4096;

/// Deepest nesting [`parse`] accepts; parentheses, `not ( … )` and value
/// paths each count one level. Bounds the parser's recursion.
pub const MAX_DEPTH: usize = 16;

/// Most attribute expressions (comparisons and `pr`) one filter may hold, so
/// evaluating it against each resource stays cheap.
pub const MAX_COMPARISONS: usize = 64;

/// Longest piece of caller text quoted back in an error message, in chars.
const SNIPPET_CHARS: usize = 40;

/// Schema URN prefix of the SCIM core schemas, whose attributes sit at the
/// top level of a resource rather than inside an extension object.
const CORE_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:";

/// A filter the caller sent could not be parsed; the `Display` text is meant
/// for the `detail` of a SCIM `invalidFilter` error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {position}")]
pub struct FilterError {
    /// What was wrong, naming the offending piece of the filter (quoted
    /// fragments are cut to about 40 characters).
    pub message: String,
    /// Byte offset into the filter text where the problem was found.
    pub position: usize,
}

/// A parsed filter expression: the tree [`parse`] builds and
/// [`Filter::matches`] evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`: compares an attribute with a literal.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The comparison operator.
        op: CompareOp,
        /// The literal compared against.
        value: Value,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `left and right`: both operands match.
    And(Box<Filter>, Box<Filter>),
    /// `left or right`: either operand matches.
    Or(Box<Filter>, Box<Filter>),
    /// `not ( inner )`: the inner filter does not match.
    Not(Box<Filter>),
    /// `path[ filter ]`: some element of a multi-valued complex attribute
    /// matches `filter`, whose paths name that element's sub-attributes.
    ValuePath {
        /// The (usually multi-valued, complex) attribute whose elements are
        /// tested.
        path: AttrPath,
        /// The filter each element is tested against.
        filter: Box<Filter>,
    },
}

/// An attribute reference `[schemaURN ":"] name ["." sub]`, spelled as the
/// caller wrote it; compare with [`AttrPath::matches_name`], which ignores
/// case as SCIM requires.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// Schema URN prefix, e.g.
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`.
    pub schema: Option<String>,
    /// Attribute name, e.g. `emails`.
    pub name: String,
    /// Sub-attribute name, e.g. `value` in `emails.value`.
    pub sub: Option<String>,
}

/// The attribute operators of RFC 7644 Table 3, other than `pr` (which takes
/// no value and is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal (also true when the attribute is absent).
    Ne,
    /// `co`: the string contains the value.
    Co,
    /// `sw`: the string starts with the value.
    Sw,
    /// `ew`: the string ends with the value.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

/// A literal on the right of a comparison (`compValue` in RFC 7644): the
/// JSON scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A JSON string, escapes already decoded.
    String(String),
    /// A JSON number.
    Number(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Parses a SCIM filter (RFC 7644 §3.4.2.2), refusing anything outside the
/// grammar or beyond the limits [`MAX_FILTER_BYTES`], [`MAX_DEPTH`] and
/// [`MAX_COMPARISONS`].
///
/// # Errors
///
/// Returns a [`FilterError`] naming the problem and its byte position.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(FilterError {
            message: format!(
                "filter is {} bytes long; at most {MAX_FILTER_BYTES} are allowed",
                text.len()
            ),
            position: MAX_FILTER_BYTES,
        });
    }
    let mut parser = Parser::new(text);
    let filter = parser.parse_or()?;
    parser.skip_ws();
    if parser.peek().is_some() {
        return Err(parser.unexpected_after_expression());
    }
    Ok(filter)
}

impl AttrPath {
    /// Tells whether this path names `schema:name.sub`, ignoring case. A path
    /// written without a schema matches whatever `schema` is given; a path
    /// written with one matches only that schema. `sub` must agree exactly
    /// in presence (`emails` is not `emails.value`).
    pub fn matches_name(&self, schema: Option<&str>, name: &str, sub: Option<&str>) -> bool {
        let schema_ok = match (&self.schema, schema) {
            (None, _) => true,
            (Some(own), Some(given)) => own.eq_ignore_ascii_case(given),
            (Some(_), None) => false,
        };
        let sub_ok = match (&self.sub, sub) {
            (None, None) => true,
            (Some(own), Some(given)) => own.eq_ignore_ascii_case(given),
            _ => false,
        };
        schema_ok && sub_ok && self.name.eq_ignore_ascii_case(name)
    }
}

impl CompareOp {
    /// The operator's keyword in canonical (lowercase) spelling.
    fn keyword(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    /// Whether `ordering` (attribute value against literal) satisfies this
    /// operator; the substring operators never hold on an ordering.
    fn holds_for(self, ordering: Ordering) -> bool {
        match self {
            Self::Eq => ordering == Ordering::Equal,
            Self::Ne => ordering != Ordering::Equal,
            Self::Gt => ordering == Ordering::Greater,
            Self::Ge => ordering != Ordering::Less,
            Self::Lt => ordering == Ordering::Less,
            Self::Le => ordering != Ordering::Greater,
            Self::Co | Self::Sw | Self::Ew => false,
        }
    }
}

/// What a word in operator position turned out to be.
enum OperatorWord {
    /// `pr`.
    Present,
    /// One of the comparison operators.
    Compare(CompareOp),
}

/// Reads an operator keyword, ignoring case.
fn operator_word(word: &str) -> Option<OperatorWord> {
    const OPS: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];
    if word.eq_ignore_ascii_case("pr") {
        return Some(OperatorWord::Present);
    }
    OPS.into_iter()
        .find(|op| word.eq_ignore_ascii_case(op.keyword()))
        .map(OperatorWord::Compare)
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Whitespace allowed between tokens.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Characters of a "word": attribute paths (with URN prefixes), keywords and
/// the literals `true`, `false`, `null`.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-')
}

/// Characters a JSON number is scanned over before being validated.
fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`.
fn is_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Caller text fit to quote in a message: at most [`SNIPPET_CHARS`] chars,
/// control characters escaped.
fn snippet(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SNIPPET_CHARS)
        .flat_map(|c| {
            let shown: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            shown
        })
        .collect();
    if text.chars().nth(SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Splits a path word into schema, name and sub-attribute, checking each
/// part; the error is a message without position.
fn split_attr_path(word: &str) -> Result<AttrPath, String> {
    let (schema, local) = match word.rsplit_once(':') {
        Some((schema, local)) => (Some(schema), local),
        None => (None, word),
    };
    if let Some(schema) = schema
        && !schema
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
    {
        return Err(format!(
            "schema URN in attribute path `{}` must start with a letter",
            snippet(word)
        ));
    }
    let (name, sub) = match local.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (local, None),
    };
    let parts_ok = is_attr_name(name) && sub.is_none_or(is_attr_name);
    if !parts_ok {
        return Err(format!(
            "invalid attribute path `{}`; expected [schemaURN:]name[.subAttribute] with names \
             made of letters, digits, `-` and `_`, starting with a letter",
            snippet(word)
        ));
    }
    Ok(AttrPath {
        schema: schema.map(str::to_owned),
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

/// Recursive-descent parser state over the filter text.
struct Parser<'a> {
    /// The whole filter.
    text: &'a str,
    /// Byte offset of the next unread char; always on a char boundary.
    pos: usize,
    /// Nesting levels currently open.
    depth: usize,
    /// Attribute expressions read so far.
    comparisons: usize,
    /// Whether we are inside `attr[ … ]`, where value paths may not nest.
    in_value_filter: bool,
}

impl<'a> Parser<'a> {
    /// A parser at the start of `text`.
    fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
            comparisons: 0,
            in_value_filter: false,
        }
    }

    /// The unread text.
    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    /// The next unread char.
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Consumes `c`, which must be the char [`Parser::peek`] returned.
    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    /// Skips whitespace; tells whether there was any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| is_ws(c)) {
            self.bump(c);
        }
        self.pos > start
    }

    /// The word starting at the current position (possibly empty).
    fn word_here(&self) -> &'a str {
        let rest = self.rest();
        let end = rest.find(|c| !is_word_char(c)).unwrap_or(rest.len());
        rest.get(..end).unwrap_or("")
    }

    /// Consumes and returns the word at the current position.
    fn take_word(&mut self) -> &'a str {
        let word = self.word_here();
        self.pos += word.len();
        word
    }

    /// An error at byte `position`.
    fn error(&self, position: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            message: message.into(),
            position,
        }
    }

    /// Describes what is at the current position, for "found …" messages.
    fn found(&self) -> String {
        let token = self.rest().split(is_ws).next().unwrap_or("");
        if token.is_empty() {
            "end of filter".to_owned()
        } else {
            format!("`{}`", snippet(token))
        }
    }

    /// The error for text left over after a complete expression.
    fn unexpected_after_expression(&self) -> FilterError {
        let message = match self.peek() {
            Some(')') => "unbalanced `)` with no `(` to close".to_owned(),
            Some(']') => "unbalanced `]` with no `[` to close".to_owned(),
            _ => format!(
                "unexpected {}; expected `and`, `or` or the end of the filter",
                self.found()
            ),
        };
        self.error(self.pos, message)
    }

    /// Opens a nesting level whose opening token is at `at`.
    fn enter(&mut self, at: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                at,
                format!(
                    "filter nests deeper than {MAX_DEPTH} levels of parentheses, `not` and \
                     value paths"
                ),
            ));
        }
        Ok(())
    }

    /// Closes the level opened at `open` by `closer` (`)` or `]`), which
    /// must come next after optional whitespace.
    fn close(&mut self, closer: char, open: usize) -> Result<(), FilterError> {
        self.skip_ws();
        let opener = if closer == ']' { '[' } else { '(' };
        match self.peek() {
            Some(c) if c == closer => {
                self.bump(c);
                self.depth = self.depth.saturating_sub(1);
                Ok(())
            }
            None => Err(self.error(
                self.pos,
                format!("the `{opener}` at byte {open} is never closed; missing `{closer}`"),
            )),
            Some(_) => Err(self.error(
                self.pos,
                format!(
                    "expected `{closer}` (closing the `{opener}` at byte {open}), `and` or \
                     `or`, found {}",
                    self.found()
                ),
            )),
        }
    }

    /// Counts one attribute expression starting at `at` against the limit.
    fn count_comparison(&mut self, at: usize) -> Result<(), FilterError> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(self.error(
                at,
                format!("filter has more than {MAX_COMPARISONS} comparisons"),
            ));
        }
        Ok(())
    }

    /// Consumes the logical keyword `keyword` (after optional whitespace) if
    /// it is next.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let saved = self.pos;
        self.skip_ws();
        if self.word_here().eq_ignore_ascii_case(keyword) {
            self.pos += keyword.len();
            true
        } else {
            self.pos = saved;
            false
        }
    }

    /// `or`-expression: and-expressions joined by `or`, left-associative.
    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_and()?;
        while self.eat_keyword("or") {
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `and`-expression: unary expressions joined by `and`, left-associative.
    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary()?;
        while self.eat_keyword("and") {
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// A group `( … )`, `not ( … )`, or an attribute expression.
    fn parse_unary(&mut self) -> Result<Filter, FilterError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('(') => self.parse_group(),
            Some(c) if c.is_ascii_alphabetic() => {
                if self.word_here().eq_ignore_ascii_case("not") {
                    self.parse_not_or_attribute()
                } else {
                    self.parse_attr_expr()
                }
            }
            _ => Err(self.error(
                start,
                format!(
                    "expected an attribute path, `(` or `not (`, found {}",
                    self.found()
                ),
            )),
        }
    }

    /// `( filter )`, with the `(` next.
    fn parse_group(&mut self) -> Result<Filter, FilterError> {
        let open = self.pos;
        self.bump('(');
        self.enter(open)?;
        let inner = self.parse_or()?;
        self.close(')', open)?;
        Ok(inner)
    }

    /// The word `not` is next: either `not ( filter )`, or an attribute that
    /// happens to be called `not` (followed by an operator or `[`).
    fn parse_not_or_attribute(&mut self) -> Result<Filter, FilterError> {
        let start = self.pos;
        self.pos += "not".len();
        self.skip_ws();
        let attribute_follows = self.peek() == Some('[')
            || (self.pos > start + "not".len() && operator_word(self.word_here()).is_some());
        if self.peek() == Some('(') {
            let inner = self.parse_group()?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if attribute_follows {
            self.pos = start;
            return self.parse_attr_expr();
        }
        Err(self.error(
            self.pos,
            format!("expected `(` after `not`, found {}", self.found()),
        ))
    }

    /// `attrPath pr`, `attrPath op value` or `attrPath [ valFilter ]`.
    fn parse_attr_expr(&mut self) -> Result<Filter, FilterError> {
        let start = self.pos;
        let word = self.take_word();
        let path = split_attr_path(word).map_err(|message| self.error(start, message))?;
        if self.peek() == Some('[') {
            return self.parse_value_path(path);
        }
        self.count_comparison(start)?;
        self.skip_ws();
        let op_pos = self.pos;
        let op_word = self.take_word();
        match operator_word(op_word) {
            Some(OperatorWord::Present) => {
                self.refuse_value_after_pr()?;
                Ok(Filter::Present(path))
            }
            Some(OperatorWord::Compare(op)) => {
                let value = self.parse_value(op)?;
                Ok(Filter::Compare { path, op, value })
            }
            None if op_word.is_empty() => Err(self.error(
                op_pos,
                format!(
                    "expected a comparison operator after `{}`, found {}",
                    snippet(word),
                    self.found()
                ),
            )),
            None => Err(self.error(
                op_pos,
                format!(
                    "unknown operator `{}` after `{}`; expected eq, ne, co, sw, ew, gt, ge, \
                     lt, le or pr",
                    snippet(op_word),
                    snippet(word)
                ),
            )),
        }
    }

    /// After `pr`, refuses a literal that a caller may have added by mistake.
    fn refuse_value_after_pr(&mut self) -> Result<(), FilterError> {
        let saved = self.pos;
        self.skip_ws();
        let word = self.word_here();
        let value_next = matches!(self.peek(), Some(c) if c == '"' || c == '-' || c.is_ascii_digit())
            || ["true", "false", "null"]
                .iter()
                .any(|literal| word.eq_ignore_ascii_case(literal));
        if value_next {
            return Err(self.error(
                self.pos,
                format!("`pr` takes no value, found {}", self.found()),
            ));
        }
        self.pos = saved;
        Ok(())
    }

    /// `attrPath [ valFilter ]`, with the `[` next.
    fn parse_value_path(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let open = self.pos;
        if self.in_value_filter {
            return Err(self.error(open, "value paths cannot be nested inside `[ ]`"));
        }
        self.bump('[');
        self.enter(open)?;
        self.in_value_filter = true;
        let inner = self.parse_or();
        self.in_value_filter = false;
        let inner = inner?;
        self.close(']', open)?;
        if self.peek() == Some('.') {
            return Err(self.error(
                self.pos,
                "a value path cannot be followed by `.subAttribute` in a filter \
                 (that form exists only in PATCH paths)",
            ));
        }
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(inner),
        })
    }

    /// The literal after comparison operator `op`.
    fn parse_value(&mut self, op: CompareOp) -> Result<Value, FilterError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(self.error(start, format!("missing value after `{}`", op.keyword()))),
            Some('"') => self.parse_string().map(Value::String),
            Some(c) if c == '-' || c.is_ascii_digit() => self.parse_number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let word = self.take_word();
                match word.to_ascii_lowercase().as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(self.bad_value(start, op, &format!("`{}`", snippet(word)))),
                }
            }
            Some(_) => Err(self.bad_value(start, op, &self.found())),
        }
    }

    /// The error for something other than a literal after `op`.
    fn bad_value(&self, at: usize, op: CompareOp, found: &str) -> FilterError {
        self.error(
            at,
            format!(
                "expected a value (a JSON string, number, true, false or null) after `{}`, \
                 found {found}",
                op.keyword()
            ),
        )
    }

    /// A JSON number, validated by `serde_json`.
    fn parse_number(&mut self) -> Result<Value, FilterError> {
        let start = self.pos;
        let rest = self.rest();
        let end = rest.find(|c| !is_number_char(c)).unwrap_or(rest.len());
        let text = rest.get(..end).unwrap_or("");
        self.pos += text.len();
        serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .map_err(|_| {
                self.error(
                    start,
                    format!("invalid or out-of-range JSON number `{}`", snippet(text)),
                )
            })
    }

    /// A JSON string literal, with the opening `"` next.
    fn parse_string(&mut self) -> Result<String, FilterError> {
        let open = self.pos;
        self.bump('"');
        let mut out = String::new();
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.error(open, "unterminated string starting"));
            };
            self.bump(c);
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.parse_escape(at)?),
                c if c < '\u{20}' => {
                    return Err(self.error(
                        at,
                        format!(
                            "raw control character U+{:04X} in string; write it as \\u{:04X}",
                            u32::from(c),
                            u32::from(c)
                        ),
                    ));
                }
                c => out.push(c),
            }
        }
    }

    /// The rest of an escape whose `\` was at byte `at`.
    fn parse_escape(&mut self, at: usize) -> Result<char, FilterError> {
        let Some(c) = self.peek() else {
            return Err(self.error(at, "unterminated escape in string"));
        };
        self.bump(c);
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => return self.parse_unicode_escape(at),
            other => {
                return Err(self.error(
                    at,
                    format!("invalid escape `\\{}` in string", other.escape_debug()),
                ));
            }
        })
    }

    /// The `XXXX` of `\uXXXX` (and a following low surrogate escape when the
    /// first is a high surrogate); the `\` was at byte `at`.
    fn parse_unicode_escape(&mut self, at: usize) -> Result<char, FilterError> {
        let high = self.read_hex4(at)?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.rest().starts_with("\\u") {
                    return Err(self.unpaired_surrogate(at, high));
                }
                self.pos += 2;
                let low = self.read_hex4(at)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.unpaired_surrogate(at, high));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.unpaired_surrogate(at, high)),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.unpaired_surrogate(at, high))
    }

    /// The error for a surrogate escape without its partner.
    fn unpaired_surrogate(&self, at: usize, unit: u32) -> FilterError {
        self.error(at, format!("unpaired surrogate \\u{unit:04X} in string"))
    }

    /// Four hex digits of a `\u` escape that started at byte `at`.
    fn read_hex4(&mut self, at: usize) -> Result<u32, FilterError> {
        let digits = self
            .rest()
            .get(..4)
            .filter(|d| d.chars().all(|c| c.is_ascii_hexdigit()));
        let value = digits.and_then(|d| u32::from_str_radix(d, 16).ok());
        let Some(value) = value else {
            return Err(self.error(at, "`\\u` in string must be followed by 4 hex digits"));
        };
        self.pos += 4;
        Ok(value)
    }
}

// ---------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(text) => write_json_string(f, text),
            Self::Number(number) => write!(f, "{number}"),
            Self::Bool(flag) => write!(f, "{flag}"),
            Self::Null => f.write_str("null"),
        }
    }
}

/// Writes `text` as a JSON string literal.
fn write_json_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if c < '\u{20}' => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Writes one operand of `and`/`or`, in parentheses when `grouped`.
fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, grouped: bool) -> fmt::Result {
    if grouped {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

/// Prints a canonical filter: lowercase keywords, single spaces, JSON-escaped
/// strings, and parentheses exactly where the tree differs from what
/// precedence (`and` over `or`) and left-associativity give. Printing only
/// the parentheses the parser needed keeps the nesting depth of the output
/// no deeper than the input's, so `parse(&f.to_string()) == Ok(f)` holds for
/// every parsed filter, even at the depth limit.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Self::Present(path) => write!(f, "{path} pr"),
            Self::And(left, right) => {
                write_operand(f, left, matches!(**left, Self::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(f, right, matches!(**right, Self::And(..) | Self::Or(..)))
            }
            Self::Or(left, right) => {
                write_operand(f, left, false)?;
                f.write_str(" or ")?;
                write_operand(f, right, matches!(**right, Self::Or(..)))
            }
            Self::Not(inner) => write!(f, "not ({inner})"),
            Self::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

impl Filter {
    /// Tells whether `resource` (a SCIM resource as JSON) matches this
    /// filter, following RFC 7644: attribute names ignore case; a path with a
    /// schema URN looks inside the extension object keyed by that URN (core
    /// schema URNs look at the top level); a multi-valued attribute matches
    /// when any element does, and `attr` without a sub-attribute on complex
    /// elements compares their `value`; strings compare ignoring case unless
    /// `case_exact(path)` is true, where `path` is the full path (inside a
    /// value path `emails[type eq "x"]` it is `emails.type`).
    pub fn matches(&self, resource: &Json, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        self.eval(resource, None, case_exact)
    }

    /// Evaluates against `node`, which is an element of the value path
    /// `parent` when there is one.
    fn eval(
        &self,
        node: &Json,
        parent: Option<&AttrPath>,
        case_exact: &dyn Fn(&AttrPath) -> bool,
    ) -> bool {
        match self {
            Self::Compare { path, op, value } => {
                let exact = matches!(value, Value::String(_)) && case_exact(&qualify(parent, path));
                compare_attribute(node, path, *op, value, exact)
            }
            Self::Present(path) => raw_values(node, path).into_iter().any(is_present),
            Self::And(left, right) => {
                left.eval(node, parent, case_exact) && right.eval(node, parent, case_exact)
            }
            Self::Or(left, right) => {
                left.eval(node, parent, case_exact) || right.eval(node, parent, case_exact)
            }
            Self::Not(inner) => !inner.eval(node, parent, case_exact),
            Self::ValuePath { path, filter } => elements(node, path)
                .into_iter()
                .any(|element| filter.eval(element, Some(path), case_exact)),
        }
    }
}

/// The full path of `path` as seen from the resource: inside the value path
/// `parent`, `type` becomes `parent.type`.
fn qualify<'p>(parent: Option<&AttrPath>, path: &'p AttrPath) -> Cow<'p, AttrPath> {
    match parent {
        Some(parent) if parent.sub.is_none() && path.schema.is_none() && path.sub.is_none() => {
            Cow::Owned(AttrPath {
                schema: parent.schema.clone(),
                name: parent.name.clone(),
                sub: Some(path.name.clone()),
            })
        }
        _ => Cow::Borrowed(path),
    }
}

/// Member `name` of a JSON object, ignoring case (an exact match wins).
fn member<'a>(node: &'a Json, name: &str) -> Option<&'a Json> {
    let object = node.as_object()?;
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// The object a path's name is looked up in: the extension object keyed by
/// its schema URN, else `node` itself for a core schema or one the resource
/// lists in `schemas`, else nothing.
fn schema_base<'a>(node: &'a Json, schema: Option<&str>) -> Option<&'a Json> {
    let Some(urn) = schema else {
        return Some(node);
    };
    if let Some(extension) = member(node, urn) {
        return Some(extension);
    }
    let is_core = urn
        .get(..CORE_SCHEMA_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(CORE_SCHEMA_PREFIX));
    let listed = member(node, "schemas")
        .and_then(Json::as_array)
        .is_some_and(|schemas| {
            schemas
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        });
    (is_core || listed).then_some(node)
}

/// The values `path` names in `node`, before multi-valued attributes are
/// spread: the attribute itself, or its sub-attribute in each element.
fn raw_values<'a>(node: &'a Json, path: &AttrPath) -> Vec<&'a Json> {
    let Some(top) = schema_base(node, path.schema.as_deref()).and_then(|b| member(b, &path.name))
    else {
        return Vec::new();
    };
    match (&path.sub, top) {
        (None, _) => vec![top],
        (Some(sub), Json::Array(items)) => items.iter().filter_map(|i| member(i, sub)).collect(),
        (Some(sub), single) => member(single, sub).into_iter().collect(),
    }
}

/// The scalar values a comparison on `path` looks at: multi-valued
/// attributes are spread, and complex elements stand for their `value`
/// sub-attribute when the path names no sub-attribute. Nulls are dropped
/// (null means unassigned).
fn comparable_values<'a>(node: &'a Json, path: &AttrPath) -> Vec<&'a Json> {
    let mut out = Vec::new();
    for value in raw_values(node, path) {
        match value {
            Json::Array(items) if path.sub.is_none() => {
                out.extend(items.iter().filter_map(|item| match item {
                    Json::Object(_) => member(item, "value"),
                    scalar => Some(scalar),
                }));
            }
            Json::Array(items) => out.extend(items),
            single => out.push(single),
        }
    }
    out.retain(|value| !value.is_null());
    out
}

/// The elements a value path tests: the items of a multi-valued attribute,
/// or a single complex value itself.
fn elements<'a>(node: &'a Json, path: &AttrPath) -> Vec<&'a Json> {
    let mut out = Vec::new();
    for value in raw_values(node, path) {
        match value {
            Json::Array(items) => out.extend(items),
            Json::Object(_) => out.push(value),
            _ => {}
        }
    }
    out
}

/// `pr`: a value that is not null, not `""`, not `[]`/`{}`; an array is
/// present when one of its items is.
fn is_present(value: &Json) -> bool {
    match value {
        Json::Array(items) => items.iter().any(is_non_empty),
        other => is_non_empty(other),
    }
}

/// One value is neither null nor an empty string, array or object.
fn is_non_empty(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::String(text) => !text.is_empty(),
        Json::Array(items) => !items.is_empty(),
        Json::Object(members) => !members.is_empty(),
        Json::Bool(_) | Json::Number(_) => true,
    }
}

/// `path op literal` against `node`: any value matching is enough, `ne`
/// holds on an absent attribute, and `null` literals test for absence.
fn compare_attribute(
    node: &Json,
    path: &AttrPath,
    op: CompareOp,
    literal: &Value,
    exact: bool,
) -> bool {
    let values = comparable_values(node, path);
    match (literal, op) {
        (Value::Null, CompareOp::Eq) => values.is_empty(),
        (Value::Null, CompareOp::Ne) => !values.is_empty(),
        (Value::Null, _) => false,
        _ if values.is_empty() => op == CompareOp::Ne,
        _ => values
            .into_iter()
            .any(|value| compare_value(value, op, literal, exact)),
    }
}

/// One JSON value against a literal; values of different types are only
/// ever `ne`.
fn compare_value(value: &Json, op: CompareOp, literal: &Value, exact: bool) -> bool {
    match (value, literal) {
        (Json::String(text), Value::String(wanted)) => compare_strings(text, wanted, op, exact),
        (Json::Number(number), Value::Number(wanted)) => {
            compare_numbers(number, wanted).is_some_and(|ordering| op.holds_for(ordering))
        }
        (Json::Bool(flag), Value::Bool(wanted)) => match op {
            CompareOp::Eq => flag == wanted,
            CompareOp::Ne => flag != wanted,
            _ => false,
        },
        _ => op == CompareOp::Ne,
    }
}

/// Strings: substring operators, or lexicographic order (which sorts ISO
/// 8601 timestamps correctly); case folded unless `exact`.
fn compare_strings(text: &str, wanted: &str, op: CompareOp, exact: bool) -> bool {
    let (text, wanted): (Cow<'_, str>, Cow<'_, str>) = if exact {
        (Cow::Borrowed(text), Cow::Borrowed(wanted))
    } else {
        (
            Cow::Owned(text.to_lowercase()),
            Cow::Owned(wanted.to_lowercase()),
        )
    };
    match op {
        CompareOp::Co => text.contains(&*wanted),
        CompareOp::Sw => text.starts_with(&*wanted),
        CompareOp::Ew => text.ends_with(&*wanted),
        _ => op.holds_for(text.cmp(&wanted)),
    }
}

/// Numeric order: exactly for integers, as `f64` otherwise.
fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (integer(a), integer(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// A JSON number as an integer, when it is one.
fn integer(number: &serde_json::Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn path(name: &str) -> AttrPath {
        AttrPath {
            schema: None,
            name: name.to_owned(),
            sub: None,
        }
    }

    fn present(name: &str) -> Filter {
        Filter::Present(path(name))
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn parsed(text: &str) -> Filter {
        match parse(text) {
            Ok(filter) => filter,
            Err(error) => panic!("{text:?} did not parse: {error}"),
        }
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(filter) => panic!("{text:?} parsed as {filter:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn round_trips(text: &str) {
        let filter = parsed(text);
        let printed = filter.to_string();
        assert_eq!(
            parse(&printed),
            Ok(filter.clone()),
            "{text:?} printed as {printed:?}"
        );
        assert_eq!(
            parsed(&printed).to_string(),
            printed,
            "printing is not stable"
        );
    }

    fn never_exact(_: &AttrPath) -> bool {
        false
    }

    fn user() -> Json {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "id": "2819c223",
            "userName": "BJensen",
            "name": { "familyName": "O'Malley", "givenName": "Barbara" },
            "title": "",
            "active": true,
            "loginCount": 42,
            "emails": [
                { "type": "work", "value": "bjensen@Example.com", "primary": true },
                { "type": "home", "value": "babs@jensen.org" }
            ],
            "phoneNumbers": [],
            "nickName": null,
            "meta": { "lastModified": "2011-05-13T04:42:34Z" },
            ENTERPRISE: {
                "employeeNumber": "701984",
                "manager": { "value": "26118915", "displayName": "John Smith" }
            }
        })
    }

    fn matches(text: &str) -> bool {
        parsed(text).matches(&user(), &never_exact)
    }

    #[test]
    fn every_operator_parses_case_insensitively() {
        let ops = [
            ("eq", CompareOp::Eq),
            ("NE", CompareOp::Ne),
            ("Co", CompareOp::Co),
            ("sW", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("GT", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("Le", CompareOp::Le),
        ];
        for (word, op) in ops {
            let expected = Filter::Compare {
                path: path("userName"),
                op,
                value: Value::String("x".to_owned()),
            };
            assert_eq!(parse(&format!("userName {word} \"x\"")), Ok(expected));
        }
        assert_eq!(parse("title PR"), Ok(present("title")));
    }

    #[test]
    fn literals_parse() {
        let value = |text: &str| match parsed(&format!("a eq {text}")) {
            Filter::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("true"), Value::Bool(true));
        assert_eq!(value("FALSE"), Value::Bool(false));
        assert_eq!(value("null"), Value::Null);
        assert_eq!(value("42"), Value::Number(42.into()));
        assert_eq!(value("-7"), Value::Number((-7).into()));
        assert_eq!(value("-2.5e3").to_string(), "-2500.0");
        assert!(error("a eq 01").contains("invalid or out-of-range JSON number `01`"));
        assert!(error("a eq 1e400").contains("`1e400`"));
        assert!(error("a eq 1.").contains("`1.`"));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let (a, b, c) = (present("a"), present("b"), present("c"));
        assert_eq!(
            parse("a pr or b pr and c pr"),
            Ok(or(a.clone(), and(b.clone(), c.clone())))
        );
        assert_eq!(
            parse("a pr and b pr or c pr"),
            Ok(or(and(a.clone(), b.clone()), c.clone()))
        );
        assert_eq!(
            parse("a pr and b pr and c pr"),
            Ok(and(and(a.clone(), b.clone()), c.clone()))
        );
        assert_eq!(parse("a pr OR b pr Or c pr"), Ok(or(or(a, b), c)));
    }

    #[test]
    fn grouping_and_not() {
        let (a, b, c) = (present("a"), present("b"), present("c"));
        assert_eq!(
            parse("(a pr or b pr) and c pr"),
            Ok(and(or(a.clone(), b.clone()), c.clone()))
        );
        assert_eq!(parse("((a pr))"), Ok(a.clone()));
        assert_eq!(parse("not (a pr)"), Ok(Filter::Not(Box::new(a.clone()))));
        assert_eq!(
            parse("NOT(a pr or b pr) and c pr"),
            Ok(and(Filter::Not(Box::new(or(a.clone(), b))), c))
        );
        assert_eq!(
            parse("not (not (a pr))"),
            Ok(Filter::Not(Box::new(Filter::Not(Box::new(a)))))
        );
        // Keywords are only keywords where the grammar expects them.
        assert_eq!(parse("not pr"), Ok(present("not")));
        assert_eq!(
            parse("and pr and or pr"),
            Ok(and(present("and"), present("or")))
        );
    }

    #[test]
    fn urn_paths() {
        let employee = parsed(&format!("{ENTERPRISE}:employeeNumber eq \"701984\""));
        let Filter::Compare { path: p, .. } = &employee else {
            panic!("{employee:?}")
        };
        assert_eq!(p.schema.as_deref(), Some(ENTERPRISE));
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("employeeNumber", None)
        );

        let manager = parsed(&format!("{ENTERPRISE}:manager.value eq \"26118915\""));
        let Filter::Compare { path: p, .. } = &manager else {
            panic!("{manager:?}")
        };
        assert_eq!(p.schema.as_deref(), Some(ENTERPRISE));
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        assert!(p.matches_name(Some(&ENTERPRISE.to_uppercase()), "MANAGER", Some("Value")));
        assert!(!p.matches_name(None, "manager", Some("value")));
        assert!(!p.matches_name(Some(ENTERPRISE), "manager", None));
        assert!(path("userName").matches_name(Some("urn:any"), "USERNAME", None));
        assert!(path("userName").matches_name(None, "username", None));

        assert!(error("urn:x:1bad pr").contains("invalid attribute path `urn:x:1bad`"));
        assert!(error("9:a pr").starts_with("expected an attribute path"));
        assert!(error("a.b.c pr").contains("invalid attribute path `a.b.c`"));
        assert!(error("urn:x: pr").contains("invalid attribute path"));
    }

    #[test]
    fn value_paths() {
        let filter = parsed(r#"emails[type eq "work" and value co "@example.com"]"#);
        let Filter::ValuePath {
            path: p,
            filter: inner,
        } = &filter
        else {
            panic!("{filter:?}")
        };
        assert_eq!(p, &path("emails"));
        assert!(matches!(**inner, Filter::And(..)));
        assert_eq!(
            error(r#"emails[type eq "work"].value eq "x""#),
            "a value path cannot be followed by `.subAttribute` in a filter (that form exists \
             only in PATCH paths) at byte 22"
        );
        assert_eq!(
            error("a[b[c pr]]"),
            "value paths cannot be nested inside `[ ]` at byte 3"
        );
        assert_eq!(
            error("emails[type pr"),
            "the `[` at byte 6 is never closed; missing `]` at byte 14"
        );
    }

    #[test]
    fn string_escapes() {
        let value = match parsed(r#"a eq "q\"b\\s\/\b\f\n\r\t\u00e9\uD83D\uDE00é""#) {
            Filter::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            value,
            Value::String("q\"b\\s/\u{8}\u{c}\n\r\té😀é".to_owned())
        );
        assert_eq!(
            error(r#"a eq "\x""#),
            "invalid escape `\\x` in string at byte 6"
        );
        assert_eq!(
            error(r#"a eq "\u12G4""#),
            "`\\u` in string must be followed by 4 hex digits at byte 6"
        );
        assert_eq!(
            error(r#"a eq "\ud83d""#),
            "unpaired surrogate \\uD83D in string at byte 6"
        );
        assert_eq!(
            error(r#"a eq "\ud83d\u0041""#),
            "unpaired surrogate \\uD83D in string at byte 6"
        );
        assert_eq!(
            error(r#"a eq "\ude00""#),
            "unpaired surrogate \\uDE00 in string at byte 6"
        );
        assert_eq!(
            error(r#"a eq "\u+123""#),
            "`\\u` in string must be followed by 4 hex digits at byte 6"
        );
        assert_eq!(
            error("a eq \"\\u00é\""),
            "`\\u` in string must be followed by 4 hex digits at byte 6"
        );
    }

    #[test]
    fn rfc_examples_parse() {
        let examples = [
            r#"userName eq "bjensen""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            // §3.4.2 and §3.4.3 request examples.
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"displayName sw "smi""#,
        ];
        for example in examples {
            round_trips(example);
        }
    }

    #[test]
    fn rejections_name_the_problem_and_position() {
        let cases = [
            (
                "(a pr",
                "the `(` at byte 0 is never closed; missing `)` at byte 5",
            ),
            ("a pr)", "unbalanced `)` with no `(` to close at byte 4"),
            (
                "(a pr]",
                "expected `)` (closing the `(` at byte 0), `and` or `or`, found `]` at byte 5",
            ),
            (
                "userName xx \"x\"",
                "unknown operator `xx` after `userName`; expected eq, ne, co, sw, ew, gt, ge, lt, le or pr at byte 9",
            ),
            (
                "userName ",
                "expected a comparison operator after `userName`, found end of filter at byte 9",
            ),
            ("userName eq", "missing value after `eq` at byte 11"),
            (
                "userName eq )",
                "expected a value (a JSON string, number, true, false or null) after `eq`, found `)` at byte 12",
            ),
            (
                "userName eq bob",
                "expected a value (a JSON string, number, true, false or null) after `eq`, found `bob` at byte 12",
            ),
            (
                "userName eq \"bjensen",
                "unterminated string starting at byte 12",
            ),
            (
                "userName eq \"a\nb\"",
                "raw control character U+000A in string; write it as \\u000A at byte 14",
            ),
            (
                "userName eq \"x\" garbage",
                "unexpected `garbage`; expected `and`, `or` or the end of the filter at byte 16",
            ),
            (
                "title pr \"x\"",
                "`pr` takes no value, found `\"x\"` at byte 9",
            ),
            (
                "title pr true",
                "`pr` takes no value, found `true` at byte 9",
            ),
            (
                "",
                "expected an attribute path, `(` or `not (`, found end of filter at byte 0",
            ),
            (
                "a pr and",
                "expected an attribute path, `(` or `not (`, found end of filter at byte 8",
            ),
            ("not a pr", "expected `(` after `not`, found `a` at byte 4"),
            (
                "a pr andb pr",
                "unexpected `andb`; expected `and`, `or` or the end of the filter at byte 5",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(error(text), message, "for {text:?}");
        }
    }

    #[test]
    fn limits() {
        let deep_ok = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        round_trips(&deep_ok);
        let too_deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            error(&too_deep),
            "filter nests deeper than 16 levels of parentheses, `not` and value paths at byte 16"
        );
        let mixed = format!(
            "{}x[y pr]{}",
            "not (".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        assert!(error(&mixed).starts_with("filter nests deeper than 16"));

        let many = vec!["a pr"; MAX_COMPARISONS].join(" and ");
        round_trips(&many);
        let too_many = vec!["a pr"; MAX_COMPARISONS + 1].join(" or ");
        assert_eq!(
            error(&too_many),
            format!("filter has more than 64 comparisons at byte {}", 64 * 8)
        );

        let long = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_BYTES));
        assert_eq!(
            error(&long),
            "filter is 4103 bytes long; at most 4096 are allowed at byte 4096"
        );
        let fits = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_BYTES - 7));
        round_trips(&fits);
    }

    #[test]
    fn quoted_fragments_are_truncated() {
        let text = format!("a eq 1 {}", "é".repeat(500));
        let message = error(&text);
        assert!(message.chars().count() < 150, "{message}");
        assert!(message.contains(&format!("`{}…`", "é".repeat(SNIPPET_CHARS))));
        assert!(error("a eq 1 \u{7}").contains("`\\u{7}`"));
    }

    #[test]
    fn evaluation() {
        // Case-insensitive names and string values.
        assert!(matches(r#"USERNAME eq "bjensen""#));
        assert!(!parsed(r#"userName eq "bjensen""#).matches(&user(), &|_| true));
        assert!(parsed(r#"userName eq "BJensen""#).matches(&user(), &|_| true));
        assert!(matches(r#"name.familyName co "o'mal""#));
        assert!(matches(r#"userName sw "bj" and userName ew "SEN""#));
        // Ordering: timestamps lexicographically, numbers numerically.
        assert!(matches(r#"meta.lastModified gt "2011-05-13T04:42:33Z""#));
        assert!(matches(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#));
        assert!(!matches(r#"meta.lastModified lt "2011-05-13T04:42:34Z""#));
        assert!(matches(r#"meta.lastModified le "2011-05-13T04:42:34Z""#));
        assert!(matches("loginCount gt 9"));
        assert!(matches("loginCount eq 42.0"));
        assert!(!matches("loginCount lt 41.5"));
        assert!(!matches("loginCount co 4"));
        assert!(!matches("active gt false"));
        assert!(matches("active eq TRUE and active ne false"));
        assert!(!matches(r#"loginCount eq "42""#));
        // Multi-valued: any element; complex elements compare their value.
        assert!(matches(r#"emails co "jensen.org""#));
        assert!(matches(r#"emails.value ew "@example.com""#));
        assert!(matches(r#"emails.type eq "home""#));
        assert!(!matches(r#"emails.type eq "other""#));
        // Extensions by URN; core URNs at the top level.
        assert!(matches(&format!(
            "{ENTERPRISE}:employeeNumber eq \"701984\""
        )));
        assert!(matches(&format!(
            "{}:MANAGER.value eq \"26118915\"",
            ENTERPRISE.to_lowercase()
        )));
        assert!(!matches("urn:other:2.0:User:employeeNumber pr"));
        assert!(!matches("employeeNumber pr"));
        assert!(matches(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B""#
        ));
        assert!(matches(
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#
        ));
        // Value paths.
        assert!(matches(
            r#"emails[type eq "work" and value co "@example.com"]"#
        ));
        assert!(!matches(
            r#"emails[type eq "home" and value co "@example.com"]"#
        ));
        assert!(matches(r#"emails[not (primary eq true)]"#));
        assert!(matches(r#"name[givenName eq "barbara"]"#));
        // ne, null and pr.
        assert!(matches(r#"nickName ne "x""#));
        assert!(matches(r#"missing ne "x""#));
        assert!(!matches(r#"missing eq "x""#));
        assert!(matches("missing eq null and nickName eq null"));
        assert!(matches("userName ne null"));
        assert!(!matches(
            "title pr or nickName pr or phoneNumbers pr or missing pr"
        ));
        assert!(matches(
            "userName pr and emails pr and name pr and emails.type pr"
        ));
        assert!(matches(
            r#"not (userName eq "x") and (title eq "" or userName pr)"#
        ));
    }

    #[test]
    fn case_exact_sees_full_paths() {
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |p: &AttrPath| {
            seen.borrow_mut().push(p.to_string());
            p.matches_name(None, "emails", Some("value"))
        };
        assert!(
            !parsed(r#"emails[type eq "work" and value eq "BJENSEN@example.com"]"#)
                .matches(&user(), &record)
        );
        assert_eq!(
            seen.borrow().as_slice(),
            ["emails.type", "emails.value", "emails.type"]
        );
    }

    #[test]
    fn canonical_printing() {
        let cases = [
            (r#"USERNAME EQ "a\u0001\"b""#, r#"USERNAME eq "a\u0001\"b""#),
            (
                "(a pr or b pr) AND (c pr and d pr)",
                "(a pr or b pr) and (c pr and d pr)",
            ),
            (
                "((a pr and b pr)) or (c pr or d pr)",
                "a pr and b pr or (c pr or d pr)",
            ),
            ("NOT(a eq 1.50)", "not (a eq 1.5)"),
            ("x[ y  eq  false ]", "x[y eq false]"),
        ];
        for (input, canonical) in cases {
            assert_eq!(parsed(input).to_string(), canonical);
        }
    }

    #[test]
    fn round_trip_many() {
        let inputs = [
            "a pr",
            "a eq 1 and b ne -2.5 or c gt 1e10 and not (d le 0)",
            r#"a eq "\u0000\u001f\t\n\\\"/é😀""#,
            "(a pr or b pr) and (c pr or d pr) and e pr",
            "a pr or (b pr or c pr)",
            "a pr and (b pr and c pr)",
            "not (not (a pr or b pr)) and x[y pr or z eq null]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"1\"",
            "urn:a:b[c pr] or urn:a:b.c[d pr]",
            "a eq 18446744073709551615 or a eq -9223372036854775808 or a eq 1e300",
            "a eq 123456789012345678901234567890 or a eq -0 or a eq 0.1",
            "not eq true",
            "\t a \n eq\r\n\"x\" ",
        ];
        for input in inputs {
            round_trips(input);
        }
    }

    /// xorshift64: a deterministic, dependency-free PRNG for the fuzz tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'t>(&mut self, items: &[&'t str]) -> &'t str {
            items[self.below(items.len())]
        }
    }

    const TOKENS: &[&str] = &[
        "userName",
        "emails",
        "emails.value",
        "name.familyName",
        "not",
        "and",
        "or",
        "AND",
        "Or",
        "NOT",
        "eq",
        "ne",
        "co",
        "sw",
        "ew",
        "gt",
        "ge",
        "lt",
        "le",
        "pr",
        "PR",
        "(",
        ")",
        "[",
        "]",
        ".",
        ":",
        "\"x\"",
        "\"a\\\"b\"",
        "\"\\u00e9\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"unterminated",
        "\"\\",
        "1",
        "-2.5e3",
        "01",
        "1e999",
        "true",
        "false",
        "null",
        "é",
        "😀",
        "\u{1}",
        "\"\u{1}\"",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "type",
        "value",
        "-",
        "x",
        "",
    ];

    /// Parses `text`; when it parses, checks the round trip and evaluates it.
    /// Returns 1 when it parsed, for counting.
    fn check_input(text: &str, resource: &Json) -> usize {
        let Ok(filter) = parse(text) else {
            return 0;
        };
        let printed = filter.to_string();
        assert_eq!(
            parse(&printed),
            Ok(filter.clone()),
            "{text:?} printed as {printed:?}"
        );
        filter.matches(resource, &never_exact);
        filter.matches(resource, &|_| true);
        1
    }

    #[test]
    fn fuzz_token_soup() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let resource = user();
        let separators = [" ", "", "  ", "\t"];
        let mut accepted = 0;
        for _ in 0..4000 {
            let mut text = String::new();
            for _ in 0..rng.below(12) + 1 {
                text.push_str(rng.pick(TOKENS));
                text.push_str(rng.pick(&separators));
            }
            accepted += check_input(&text, &resource);
            // Every prefix, cut at char boundaries only, must not panic either.
            for (cut, _) in text.char_indices() {
                accepted += check_input(&text[..cut], &resource);
            }
        }
        assert!(accepted > 200, "only {accepted} inputs parsed");
    }

    /// A random filter that follows the grammar (mostly), `budget` levels deep.
    fn grammatical(rng: &mut XorShift, budget: usize, out: &mut String) {
        let attrs = [
            "userName",
            "emails.value",
            "meta.lastModified",
            "Active",
            "x",
        ];
        let ops = ["eq", "NE", "co", "sw", "ew", "gt", "ge", "lt", "le"];
        let values = [
            "\"bjensen\"",
            "\"2011\"",
            "42",
            "-1.5",
            "true",
            "null",
            "\"\\u00e9\\n\"",
        ];
        match if budget == 0 {
            rng.below(2)
        } else {
            rng.below(7)
        } {
            0 => {
                out.push_str(rng.pick(&attrs));
                out.push_str(" pr");
            }
            1 => {
                out.push_str(&format!(
                    "{} {} {}",
                    rng.pick(&attrs),
                    rng.pick(&ops),
                    rng.pick(&values)
                ));
            }
            2 | 3 => {
                grammatical(rng, budget - 1, out);
                out.push_str(rng.pick(&[" and ", " or ", " AND ", "  Or  "]));
                grammatical(rng, budget - 1, out);
            }
            4 => {
                out.push_str(rng.pick(&["not (", "NOT("]));
                grammatical(rng, budget - 1, out);
                out.push(')');
            }
            5 => {
                out.push('(');
                grammatical(rng, budget - 1, out);
                out.push(')');
            }
            _ => {
                out.push_str("emails[");
                out.push_str(&format!("type {} {}", rng.pick(&ops), rng.pick(&values)));
                out.push(']');
            }
        }
    }

    #[test]
    fn fuzz_grammatical() {
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        let resource = user();
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut text = String::new();
            let budget = 1 + rng.below(6);
            grammatical(&mut rng, budget, &mut text);
            accepted += check_input(&text, &resource);
            // Damage it a little: drop one char.
            if let Some((cut, c)) = text.char_indices().nth(rng.below(text.chars().count())) {
                let damaged = format!("{}{}", &text[..cut], &text[cut + c.len_utf8()..]);
                check_input(&damaged, &resource);
                let swapped = damaged.replace(' ', "(");
                check_input(&swapped, &resource);
            }
        }
        assert!(accepted > 1500, "only {accepted} inputs parsed");
    }
}
