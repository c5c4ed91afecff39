//! Shared helpers of the client's integration tests: a real apiserver, typed
//! sample objects, and bounded waiting.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

pub use meseta_apiserver::testing::TestServer;
pub use meseta_client::{Api, Client};
use meseta_schemas::Task;
use serde_json::json;

/// A started server and a client for it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start().await;
    let client = Client::new(server.url()).expect("client for the test server");
    (server, client)
}

/// A valid Task `name` in namespace `ns`.
pub fn task(ns: &str, name: &str) -> Task {
    serde_json::from_value(json!({
        "apiVersion": "meseta.io/v1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}}
    }))
    .expect("sample task decodes")
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test with
/// `what` after `limit` (a bound on waiting, not a performance assertion).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("gave up after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
