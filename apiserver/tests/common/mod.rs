//! Shared helpers of the apiserver's integration tests: a small HTTP client
//! over a real `TestServer`, and sample objects.
#![allow(dead_code, unreachable_pub)]

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub use meseta_apiserver::testing::TestServer;

/// `/apis/meseta.io/v1`.
pub const API: &str = "/apis/meseta.io/v1";

/// A response: status, headers, JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// A client for one test server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(server: &TestServer) -> Api {
        Api { base: server.url().to_string(), http: reqwest::Client::new() }
    }

    /// Sends `body` (raw bytes) with `content_type`.
    /// Server-side apply of `body` at `path` as field manager `test`.
    pub async fn apply(&self, path: &str, body: &Value) -> Resp {
        self.raw(Method::PATCH, &format!("{path}?fieldManager=test"), "application/apply-patch+yaml", body.to_string())
            .await
    }

    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.into())
            .send()
            .await
            .expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, body, text }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        self.raw(method, path, "application/json", bytes).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Resp {
        self.raw(Method::PATCH, path, content_type, serde_json::to_vec(body).unwrap()).await
    }

    /// Names of the items of a list at `path`, in order.
    pub async fn names(&self, path: &str) -> Vec<String> {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "list {path}: {}", r.text);
        items_names(&r.body)
    }

    /// The whole store content under the API, for "nothing changed" checks.
    pub async fn snapshot(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for plural in ["tasks", "roles", "jobs", "leases", "agents"] {
            let r = self.get(&format!("{API}/{plural}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            all.extend(r.body["items"].as_array().unwrap().iter().cloned());
        }
        all
    }
}

pub fn items_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// A valid Task in namespace `ns`.
pub fn task(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "meseta.io/v1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}}
    })
}

/// A valid Role.
pub fn role(name: &str) -> Value {
    json!({"apiVersion": "meseta.io/v1", "kind": "Role", "metadata": {"name": name}, "spec": {"weight": 2.0}})
}

/// Path of a task collection in `ns`.
pub fn tasks(ns: &str) -> String {
    format!("{API}/namespaces/{ns}/tasks")
}

/// Path of one task.
pub fn task_path(ns: &str, name: &str) -> String {
    format!("{API}/namespaces/{ns}/tasks/{name}")
}

/// `metadata.resourceVersion` as a number.
pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().expect("resourceVersion").parse().unwrap()
}

/// Polls `check` every 50 ms for up to 10 s; panics with `what` when it never holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// Reads newline-delimited watch events from a streaming response.
pub struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Events {
    /// Opens a watch at `path` (with its query); fails the test unless it
    /// answers 200 with a JSON stream.
    pub async fn open(api: &Api, path: &str) -> Events {
        use futures::StreamExt;
        let resp = api.http.get(format!("{}{path}", api.base)).send().await.expect("watch request");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        Events { stream: resp.bytes_stream().boxed(), buf: Vec::new() }
    }

    /// The next event, or `None` when the stream ended. Fails the test if
    /// nothing arrives for 20 seconds (a hang, not a timing requirement).
    pub async fn next(&mut self) -> Option<Value> {
        use futures::StreamExt;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("each line is one JSON event"));
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), self.stream.next())
                .await
                .expect("watch stalled");
            match chunk {
                Some(chunk) => self.buf.extend_from_slice(&chunk.expect("chunk")),
                None => return None,
            }
        }
    }

    /// The next event; fails the test when the stream ended.
    pub async fn next_event(&mut self) -> Value {
        self.next().await.expect("the watch ended")
    }
}
