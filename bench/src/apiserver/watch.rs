//! Watch delivery latency: one watcher on a collection, one writer creating
//! timestamped Tasks at a fixed rate.
//!
//! Owns the watcher's line reader and the latency bookkeeping. The latency of
//! an event is its arrival at the watcher minus the instant the writer sent
//! the create (stamped in the `bench/sent-ns` annotation, wall clock of the
//! same machine): it covers the request, the durable commit and the delivery.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};

use super::load::create;
use super::{client, percentile, task, tasks_url};

/// Event latencies in ms (sorted), and the writer's ack latencies (sorted).
#[derive(Debug, Clone)]
pub struct WatchFigures {
    /// Send → event arrival, ms, sorted.
    pub delivery_ms: Vec<f64>,
    /// Send → create acknowledged, ms, sorted.
    pub ack_ms: Vec<f64>,
}

impl WatchFigures {
    /// `p` percentile of delivery latency.
    pub fn delivery(&self, p: f64) -> f64 {
        percentile(&self.delivery_ms, p)
    }
    /// `p` percentile of ack latency.
    pub fn ack(&self, p: f64) -> f64 {
        percentile(&self.ack_ms, p)
    }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Watches namespace `ns` (empty at the start) while creating `events` Tasks
/// there at `rate` per second.
pub async fn latency(base: &str, ns: &str, events: usize, rate: u32) -> anyhow::Result<WatchFigures> {
    let watch_http = client()?;
    let resp = watch_http.get(format!("{}?watch=true", tasks_url(base, ns))).send().await?;
    if !resp.status().is_success() {
        bail!("watch answered {}", resp.status());
    }
    let mut stream = resp.bytes_stream();
    let reader = tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        let mut delivery = Vec::with_capacity(events);
        while delivery.len() < events {
            let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .context("the watch stalled for 30 s")?
                .context("the watch ended early")??;
            let arrived = now_ns();
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let event: Value = serde_json::from_slice(&line).context("a watch line is not JSON")?;
                if event["type"] != "ADDED" {
                    continue;
                }
                let sent = event["object"]["metadata"]["annotations"]["bench/sent-ns"]
                    .as_str()
                    .and_then(|s| s.parse::<u128>().ok())
                    .context("an event without bench/sent-ns")?;
                delivery.push(arrived.saturating_sub(sent) as f64 / 1e6);
            }
        }
        anyhow::Ok(delivery)
    });

    let http = client()?;
    let collection = tasks_url(base, ns);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ack_ms = Vec::with_capacity(events);
    for i in 0..events {
        tick.tick().await;
        let sent = now_ns();
        let body = task(ns, &format!("w{i:06}"), json!({"bench/sent-ns": sent.to_string()}));
        create(&http, &collection, &body).await?;
        ack_ms.push(now_ns().saturating_sub(sent) as f64 / 1e6);
    }
    let mut delivery_ms = reader.await.context("watch reader")??;
    delivery_ms.sort_by(f64::total_cmp);
    ack_ms.sort_by(f64::total_cmp);
    Ok(WatchFigures { delivery_ms, ack_ms })
}
