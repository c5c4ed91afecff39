//! `meseta get` (and `meseta offers`): list objects or show some by name, as
//! a table, YAML, JSON or names; `-w` keeps streaming changes from a watch.

use std::io::Write;

use anyhow::bail;
use chrono::Utc;
use clap::Args;
use futures::StreamExt;
use meseta_schemas::registry::KindInfo;
use serde_json::Value;

use crate::cli::NamespaceArgs;
use crate::conn::{selectors, Conn, ConnError, Scope};
use crate::failure::Usage;
use crate::kinds;
use crate::output::columns::{self, Layout};
use crate::output::{self, table, Format};
use crate::watch_lines::WatchLines;

/// Arguments of `meseta get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Kind: `tasks`, `task`, `tk`, `Task`, ... (or `KIND/NAME`).
    pub(crate) kind: String,
    /// Names of objects to show (all when none).
    pub(crate) names: Vec<String>,
    #[command(flatten)]
    pub(crate) ns: NamespaceArgs,
    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
    /// Field selector, e.g. `status.state=RUNNING,spec.agent=a1`.
    #[arg(long)]
    pub(crate) field_selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub(crate) output: Format,
    /// After listing, stream changes.
    #[arg(short = 'w', long)]
    pub(crate) watch: bool,
}

/// Arguments of `meseta offers`.
#[derive(Debug, Args)]
pub(crate) struct OffersArgs {
    #[command(flatten)]
    pub(crate) ns: NamespaceArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub(crate) output: Format,
}

/// Runs `meseta get`.
pub(crate) async fn run(conn: &Conn, args: &GetArgs) -> anyhow::Result<()> {
    let (kind_arg, inline_name) = kinds::split_kind_name(&args.kind);
    let kind = kinds::resolve(kind_arg)?;
    let mut names = args.names.clone();
    if let Some(n) = inline_name {
        names.insert(0, n.to_string());
    }
    if !names.is_empty() && args.ns.all_namespaces && kind.namespaced {
        return Err(Usage("a name cannot be combined with --all-namespaces: give the namespace with -n".into()).into());
    }
    let scope = Scope::new(kind, args.ns.scope());
    let layout = Layout {
        wide: args.output == Format::Wide,
        namespace: args.ns.all_namespaces && kind.namespaced,
        now: Utc::now(),
    };
    let (items, resource_version) = if names.is_empty() {
        let list = conn.list(scope, args.selector.as_deref(), args.field_selector.as_deref()).await?;
        (list.items, list.resource_version)
    } else {
        let mut items = Vec::new();
        for name in &names {
            items.push(conn.get(scope, name).await?);
        }
        (items, String::new())
    };
    let single = names.len() == 1;
    let text = output::render_objects(kind, &items, args.output, single, layout);
    print!("{text}");
    if items.is_empty() && matches!(args.output, Format::Table | Format::Wide) && !args.watch {
        match scope.namespace {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
    }
    if !args.watch {
        return Ok(());
    }
    let widths = if items.is_empty() { None } else { Some(columns::table(kind.kind, &items, layout).widths()) };
    let fields = match names.as_slice() {
        [] => args.field_selector.clone(),
        [one] => Some(format!("metadata.name={one}")),
        _ => bail!(Usage("-w takes at most one name".into())),
    };
    let resource_version = if resource_version.is_empty() {
        conn.list(scope, args.selector.as_deref(), fields.as_deref()).await?.resource_version
    } else {
        resource_version
    };
    let mut printer = WatchPrinter { kind, format: args.output, layout, widths };
    watch(conn, scope, args.selector.as_deref(), fields.as_deref(), resource_version, &mut printer).await
}

/// Prints watch events in the format of the initial listing.
struct WatchPrinter {
    kind: &'static KindInfo,
    format: Format,
    layout: Layout,
    widths: Option<Vec<usize>>,
}

impl WatchPrinter {
    fn print(&mut self, obj: &Value) {
        let text = match self.format {
            Format::Table | Format::Wide => {
                let layout = Layout { now: Utc::now(), ..self.layout };
                let row = columns::row(self.kind.kind, obj, layout);
                let mut text = String::new();
                let widths = self.widths.get_or_insert_with(|| {
                    let t = table::Table { headers: columns::headers(self.kind.kind, layout), rows: vec![row.clone()] };
                    let widths = t.widths();
                    let headers: Vec<table::Cell> = t.headers.iter().map(|h| h.as_str().into()).collect();
                    text.push_str(&table::render_row(&headers, &widths, false));
                    widths
                });
                text.push_str(&table::render_row(&row, widths, table::colour_stdout()));
                text
            }
            Format::Yaml => format!("---\n{}", output::yaml(obj)),
            Format::Json => output::json_text(obj),
            Format::Name => output::name_line(self.kind, obj) + "\n",
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

/// Follows a watch from `resource_version`, reconnecting when the server ends it.
async fn watch(
    conn: &Conn,
    scope: Scope<'_>,
    labels: Option<&str>,
    fields: Option<&str>,
    mut resource_version: String,
    printer: &mut WatchPrinter,
) -> anyhow::Result<()> {
    loop {
        let mut query = selectors(labels, fields);
        query.push(("watch", "true".into()));
        query.push(("allowWatchBookmarks", "true".into()));
        query.push(("resourceVersion", resource_version.clone()));
        let mut body = conn.stream(&scope.collection(), &query).await?;
        let mut lines = WatchLines::default();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(ConnError::Transport { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            for event in lines.push(&chunk)? {
                let object = &event.object;
                if let Some(rv) = object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                    resource_version = rv.to_string();
                }
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" | "DELETED" => printer.print(object),
                    "ERROR" => {
                        bail!("the watch ended: {}", object.get("message").and_then(Value::as_str).unwrap_or(""))
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Runs `meseta offers`.
pub(crate) async fn offers(conn: &Conn, args: &OffersArgs) -> anyhow::Result<()> {
    let get = GetArgs {
        kind: "offers".into(),
        names: Vec::new(),
        ns: args.ns.clone(),
        selector: None,
        field_selector: None,
        output: args.output,
        watch: false,
    };
    run(conn, &get).await
}
