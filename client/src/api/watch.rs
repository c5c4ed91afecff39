//! Decoding of a watch response: newline-delimited JSON events.
//!
//! Owns [`WatchEvent`] and the line splitter over the response body. It must
//! not reconnect or re-list: that is [`crate::watcher`]'s job.

use bytes::{Buf, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use meseta_schemas::Resource;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{decode, decode_value, Error, Result, StatusBody};

/// One event of a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<K> {
    /// The object was created.
    Added(K),
    /// The object changed.
    Modified(K),
    /// The object was deleted; its last state.
    Deleted(K),
    /// Nothing changed, but the watch has reached `resource_version`.
    Bookmark {
        /// Where to resume from.
        resource_version: String,
    },
    /// The server ended the watch with this Status (code 410: re-list).
    Error(Box<StatusBody>),
}

/// A stream of watch events; ends when the server closes the watch.
pub type WatchStream<K> = BoxStream<'static, Result<WatchEvent<K>>>;

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    type_: EventType,
    #[serde(default)]
    object: Value,
}

/// Decodes one line of a watch body.
pub(crate) fn decode_event<K: Resource>(line: &[u8]) -> Result<WatchEvent<K>> {
    let raw: RawEvent = decode("watch event", line)?;
    Ok(match raw.type_ {
        EventType::Added => WatchEvent::Added(decode_value(K::KIND, raw.object)?),
        EventType::Modified => WatchEvent::Modified(decode_value(K::KIND, raw.object)?),
        EventType::Deleted => WatchEvent::Deleted(decode_value(K::KIND, raw.object)?),
        EventType::Bookmark => WatchEvent::Bookmark {
            resource_version: raw
                .object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        },
        EventType::Error => WatchEvent::Error(decode_value("watch error Status", raw.object)?),
    })
}

struct LineState {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: BytesMut,
    url: String,
    done: bool,
}

impl LineState {
    /// The next complete non-empty line, or the trailing partial one at the end.
    async fn next_line(&mut self) -> Option<Result<BytesMut>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line = self.buf.split_to(pos + 1);
                line.truncate(pos);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(line));
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let rest = self.buf.split();
                return Some(Ok(rest));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(chunk.chunk()),
                Some(Err(source)) => {
                    self.done = true;
                    self.buf.clear();
                    return Some(Err(Error::Transport { method: "GET".into(), url: self.url.clone(), source }));
                }
                None => self.done = true,
            }
        }
    }
}

/// Turns a watch response into a stream of events.
pub(crate) fn decode_stream<K: Resource>(resp: reqwest::Response, url: String) -> WatchStream<K> {
    let state = LineState { body: resp.bytes_stream().boxed(), buf: BytesMut::new(), url, done: false };
    futures::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await?;
        let event = line.and_then(|l| decode_event::<K>(&l));
        Some((event, state))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use meseta_schemas::Task;

    use super::*;

    #[test]
    fn every_event_type_decodes() {
        let added = br#"{"type":"ADDED","object":{"kind":"Task","metadata":{"name":"a","resourceVersion":"5"}}}"#;
        match decode_event::<Task>(added).unwrap() {
            WatchEvent::Added(t) => assert_eq!(t.revision(), 5),
            other => panic!("unexpected {other:?}"),
        }
        let bookmark = br#"{"type":"BOOKMARK","object":{"kind":"Task","metadata":{"resourceVersion":"9"}}}"#;
        assert_eq!(decode_event::<Task>(bookmark).unwrap(), WatchEvent::Bookmark { resource_version: "9".into() });
        let error = br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#;
        match decode_event::<Task>(error).unwrap() {
            WatchEvent::Error(s) => assert_eq!(s.code, 410),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_events_name_the_field() {
        let err = decode_event::<Task>(br#"{"type":"ADDED","object":{"metadata":{"name":5}}}"#).unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let err = decode_event::<Task>(br#"{"type":"WHATEVER","object":{}}"#).unwrap_err();
        assert!(err.to_string().contains("type"), "{err}");
    }
}
