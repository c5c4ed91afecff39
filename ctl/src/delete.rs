//! `meseta delete`: by `KIND NAME...`, by manifest (`-f`), or by label
//! selector (`KIND -l SEL` / `KIND --all`). Deletion is asynchronous where
//! finalizers exist: "deleted" means the server accepted it.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use crate::conn::{Conn, ConnError, Scope};
use crate::failure::{Usage, EXIT_ERROR, EXIT_OK};
use crate::kinds::{self, qualified};
use crate::manifest;

/// Arguments of `meseta delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// Kind (or `KIND/NAME`); not with -f.
    pub(crate) kind: Option<String>,
    /// Names of the objects.
    pub(crate) names: Vec<String>,
    /// Delete the objects of these manifests.
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "selector", "all"])]
    pub(crate) files: Vec<PathBuf>,
    /// Also read sub-directories of directories given with -f.
    #[arg(short = 'R', long)]
    pub(crate) recursive: bool,
    /// Namespace (role) [default: default].
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
    /// Delete the objects of KIND matching this label selector.
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
    /// Delete every object of KIND in the namespace.
    #[arg(long)]
    pub(crate) all: bool,
    /// Succeed when an object is already gone.
    #[arg(long)]
    pub(crate) ignore_not_found: bool,
    /// `server`: the server checks the delete but keeps the objects.
    #[arg(long, value_enum, default_value = "none", require_equals = true)]
    pub(crate) dry_run: crate::apply::DryRun,
}

/// Runs `meseta delete`; returns the exit code.
pub(crate) async fn run(conn: &Conn, args: &DeleteArgs) -> anyhow::Result<u8> {
    let targets = targets(conn, args).await?;
    if targets.is_empty() {
        eprintln!("No resources found");
        return Ok(EXIT_OK);
    }
    let dry_run = args.dry_run == crate::apply::DryRun::Server;
    let suffix = if dry_run { " (server dry run)" } else { "" };
    let mut code = EXIT_OK;
    for (kind, ns, name) in targets {
        match conn.delete(Scope::new(kind, ns.as_deref()), &name, dry_run).await {
            Ok(_) => println!("{} \"{name}\" deleted{suffix}", qualified(kind)),
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e @ ConnError::Connect { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_ERROR;
            }
        }
    }
    Ok(code)
}

type Target = (&'static meseta_schemas::registry::KindInfo, Option<String>, String);

/// What the arguments name, in order.
async fn targets(conn: &Conn, args: &DeleteArgs) -> anyhow::Result<Vec<Target>> {
    if !args.files.is_empty() {
        let docs = manifest::read_all(&args.files, args.recursive, args.namespace.as_deref())?;
        return Ok(docs.into_iter().map(|d| (d.kind, d.namespace, d.name)).collect());
    }
    let Some(kind_arg) = args.kind.as_deref() else {
        return Err(Usage("say what to delete: meseta delete KIND NAME..., KIND -l SELECTOR, or -f FILE".into()).into());
    };
    let (kind_arg, inline) = kinds::split_kind_name(kind_arg);
    let kind = kinds::resolve(kind_arg)?;
    let ns = kind.namespaced.then(|| args.namespace.clone().unwrap_or(crate::cli::DEFAULT_NAMESPACE.into()));
    let mut names: Vec<String> = inline.map(str::to_string).into_iter().chain(args.names.iter().cloned()).collect();
    let by_selector = args.selector.is_some() || args.all;
    match (names.is_empty(), by_selector) {
        (true, false) => {
            return Err(
                Usage(format!("name the {} to delete, or select them with -l SELECTOR or --all", kind.plural)).into()
            )
        }
        (false, true) => return Err(Usage("names cannot be combined with -l or --all".into()).into()),
        (false, false) => {}
        (true, true) => {
            let list = conn.list(Scope::new(kind, ns.as_deref()), args.selector.as_deref(), None).await?;
            names = list
                .items
                .iter()
                .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
                .collect();
        }
    }
    Ok(names.into_iter().map(|n| (kind, ns.clone(), n)).collect())
}
