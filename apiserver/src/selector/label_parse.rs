//! The label selector parser: a small lexer and a recursive-descent parser mirroring Kubernetes'
//! `labels.Parse`, including its error messages. Produces requirements; knows nothing of matching.
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

use super::label::{LabelOp, LabelRequirement};
use super::names::check_label_key;

/// Parses a whole selector into its requirements, in the order written; the error is the reason
/// only (the caller adds the selector text).
pub(super) fn parse_requirements(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    let tokens = lex(selector)?;
    Parser { tokens, pos: 0 }.parse()
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
