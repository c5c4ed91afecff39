//! `meseta apply`: create or update objects from manifests, idempotently.
//!
//! Client-side apply, as kubectl does it: the manifest is stored on the
//! object in the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation; an absent object is created; a present one gets the
//! three-way merge patch of [`crate::merge`], sent only when it changes
//! something (else `unchanged`). `--server-side` sends the manifest as an
//! `application/apply-patch+yaml` patch instead; the apiserver applies it as
//! a merge (no field ownership yet), so fields dropped from a manifest are
//! not removed in that mode. `--prune -l SEL` deletes objects of the applied
//! kinds matching SEL that carry the annotation but are no longer in the
//! manifests.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::conn::{Conn, ConnError, Scope, APPLY_PATCH, MERGE_PATCH};
use crate::kinds::qualified;
use crate::manifest::{self, Doc};
use crate::merge;

/// Show progress on stderr above this many objects.
const PROGRESS_ABOVE: usize = 20;

/// Arguments of `meseta apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// The manifests.
    #[command(flatten)]
    pub(crate) sources: manifest::Sources,
    /// `server`: let the server validate and compute, store nothing; `client`: only compute.
    #[arg(long, value_enum, default_value = "none", require_equals = true)]
    pub(crate) dry_run: DryRun,
    /// Send each manifest as a server-side apply patch (merged; fields dropped from a manifest stay).
    #[arg(long)]
    pub(crate) server_side: bool,
    /// Delete objects of the applied kinds that match -l, were applied before, and are no longer in the manifests.
    #[arg(long, requires = "selector")]
    pub(crate) prune: bool,
    /// Label selector for --prune.
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
}

/// `--dry-run` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DryRun {
    /// Write for real.
    None,
    /// Compute locally; no write request is sent.
    Client,
    /// The server validates and answers as if it wrote, but stores nothing.
    Server,
}

impl DryRun {
    fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It already matched the manifest.
    Unchanged,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// The write client-side apply would make for one manifest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// POST this object.
    Create(Value),
    /// PATCH with this merge patch.
    Patch(Value),
    /// Nothing to do.
    Unchanged,
}

/// The client-side apply of `doc` over `live` (pure).
pub(crate) fn plan(doc: &Doc, live: Option<&Value>) -> Plan {
    let desired = merge::with_last_applied(&doc.object);
    let Some(live) = live else { return Plan::Create(desired) };
    let original = merge::last_applied(live);
    let patch = merge::three_way(original.as_ref(), &desired, live);
    if merge::is_empty(&patch) {
        Plan::Unchanged
    } else {
        Plan::Patch(patch)
    }
}

/// Runs `meseta apply`; returns the exit code.
pub(crate) async fn run(conn: &Conn, args: &ApplyArgs) -> anyhow::Result<u8> {
    let docs = args.sources.read()?;
    let progress = docs.len() > PROGRESS_ABOVE && std::io::stderr().is_terminal();
    let mut failed = 0usize;
    for (i, doc) in docs.iter().enumerate() {
        if progress {
            eprint!("\rapplying {}/{}", i + 1, docs.len());
        }
        match apply_one(conn, doc, args).await {
            Ok(outcome) => {
                if progress {
                    eprint!("\r\x1b[K");
                }
                println!("{}/{} {}{}", qualified(doc.kind), doc.name, outcome.word(), args.dry_run.suffix());
            }
            Err(e) if matches!(e, ConnError::Connect { .. }) => return Err(e.into()),
            Err(e) => {
                if progress {
                    eprint!("\r\x1b[K");
                }
                failed += 1;
                eprintln!("error: {}: {}", doc.label(), explain(&e));
            }
        }
    }
    if args.prune {
        prune(conn, &docs, args).await.context("pruning")?;
    }
    Ok(if failed == 0 { crate::failure::EXIT_OK } else { crate::failure::EXIT_ERROR })
}

/// Applies one manifest.
async fn apply_one(conn: &Conn, doc: &Doc, args: &ApplyArgs) -> Result<Outcome, ConnError> {
    let scope = Scope::new(doc.kind, doc.namespace.as_deref());
    let live = conn.get_opt(scope, &doc.name).await?;
    let server_dry_run = args.dry_run == DryRun::Server;
    if args.server_side {
        if args.dry_run == DryRun::Client {
            return Ok(if live.is_some() { Outcome::Configured } else { Outcome::Created });
        }
        let after = conn.patch(scope, &doc.name, &doc.object, APPLY_PATCH, server_dry_run).await?;
        return Ok(match live {
            None => Outcome::Created,
            Some(before) if comparable(&before) == comparable(&after) => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        });
    }
    match plan(doc, live.as_ref()) {
        Plan::Unchanged => Ok(Outcome::Unchanged),
        Plan::Create(obj) => {
            if args.dry_run != DryRun::Client {
                conn.create(scope, &obj, server_dry_run).await?;
            }
            Ok(Outcome::Created)
        }
        Plan::Patch(patch) => {
            if args.dry_run != DryRun::Client {
                conn.patch(scope, &doc.name, &patch, MERGE_PATCH, server_dry_run).await?;
            }
            Ok(Outcome::Configured)
        }
    }
}

/// An object without the fields every write changes.
pub(crate) fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["resourceVersion", "generation", "managedFields"] {
            meta.remove(key);
        }
    }
    v
}

/// The server's complaint, per field where it gave causes:
/// `spec.resources.cpus: Invalid value: -1: must be >= 0`.
pub(crate) fn explain(e: &ConnError) -> String {
    let Some(status) = e.status() else { return e.to_string() };
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
        .collect();
    if causes.is_empty() {
        status.message.clone()
    } else {
        causes.join("; ")
    }
}

/// Deletes what `--prune` selects.
async fn prune(conn: &Conn, docs: &[Doc], args: &ApplyArgs) -> anyhow::Result<()> {
    let applied: BTreeSet<(&str, Option<&str>, &str)> =
        docs.iter().map(|d| (d.kind.kind, d.namespace.as_deref(), d.name.as_str())).collect();
    let mut scopes: BTreeSet<(&str, Option<&str>)> = BTreeSet::new();
    for d in docs {
        scopes.insert((d.kind.kind, d.namespace.as_deref()));
    }
    for (kind_name, ns) in scopes {
        let kind = meseta_schemas::registry::by_kind(kind_name).expect("manifest kinds are registered");
        let scope = Scope::new(kind, ns);
        let list = conn.list(scope, args.selector.as_deref(), None).await?;
        for item in list.items {
            let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
            if merge::last_applied(&item).is_none() || applied.contains(&(kind_name, item_ns, name)) {
                continue;
            }
            if args.dry_run != DryRun::Client {
                conn.delete(Scope::new(kind, item_ns), name, args.dry_run == DryRun::Server)
                    .await
                    .with_context(|| format!("deleting {}/{name}", qualified(kind)))?;
            }
            println!("{}/{name} pruned{}", qualified(kind), args.dry_run.suffix());
        }
    }
    Ok(())
}
