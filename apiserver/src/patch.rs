//! Patch bodies and list continuation tokens: RFC 7386 JSON merge patch, RFC 6902 JSON patch, and
//! the opaque `continue` token of paginated lists.
//!
//! Pure functions over `serde_json::Value`; this module does not know kinds, validation, the store
//! or HTTP. The caller re-validates the patched object and maps [`PatchError`] to a response:
//! a malformed body ([`PatchError::NotAnArray`], [`PatchError::InvalidOperation`]) is a 400, an
//! operation that cannot apply ([`PatchError::Failed`]) a 422, a bad token
//! ([`PatchError::InvalidContinue`]) a 400.
//!
//! # Guarantees
//!
//! - [`json_patch`] is atomic: on error the target is exactly as it was.
//! - [`merge_patch`] cannot fail: every JSON value is a valid merge patch.

mod continue_token;
mod diagnose;

#[cfg(test)]
mod tests;

use json_patch::PatchOperation;
use serde_json::Value;

pub use continue_token::ContinueToken;

/// Why a patch body, a patch operation or a continue token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch body is not an array.
    #[error("a JSON patch must be an array of operations, not {found}")]
    NotAnArray {
        /// What was sent instead: "an object", "a string", ...
        found: &'static str,
    },
    /// An element of the JSON patch array is not a well-formed operation.
    #[error("operation {index}: {reason}")]
    InvalidOperation {
        /// Zero-based position in the patch array.
        index: usize,
        /// What is malformed.
        reason: String,
    },
    /// A well-formed operation could not be applied to the document.
    #[error("operation {index} ({op} {path}): {reason}")]
    Failed {
        /// Zero-based position in the patch array.
        index: usize,
        /// `add`, `remove`, `replace`, `move`, `copy` or `test`.
        op: &'static str,
        /// The operation's `path` (for move and copy: `from -> path`).
        path: String,
        /// Why it failed, e.g. "path not found".
        reason: String,
    },
    /// A `continue` token that this server did not issue or cannot read.
    #[error("invalid continue token: {reason}; restart the list without the continue parameter")]
    InvalidContinue {
        /// What is wrong with the token.
        reason: String,
    },
}

/// Applies an RFC 7386 JSON merge patch: `null` deletes a member, objects merge recursively, any
/// other value (arrays included) replaces the target wholesale.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 JSON patch (`add`, `remove`, `replace`, `move`, `copy`, `test`).
///
/// Atomic: the operations run on a copy that replaces `target` only if all of them succeed.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = parse_operations(patch)?;
    let mut work = target.clone();
    for (index, op) in ops.iter().enumerate() {
        if let Err(err) = json_patch::patch_unsafe(&mut work, std::slice::from_ref(op)) {
            // Explain the failure against the document as the failing operation saw it; a failed
            // move may already have removed its source from `work`.
            let mut before = target.clone();
            let replayed = json_patch::patch_unsafe(&mut before, &ops[..index]).is_ok();
            let seen = if replayed { &before } else { &work };
            return Err(diagnose::failure(index, op, &err.kind, seen));
        }
    }
    *target = work;
    Ok(())
}

fn parse_operations(patch: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    let Value::Array(items) = patch else {
        return Err(PatchError::NotAnArray { found: diagnose::kind_of(patch) });
    };
    items.iter().enumerate().map(|(index, item)| parse_operation(index, item)).collect()
}

fn parse_operation(index: usize, item: &Value) -> Result<PatchOperation, PatchError> {
    let invalid = |reason: String| PatchError::InvalidOperation { index, reason };
    let Value::Object(fields) = item else {
        return Err(invalid(format!("must be an object with \"op\" and \"path\", not {}", diagnose::kind_of(item))));
    };
    for name in ["path", "from"] {
        match fields.get(name) {
            None => {}
            Some(Value::String(p)) if p.is_empty() || p.starts_with('/') => {}
            Some(Value::String(p)) => {
                return Err(invalid(format!(
                    "\"{name}\" {p:?} is not a JSON pointer: it must be empty or start with '/'"
                )))
            }
            Some(other) => {
                return Err(invalid(format!("\"{name}\" must be a string, not {}", diagnose::kind_of(other))))
            }
        }
    }
    match fields.get("op") {
        Some(Value::String(op)) if ["add", "remove", "replace", "move", "copy", "test"].contains(&op.as_str()) => {}
        Some(Value::String(op)) => {
            return Err(invalid(format!("unknown op {op:?}: expected one of add, remove, replace, move, copy, test")))
        }
        Some(other) => return Err(invalid(format!("\"op\" must be a string, not {}", diagnose::kind_of(other)))),
        None => return Err(invalid("missing \"op\"".to_owned())),
    }
    serde_json::from_value(item.clone()).map_err(|e| invalid(e.to_string()))
}
