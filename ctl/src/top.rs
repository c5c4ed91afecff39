//! `meseta top agents|roles|frameworks`: resource use as the objects'
//! statuses report it. Agents: total (`spec.resources`) vs allocated
//! (`status.allocated`) vs used (`status.usage`). Roles and frameworks:
//! allocated and DRF dominant share, highest share first; roles also show
//! their quota (guarantee, limit, headroom from the Quota's status).

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::conn::{Conn, Scope};
use crate::kinds;
use crate::output::fields::{mem, number, resources, scalar, text};
use crate::output::table::{colour_stdout, Cell, Table};

/// What `meseta top` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Subject {
    /// Agents: total, allocated and used resources.
    Agents,
    /// Roles: allocation, dominant share and quota.
    Roles,
    /// Frameworks: allocation and dominant share.
    Frameworks,
}

/// Arguments of `meseta top`.
#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// agents, roles or frameworks.
    #[arg(value_enum)]
    pub(crate) subject: Subject,
}

/// Runs `meseta top`.
pub(crate) async fn run(conn: &Conn, args: &TopArgs) -> anyhow::Result<()> {
    let list = |plural: &'static str| async move {
        let kind = kinds::resolve(plural)?;
        anyhow::Ok(conn.list(Scope::new(kind, None), None, None).await?.items)
    };
    let table = match args.subject {
        Subject::Agents => agents(&list("agents").await?),
        Subject::Roles => roles(&list("roles").await?, &list("quotas").await?),
        Subject::Frameworks => frameworks(&list("frameworks").await?),
    };
    if table.rows.is_empty() {
        eprintln!("No resources found");
    } else {
        print!("{}", table.render(colour_stdout()));
    }
    Ok(())
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.0}%", part / whole * 100.0)
    } else {
        "-".into()
    }
}

/// The agents table (pure).
pub(crate) fn agents(items: &[Value]) -> Table {
    let headers = ["NAME", "CPUS(ALLOC/TOTAL)", "CPU%", "CPUS USED", "MEM(ALLOC/TOTAL)", "MEM%", "MEM USED"];
    let rows = items
        .iter()
        .map(|a| {
            let (cpu_total, cpu_alloc) = (number(a, "/spec/resources/cpus"), number(a, "/status/allocated/cpus"));
            let (mem_total, mem_alloc) = (number(a, "/spec/resources/mem"), number(a, "/status/allocated/mem"));
            let has_usage = a.pointer("/status/usage").is_some_and(|u| !u.is_null());
            let used = |f: &dyn Fn(f64) -> String, p: &str| if has_usage { f(number(a, p)) } else { "-".into() };
            vec![
                Cell::from(text(a, "/metadata/name")),
                format!("{}/{}", scalar(cpu_alloc), scalar(cpu_total)).into(),
                percent(cpu_alloc, cpu_total).into(),
                used(&scalar, "/status/usage/cpus").into(),
                format!("{}/{}", mem(mem_alloc), mem(mem_total)).into(),
                percent(mem_alloc, mem_total).into(),
                used(&mem, "/status/usage/mem").into(),
            ]
        })
        .collect();
    Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows }
}

fn by_share(items: &[Value]) -> Vec<&Value> {
    let mut sorted: Vec<&Value> = items.iter().collect();
    sorted.sort_by(|a, b| number(b, "/status/dominantShare").total_cmp(&number(a, "/status/dominantShare")));
    sorted
}

fn share(v: &Value) -> String {
    format!("{:.1}%", number(v, "/status/dominantShare") * 100.0)
}

/// The roles table (pure): quotas are matched to roles by namespace.
pub(crate) fn roles(items: &[Value], quotas: &[Value]) -> Table {
    let quota_of: BTreeMap<String, &Value> = quotas.iter().map(|q| (text(q, "/metadata/namespace"), q)).collect();
    let headers = ["NAME", "WEIGHT", "ALLOCATED", "DOMINANT SHARE", "GUARANTEE", "LIMIT", "HEADROOM"];
    let rows = by_share(items)
        .into_iter()
        .map(|r| {
            let name = text(r, "/metadata/name");
            let q = quota_of.get(&name);
            let quota = |p: &str| q.map(|q| resources(q.pointer(p))).unwrap_or_else(|| "-".into());
            vec![
                Cell::from(name.clone()),
                scalar(r.pointer("/spec/weight").and_then(Value::as_f64).unwrap_or(1.0)).into(),
                resources(r.pointer("/status/allocated")).into(),
                share(r).into(),
                quota("/spec/guarantee").into(),
                quota("/spec/limit").into(),
                quota("/status/headroom").into(),
            ]
        })
        .collect();
    Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows }
}

/// The frameworks table (pure).
pub(crate) fn frameworks(items: &[Value]) -> Table {
    let headers = ["ROLE", "NAME", "ALLOCATED", "DOMINANT SHARE", "REGISTERED"];
    let rows = by_share(items)
        .into_iter()
        .map(|f| {
            vec![
                Cell::from(text(f, "/metadata/namespace")),
                text(f, "/metadata/name").into(),
                resources(f.pointer("/status/allocated")).into(),
                share(f).into(),
                (if f.pointer("/status/registered") == Some(&Value::Bool(true)) { "yes" } else { "no" }).into(),
            ]
        })
        .collect();
    Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agents_show_allocated_total_and_used() {
        let a = json!({"metadata": {"name": "a1"}, "spec": {"resources": {"cpus": 4.0, "mem": 8192.0}},
                       "status": {"allocated": {"cpus": 1.0, "mem": 2048.0}, "usage": {"cpus": 0.5, "mem": 100.0}}});
        let t = agents(&[a]);
        let texts: Vec<&str> = t.rows[0].iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a1", "1/4", "25%", "0.5", "2Gi/8Gi", "25%", "100Mi"]);
    }

    #[test]
    fn roles_are_ordered_by_dominant_share_with_quota() {
        let web = json!({"metadata": {"name": "web"}, "spec": {"weight": 2.0}, "status": {"dominantShare": 0.1}});
        let batch = json!({"metadata": {"name": "batch"}, "status": {"dominantShare": 0.4}});
        let quota = json!({"metadata": {"name": "q", "namespace": "batch"}, "spec": {"guarantee": {"cpus": 2.0}},
                           "status": {"headroom": {"cpus": 1.0}}});
        let t = roles(&[web, batch], &[quota]);
        assert_eq!(t.rows[0][0].text, "batch");
        assert_eq!(t.rows[0][3].text, "40.0%");
        assert_eq!(t.rows[0][4].text, "cpus:2");
        assert_eq!(t.rows[0][6].text, "cpus:1");
        assert_eq!(t.rows[1][5].text, "-");
    }
}
