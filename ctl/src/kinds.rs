//! Kind names as people type them: `task`, `tasks`, `tk`, `Task`,
//! `tasks.meseta.io`, and `KIND/NAME` pairs. Resolves to the schemas
//! registry's [`KindInfo`]; it must not know any kind by hand.

use meseta_schemas::registry::{kinds, KindInfo};

/// The API group every kind belongs to.
pub(crate) const GROUP: &str = "meseta.io";

/// Why a kind name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("the server doesn't have a resource type \"{name}\" (known: {known})")]
pub(crate) struct UnknownKind {
    name: String,
    known: String,
}

/// The kind named `name` (kind, plural, singular or short name; any case;
/// an optional `.meseta.io` suffix).
pub(crate) fn resolve(name: &str) -> Result<&'static KindInfo, UnknownKind> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_suffix(&format!(".{GROUP}")).unwrap_or(&lower);
    kinds()
        .iter()
        .find(|k| {
            k.kind.eq_ignore_ascii_case(bare)
                || k.plural == bare
                || k.singular == bare
                || k.short_names.iter().any(|s| s.eq_ignore_ascii_case(bare))
        })
        .ok_or_else(|| UnknownKind {
            name: name.to_string(),
            known: kinds().iter().map(|k| k.plural).collect::<Vec<_>>().join(", "),
        })
}

/// `task.meseta.io`: how objects of a kind are named in output lines.
pub(crate) fn qualified(kind: &KindInfo) -> String {
    format!("{}.{GROUP}", kind.singular)
}

/// Splits `KIND/NAME` into its parts, or returns `(arg, None)`.
pub(crate) fn split_kind_name(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('/') {
        Some((kind, name)) if !name.is_empty() => (kind, Some(name)),
        _ => (arg, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_kind_resolves() {
        for name in ["task", "tasks", "Task", "TASKS", "tasks.meseta.io", "Task.meseta.io"] {
            assert_eq!(resolve(name).unwrap().kind, "Task", "{name}");
        }
        for k in kinds() {
            for short in k.short_names {
                assert_eq!(resolve(short).unwrap().kind, k.kind);
            }
        }
        let err = resolve("pods").unwrap_err().to_string();
        assert!(err.contains("\"pods\"") && err.contains("tasks"), "{err}");
    }

    #[test]
    fn kind_name_pairs_split() {
        assert_eq!(split_kind_name("task/hello"), ("task", Some("hello")));
        assert_eq!(split_kind_name("tasks"), ("tasks", None));
    }
}
