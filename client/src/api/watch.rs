//! Decoding of a watch response: newline-delimited JSON events.
//!
//! Owns [`WatchEvent`] and the line splitter over the response body. Each
//! line is decoded in one pass, straight into the typed object (no
//! intermediate `serde_json::Value`), except in the rare event whose
//! `object` comes before its `type`. It must not reconnect or re-list: that
//! is [`crate::watcher`]'s job.

use std::fmt;
use std::marker::PhantomData;

use bytes::{Buf, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use meseta_schemas::Resource;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{decode, Error, Result, StatusBody};

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

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

/// The keys of an event line; others are skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Type,
    Object,
    #[serde(other)]
    Other,
}

/// The part of a BOOKMARK's object that matters.
#[derive(Deserialize, Default)]
struct BookmarkObject {
    #[serde(default)]
    metadata: BookmarkMeta,
}

#[derive(Deserialize, Default)]
struct BookmarkMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<Value>,
}

impl BookmarkObject {
    fn into_event<K>(self) -> WatchEvent<K> {
        let resource_version = match self.metadata.resource_version {
            Some(Value::String(rv)) => rv,
            _ => String::new(),
        };
        WatchEvent::Bookmark { resource_version }
    }
}

/// Decodes an event's `object` once its `type` is known.
struct ObjectSeed<K>(EventType, PhantomData<K>);

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for ObjectSeed<K> {
    type Value = WatchEvent<K>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        Ok(match self.0 {
            EventType::Added => WatchEvent::Added(K::deserialize(de)?),
            EventType::Modified => WatchEvent::Modified(K::deserialize(de)?),
            EventType::Deleted => WatchEvent::Deleted(K::deserialize(de)?),
            EventType::Bookmark => Option::<BookmarkObject>::deserialize(de)?.unwrap_or_default().into_event(),
            EventType::Error => WatchEvent::Error(Box::new(StatusBody::deserialize(de)?)),
        })
    }
}

/// A whole event line: `{"type": ..., "object": ...}`.
struct Line<K>(WatchEvent<K>);

impl<'de, K: DeserializeOwned> Deserialize<'de> for Line<K> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(LineVisitor(PhantomData))
    }
}

struct LineVisitor<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned> Visitor<'de> for LineVisitor<K> {
    type Value = Line<K>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a watch event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line<K>, A::Error> {
        let mut type_: Option<EventType> = None;
        let mut event: Option<WatchEvent<K>> = None;
        // An object sent before its type: kept as a value until the type comes.
        let mut early: Option<Value> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Type if type_.is_some() => return Err(de::Error::duplicate_field("type")),
                Field::Type => type_ = Some(map.next_value()?),
                Field::Object if event.is_some() || early.is_some() => {
                    return Err(de::Error::duplicate_field("object"))
                }
                Field::Object => match type_ {
                    Some(t) => event = Some(map.next_value_seed(ObjectSeed(t, PhantomData))?),
                    None => early = Some(map.next_value()?),
                },
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let type_ = type_.ok_or_else(|| de::Error::missing_field("type"))?;
        match event {
            Some(event) => Ok(Line(event)),
            // A missing object reads as `null`, as before the typed decode.
            None => ObjectSeed(type_, PhantomData)
                .deserialize(early.unwrap_or(Value::Null))
                .map(Line)
                .map_err(de::Error::custom),
        }
    }
}

/// Decodes one line of a watch body, straight into `K`. Only a line that
/// fails is decoded again, to name the failing field.
pub(crate) fn decode_event<K: Resource>(line: &[u8]) -> Result<WatchEvent<K>> {
    match serde_json::from_slice::<Line<K>>(line) {
        Ok(Line(event)) => Ok(event),
        Err(_) => decode::<Line<K>>(&format!("{} watch event", K::KIND), line).map(|Line(event)| event),
    }
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

/// Turns a watch response into a stream of events; `strip`: without their
/// objects' `managedFields`.
pub(crate) fn decode_stream<K: Resource>(resp: reqwest::Response, url: String, strip: bool) -> WatchStream<K> {
    let state = LineState { body: resp.bytes_stream().boxed(), buf: BytesMut::new(), url, done: false };
    futures::stream::unfold(state, move |mut state| async move {
        let line = state.next_line().await?;
        let event = line.and_then(|l| meseta_schemas::skipping_managed_fields(strip, || decode_event::<K>(&l)));
        Some((event, state))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use meseta_schemas::Task;

    use super::*;

    #[test]
    fn stripped_events_decode_everything_but_the_managed_fields() {
        let line = br#"{"type":"MODIFIED","object":{"kind":"Task","metadata":{"name":"a","resourceVersion":"5",
            "managedFields":[{"manager":"m","fieldsV1":{"f:spec":{"f:command":{}}}}],"labels":{"l":"1"}},
            "spec":{"command":"true"}}}"#;
        let task = |event| match event {
            WatchEvent::Modified(t) => t,
            other => panic!("unexpected {other:?}"),
        };
        // As `decode_stream` decodes each line.
        let decode_event_as =
            |line: &[u8], strip| meseta_schemas::skipping_managed_fields(strip, || decode_event::<Task>(line));
        let kept = task(decode_event_as(line, false).unwrap());
        let stripped = task(decode_event_as(line, true).unwrap());
        assert_eq!(kept.metadata.managed_fields.as_ref().map(Vec::len), Some(1));
        assert_eq!(stripped.metadata.managed_fields, None);
        let mut without = kept.clone();
        without.metadata.managed_fields = None;
        assert_eq!(stripped, without, "only the managed fields are left out");
        // The switch is off again after the call.
        assert!(task(decode_event::<Task>(line).unwrap()).metadata.managed_fields.is_some());
        // A bad line is reported the same way with the switch on.
        let err = decode_event_as(br#"{"type":"ADDED","object":{"spec":{"command":3}}}"#, true).unwrap_err();
        assert!(err.to_string().contains("spec.command"), "{err}");
    }

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
    fn keys_in_any_order_and_unknown_keys_are_read() {
        let late_type =
            br#"{"object":{"kind":"Task","metadata":{"name":"a","resourceVersion":"7"}},"type":"MODIFIED"}"#;
        match decode_event::<Task>(late_type).unwrap() {
            WatchEvent::Modified(t) => assert_eq!((t.metadata.name.as_str(), t.revision()), ("a", 7)),
            other => panic!("unexpected {other:?}"),
        }
        let extra = br#"{"type":"DELETED","extra":[1,{"x":2}],"object":{"kind":"Task","metadata":{"name":"b"}}}"#;
        match decode_event::<Task>(extra).unwrap() {
            WatchEvent::Deleted(t) => assert_eq!(t.metadata.name, "b"),
            other => panic!("unexpected {other:?}"),
        }
        let late_error = br#"{"object":{"kind":"Status","code":410,"reason":"Gone"},"type":"ERROR"}"#;
        match decode_event::<Task>(late_error).unwrap() {
            WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Gone")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bookmark_without_a_version_reads_empty() {
        for line in [&br#"{"type":"BOOKMARK"}"#[..], br#"{"type":"BOOKMARK","object":{"metadata":{}}}"#] {
            let event = decode_event::<Task>(line).unwrap();
            assert_eq!(event, WatchEvent::Bookmark { resource_version: String::new() });
        }
    }

    #[test]
    fn bad_events_name_the_field() {
        let err = decode_event::<Task>(br#"{"type":"ADDED","object":{"metadata":{"name":5}}}"#).unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let err = decode_event::<Task>(br#"{"type":"WHATEVER","object":{}}"#).unwrap_err();
        assert!(err.to_string().contains("type"), "{err}");
        let err = decode_event::<Task>(br#"{"object":{}}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `type`"), "{err}");
        let err = decode_event::<Task>(br#"{"type":"ADDED"}"#).unwrap_err();
        assert!(err.to_string().contains("null"), "{err}");
        let err = decode_event::<Task>(br#"{"type":"ADDED","type":"ADDED","object":{}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field `type`"), "{err}");
    }
}
