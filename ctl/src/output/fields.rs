//! Reading fields out of untyped objects and formatting them for people:
//! ages, resource amounts, condition summaries. Pure functions.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::table::Tone;

/// The text of a field (`""` when absent; numbers and booleans as JSON).
pub(crate) fn text(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `text`, or `<none>` when empty.
pub(crate) fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// A number field (0 when absent).
pub(crate) fn number(obj: &Value, pointer: &str) -> f64 {
    obj.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0)
}

/// A timestamp field.
pub(crate) fn time(obj: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let s = obj.pointer(pointer)?.as_str()?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// kubectl's short age of a timestamp field (`<unknown>` when absent).
pub(crate) fn age(obj: &Value, pointer: &str, now: DateTime<Utc>) -> String {
    match time(obj, pointer) {
        Some(t) => meseta_apiserver::age::short_age(now - t),
        None => "<unknown>".into(),
    }
}

/// A scalar without needless decimals: `1`, `0.5`, `0.125`.
pub(crate) fn scalar(v: f64) -> String {
    let rounded = (v * 1000.0).round() / 1000.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        let s = format!("{rounded:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// MiB as `512Mi` or `2Gi` / `1.5Gi`.
pub(crate) fn mem(mib: f64) -> String {
    if mib >= 1024.0 {
        format!("{}Gi", scalar(mib / 1024.0))
    } else {
        format!("{}Mi", scalar(mib))
    }
}

/// A `Resources` object as `cpus:1 mem:512Mi disk:1Gi gpus:1 ports:[31000-31010]`
/// (zero parts left out; `-` when empty).
pub(crate) fn resources(r: Option<&Value>) -> String {
    let Some(r) = r else { return "-".into() };
    let mut parts = Vec::new();
    for (key, is_mem) in [("cpus", false), ("mem", true), ("disk", true), ("gpus", false)] {
        let v = r.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        if v != 0.0 {
            parts.push(format!("{key}:{}", if is_mem { mem(v) } else { scalar(v) }));
        }
    }
    if let Some(Value::Array(ports)) = r.get("ports") {
        if !ports.is_empty() {
            let ranges: Vec<String> =
                ports.iter().map(|p| format!("{}-{}", text(p, "/begin"), text(p, "/end"))).collect();
            parts.push(format!("ports:[{}]", ranges.join(",")));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// The tone of a task, offer or reservation state.
pub(crate) fn state_tone(state: &str) -> Tone {
    match state {
        "RUNNING" | "FINISHED" | "Ready" | "Accepted" | "True" => Tone::Good,
        "PENDING" | "ASSIGNED" | "STARTING" | "KILLING" | "RESTARTING" | "PREEMPTING" | "DRAINING" | "THROTTLED"
        | "Outstanding" | "Pending" | "Unknown" => Tone::Busy,
        "FAILED" | "LOST" | "PARTITIONED" | "Failed" | "NotReady" | "False" => Tone::Bad,
        "KILLED" | "Declined" | "Rescinded" => Tone::Quiet,
        _ => Tone::Plain,
    }
}

/// The status of condition `type_` (`True`, `False`, `Unknown`), if present.
pub(crate) fn condition(obj: &Value, type_: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| text(c, "/status"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_read_naturally() {
        assert_eq!(scalar(1.0), "1");
        assert_eq!(scalar(0.1), "0.1");
        assert_eq!(scalar(0.125), "0.125");
        assert_eq!(mem(32.0), "32Mi");
        assert_eq!(mem(1536.0), "1.5Gi");
        let r = json!({"cpus": 1.0, "mem": 1024.0, "ports": [{"begin": 31000, "end": 31010}]});
        assert_eq!(resources(Some(&r)), "cpus:1 mem:1Gi ports:[31000-31010]");
        assert_eq!(resources(Some(&json!({}))), "-");
    }

    #[test]
    fn ages_use_the_short_form() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:03:12Z").unwrap().with_timezone(&Utc);
        let obj = json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}});
        assert_eq!(age(&obj, "/metadata/creationTimestamp", now), "3m12s");
        assert_eq!(age(&json!({}), "/metadata/creationTimestamp", now), "<unknown>");
    }
}
