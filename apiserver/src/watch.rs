//! Watch: `GET ...?watch=true&resourceVersion=N` as a chunked stream of
//! newline-delimited JSON events, flushed one per line.
//!
//! # Expected flow
//!
//! - `resourceVersion` absent or `0`: one `ADDED` per current object (from a
//!   list), then live events after the list's revision.
//! - `resourceVersion=N`: every event after N, then live ones.
//! - Selectors apply with transitions: an object that stops matching is sent
//!   as `DELETED` (its last matching state), one that starts matching as
//!   `ADDED`.
//! - `DELETED` carries the last object with the deletion revision as its
//!   `resourceVersion`.
//! - `allowWatchBookmarks=true`: a `BOOKMARK` every bookmark interval with the
//!   newest revision this watch has passed.
//! - N compacted: an `ERROR` event with a 410 `Expired` Status, then the
//!   stream ends, so the client re-lists.
//! - The stream ends on `timeoutSeconds`, when the client leaves, or at
//!   server shutdown.
//!
//! Each watch runs in its own task reading the store's watch stream, so a
//! slow client only ever delays itself, never a writer.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use meseta_schemas::API_VERSION;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::handlers::Call;
use crate::object;
use crate::objects::{self, Filter};
use crate::store::{EventKind, Revision, WatchEvent, WatchStream};

/// Events buffered per watch before its task waits for the client.
const BUFFER: usize = 256;

/// Serves a watch request.
pub(crate) async fn serve(call: Call) -> Result<Response, ApiError> {
    let mut filter = Filter::from_params(&call.params)?;
    if let Some(name) = &call.target.name {
        filter = filter.with_name(name);
    }
    let from = call.params.resource_version()?;
    let timeout = call.params.timeout()?;
    let bookmarks = call.params.bookmarks();
    let store = call.state.store().clone();
    let prefix = call.target.prefix();
    let (initial, start) = match from {
        None => {
            let page = objects::list(store.as_ref(), &prefix, &filter, None, None).await?;
            (page.items, page.revision)
        }
        Some(n) => (Vec::new(), n),
    };
    let stream = store.watch(&prefix, start);
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    let watch = Watch {
        kind: call.target.kind.kind,
        table: crate::table::wants_table(&call.headers).then_some(call.target.kind),
        filter,
        last: start,
        tx,
        bookmarks: bookmarks.then_some(call.state.bookmark_interval()),
        timeout,
    };
    let gauge = call.state.metrics().watchers.with_label_values(&[call.target.kind.plural]);
    let state = call.state.clone();
    gauge.inc();
    tokio::spawn(async move {
        tokio::select! {
            _ = watch.run(initial, stream) => {}
            _ = state.shutting_down() => {}
        }
        gauge.dec();
    });
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<Bytes, Infallible>));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

struct Watch {
    kind: &'static str,
    /// Send objects as one-row Tables (the client asked `as=Table`).
    table: Option<&'static meseta_schemas::registry::KindInfo>,
    filter: Filter,
    last: Revision,
    tx: mpsc::Sender<Bytes>,
    bookmarks: Option<std::time::Duration>,
    timeout: Option<std::time::Duration>,
}

impl Watch {
    async fn run(mut self, initial: Vec<Value>, stream: Result<WatchStream, crate::store::StoreError>) {
        for obj in initial {
            if !self.send("ADDED", &obj).await {
                return;
            }
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                self.send_error(ApiError::from(e)).await;
                return;
            }
        };
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let period = self.bookmarks.unwrap_or(std::time::Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(ev)) => {
                        self.last = self.last.max(ev.revision);
                        match convert(&ev, &self.filter) {
                            Ok(Some((kind, obj))) => {
                                if !self.send(kind, &obj).await {
                                    return;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                self.send_error(e).await;
                                return;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        self.send_error(ApiError::from(e)).await;
                        return;
                    }
                    None => return,
                },
                _ = ticker.tick(), if self.bookmarks.is_some() => {
                    let bookmark = json!({
                        "kind": self.kind,
                        "apiVersion": API_VERSION,
                        "metadata": {"resourceVersion": self.last.to_string()},
                    });
                    if !self.send("BOOKMARK", &bookmark).await {
                        return;
                    }
                }
                _ = sleep_until(deadline) => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Sends one event line; false when the client is gone.
    async fn send(&self, kind: &str, obj: &Value) -> bool {
        let table = match self.table {
            Some(k) if kind != "BOOKMARK" && kind != "ERROR" => Some(crate::table::single(k, obj)),
            _ => None,
        };
        let obj = table.as_ref().unwrap_or(obj);
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": obj})).expect("JSON serialises");
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    async fn send_error(&self, e: ApiError) {
        if let ApiError::Internal(detail) = &e {
            tracing::error!(error = %detail, "watch failed");
        }
        self.send("ERROR", &e.status()).await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The event a watcher with `filter` sees for a store event, if any.
fn convert(ev: &WatchEvent, filter: &Filter) -> Result<Option<(&'static str, Value)>, ApiError> {
    let rev = ev.revision;
    let decode = |bytes: &[u8]| object::from_stored(bytes, rev);
    Ok(match ev.kind {
        EventKind::Created => Some(decode(&ev.value)?).filter(|o| filter.matches(o)).map(|o| ("ADDED", o)),
        EventKind::Deleted => Some(decode(&ev.prev_value)?).filter(|o| filter.matches(o)).map(|o| ("DELETED", o)),
        EventKind::Updated => {
            let new = decode(&ev.value)?;
            let now = filter.matches(&new);
            if filter.is_everything() || ev.prev_value.is_empty() {
                return Ok(now.then_some(("MODIFIED", new)));
            }
            let old = decode(&ev.prev_value)?;
            match (filter.matches(&old), now) {
                (true, true) => Some(("MODIFIED", new)),
                (false, true) => Some(("ADDED", new)),
                (true, false) => Some(("DELETED", old)),
                (false, false) => None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Params;

    fn ev(kind: EventKind, value: Value, prev: Value) -> WatchEvent {
        let enc = |v: &Value| if v.is_null() { Bytes::new() } else { Bytes::from(serde_json::to_vec(v).unwrap()) };
        WatchEvent { revision: 7, kind, key: "/registry/tasks/a/t".into(), value: enc(&value), prev_value: enc(&prev) }
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let filter = Filter::from_params(&Params { label_selector: Some("app=web".into()), ..Default::default() })
            .expect("valid selector");
        let web = json!({"metadata": {"name": "t", "labels": {"app": "web"}}});
        let db = json!({"metadata": {"name": "t", "labels": {"app": "db"}}});
        let (t, o) = convert(&ev(EventKind::Updated, db.clone(), web.clone()), &filter).unwrap().unwrap();
        assert_eq!(t, "DELETED");
        assert_eq!(o["metadata"]["resourceVersion"], "7");
        assert_eq!(o["metadata"]["labels"]["app"], "web");
        let (t, _) = convert(&ev(EventKind::Updated, web.clone(), db.clone()), &filter).unwrap().unwrap();
        assert_eq!(t, "ADDED");
        assert!(convert(&ev(EventKind::Updated, db.clone(), db), &filter).unwrap().is_none());
        let (t, o) = convert(&ev(EventKind::Deleted, Value::Null, web), &filter).unwrap().unwrap();
        assert_eq!((t, o["metadata"]["resourceVersion"].as_str()), ("DELETED", Some("7")));
    }
}
