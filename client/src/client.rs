//! [`Client`]: the HTTP connection to one apiserver.
//!
//! Owns the base URL, the bearer token, timeouts, and turning answers into
//! values or [`Error`]s. It must not know about kinds or paths beyond what
//! callers pass in: [`crate::Api`] builds paths.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{decode, Error, Result};

/// Default total time limit of a non-watch request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time limit for opening a TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cheap-to-clone handle on one apiserver.
///
/// Ordinary requests time out after [`DEFAULT_TIMEOUT`] (change with
/// [`Client::with_timeout`]); watch requests have no total limit, only the
/// server-side `timeoutSeconds` plus a margin, so a dead connection is noticed.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    token: Option<Arc<str>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The body of a request: none, JSON, or a JSON patch of the given media type.
#[derive(Debug, Clone)]
pub(crate) enum Body<'a> {
    /// No body.
    None,
    /// `application/json`, already serialised.
    Json(Vec<u8>),
    /// A body with an explicit content type (patches).
    Typed(&'a serde_json::Value, &'static str),
}

impl Client {
    /// A client for the apiserver at `url`, e.g. `http://127.0.0.1:5050`.
    pub fn new(url: impl AsRef<str>) -> Result<Self> {
        let url = url.as_ref().trim_end_matches('/');
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Error::InvalidRequest(format!("server URL {url:?} is not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::InvalidRequest(format!("server URL {url:?} must start with http:// or https://")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::InvalidRequest(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { http, base: url.into(), token: None, timeout: DEFAULT_TIMEOUT })
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = if token.is_empty() { None } else { Some(token.into()) };
        self
    }

    /// The same client with another total limit for non-watch requests.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn builder(&self, method: &Method, path: &str, query: &[(&str, String)]) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.clone(), url).query(query);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Sends a request and returns the raw body of a successful answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Bytes> {
        self.send_with(method, path, query, body, &[]).await
    }

    /// [`Client::send`] with extra request headers.
    pub(crate) async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
        headers: &[(&'static str, &'static str)],
    ) -> Result<Bytes> {
        let mut req = self.builder(&method, path, query).timeout(self.timeout);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req = match body {
            Body::None => req,
            Body::Json(bytes) => req.header(http::header::CONTENT_TYPE, "application/json").body(bytes),
            Body::Typed(v, content_type) => req
                .header(http::header::CONTENT_TYPE, content_type)
                .body(serde_json::to_vec(v).expect("a JSON value always serialises")),
        };
        let transport = |source| Error::Transport { method: method.to_string(), url: self.url_for(path), source };
        let resp = req.send().await.map_err(transport)?;
        let code = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if !code.is_success() {
            return Err(Error::from_response(code.as_u16(), &bytes));
        }
        Ok(bytes)
    }

    /// Opens a streaming GET (watch, logs) whose body is read incrementally.
    pub(crate) async fn stream(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: Option<Duration>,
    ) -> Result<reqwest::Response> {
        let mut req = self.builder(&Method::GET, path, query);
        if let Some(limit) = limit {
            req = req.timeout(limit);
        }
        let resp = req.send().await.map_err(|source| Error::Transport {
            method: "GET".into(),
            url: self.url_for(path),
            source,
        })?;
        let code = resp.status();
        if !code.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(Error::from_response(code.as_u16(), &body));
        }
        Ok(resp)
    }

    pub(crate) fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Escape hatch: sends `body` (if any) as JSON to `path` (starting with
    /// `/`, e.g. `/apis/meseta.io/v1/namespaces/web/offers/o1/accept`) and
    /// decodes the answer as `Resp`.
    pub async fn request_json<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Req>,
    ) -> Result<Resp> {
        let body = body.map(request_body).transpose()?.map_or(Body::None, Body::Json);
        let bytes = self.send(method, path, query, body).await?;
        decode(std::any::type_name::<Resp>().rsplit("::").next().unwrap_or("response"), &bytes)
    }

    /// Escape hatch: GETs `path` and returns the body as text (logs, metrics).
    pub async fn request_text(&self, path: &str, query: &[(&str, String)]) -> Result<String> {
        let bytes = self.send(Method::GET, path, query, Body::None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A request body serialized as JSON.
pub(crate) fn request_body<Req: Serialize + ?Sized>(body: &Req) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::InvalidRequest(format!("cannot serialise the request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_urls_that_cannot_work() {
        assert!(matches!(Client::new("localhost:5050"), Err(Error::InvalidRequest(_))));
        assert!(matches!(Client::new("not a url"), Err(Error::InvalidRequest(_))));
        let c = Client::new("http://127.0.0.1:5050/").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:5050");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let c = Client::new("http://127.0.0.1:5050").unwrap().with_token("s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
