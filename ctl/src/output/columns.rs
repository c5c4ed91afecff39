//! The table columns of each kind, as `meseta get` prints them.
//!
//! One function per kind turns an object into its cells; `-o wide` adds
//! columns at the end; `-A` adds NAMESPACE in front. Pure functions.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::fields::{age, condition, mem, number, or_none, resources, scalar, state_tone, text, time};
use super::table::{Cell, Table, Tone};

/// How a table is laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// `-o wide`.
    pub(crate) wide: bool,
    /// Show NAMESPACE (with `-A`, for namespaced kinds).
    pub(crate) namespace: bool,
    /// The time ages are measured from.
    pub(crate) now: DateTime<Utc>,
}

/// The headers of `kind`'s table.
pub(crate) fn headers(kind: &str, layout: Layout) -> Vec<String> {
    let (base, wide): (&[&str], &[&str]) = match kind {
        "Task" => (&["NAME", "STATE", "AGENT", "CPUS", "MEM", "AGE"], &["EXIT", "MESSAGE"]),
        "Job" => (
            &["NAME", "TYPE", "INSTANCES", "RUNNING", "PENDING", "FAILURES", "AGE"],
            &["STARTING", "THROTTLED", "LOST", "KILLING", "PRODUCTION", "PRIORITY"],
        ),
        "Agent" => (&["NAME", "ADDRESS", "CPUS", "MEM", "ALLOCATED", "STATUS", "AGE"], &["HOSTNAME", "ATTRIBUTES"]),
        "Offer" => {
            (&["NAME", "FRAMEWORK", "AGENT", "RESOURCES", "STATE", "EXPIRES", "AGE"], &["RESERVED", "REVOCABLE"])
        }
        "Framework" => (&["NAME", "REGISTERED", "ALLOCATED", "SHARE", "SUPPRESSED", "AGE"], &["CAPABILITIES"]),
        "Role" => (&["NAME", "WEIGHT", "ALLOCATED", "SHARE", "AGE"], &[]),
        "Quota" => (&["NAME", "GUARANTEE", "LIMIT", "USED", "AGE"], &["HEADROOM"]),
        "Reservation" => (&["NAME", "AGENT", "RESOURCES", "STATE", "AGE"], &["MESSAGE"]),
        "Lease" => (&["NAME", "HOLDER", "RENEWED", "AGE"], &["DURATION"]),
        "Event" => (&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], &["COUNT"]),
        _ => (&["NAME", "AGE"], &[]),
    };
    let mut out: Vec<String> = Vec::new();
    if layout.namespace {
        out.push("NAMESPACE".into());
    }
    out.extend(base.iter().map(|h| h.to_string()));
    if layout.wide {
        out.extend(wide.iter().map(|h| h.to_string()));
    }
    out
}

/// The cells of one object of `kind`.
pub(crate) fn row(kind: &str, obj: &Value, layout: Layout) -> Vec<Cell> {
    let now = layout.now;
    let name = text(obj, "/metadata/name");
    let created = age(obj, "/metadata/creationTimestamp", now);
    let (base, wide): (Vec<Cell>, Vec<Cell>) = match kind {
        "Task" => {
            let state = text(obj, "/status/state");
            let state = if state.is_empty() { "PENDING".to_string() } else { state };
            let agent = Some(text(obj, "/status/agent")).filter(|a| !a.is_empty()).unwrap_or(text(obj, "/spec/agent"));
            (
                vec![
                    name.into(),
                    toned(state),
                    or_none(agent).into(),
                    scalar(number(obj, "/spec/resources/cpus")).into(),
                    mem(number(obj, "/spec/resources/mem")).into(),
                    created.into(),
                ],
                vec![or_none(text(obj, "/status/exitCode")).into(), or_none(text(obj, "/status/message")).into()],
            )
        }
        "Job" => (
            vec![
                name.into(),
                or_none(text(obj, "/spec/type")).into(),
                scalar(number(obj, "/spec/instances")).into(),
                scalar(number(obj, "/status/running")).into(),
                scalar(number(obj, "/status/pending")).into(),
                failures(obj),
                created.into(),
            ],
            vec![
                scalar(number(obj, "/status/starting")).into(),
                scalar(number(obj, "/status/throttled")).into(),
                count(obj, "/status/lost", Tone::Bad),
                scalar(number(obj, "/status/killing")).into(),
                (if obj.pointer("/spec/production") == Some(&Value::Bool(true)) { "yes" } else { "no" }).into(),
                scalar(number(obj, "/spec/priority")).into(),
            ],
        ),
        "Agent" => (
            vec![
                name.into(),
                or_none(text(obj, "/spec/address")).into(),
                scalar(number(obj, "/spec/resources/cpus")).into(),
                mem(number(obj, "/spec/resources/mem")).into(),
                format!(
                    "{}/{}",
                    scalar(number(obj, "/status/allocated/cpus")),
                    mem(number(obj, "/status/allocated/mem"))
                )
                .into(),
                agent_status(obj),
                created.into(),
            ],
            vec![or_none(text(obj, "/spec/hostname")).into(), attributes(obj).into()],
        ),
        "Offer" => {
            let expires = match time(obj, "/spec/expiresAt") {
                Some(t) if t > now => meseta_apiserver::age::short_age(t - now),
                Some(_) => "expired".into(),
                None => "<never>".into(),
            };
            (
                vec![
                    name.into(),
                    or_none(text(obj, "/spec/framework")).into(),
                    or_none(text(obj, "/spec/agent")).into(),
                    resources(obj.pointer("/spec/resources")).into(),
                    toned(or_outstanding(text(obj, "/status/state"))),
                    expires.into(),
                    created.into(),
                ],
                vec![resources(obj.pointer("/spec/reserved")).into(), resources(obj.pointer("/spec/revocable")).into()],
            )
        }
        "Framework" => (
            vec![
                name.into(),
                (if obj.pointer("/status/registered") == Some(&Value::Bool(true)) { "yes" } else { "no" }).into(),
                resources(obj.pointer("/status/allocated")).into(),
                share(obj).into(),
                (if obj.pointer("/spec/suppressed") == Some(&Value::Bool(true)) { "yes" } else { "no" }).into(),
                created.into(),
            ],
            vec![or_none(list_text(obj.pointer("/spec/capabilities"))).into()],
        ),
        "Role" => (
            vec![
                name.into(),
                scalar(obj.pointer("/spec/weight").and_then(Value::as_f64).unwrap_or(1.0)).into(),
                resources(obj.pointer("/status/allocated")).into(),
                share(obj).into(),
                created.into(),
            ],
            vec![],
        ),
        "Quota" => (
            vec![
                name.into(),
                resources(obj.pointer("/spec/guarantee")).into(),
                resources(obj.pointer("/spec/limit")).into(),
                resources(obj.pointer("/status/used")).into(),
                created.into(),
            ],
            vec![resources(obj.pointer("/status/headroom")).into()],
        ),
        "Reservation" => (
            vec![
                name.into(),
                or_none(text(obj, "/spec/agent")).into(),
                resources(obj.pointer("/spec/resources")).into(),
                toned(or_none(text(obj, "/status/state"))),
                created.into(),
            ],
            vec![or_none(text(obj, "/status/message")).into()],
        ),
        "Lease" => (
            vec![
                name.into(),
                or_none(text(obj, "/spec/holderIdentity")).into(),
                age(obj, "/spec/renewTime", now).into(),
                created.into(),
            ],
            vec![or_none(text(obj, "/spec/leaseDurationSeconds")).into()],
        ),
        "Event" => {
            let last = if time(obj, "/lastTimestamp").is_some() { age(obj, "/lastTimestamp", now) } else { created };
            let type_ = text(obj, "/type");
            let tone = if type_ == "Warning" { Tone::Busy } else { Tone::Plain };
            (
                vec![
                    last.into(),
                    Cell { text: or_none(type_), tone },
                    or_none(text(obj, "/reason")).into(),
                    format!(
                        "{}/{}",
                        text(obj, "/involvedObject/kind").to_lowercase(),
                        text(obj, "/involvedObject/name")
                    )
                    .into(),
                    text(obj, "/message").into(),
                ],
                vec![scalar(number(obj, "/count").max(1.0)).into()],
            )
        }
        _ => (vec![name.into(), created.into()], vec![]),
    };
    let mut out = Vec::new();
    if layout.namespace {
        out.push(Cell::from(text(obj, "/metadata/namespace")));
    }
    out.extend(base);
    if layout.wide {
        out.extend(wide);
    }
    out
}

/// A table of `items` of `kind`.
pub(crate) fn table(kind: &str, items: &[Value], layout: Layout) -> Table {
    Table { headers: headers(kind, layout), rows: items.iter().map(|o| row(kind, o, layout)).collect() }
}

fn toned(state: String) -> Cell {
    let tone = state_tone(&state);
    Cell { text: state, tone }
}

fn or_outstanding(s: String) -> String {
    if s.is_empty() {
        "Outstanding".into()
    } else {
        s
    }
}

fn failures(obj: &Value) -> Cell {
    count(obj, "/status/failures", Tone::Bad)
}

/// A count, toned `tone` when above zero.
fn count(obj: &Value, pointer: &str, tone: Tone) -> Cell {
    let n = number(obj, pointer);
    Cell { text: scalar(n), tone: if n > 0.0 { tone } else { Tone::Plain } }
}

fn share(obj: &Value) -> String {
    format!("{:.1}%", number(obj, "/status/dominantShare") * 100.0)
}

/// `Ready`, `NotReady`, `Unknown`, with `,SchedulingDisabled` when cordoned.
fn agent_status(obj: &Value) -> Cell {
    let ready = match condition(obj, "Ready").as_deref() {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    };
    let tone = state_tone(ready);
    if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        Cell { text: format!("{ready},SchedulingDisabled"), tone: Tone::Busy }
    } else {
        Cell { text: ready.into(), tone }
    }
}

fn attributes(obj: &Value) -> String {
    match obj.pointer("/spec/attributes").and_then(Value::as_object) {
        Some(map) if !map.is_empty() => {
            map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
        }
        _ => String::new(),
    }
}

fn list_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        Some(items) => {
            items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or(i.to_string())).collect::<Vec<_>>().join(",")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout(wide: bool, namespace: bool) -> Layout {
        Layout {
            wide,
            namespace,
            now: DateTime::parse_from_rfc3339("2024-01-01T00:01:00Z").unwrap().with_timezone(&Utc),
        }
    }

    #[test]
    fn task_rows_follow_the_headers() {
        let task = json!({
            "metadata": {"name": "hello", "namespace": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"resources": {"cpus": 0.5, "mem": 64.0}},
            "status": {"state": "RUNNING", "agent": "a1", "exitCode": null}
        });
        let t = table("Task", &[task], layout(true, true));
        assert_eq!(t.headers, ["NAMESPACE", "NAME", "STATE", "AGENT", "CPUS", "MEM", "AGE", "EXIT", "MESSAGE"]);
        let texts: Vec<&str> = t.rows[0].iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["web", "hello", "RUNNING", "a1", "0.5", "64Mi", "60s", "<none>", "<none>"]);
        assert_eq!(t.rows[0][2].tone, Tone::Good);
    }

    #[test]
    fn wide_job_rows_show_every_count() {
        let job = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "service", "instances": 6, "priority": 2},
            "status": {"running": 1, "pending": 1, "starting": 1, "throttled": 1, "lost": 1, "killing": 2, "failures": 0}
        });
        let t = table("Job", std::slice::from_ref(&job), layout(false, false));
        assert_eq!(t.headers, ["NAME", "TYPE", "INSTANCES", "RUNNING", "PENDING", "FAILURES", "AGE"]);
        let t = table("Job", &[job], layout(true, false));
        let texts: Vec<&str> = t.rows[0].iter().map(|c| c.text.as_str()).collect();
        let wide = &t.headers[7..];
        assert_eq!(wide, ["STARTING", "THROTTLED", "LOST", "KILLING", "PRODUCTION", "PRIORITY"]);
        assert_eq!(texts, ["web", "service", "6", "1", "1", "0", "60s", "1", "1", "1", "2", "no", "2"]);
        assert_eq!(t.rows[0][9].tone, Tone::Bad, "a lost instance stands out");
        assert_eq!(t.rows[0][5].tone, Tone::Plain);
    }

    #[test]
    fn every_kind_has_as_many_cells_as_headers() {
        for k in meseta_schemas::registry::kinds() {
            for (wide, ns) in [(false, false), (true, true)] {
                let l = layout(wide, ns);
                assert_eq!(headers(k.kind, l).len(), row(k.kind, &json!({}), l).len(), "{}", k.kind);
            }
        }
    }

    #[test]
    fn cordoned_agents_say_so() {
        let agent =
            json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(agent_status(&agent).text, "Ready,SchedulingDisabled");
    }
}
