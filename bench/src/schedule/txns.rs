//! The apiserver's store transactions over a run, from its Prometheus
//! counter `apiserver_storage_txn_total{resource,outcome}`: how many
//! committed and how many failed a compare (a lost optimistic race, then a
//! retry), per resource.
//!
//! Owns reading and subtracting the counters. It must not judge the figures.

use std::collections::BTreeMap;

use anyhow::Context;

/// Counts by `(resource, outcome)`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TxnCounts(pub BTreeMap<(String, String), f64>);

impl TxnCounts {
    /// Reads `GET {base}/metrics`.
    pub async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<TxnCounts> {
        let text = http
            .get(format!("{}/metrics", base.trim_end_matches('/')))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("reading the apiserver's /metrics")?
            .text()
            .await
            .context("reading the apiserver's /metrics")?;
        Ok(parse(&text))
    }

    /// The counts of `self` less those of `before`.
    pub fn since(&self, before: &TxnCounts) -> TxnCounts {
        TxnCounts(self.0.iter().map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0))).collect())
    }

    /// The count of one resource and outcome (0 when never seen).
    pub fn get(&self, resource: &str, outcome: &str) -> f64 {
        self.0.get(&(resource.to_owned(), outcome.to_owned())).copied().unwrap_or(0.0)
    }

    /// The resources seen, in order.
    pub fn resources(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.keys().map(|(r, _)| r.as_str()).collect();
        names.dedup();
        names
    }
}

/// The `apiserver_storage_txn_total` samples of a Prometheus text exposition.
fn parse(text: &str) -> TxnCounts {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_storage_txn_total{") else { continue };
        let Some((labels, value)) = rest.split_once("} ") else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let label =
            |name: &str| labels.split(',').find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'));
        if let (Some(resource), Some(outcome)) = (label("resource"), label("outcome")) {
            counts.insert((resource.to_owned(), outcome.to_owned()), value);
        }
    }
    TxnCounts(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_resource_and_outcome_and_subtracted() {
        let before = parse(
            "# TYPE apiserver_storage_txn_total counter\n\
             apiserver_storage_txn_total{outcome=\"committed\",resource=\"tasks\"} 10\n\
             apiserver_storage_duration_seconds_count{op=\"txn\"} 12\n",
        );
        let after = parse(
            "apiserver_storage_txn_total{outcome=\"committed\",resource=\"tasks\"} 25\n\
             apiserver_storage_txn_total{outcome=\"failed\",resource=\"frameworks\"} 7\n\
             apiserver_storage_txn_total{outcome=\"committed\",resource=\"frameworks\"} 3\n",
        );
        let delta = after.since(&before);
        assert_eq!(delta.get("tasks", "committed"), 15.0);
        assert_eq!(delta.get("frameworks", "failed"), 7.0);
        assert_eq!(delta.get("offers", "failed"), 0.0);
        assert_eq!(delta.resources(), vec!["frameworks", "tasks"]);
    }
}
