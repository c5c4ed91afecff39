//! Watch: `GET ...?watch=true&resourceVersion=N` as a chunked stream of
//! newline-delimited JSON events. The events the store has ready at once (a
//! group commit's batch) go out as one chunk, so one write and one TCP
//! segment carry them: connections have Nagle's algorithm off, and a chunk
//! per event would cost the watcher a wake-up and a read per event.
//!
//! # Expected flow
//!
//! - `resourceVersion` absent or `0`: one `ADDED` per current object (from a
//!   list), then live events after the list's revision. The list is not a
//!   snapshot: an object written during its scan shows a state newer than
//!   the list's revision, and the events up to that state are not sent
//!   again ([`Replays`]).
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
//! slow client only ever delays itself, never a writer. A watch whose field
//! selector pins an indexed field (`spec.agent=a1` on tasks, see [`index`])
//! reads a stream the store narrowed to that value, and bookmarks with the
//! progress that stream reports. A filter that is only a field selector is
//! decided on the stored bytes ([`Filter::matches_stored`]), so such
//! watchers never decode an event.

pub(crate) mod index;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use meseta_schemas::API_VERSION;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::handlers::Call;
use crate::object;
use crate::objects::{self, Filter};
use crate::selector::FieldSelector;
use crate::store::{EventKind, IndexedWatch, Revision, WatchEvent, WatchProgress, WatchStream};

/// Chunks buffered per watch before its task waits for the client.
const BUFFER: usize = 256;

/// Most events joined into one chunk.
const JOIN_MAX: usize = 64;

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
    let replays = Replays::of(call.target.kind, start, &initial);
    // Already validated by `Filter::from_params`.
    let fields = call.params.field_selector.as_deref().and_then(|s| FieldSelector::parse(s).ok());
    let progress = WatchProgress::default();
    let stream = match index::narrow(&prefix, fields.as_ref()) {
        Some((index, value)) => {
            store.watch_indexed(&prefix, start, IndexedWatch { index, value, progress: progress.clone() })
        }
        None => store.watch(&prefix, start),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    let watch = Watch {
        kind: call.target.kind.kind,
        table: crate::table::wants_table(&call.headers).then_some(call.target.kind),
        filter,
        last: start,
        replays,
        progress,
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
    /// Events the initial list already showed.
    replays: Replays,
    /// How far a narrowed store stream has read past `last`.
    progress: WatchProgress,
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
                        // The events ready now, as one chunk.
                        let mut lines = Vec::new();
                        let mut next = Some(ev);
                        let mut end = None;
                        while let Some(ev) = next.take() {
                            if let Err(e) = self.take(&ev, &mut lines) {
                                end = Some(Some(e));
                                break;
                            }
                            if lines.len() >= JOIN_MAX {
                                break;
                            }
                            match stream.next().now_or_never() {
                                Some(Some(Ok(ev))) => next = Some(ev),
                                Some(Some(Err(e))) => end = Some(Some(ApiError::from(e))),
                                Some(None) => end = Some(None),
                                None => {}
                            }
                        }
                        if !self.send_lines(lines).await {
                            return;
                        }
                        match end {
                            Some(Some(e)) => return self.send_error(e).await,
                            Some(None) => return,
                            None => {}
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
                        "metadata": {"resourceVersion": self.last.max(self.progress.get()).to_string()},
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

    /// Adds the line of a store event to `lines` when the watch's filter
    /// lets it through. Without a table, the line is made once per event and
    /// shared by every watcher that sends it.
    fn take(&mut self, ev: &WatchEvent, lines: &mut Vec<Bytes>) -> Result<(), ApiError> {
        self.last = self.last.max(ev.revision);
        if self.replays.replays(&ev.key, ev.revision) {
            return Ok(());
        }
        let Some(kind) = convert(ev, &self.filter)? else { return Ok(()) };
        let line = match self.table {
            Some(info) => derived(ev).object(ev, kind.side()).map(|obj| {
                let mut line =
                    serde_json::to_vec(&json!({"type": kind.name(), "object": crate::table::single(info, obj)}))
                        .expect("JSON serialises");
                line.push(b'\n');
                Bytes::from(line)
            })?,
            None => derived(ev).line(ev, kind)?,
        };
        lines.push(line);
        Ok(())
    }

    /// Sends `lines` as one chunk (none when empty); false when the client
    /// is gone.
    async fn send_lines(&self, lines: Vec<Bytes>) -> bool {
        let chunk = match lines.len() {
            0 => return true,
            1 => lines.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(lines.concat()),
        };
        self.tx.send(chunk).await.is_ok()
    }

    async fn send_error(&self, e: ApiError) {
        if let ApiError::Internal(detail) = &e {
            tracing::error!(error = %detail, "watch failed");
        }
        self.send("ERROR", &e.status()).await;
    }
}

/// The objects of a watch's initial list whose state is newer than the
/// list's revision, with that state's revision, by store key: events of
/// those keys up to it are what the list already sent.
#[derive(Debug, Default)]
struct Replays {
    at: HashMap<String, Revision>,
    max: Revision,
}

impl Replays {
    /// The objects of `initial` (of `kind`, listed at `listed`) ahead of it.
    fn of(kind: &meseta_schemas::registry::KindInfo, listed: Revision, initial: &[Value]) -> Self {
        let mut replays = Replays::default();
        for obj in initial {
            let meta = &obj["metadata"];
            let revision = meta["resourceVersion"].as_str().and_then(|v| v.parse::<Revision>().ok());
            let (Some(revision), Some(name)) = (revision, meta["name"].as_str()) else { continue };
            if revision > listed {
                replays.at.insert(crate::path::object_key(kind, meta["namespace"].as_str(), name), revision);
                replays.max = replays.max.max(revision);
            }
        }
        replays
    }

    /// Whether the event of `key` at `revision` was already sent with the
    /// list. Past the newest listed revision nothing is, and the set is let go.
    fn replays(&mut self, key: &str, revision: Revision) -> bool {
        if self.at.is_empty() {
            return false;
        }
        let replay = self.at.get(key).is_some_and(|at| revision <= *at);
        if revision >= self.max {
            self.at = HashMap::new();
        }
        replay
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The type of an event line, which also says which side of the store event
/// it carries: `ADDED` and `MODIFIED` the new value, `DELETED` the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Added,
    Modified,
    Deleted,
}

/// The value after a change, or the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    New,
    Old,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Added => "ADDED",
            Kind::Modified => "MODIFIED",
            Kind::Deleted => "DELETED",
        }
    }

    fn side(self) -> Side {
        match self {
            Kind::Added | Kind::Modified => Side::New,
            Kind::Deleted => Side::Old,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What watchers derive from one store event, each made at most once however
/// many watchers need it (it lives in the event's shared memo).
#[derive(Default)]
struct Derived {
    /// The decoded values, with the event's revision as `resourceVersion`.
    new: OnceLock<Result<Value, String>>,
    old: OnceLock<Result<Value, String>>,
    /// The wire line per [`Kind`].
    lines: [OnceLock<Result<Bytes, String>>; 3],
}

fn derived(ev: &WatchEvent) -> &Derived {
    ev.memo.get_or_init(Derived::default)
}

impl Derived {
    fn bytes(ev: &WatchEvent, side: Side) -> &[u8] {
        match side {
            Side::New => &ev.value,
            Side::Old => &ev.prev_value,
        }
    }

    /// The decoded value of one side.
    fn object(&self, ev: &WatchEvent, side: Side) -> Result<&Value, ApiError> {
        let cell = match side {
            Side::New => &self.new,
            Side::Old => &self.old,
        };
        cell.get_or_init(|| object::from_stored(Self::bytes(ev, side), ev.revision).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ApiError::Internal(e.clone()))
    }

    /// `{"type":KIND,"object":OBJECT}` and a newline. The object is the
    /// stored bytes with the revision spliced in; only bytes not of the
    /// plain stored shape are decoded and re-encoded.
    fn line(&self, ev: &WatchEvent, kind: Kind) -> Result<Bytes, ApiError> {
        self.lines[kind.index()]
            .get_or_init(|| {
                let stored = Self::bytes(ev, kind.side());
                let mut line = Vec::with_capacity(stored.len() + 48);
                line.extend_from_slice(b"{\"type\":\"");
                line.extend_from_slice(kind.name().as_bytes());
                line.extend_from_slice(b"\",\"object\":");
                match object::splice_point(stored) {
                    Some(point) => object::append_spliced(&mut line, stored, point, ev.revision),
                    None => {
                        let obj = self.object(ev, kind.side()).map_err(|e| e.to_string())?;
                        serde_json::to_writer(&mut line, obj).expect("JSON serialises");
                    }
                }
                line.extend_from_slice(b"}\n");
                Ok(Bytes::from(line))
            })
            .clone()
            .map_err(ApiError::Internal)
    }

    /// Whether the side passes `filter`, decoding it only when the filter
    /// looks at anything the stored bytes cannot tell
    /// ([`Filter::matches_stored`]).
    fn matches(&self, ev: &WatchEvent, side: Side, filter: &Filter) -> Result<bool, ApiError> {
        if filter.is_everything() {
            return Ok(true);
        }
        if let Some(decided) = filter.matches_stored(Self::bytes(ev, side)) {
            return Ok(decided);
        }
        Ok(filter.matches(self.object(ev, side)?))
    }
}

/// The event a watcher with `filter` sees for a store event, if any.
fn convert(ev: &WatchEvent, filter: &Filter) -> Result<Option<Kind>, ApiError> {
    let d = derived(ev);
    let matches = |side| d.matches(ev, side, filter);
    Ok(match ev.kind {
        EventKind::Created => matches(Side::New)?.then_some(Kind::Added),
        EventKind::Deleted => matches(Side::Old)?.then_some(Kind::Deleted),
        EventKind::Updated => {
            let now = matches(Side::New)?;
            if filter.is_everything() || ev.prev_value.is_empty() {
                return Ok(now.then_some(Kind::Modified));
            }
            match (matches(Side::Old)?, now) {
                (true, true) => Some(Kind::Modified),
                (false, true) => Some(Kind::Added),
                (true, false) => Some(Kind::Deleted),
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
        WatchEvent {
            revision: 7,
            kind,
            key: "/registry/tasks/a/t".into(),
            value: enc(&value),
            prev_value: enc(&prev),
            memo: Default::default(),
        }
    }

    /// The event line a watcher with `filter` gets, parsed back.
    fn seen(e: &WatchEvent, filter: &Filter) -> Option<(String, Value)> {
        let kind = convert(e, filter).unwrap()?;
        let line = derived(e).line(e, kind).unwrap();
        assert_eq!(line.last(), Some(&b'\n'), "one event per line");
        let v: Value = serde_json::from_slice(&line).unwrap();
        Some((v["type"].as_str().unwrap().to_string(), v["object"].clone()))
    }

    fn label_filter(selector: &str) -> Filter {
        Filter::from_params(&Params { label_selector: Some(selector.into()), ..Default::default() })
            .expect("valid selector")
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let filter = label_filter("app=web");
        let web = json!({"metadata": {"name": "t", "labels": {"app": "web"}}});
        let db = json!({"metadata": {"name": "t", "labels": {"app": "db"}}});
        let (t, o) = seen(&ev(EventKind::Updated, db.clone(), web.clone()), &filter).unwrap();
        assert_eq!(t, "DELETED");
        assert_eq!(o["metadata"]["resourceVersion"], "7");
        assert_eq!(o["metadata"]["labels"]["app"], "web");
        let (t, o) = seen(&ev(EventKind::Updated, web.clone(), db.clone()), &filter).unwrap();
        assert_eq!((t.as_str(), o["metadata"]["labels"]["app"].as_str()), ("ADDED", Some("web")));
        assert!(seen(&ev(EventKind::Updated, db.clone(), db), &filter).is_none());
        let (t, o) = seen(&ev(EventKind::Deleted, Value::Null, web), &filter).unwrap();
        assert_eq!((t.as_str(), o["metadata"]["resourceVersion"].as_str()), ("DELETED", Some("7")));
    }

    #[test]
    fn events_the_initial_list_already_showed_are_replays() {
        let tasks = meseta_schemas::registry::by_plural("tasks").unwrap();
        // Listed at 10, but the scan saw a/t written at 12 and a/u at 13.
        let initial = vec![
            json!({"metadata": {"name": "t", "namespace": "a", "resourceVersion": "12"}}),
            json!({"metadata": {"name": "u", "namespace": "a", "resourceVersion": "13"}}),
            json!({"metadata": {"name": "old", "namespace": "a", "resourceVersion": "4"}}),
        ];
        let mut r = Replays::of(tasks, 10, &initial);
        assert!(r.replays("/registry/tasks/a/t", 11));
        assert!(!r.replays("/registry/tasks/a/new", 11), "an object the list did not show is news");
        assert!(r.replays("/registry/tasks/a/t", 12));
        assert!(!r.replays("/registry/tasks/a/old", 12), "listed at or below the list's revision");
        assert!(r.replays("/registry/tasks/a/u", 13));
        assert!(!r.replays("/registry/tasks/a/t", 12), "forgotten once the watch passed the newest listed state");
        let mut none = Replays::of(tasks, 20, &initial);
        assert!(!none.replays("/registry/tasks/a/t", 12), "nothing ahead of a list at 20");
    }

    #[test]
    fn the_line_is_the_stored_object_with_its_revision() {
        let obj = json!({"kind": "Task", "metadata": {"name": "t", "uid": "u"}, "spec": {"agent": "a1"}});
        let (t, o) = seen(&ev(EventKind::Created, obj.clone(), Value::Null), &Filter::default()).unwrap();
        assert_eq!(t, "ADDED");
        let mut want = obj;
        want["metadata"]["resourceVersion"] = json!("7");
        assert_eq!(o, want);
    }

    #[test]
    fn bytes_not_of_the_stored_shape_are_reencoded() {
        // A resourceVersion already present defeats the splice; the line
        // still carries the event's revision.
        let odd = json!({"metadata": {"name": "t", "resourceVersion": "3"}});
        let (_, o) = seen(&ev(EventKind::Updated, odd, Value::Null), &Filter::default()).unwrap();
        assert_eq!(o["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn clones_of_an_event_share_one_decode_and_one_line() {
        let filter = label_filter("app=web");
        let web = json!({"metadata": {"name": "t", "labels": {"app": "web"}}});
        let first = ev(EventKind::Created, web, Value::Null);
        let second = first.clone();
        assert_eq!(convert(&first, &filter).unwrap(), Some(Kind::Added));
        assert_eq!(convert(&second, &filter).unwrap(), Some(Kind::Added));
        let decoded = |e: &WatchEvent| derived(e).new.get().map(|v| v.as_ref().unwrap() as *const Value);
        assert!(decoded(&first).is_some(), "the filter decoded the object");
        assert_eq!(decoded(&first), decoded(&second), "one decode for both clones");
        let a = derived(&first).line(&first, Kind::Added).unwrap();
        let b = derived(&second).line(&second, Kind::Added).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "one line for both clones");
    }

    #[test]
    fn a_watcher_of_everything_never_decodes() {
        let e = ev(EventKind::Updated, json!({"metadata": {"name": "t"}}), json!({"metadata": {"name": "t"}}));
        let (t, _) = seen(&e, &Filter::default()).unwrap();
        assert_eq!(t, "MODIFIED");
        assert!(derived(&e).new.get().is_none() && derived(&e).old.get().is_none());
    }

    #[test]
    fn field_selectors_decided_on_bytes_see_the_same_transitions_without_decoding() {
        let raw = "spec.agent=a1";
        let filter = Filter::from_params(&Params { field_selector: Some(raw.into()), ..Default::default() }).unwrap();
        // Every event is of `t`: the same filter narrowed to that name
        // decides the same, on the decoded objects.
        let decoding = filter.clone().with_name("t");
        let on = |agent: &str| json!({"metadata": {"name": "t"}, "spec": {"agent": agent}});
        let cases = [
            ev(EventKind::Created, on("a1"), Value::Null),
            ev(EventKind::Created, on("a2"), Value::Null),
            ev(EventKind::Updated, on("a1"), on("a1")),
            ev(EventKind::Updated, on("a1"), on("a2")),
            ev(EventKind::Updated, on("a2"), on("a1")),
            ev(EventKind::Updated, on("a2"), on("a2")),
            ev(EventKind::Updated, on("a1"), Value::Null),
            ev(EventKind::Deleted, Value::Null, on("a1")),
            ev(EventKind::Deleted, Value::Null, on("a2")),
        ];
        for e in cases {
            let fast = e.clone();
            let fresh = WatchEvent { memo: Default::default(), ..e };
            let want = convert(&fresh, &decoding).unwrap();
            assert!(
                derived(&fresh).new.get().is_some() || derived(&fresh).old.get().is_some(),
                "the reference decoded"
            );
            assert_eq!(convert(&fast, &filter).unwrap(), want, "{:?}", fresh.kind);
            let d = derived(&fast);
            assert!(d.new.get().is_none() && d.old.get().is_none(), "decided without decoding");
        }
        // Bytes that are not JSON still fail the watch.
        let mut bad = ev(EventKind::Created, Value::Null, Value::Null);
        bad.value = Bytes::from_static(b"{not json");
        assert!(convert(&bad, &filter).is_err());
    }

    #[test]
    fn undecodable_stored_bytes_are_an_error_not_a_panic() {
        let mut e = ev(EventKind::Created, Value::Null, Value::Null);
        e.value = Bytes::from_static(b"{not json");
        assert!(convert(&e, &label_filter("app=web")).is_err());
        assert!(derived(&e).line(&e, Kind::Added).is_err());
    }
}
