//! Turns a failed JSON patch operation into a message a person can act on, by looking at the
//! document the operation was applied to. Only explains; never changes anything.

use json_patch::jsonptr::Pointer;
use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::PatchError;

/// Longest rendering of a JSON value quoted in a message.
const QUOTE_MAX: usize = 80;

/// "an object", "an array", "a string", ... for messages.
pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds the error for operation `index` that failed with `kind` on `doc` (the document as the
/// operation saw it).
pub(super) fn failure(index: usize, op: &PatchOperation, kind: &PatchErrorKind, doc: &Value) -> PatchError {
    let (name, path) = match op {
        PatchOperation::Add(o) => ("add", show_pointer(&o.path)),
        PatchOperation::Remove(o) => ("remove", show_pointer(&o.path)),
        PatchOperation::Replace(o) => ("replace", show_pointer(&o.path)),
        PatchOperation::Move(o) => ("move", format!("{} -> {}", show_pointer(&o.from), show_pointer(&o.path))),
        PatchOperation::Copy(o) => ("copy", format!("{} -> {}", show_pointer(&o.from), show_pointer(&o.path))),
        PatchOperation::Test(o) => ("test", show_pointer(&o.path)),
    };
    let reason = match (kind, op) {
        (PatchErrorKind::TestFailed, PatchOperation::Test(t)) => {
            let actual = doc.pointer(t.path.as_str()).map_or_else(|| "nothing".to_owned(), quote);
            format!("test failed: found {actual}, expected {}", quote(&t.value))
        }
        (PatchErrorKind::CannotMoveInsideItself, _) => "cannot move a value into one of its own children".to_owned(),
        (PatchErrorKind::InvalidFromPointer, PatchOperation::Move(o)) => {
            format!("\"from\" {}", explain(doc, o.from.as_str(), Need::Existing))
        }
        (PatchErrorKind::InvalidFromPointer, PatchOperation::Copy(o)) => {
            format!("\"from\" {}", explain(doc, o.from.as_str(), Need::Existing))
        }
        (PatchErrorKind::InvalidPointer, PatchOperation::Add(o)) => explain(doc, o.path.as_str(), Need::Parent),
        (PatchErrorKind::InvalidPointer, PatchOperation::Move(o)) => explain(doc, o.path.as_str(), Need::Parent),
        (PatchErrorKind::InvalidPointer, PatchOperation::Copy(o)) => explain(doc, o.path.as_str(), Need::Parent),
        (PatchErrorKind::InvalidPointer, PatchOperation::Remove(o)) if o.path.is_root() => {
            "cannot remove the whole document".to_owned()
        }
        (PatchErrorKind::InvalidPointer, _) => explain(doc, op.path().as_str(), Need::Existing),
        (other, _) => other.to_string(),
    };
    PatchError::Failed { index, op: name, path, reason }
}

/// What the operation needs at its path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The value itself (remove, replace, test, the "from" of move/copy).
    Existing,
    /// Its container, into which a new member is put (add, the target of move/copy).
    Parent,
}

fn explain(doc: &Value, pointer: &str, need: Need) -> String {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let Some((last, parents)) = tokens.split_last() else {
        return "path is invalid".to_owned();
    };
    let mut current = doc;
    let mut walked = String::new();
    for token in parents {
        let next = match current {
            Value::Object(map) => map.get(token.as_str()),
            Value::Array(items) => match parse_index(token) {
                None => return format!("'{token}' is not an array index at {}", shown(&walked)),
                Some(idx) => items.get(idx),
            },
            scalar => return format!("{} is {}, not an object or array", shown(&walked), kind_of(scalar)),
        };
        walked.push('/');
        walked.push_str(&escape_token(token));
        match next {
            Some(v) => current = v,
            None => return format!("path not found: {walked} does not exist"),
        }
    }
    match (current, need) {
        (Value::Object(map), Need::Existing) if !map.contains_key(last.as_str()) => "path not found".to_owned(),
        (Value::Array(_), Need::Parent) if last == "-" => "path is invalid".to_owned(),
        (Value::Array(items), _) => {
            // `add` may insert at `len` (append); everything else needs an existing element.
            let max = if need == Need::Parent { items.len() } else { items.len().saturating_sub(1) };
            match parse_index(last) {
                None => format!("'{last}' is not an array index at {}", shown(&walked)),
                Some(idx) if items.is_empty() && need == Need::Existing || idx > max => {
                    format!("array index {idx} is out of bounds at {} (length {})", shown(&walked), items.len())
                }
                Some(_) => "path is invalid".to_owned(),
            }
        }
        (Value::Object(_), _) => "path is invalid".to_owned(),
        (scalar, _) => format!("{} is {}, not an object or array", shown(&walked), kind_of(scalar)),
    }
}

/// An RFC 6901 array index: `0` or digits without a leading zero.
fn parse_index(token: &str) -> Option<usize> {
    if token == "0" || (!token.starts_with('0') && !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())) {
        token.parse().ok()
    } else {
        None
    }
}

fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A pointer for a message; the root (empty) pointer shows as `""`.
fn show_pointer(p: &Pointer) -> String {
    if p.is_root() {
        "\"\"".to_owned()
    } else {
        p.to_string()
    }
}

fn shown(pointer: &str) -> String {
    if pointer.is_empty() {
        "the document root".to_owned()
    } else {
        pointer.to_owned()
    }
}

fn quote(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= QUOTE_MAX {
        text
    } else {
        let cut: String = text.chars().take(QUOTE_MAX).collect();
        format!("{cut}...")
    }
}
