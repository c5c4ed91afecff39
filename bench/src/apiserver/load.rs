//! Write and list load against a running apiserver.
//!
//! Owns the closed-loop writers (each client task sends one request, waits for
//! its answer, sends the next, over its own keep-alive connection, see
//! [`raw`]) and the list timings. It must not start or stop the server.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::{client, etcd, percentile, raw, task, tasks_url};

/// What a write run measured.
#[derive(Debug, Clone, Copy)]
pub struct WriteFigures {
    /// Acknowledged (durable) writes.
    pub writes: u64,
    /// Writes per second of wall time.
    pub per_s: f64,
    /// Median and 99th-percentile request latency, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Server CPU (user + system) per write, µs.
    pub server_cpu_us: f64,
    /// This process' CPU (user + system) per write, µs: the load client.
    pub client_cpu_us: f64,
}

/// Which write a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// `POST` of a new Task.
    Create,
    /// `PUT` of the client's own Task with its current `resourceVersion`.
    Update,
}

/// Which server a write run drives.
#[derive(Debug, Clone)]
pub enum Target {
    /// The apiserver: Tasks over its REST API.
    Meseta,
    /// The peer etcd (see [`etcd`]): the same writes as the transactions
    /// kube-apiserver sends etcd for them, each putting `value` (a stored
    /// Task's bytes) under the Task's key.
    Etcd { value: Arc<Vec<u8>> },
    /// The floor server (see [`super::floor`]): the apiserver's requests,
    /// answered once appended and synced, with nothing else done.
    Floor,
}

/// How a write run is made and when it ends.
#[derive(Debug, Clone)]
pub struct WriteRun {
    /// Which server.
    pub target: Target,
    /// Which write.
    pub kind: WriteKind,
    /// Concurrent closed-loop clients.
    pub clients: usize,
    /// Longest the run lasts.
    pub duration: Duration,
    /// Ends the run after this many writes in all (`None`: only the duration).
    pub count: Option<u64>,
}

/// Runs `run.clients` closed-loop writers against namespace `ns`. The
/// clients' set-up (an update client creates its Task) happens before the
/// clock and the CPU counters start; `server_cpu` reads the server's CPU
/// seconds so far.
pub async fn writes(
    base: &str,
    ns: &str,
    run: WriteRun,
    server_cpu: &dyn Fn() -> anyhow::Result<f64>,
) -> anyhow::Result<WriteFigures> {
    let ready = Arc::new(Barrier::new(run.clients + 1));
    let started = Arc::new(AtomicU64::new(0));
    let (go, start_rx) = tokio::sync::watch::channel(None);
    let mut jobs = Vec::with_capacity(run.clients);
    for c in 0..run.clients {
        let (base, ns, target) = (base.to_string(), ns.to_string(), run.target.clone());
        let (ready, started, mut start_rx) = (ready.clone(), started.clone(), start_rx.clone());
        jobs.push(tokio::spawn(async move {
            let mut w = Writer::new(&base, &ns, run.kind, c, &target).await?;
            ready.wait().await;
            let deadline = *start_rx.wait_for(Option::is_some).await?;
            let deadline: tokio::time::Instant = deadline.context("start signal")?;
            w.run(deadline, &started, run.count.unwrap_or(u64::MAX)).await
        }));
    }
    ready.wait().await;
    let (cpu0, own0) = (server_cpu()?, super::own_cpu_seconds()?);
    let start = Instant::now();
    go.send(Some(tokio::time::Instant::now() + run.duration))?;
    let mut latencies = Vec::new();
    for job in jobs {
        latencies.extend(job.await.context("writer task")??);
    }
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, own1) = (server_cpu()?, super::own_cpu_seconds()?);
    latencies.sort_by(f64::total_cmp);
    let writes = latencies.len() as u64;
    let per_write_us = |cpu: f64| cpu * 1e6 / writes.max(1) as f64;
    Ok(WriteFigures {
        writes,
        per_s: writes as f64 / secs,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        server_cpu_us: per_write_us(cpu1 - cpu0),
        client_cpu_us: per_write_us(own1 - own0),
    })
}

/// One closed-loop client with its connection and, for updates, its Task.
struct Writer {
    conn: raw::Connection,
    /// Where the writes go: the collection for creates, the Task for updates
    /// (etcd: its transaction endpoint).
    path: String,
    kind: WriteKind,
    id: usize,
    /// The etcd peer's: the keys' prefix (`/registry/…/<ns>/`); the
    /// apiserver's: empty.
    key_prefix: String,
    etcd: bool,
    /// The body, made once with slots for what changes between writes
    /// (a create's name; an update's `resourceVersion` and counter), so the
    /// client spends its share of the two cores on requests, not on building
    /// and serialising JSON trees.
    template: raw::Template,
    /// An update client's Task's current `resourceVersion`.
    resource_version: String,
}

impl Writer {
    async fn new(base: &str, ns: &str, kind: WriteKind, id: usize, target: &Target) -> anyhow::Result<Writer> {
        if let Target::Etcd { value } = target {
            return Writer::for_etcd(base, ns, kind, id, value).await;
        }
        let collection = tasks_url(base, ns);
        let collection_path = collection.strip_prefix(base).context("the collection is under the base URL")?;
        let (path, template, resource_version) = match kind {
            WriteKind::Create => {
                let template = serde_json::to_string(&task(ns, NAME_SLOT, json!({})))?;
                (collection_path.to_string(), raw::Template::new(&template, &[NAME_SLOT])?, String::new())
            }
            WriteKind::Update => {
                let name = format!("u{id}");
                let mut current = match target {
                    // The floor keeps nothing to update: the client's Task is
                    // made here, as the apiserver would have stored it.
                    Target::Floor => {
                        let mut stored = task(ns, &name, json!({}));
                        stored["metadata"]["resourceVersion"] = json!("1");
                        stored
                    }
                    _ => create(&client()?, &collection, &task(ns, &name, json!({}))).await?,
                };
                let rv = current["metadata"]["resourceVersion"].as_str().context("resourceVersion")?.to_string();
                current["metadata"]["resourceVersion"] = json!(RV_SLOT);
                current["metadata"]["annotations"]["bench/n"] = json!(N_SLOT);
                let template = serde_json::to_string(&current)?;
                (format!("{collection_path}/{name}"), raw::Template::new(&template, &[RV_SLOT, N_SLOT])?, rv)
            }
        };
        let conn = raw::Connection::open(base).await?;
        Ok(Writer { conn, path, kind, id, key_prefix: String::new(), etcd: false, template, resource_version })
    }

    /// A writer of the etcd peer; an update client creates its key first.
    async fn for_etcd(base: &str, ns: &str, kind: WriteKind, id: usize, value: &[u8]) -> anyhow::Result<Writer> {
        let mut conn = raw::Connection::open(base).await?;
        let (template, resource_version) = match kind {
            WriteKind::Create => (etcd::create_template(value)?, String::new()),
            WriteKind::Update => {
                let key = etcd::key(ns, &format!("u{id}"));
                let mut encoded = Vec::new();
                etcd::encode_into(key.as_bytes(), &mut encoded);
                let create = etcd::create_template(value)?;
                let answer = conn.send("POST", etcd::TXN_PATH, &create, &[&encoded, &encoded]).await?;
                expect_status(&answer, 200, "etcd create")?;
                let revision = etcd::succeeded(answer.body)?;
                (etcd::update_template(&key, value)?, revision)
            }
        };
        let (path, key_prefix) = (etcd::TXN_PATH.to_string(), etcd::key(ns, ""));
        Ok(Writer { conn, path, kind, id, key_prefix, etcd: true, template, resource_version })
    }

    /// Writes until `deadline` or until `started` reaches `count`; returns
    /// each write's latency in ms.
    async fn run(
        &mut self,
        deadline: tokio::time::Instant,
        started: &AtomicU64,
        count: u64,
    ) -> anyhow::Result<Vec<f64>> {
        let mut latencies = Vec::new();
        let mut n = 0u64;
        let mut slot = Vec::with_capacity(32);
        let mut key = Vec::with_capacity(128);
        while tokio::time::Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < count {
            let sent = Instant::now();
            slot.clear();
            match self.kind {
                WriteKind::Create if self.etcd => {
                    write!(slot, "{}c{}-{n}", self.key_prefix, self.id)?;
                    key.clear();
                    etcd::encode_into(&slot, &mut key);
                    let answer = self.conn.send("POST", &self.path, &self.template, &[&key, &key]).await?;
                    expect_status(&answer, 200, "etcd create")?;
                    etcd::succeeded(answer.body)?;
                }
                WriteKind::Update if self.etcd => {
                    let values: [&[u8]; 1] = [self.resource_version.as_bytes()];
                    let answer = self.conn.send("POST", &self.path, &self.template, &values).await?;
                    expect_status(&answer, 200, "etcd update")?;
                    self.resource_version = etcd::succeeded(answer.body)?;
                }
                WriteKind::Create => {
                    write!(slot, "c{}-{n}", self.id)?;
                    let answer = self.conn.send("POST", &self.path, &self.template, &[&slot]).await?;
                    expect_status(&answer, 201, "POST")?;
                }
                WriteKind::Update => {
                    write!(slot, "{n}")?;
                    let values: [&[u8]; 2] = [self.resource_version.as_bytes(), &slot];
                    let answer = self.conn.send("PUT", &self.path, &self.template, &values).await?;
                    expect_status(&answer, 200, "PUT")?;
                    self.resource_version = raw::resource_version(answer.body)?;
                }
            }
            latencies.push(sent.elapsed().as_secs_f64() * 1e3);
            n += 1;
        }
        Ok(latencies)
    }
}

/// Stand for the create's name, the update's `resourceVersion` and counter
/// in the templates (no JSON escaping needed).
const NAME_SLOT: &str = "NAME-SLOT";
const RV_SLOT: &str = "RV-SLOT";
const N_SLOT: &str = "N-SLOT";

/// Fails unless `answer` has status `want`.
fn expect_status(answer: &raw::Answer<'_>, want: u16, what: &str) -> anyhow::Result<()> {
    if answer.status != want {
        bail!("{what} answered {} (expected {want}): {}", answer.status, String::from_utf8_lossy(answer.body));
    }
    Ok(())
}

/// `POST`s `body` to `collection`; returns the created object.
pub async fn create(http: &reqwest::Client, collection: &str, body: &Value) -> anyhow::Result<Value> {
    let resp = http.post(collection).json(body).send().await?;
    expect(resp, StatusCode::CREATED, "POST").await
}

async fn expect(resp: reqwest::Response, want: StatusCode, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    if status != want {
        let text = resp.text().await.unwrap_or_default();
        bail!("{what} answered {status} (expected {want}): {text}");
    }
    Ok(resp.json().await?)
}

/// Creates `count` Tasks named `t{i}` in `ns` with `clients` writers; returns
/// the seconds it took.
pub async fn fill(base: &str, ns: &str, count: usize, clients: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut jobs = Vec::with_capacity(clients);
    for c in 0..clients {
        let collection = tasks_url(base, ns);
        let ns = ns.to_string();
        jobs.push(tokio::spawn(async move {
            let http = client()?;
            for i in (c..count).step_by(clients) {
                create(&http, &collection, &task(&ns, &format!("t{i:06}"), json!({}))).await?;
            }
            anyhow::Ok(())
        }));
    }
    for job in jobs {
        job.await.context("fill task")??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Times one full `GET` of the collection; returns (ms, items, body bytes).
pub async fn list_full(base: &str, ns: &str) -> anyhow::Result<(f64, usize, usize)> {
    let http = client()?;
    let start = Instant::now();
    let resp = http.get(tasks_url(base, ns)).send().await?;
    if resp.status() != StatusCode::OK {
        bail!("list answered {}", resp.status());
    }
    let body = resp.bytes().await?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let list: Value = serde_json::from_slice(&body)?;
    let items = list["items"].as_array().map_or(0, Vec::len);
    Ok((ms, items, body.len()))
}

/// Times a paged list with `limit` per page; returns (ms, items, pages).
pub async fn list_paged(base: &str, ns: &str, limit: usize) -> anyhow::Result<(f64, usize, usize)> {
    let http = client()?;
    let url = tasks_url(base, ns);
    let start = Instant::now();
    let (mut items, mut pages) = (0, 0);
    let mut token: Option<String> = None;
    loop {
        let mut req = http.get(&url).query(&[("limit", limit.to_string())]);
        if let Some(t) = &token {
            req = req.query(&[("continue", t)]);
        }
        let resp = req.send().await?;
        if resp.status() != StatusCode::OK {
            bail!("paged list answered {}", resp.status());
        }
        let page: Value = resp.json().await?;
        items += page["items"].as_array().map_or(0, Vec::len);
        pages += 1;
        token = page["metadata"]["continue"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok((start.elapsed().as_secs_f64() * 1e3, items, pages))
}
