//! `meseta diff -f`: what `meseta apply` would change. For each manifest the
//! server computes the result of the apply as a dry run; the live object and
//! that result are printed as YAML in a unified diff. Exit code 0 when
//! nothing would change, 1 when something would.

use clap::Args;
use serde_json::Value;
use similar::TextDiff;

use crate::apply::{plan, Plan};
use crate::conn::{Conn, Scope, MERGE_PATCH};
use crate::failure::{EXIT_ERROR, EXIT_OK};
use crate::kinds::qualified;
use crate::manifest;
use crate::output::yaml;

/// Arguments of `meseta diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The manifests.
    #[command(flatten)]
    pub(crate) sources: manifest::Sources,
}

/// Runs `meseta diff`; returns the exit code.
pub(crate) async fn run(conn: &Conn, args: &DiffArgs) -> anyhow::Result<u8> {
    let docs = args.sources.read()?;
    let mut changed = false;
    for doc in &docs {
        let scope = Scope::new(doc.kind, doc.namespace.as_deref());
        let live = conn.get_opt(scope, &doc.name).await?;
        let merged = match plan(doc, live.as_ref()) {
            Plan::Unchanged => continue,
            Plan::Create(obj) => conn.create(scope, &obj, true).await,
            Plan::Patch(patch) => conn.patch(scope, &doc.name, &patch, MERGE_PATCH, true).await,
        }
        .map_err(|e| anyhow::anyhow!("{}: {}", doc.label(), crate::apply::explain(&e)))?;
        let before = live.as_ref().map(|l| yaml(&masked(l))).unwrap_or_default();
        let after = yaml(&masked(&merged));
        if before == after {
            continue;
        }
        changed = true;
        let id = match &doc.namespace {
            Some(ns) => format!("{}/{ns}/{}", qualified(doc.kind), doc.name),
            None => format!("{}/{}", qualified(doc.kind), doc.name),
        };
        let diff = TextDiff::from_lines(&before, &after);
        print!("{}", diff.unified_diff().context_radius(3).header(&format!("live/{id}"), &format!("merged/{id}")));
    }
    Ok(if changed { EXIT_ERROR } else { EXIT_OK })
}

/// The object without fields every write (or dry-run create) sets anew.
fn masked(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"] {
            meta.remove(key);
        }
    }
    v
}
