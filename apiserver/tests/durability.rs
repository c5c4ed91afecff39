//! Durability of the real `meseta-apiserver` binary: 16 clients create and
//! update objects while the process is killed with SIGKILL several times and
//! restarted on the same data directory. Every acknowledged (2xx) write must
//! survive with its acknowledged content and resourceVersion, and the
//! revision counter must never go backwards.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{json, Value};

const CLIENTS: usize = 16;
const KILLS: usize = 3;
const NS: &str = "durable";

/// A running apiserver process.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meseta-apiserver"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(["--log-level", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start meseta-apiserver");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
        let url = line.trim().rsplit(' ').next().expect("a URL").to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line {line:?}");
        Server { child, url }
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    /// A failing test must not leave a server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client knows about one object.
#[derive(Debug, Default, Clone)]
struct Known {
    /// Last acknowledged write: (command, resourceVersion).
    acked: Option<(String, u64)>,
    /// Commands sent after it whose outcome is unknown (the server died).
    maybe: Vec<String>,
}

type Ledger = Arc<Mutex<HashMap<String, Known>>>;

async fn client(id: usize, url: Arc<RwLock<String>>, ledger: Ledger, stop: Arc<std::sync::atomic::AtomicBool>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let name = format!("c{id}-{n}");
        n += 1;
        for version in 0..4 {
            let command = format!("echo {name} v{version}");
            let base = url.read().unwrap().clone();
            let resp = if version == 0 {
                let body = json!({"apiVersion": "meseta.io/v1", "kind": "Task",
                    "metadata": {"name": name}, "spec": {"command": command}});
                http.post(format!("{base}/apis/meseta.io/v1/namespaces/{NS}/tasks")).json(&body).send().await
            } else {
                http.patch(format!("{base}/apis/meseta.io/v1/namespaces/{NS}/tasks/{name}"))
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({"spec": {"command": command}}).to_string())
                    .send()
                    .await
            };
            let outcome = match resp {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                Ok(r) => panic!("client {id}: {name} v{version} refused: {} {:?}", r.status(), r.text().await),
                Err(_) => None,
            };
            let acknowledged = {
                let mut ledger = ledger.lock().unwrap();
                let known = ledger.entry(name.clone()).or_default();
                match outcome {
                    Some(obj) => {
                        assert_eq!(obj["spec"]["command"], command.as_str());
                        let rv = obj["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
                        known.acked = Some((command, rv));
                        known.maybe.clear();
                        true
                    }
                    None => {
                        known.maybe.push(command);
                        false
                    }
                }
            };
            if !acknowledged {
                // Unknown outcome: move on to a new object once the server is back.
                tokio::time::sleep(Duration::from_millis(100)).await;
                break;
            }
        }
    }
}

/// Checks one object's stored state against what its client was told.
fn check_object(name: &str, known: &Known, stored: Option<(String, u64)>, revision: u64) {
    let Some((command, rv)) = &known.acked else { return };
    let (now, now_rv) = stored
        .unwrap_or_else(|| panic!("acknowledged {name} is missing: {known:?}; the store is at revision {revision}"));
    if &now == command {
        assert_eq!(now_rv, *rv, "{name}: acknowledged at {rv}, stored at {now_rv}");
    } else {
        assert!(known.maybe.contains(&now), "{name}: stored {now:?}, acknowledged {command:?}");
        assert!(now_rv > *rv, "{name}: a later write has an older revision");
    }
    assert!(revision >= *rv, "the revision went backwards: store at {revision}, {name} acknowledged at {rv}");
}

/// While the server is down: opens its data directory and checks every
/// acknowledged write; returns the store revision.
async fn verify_on_disk(dir: &std::path::Path, ledger: &Ledger) -> u64 {
    let store = meseta_apiserver::open_sled(dir).expect("open the killed server's store");
    let revision = store.revision();
    let ledger = ledger.lock().unwrap().clone();
    for (name, known) in &ledger {
        let kv = store.get(&format!("/registry/tasks/{NS}/{name}")).await.expect("read");
        let stored = kv.map(|kv| {
            let obj: Value = serde_json::from_slice(&kv.value).expect("stored JSON");
            (obj["spec"]["command"].as_str().unwrap().to_string(), kv.mod_revision)
        });
        check_object(name, known, stored, revision);
    }
    revision
}

/// With the clients stopped: checks every acknowledged write through the API.
async fn verify_over_http(url: &str, ledger: &Ledger) {
    let list: Value =
        reqwest::get(format!("{url}/apis/meseta.io/v1/namespaces/{NS}/tasks")).await.unwrap().json().await.unwrap();
    let revision: u64 = list["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let stored: HashMap<String, (String, u64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let rv = o["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                (o["spec"]["command"].as_str().unwrap().to_string(), rv),
            )
        })
        .collect();
    for (name, known) in ledger.lock().unwrap().iter() {
        check_object(name, known, stored.get(name).cloned(), revision);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let url = Arc::new(RwLock::new(server.url.clone()));
    let ledger: Ledger = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> =
        (0..CLIENTS).map(|i| tokio::spawn(client(i, url.clone(), ledger.clone(), stop.clone()))).collect();

    let mut high_water = 0;
    for round in 0..KILLS {
        // Let load build up; the kill lands in the middle of it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill9();
        let revision = verify_on_disk(dir.path(), &ledger).await;
        assert!(revision >= high_water, "round {round}: the revision went backwards");
        high_water = revision;
        server = Server::start(dir.path());
        *url.write().unwrap() = server.url.clone();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.expect("a client failed");
    }
    verify_over_http(&server.url, &ledger).await;
    let ledger = ledger.lock().unwrap().clone();
    let acked = ledger.values().filter(|k| k.acked.is_some()).count();
    let interrupted = ledger.values().filter(|k| !k.maybe.is_empty()).count();
    assert!(acked > CLIENTS, "too little load to mean anything: {acked} objects");
    assert!(interrupted > 0, "no kill landed in the middle of a write");
    server.kill9();
}
