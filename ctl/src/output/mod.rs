//! Printing objects: tables (per-kind columns, colour), YAML, JSON and
//! `kind.group/name` lines. Owns the `-o` formats; it must not fetch.

pub(crate) mod columns;
pub(crate) mod fields;
pub(crate) mod table;

use clap::ValueEnum;
use meseta_schemas::registry::KindInfo;
use serde_json::{json, Value};

use crate::kinds::qualified;

/// `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns.
    Table,
    /// Aligned columns, more of them.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// `kind.group/name`, one per line.
    Name,
}

/// One object as YAML (a document, ending with a newline).
pub(crate) fn yaml(obj: &Value) -> String {
    serde_yaml::to_string(obj).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// One object as pretty JSON with a final newline.
pub(crate) fn json_text(obj: &Value) -> String {
    let mut s = serde_json::to_string_pretty(obj).expect("JSON values serialise");
    s.push('\n');
    s
}

/// `task.meseta.io/hello`.
pub(crate) fn name_line(kind: &KindInfo, obj: &Value) -> String {
    format!("{}/{}", qualified(kind), obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default())
}

/// Several objects as kubectl prints a list in YAML/JSON: `kind: List`.
pub(crate) fn as_list(items: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

/// Renders `items` in `format`; `single` prints the object itself, not a List.
/// An empty table is the empty string (callers say "No resources found").
pub(crate) fn render_objects(
    kind: &KindInfo,
    items: &[Value],
    format: Format,
    single: bool,
    layout: columns::Layout,
) -> String {
    match format {
        Format::Table | Format::Wide if items.is_empty() => String::new(),
        Format::Table | Format::Wide => columns::table(kind.kind, items, layout).render(table::colour_stdout()),
        Format::Yaml if single && items.len() == 1 => yaml(&items[0]),
        Format::Json if single && items.len() == 1 => json_text(&items[0]),
        Format::Yaml => yaml(&as_list(items)),
        Format::Json => json_text(&as_list(items)),
        Format::Name => items.iter().map(|o| name_line(kind, o) + "\n").collect(),
    }
}
