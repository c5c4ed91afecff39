//! Untyped access to the apiserver: objects as JSON, addressed by kind.
//!
//! The CLI handles every kind the same way, so it speaks JSON values rather
//! than the client crate's typed `Api<K>`; it reuses the client's
//! [`StatusBody`] for the server's errors. This module owns paths, query
//! parameters, content types and error decoding. It must not print.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use meseta_client::StatusBody;
use meseta_schemas::registry::KindInfo;
use reqwest::Method;
use serde_json::Value;

/// Media type of a JSON merge patch.
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
/// Media type of a server-side apply patch.
pub(crate) const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// `fieldManager` of writes made by this CLI.
pub(crate) const FIELD_MANAGER: &str = "meseta";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The server answered with an error `Status`.
    #[error("{}", .status.describe())]
    Status {
        /// The server's Status.
        status: Box<StatusBody>,
    },
    /// No connection could be made.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL asked for.
        url: String,
        /// The underlying failure, e.g. connection refused.
        reason: String,
    },
    /// The connection broke or timed out.
    #[error("{method} {url} failed: {source}")]
    Transport {
        /// HTTP method.
        method: String,
        /// The URL asked for.
        url: String,
        /// The failure.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the JSON expected.
    #[error("cannot read the answer of {url}: {source}")]
    Decode {
        /// The URL asked for.
        url: String,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
}

impl ConnError {
    /// The server's Status, when it answered with one.
    pub(crate) fn status(&self) -> Option<&StatusBody> {
        match self {
            ConnError::Status { status } => Some(status),
            _ => None,
        }
    }

    /// The answer was 404.
    pub(crate) fn is_not_found(&self) -> bool {
        self.status().is_some_and(|s| s.code == 404 || s.reason == "NotFound")
    }
}

/// Result of a request.
pub(crate) type ConnResult<T> = Result<T, ConnError>;

/// One apiserver: base URL, token and the HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Where objects of one kind live: a namespace, or all (and cluster kinds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The kind.
    pub(crate) kind: &'static KindInfo,
    /// The namespace of a namespaced kind; `None` for all namespaces or a cluster kind.
    pub(crate) namespace: Option<&'a str>,
}

impl<'a> Scope<'a> {
    /// `kind` in `namespace` (ignored for cluster-scoped kinds).
    pub(crate) fn new(kind: &'static KindInfo, namespace: Option<&'a str>) -> Self {
        Scope { kind, namespace: if kind.namespaced { namespace } else { None } }
    }

    /// Path of the collection.
    pub(crate) fn collection(&self) -> String {
        match self.namespace {
            Some(ns) => format!("/apis/meseta.io/v1/namespaces/{ns}/{}", self.kind.plural),
            None => format!("/apis/meseta.io/v1/{}", self.kind.plural),
        }
    }

    /// Path of the object `name` (or of its subresource).
    pub(crate) fn object(&self, name: &str, subresource: Option<&str>) -> String {
        let mut path = format!("{}/{name}", self.collection());
        if let Some(sub) = subresource {
            path.push('/');
            path.push_str(sub);
        }
        path
    }
}

impl Conn {
    /// A connection to `server` (`http://host:port`).
    pub(crate) fn new(server: &str, token: Option<&str>) -> anyhow::Result<Conn> {
        let base = server.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).map_err(|e| {
            anyhow::anyhow!("the server URL {base:?} is not a URL ({e}); pass e.g. --server http://127.0.0.1:5050")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("the server URL {base:?} must start with http:// or https://");
        }
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Conn { http, base, token: token.map(str::to_string) })
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str, query: &[(&str, String)]) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).query(query);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn send(&self, method: Method, path: &str, req: reqwest::RequestBuilder) -> ConnResult<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let resp = req.send().await.map_err(|source| {
            if source.is_connect() {
                let mut reason = source.to_string();
                let mut inner: Option<&dyn std::error::Error> = std::error::Error::source(&source);
                while let Some(e) = inner {
                    reason = e.to_string();
                    inner = e.source();
                }
                ConnError::Connect { url: url.clone(), reason }
            } else {
                ConnError::Transport { method: method.to_string(), url: url.clone(), source }
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        Err(ConnError::Status { status: Box::new(status_of(code, &body)) })
    }

    /// Sends a request and returns the raw body.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &str)>,
    ) -> ConnResult<Bytes> {
        let mut req = self.request(method.clone(), path, query).timeout(Duration::from_secs(60));
        if let Some((bytes, content_type)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let resp = self.send(method.clone(), path, req).await?;
        let url = format!("{}{path}", self.base);
        resp.bytes().await.map_err(|source| ConnError::Transport { method: method.to_string(), url, source })
    }

    /// Sends a request and decodes the answer as JSON.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&Value, &str)>,
    ) -> ConnResult<Value> {
        let body = body.map(|(v, ct)| (serde_json::to_vec(v).expect("JSON values serialise"), ct));
        let bytes = self.raw(method, path, query, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|source| ConnError::Decode { url: format!("{}{path}", self.base), source })
    }

    /// GET of one object.
    pub(crate) async fn get(&self, scope: Scope<'_>, name: &str) -> ConnResult<Value> {
        self.json(Method::GET, &scope.object(name, None), &[], None).await
    }

    /// GET of one object, `None` when absent.
    pub(crate) async fn get_opt(&self, scope: Scope<'_>, name: &str) -> ConnResult<Option<Value>> {
        match self.get(scope, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists the collection (every page) with optional label and field selectors.
    pub(crate) async fn list(&self, scope: Scope<'_>, labels: Option<&str>, fields: Option<&str>) -> ConnResult<List> {
        let mut items = Vec::new();
        let mut cont: Option<String> = None;
        loop {
            let mut query = selectors(labels, fields);
            query.push(("limit", "500".into()));
            if let Some(c) = cont.take() {
                query.push(("continue", c));
            }
            let page = self.json(Method::GET, &scope.collection(), &query, None).await?;
            if let Some(Value::Array(page_items)) = page.get("items") {
                items.extend(page_items.iter().cloned());
            }
            let meta = page.get("metadata");
            let resource_version = meta.and_then(|m| m.get("resourceVersion")).and_then(Value::as_str).unwrap_or("");
            match meta.and_then(|m| m.get("continue")).and_then(Value::as_str).filter(|c| !c.is_empty()) {
                Some(c) => cont = Some(c.to_string()),
                None => return Ok(List { items, resource_version: resource_version.to_string() }),
            }
        }
    }

    /// POST of a new object.
    pub(crate) async fn create(&self, scope: Scope<'_>, obj: &Value, dry_run: bool) -> ConnResult<Value> {
        let query = write_query(dry_run);
        self.json(Method::POST, &scope.collection(), &query, Some((obj, "application/json"))).await
    }

    /// PATCH of an object with a patch of `content_type`.
    pub(crate) async fn patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch: &Value,
        content_type: &str,
        dry_run: bool,
    ) -> ConnResult<Value> {
        let query = write_query(dry_run);
        self.json(Method::PATCH, &scope.object(name, None), &query, Some((patch, content_type))).await
    }

    /// DELETE of an object (background propagation).
    pub(crate) async fn delete(&self, scope: Scope<'_>, name: &str, dry_run: bool) -> ConnResult<Value> {
        let query = write_query(dry_run);
        self.json(Method::DELETE, &scope.object(name, None), &query, None).await
    }

    /// Opens a streaming GET (watch, logs); the body arrives in chunks.
    pub(crate) async fn stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> ConnResult<impl Stream<Item = ConnResult<Bytes>> + Unpin> {
        let req = self.request(Method::GET, path, query);
        let resp = self.send(Method::GET, path, req).await?;
        let url = format!("{}{path}", self.base);
        Ok(resp.bytes_stream().map(move |chunk| {
            chunk.map_err(|source| ConnError::Transport { method: "GET".into(), url: url.clone(), source })
        }))
    }
}

/// A listed collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct List {
    /// The objects.
    pub(crate) items: Vec<Value>,
    /// The collection's resourceVersion, where a watch can start.
    pub(crate) resource_version: String,
}

/// `labelSelector` / `fieldSelector` query parameters.
pub(crate) fn selectors(labels: Option<&str>, fields: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(l) = labels.filter(|l| !l.is_empty()) {
        query.push(("labelSelector", l.to_string()));
    }
    if let Some(f) = fields.filter(|f| !f.is_empty()) {
        query.push(("fieldSelector", f.to_string()));
    }
    query
}

fn write_query(dry_run: bool) -> Vec<(&'static str, String)> {
    let mut query = vec![("fieldManager", FIELD_MANAGER.to_string())];
    if dry_run {
        query.push(("dryRun", "All".into()));
    }
    query
}

/// The Status in an error answer, or one made from its code and text.
fn status_of(code: u16, body: &[u8]) -> StatusBody {
    match serde_json::from_slice::<StatusBody>(body) {
        Ok(s) if !s.message.is_empty() || !s.reason.is_empty() => {
            StatusBody { code: if s.code == 0 { code } else { s.code }, ..s }
        }
        _ => StatusBody::from_http(code, &String::from_utf8_lossy(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_scope() {
        let task = meseta_schemas::registry::by_kind("Task").unwrap();
        let agent = meseta_schemas::registry::by_kind("Agent").unwrap();
        assert_eq!(
            Scope::new(task, Some("web")).object("a", Some("log")),
            "/apis/meseta.io/v1/namespaces/web/tasks/a/log"
        );
        assert_eq!(Scope::new(task, None).collection(), "/apis/meseta.io/v1/tasks");
        assert_eq!(Scope::new(agent, Some("web")).object("a1", None), "/apis/meseta.io/v1/agents/a1");
    }

    #[test]
    fn error_bodies_become_statuses() {
        let s = status_of(422, br#"{"kind":"Status","message":"bad","reason":"Invalid"}"#);
        assert_eq!((s.code, s.reason.as_str(), s.message.as_str()), (422, "Invalid", "bad"));
        let s = status_of(502, b"gateway down");
        assert_eq!((s.code, s.message.as_str()), (502, "gateway down"));
    }
}
