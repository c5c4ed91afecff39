//! Field selectors: `path=value`, `path==value` and `path!=value` terms, comma-separated, over
//! dotted paths into an object's JSON (`metadata.name`, `spec.agent`, `status.state`, ...).
//!
//! As in Kubernetes, a value may contain `\,`, `\=` and `\\` escapes, and an unescaped `,` or `=`
//! inside a value is an error. Whitespace around paths and values is ignored. Which paths a kind
//! supports is decided by the caller, not here.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::SelectorError;

/// The operator of a field selector term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `path=value` or `path==value`.
    Equals,
    /// `path!=value`.
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Term {
    path: String,
    op: FieldOp,
    value: String,
}

/// A parsed field selector: all terms must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    /// Sorted by (path, op, value) so rendering is deterministic.
    terms: Vec<Term>,
}

impl FieldSelector {
    /// Parses a field selector such as `spec.agent=a1,status.state!=RUNNING`.
    pub fn parse(selector: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for raw in split_unescaped_commas(selector) {
            if raw.trim().is_empty() {
                continue;
            }
            let term = parse_term(raw).map_err(|reason| SelectorError::new(selector, reason))?;
            terms.push(term);
        }
        terms.sort_by(|a, b| {
            (&a.path, a.op == FieldOp::NotEquals, &a.value).cmp(&(&b.path, b.op == FieldOp::NotEquals, &b.value))
        });
        terms.dedup();
        Ok(FieldSelector { terms })
    }

    /// Whether every term holds for `object`. A missing field or `null` reads as the empty string;
    /// numbers and booleans read as their JSON text (`3`, `true`).
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_text(lookup(object, &t.path));
            match t.op {
                FieldOp::Equals => actual == t.value,
                FieldOp::NotEquals => actual != t.value,
            }
        })
    }

    /// Whether the selector has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms as `(path, op, value)`, sorted by path; values are unescaped.
    pub fn requirements(&self) -> impl Iterator<Item = (&str, FieldOp, &str)> + '_ {
        self.terms.iter().map(|t| (t.path.as_str(), t.op, t.value.as_str()))
    }

    /// The text of the field at `path` of `object` as terms compare it: a missing field or `null`
    /// is the empty string, numbers and booleans their JSON text.
    pub fn value_of<'v>(object: &'v Value, path: &str) -> Cow<'v, str> {
        field_text(lookup(object, path))
    }

    /// The value an `=`/`==` term pins `path` to, if any (e.g. `exact("spec.agent")` for
    /// `spec.agent=a1` is `Some("a1")`), so a caller can narrow a store scan.
    pub fn exact(&self, path: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.path == path && t.op == FieldOp::Equals).map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.path, escape(&t.value))?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_unescaped_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_term(raw: &str) -> Result<Term, String> {
    // The first operator occurrence splits the term; paths cannot contain operators.
    let (path, op, rest) = raw
        .char_indices()
        .find_map(|(i, _)| {
            let tail = &raw[i..];
            [("!=", FieldOp::NotEquals), ("==", FieldOp::Equals), ("=", FieldOp::Equals)]
                .into_iter()
                .find(|(sym, _)| tail.starts_with(sym))
                .map(|(sym, op)| (&raw[..i], op, &tail[sym.len()..]))
        })
        .ok_or_else(|| format!("can't understand '{raw}': expected path=value, path==value or path!=value"))?;
    let path = path.trim();
    if path.is_empty() {
        return Err(format!("can't understand '{raw}': the field path is empty"));
    }
    if let Some(bad) = path.split('.').find(|seg| seg.is_empty() || seg.chars().any(char::is_whitespace)) {
        return Err(format!("invalid field path '{path}': segment '{bad}' must be non-empty and contain no spaces"));
    }
    let value = unescape(rest.trim()).map_err(|why| format!("invalid value in '{raw}': {why}"))?;
    Ok(Term { path: path.to_owned(), op, value })
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence '\\{e}'")),
                None => return Err("a trailing '\\' escapes nothing".to_owned()),
            },
            ',' | '=' => return Err(format!("unescaped '{c}' (write '\\{c}')")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Follows a dotted path through objects (and, for numeric segments, arrays).
fn lookup<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(object, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn field_text(v: Option<&Value>) -> Cow<'_, str> {
    match v {
        None | Some(Value::Null) => Cow::Borrowed(""),
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(other) => Cow::Owned(other.to_string()),
    }
}
