//! Label selectors: parsing (a small lexer and a recursive-descent parser mirroring Kubernetes'
//! `labels.Parse`), matching against a label map, and canonical rendering.
//!
//! Grammar (whitespace between tokens is ignored):
//!
//! ```text
//! selector    ::= "" | requirement ("," requirement)*
//! requirement ::= "!" KEY | KEY [ op VALUE | ("in" | "notin") "(" VALUE ("," VALUE)* ")" ]
//! op          ::= "=" | "==" | "!=" | ">" | "<"
//! ```
//!
//! `in` and `notin` are keywords where an operator is expected and plain words where a value is.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::names::{check_label_key, check_label_value};
use super::SelectorError;

/// How a [`LabelRequirement`] relates its key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOp {
    /// `k=v`: the label exists and equals the value.
    Equals,
    /// `k==v`: same as [`LabelOp::Equals`].
    DoubleEquals,
    /// `k!=v`: the label is absent or differs from the value.
    NotEquals,
    /// `k in (a,b)`: the label exists and is one of the values.
    In,
    /// `k notin (a,b)`: the label is absent or none of the values.
    NotIn,
    /// `k`: the label exists, whatever its value.
    Exists,
    /// `!k`: the label does not exist.
    DoesNotExist,
    /// `k>3`: the label exists, is an integer, and is greater than the value.
    GreaterThan,
    /// `k<3`: the label exists, is an integer, and is less than the value.
    LessThan,
}

/// One comma-separated term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelRequirement {
    key: String,
    op: LabelOp,
    /// Sorted and de-duplicated; one value for the exact-match and comparison operators, none for
    /// `Exists`/`DoesNotExist`.
    values: Vec<String>,
}

impl LabelRequirement {
    /// Builds a requirement, validating the key, the number of values and every value as Kubernetes
    /// does. `reason` in the error explains what is wrong (without the selector text around it).
    pub fn new(key: &str, op: LabelOp, values: Vec<String>) -> Result<Self, String> {
        check_label_key(key)?;
        let mut values = values;
        values.sort();
        values.dedup();
        match op {
            LabelOp::In | LabelOp::NotIn if values.is_empty() => {
                return Err("for 'in', 'notin' operators, values set can't be empty".to_owned())
            }
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::NotEquals if values.len() != 1 => {
                return Err("exact-match compatibility requires one single value".to_owned())
            }
            LabelOp::Exists | LabelOp::DoesNotExist if !values.is_empty() => {
                return Err("values set must be empty for exists and does not exist".to_owned())
            }
            LabelOp::GreaterThan | LabelOp::LessThan => {
                if values.len() != 1 {
                    return Err("for 'Gt', 'Lt' operators, exactly one value is required".to_owned());
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(format!("for 'Gt', 'Lt' operators, the value must be an integer, not {:?}", values[0]));
                }
            }
            _ => {}
        }
        for value in &values {
            check_label_value(key, value)?;
        }
        Ok(LabelRequirement { key: key.to_owned(), op, values })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn op(&self) -> LabelOp {
        self.op
    }

    /// The values, sorted; empty for `Exists` and `DoesNotExist`.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label map satisfies this requirement (Kubernetes semantics: `!=` and `notin`
    /// match maps without the key).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let found = labels.get(&self.key);
        let has = |v: &String| self.values.binary_search(v).is_ok();
        match self.op {
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In => found.is_some_and(has),
            LabelOp::NotEquals | LabelOp::NotIn => !found.is_some_and(has),
            LabelOp::Exists => found.is_some(),
            LabelOp::DoesNotExist => found.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let (Some(actual), Some(bound)) = (found.and_then(|v| v.parse::<i64>().ok()), self.int_value()) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }

    fn int_value(&self) -> Option<i64> {
        self.values.first().and_then(|v| v.parse().ok())
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.op {
            LabelOp::Equals => write!(f, "{}={values}", self.key),
            LabelOp::DoubleEquals => write!(f, "{}=={values}", self.key),
            LabelOp::NotEquals => write!(f, "{}!={values}", self.key),
            LabelOp::In => write!(f, "{} in ({values})", self.key),
            LabelOp::NotIn => write!(f, "{} notin ({values})", self.key),
            LabelOp::Exists => write!(f, "{}", self.key),
            LabelOp::DoesNotExist => write!(f, "!{}", self.key),
            LabelOp::GreaterThan => write!(f, "{}>{values}", self.key),
            LabelOp::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

/// A parsed label selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Sorted by key (stable), as Kubernetes does, so rendering is deterministic.
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses Kubernetes label selector syntax, e.g. `env=prod,tier in (web,api),!canary`.
    pub fn parse(selector: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(selector).map_err(|reason| SelectorError::new(selector, reason))?;
        let mut requirements =
            Parser { tokens, pos: 0 }.parse().map_err(|reason| SelectorError::new(selector, reason))?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Builds a selector from requirements (e.g. an object's `matchLabels`/`matchExpressions`).
    pub fn from_requirements(requirements: impl IntoIterator<Item = LabelRequirement>) -> LabelSelector {
        let mut requirements: Vec<_> = requirements.into_iter().collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// If the first requirement on `key` pins it to a single value (`=`, `==`, or `in` with one
    /// value), that value; lets a caller narrow a scan by an indexed label.
    pub fn requires_exact(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    Ident,
    In,
    NotIn,
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

/// Where a token is read: keywords `in`/`notin` are identifiers in value position.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn lex(s: &str) -> Result<Vec<(Tok, &str)>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            out.push((Tok::End, ""));
            return Ok(out);
        }
        let start = i;
        if is_special(bytes[i]) {
            let two = s.get(i..i + 2);
            let (tok, len) = match (two, bytes[i]) {
                (Some("!="), _) => (Tok::NotEq, 2),
                (Some("=="), _) => (Tok::DoubleEq, 2),
                (_, b'!') => (Tok::Bang, 1),
                (_, b'=') => (Tok::Eq, 1),
                (_, b'>') => (Tok::Gt, 1),
                (_, b'<') => (Tok::Lt, 1),
                (_, b'(') => (Tok::Open, 1),
                (_, b')') => (Tok::Close, 1),
                (_, b',') => (Tok::Comma, 1),
                (_, other) => return Err(format!("unexpected character '{}'", other as char)),
            };
            i += len;
            out.push((tok, &s[start..i]));
        } else {
            while i < bytes.len() && !is_special(bytes[i]) && !is_space(bytes[i]) {
                i += 1;
            }
            let word = &s[start..i];
            let tok = match word {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, word));
        }
    }
}

struct Parser<'a> {
    tokens: Vec<(Tok, &'a str)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn lookahead(&self, ctx: Ctx) -> (Tok, &'a str) {
        let (tok, lit) = self.tokens[self.pos.min(self.tokens.len() - 1)];
        match (ctx, tok) {
            (Ctx::Values, Tok::In | Tok::NotIn) => (Tok::Ident, lit),
            _ => (tok, lit),
        }
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, &'a str) {
        let item = self.lookahead(ctx);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        item
    }

    fn parse(mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.lookahead(Ctx::Values) {
                (Tok::Ident | Tok::Bang, _) => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.consume(Ctx::Values) {
                        (Tok::End, _) => return Ok(requirements),
                        (Tok::Comma, _) => match self.lookahead(Ctx::Values) {
                            (Tok::Ident | Tok::Bang, _) => {}
                            (_, lit) => return Err(format!("found '{lit}', expected: identifier after ','")),
                        },
                        (_, lit) => return Err(format!("found '{lit}', expected: ',' or 'end of string'")),
                    }
                }
                (Tok::End, _) => return Ok(requirements),
                (_, lit) => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let mut negated = false;
        let (mut tok, mut key) = self.consume(Ctx::Values);
        if tok == Tok::Bang {
            negated = true;
            (tok, key) = self.consume(Ctx::Values);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{key}', expected: identifier"));
        }
        check_label_key(key)?;
        let at_end = matches!(self.lookahead(Ctx::Values).0, Tok::End | Tok::Comma);
        if negated {
            // `!k` takes no operator; anything after it is reported by the caller.
            return LabelRequirement::new(key, LabelOp::DoesNotExist, Vec::new());
        }
        if at_end {
            return LabelRequirement::new(key, LabelOp::Exists, Vec::new());
        }
        let op = match self.consume(Ctx::KeyAndOperator) {
            (Tok::In, _) => LabelOp::In,
            (Tok::NotIn, _) => LabelOp::NotIn,
            (Tok::Eq, _) => LabelOp::Equals,
            (Tok::DoubleEq, _) => LabelOp::DoubleEquals,
            (Tok::NotEq, _) => LabelOp::NotEquals,
            (Tok::Gt, _) => LabelOp::GreaterThan,
            (Tok::Lt, _) => LabelOp::LessThan,
            (_, lit) => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        };
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        LabelRequirement::new(key, op, values)
    }

    /// `( a, b, ... )`; empty members (`(a,,b)`, `()`) are the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.consume(Ctx::Values) {
            (Tok::Open, _) => {}
            (_, lit) => return Err(format!("found '{lit}', expected: '('")),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.consume(Ctx::Values) {
                (Tok::Ident, lit) if expect_value => {
                    values.push(lit.to_owned());
                    expect_value = false;
                }
                (Tok::Comma, _) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                (Tok::Close, _) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                (_, lit) if expect_value => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
                (_, lit) => return Err(format!("found '{lit}', expected: ',' or ')'")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; nothing before `,` or the end is "".
    fn exact_value(&mut self) -> Result<String, String> {
        match self.lookahead(Ctx::Values) {
            (Tok::End | Tok::Comma, _) => Ok(String::new()),
            (Tok::Ident, lit) => {
                self.consume(Ctx::Values);
                Ok(lit.to_owned())
            }
            (_, lit) => Err(format!("found '{lit}', expected: identifier")),
        }
    }
}
