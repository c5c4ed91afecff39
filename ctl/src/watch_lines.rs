//! The events of a watch response body: newline-delimited JSON arriving in
//! chunks that split lines anywhere.
//!
//! Owns the buffering and the decoding of each complete line into its type
//! and object. It must not decide what an event means (`get --watch` prints,
//! `wait` tracks).

use anyhow::Context;
use serde_json::Value;

/// Complete events as chunks arrive.
#[derive(Debug, Default)]
pub(crate) struct WatchLines {
    buf: Vec<u8>,
}

/// One watch event: its `type` (empty if missing) and its `object`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WatchEvent {
    pub(crate) kind: String,
    pub(crate) object: Value,
}

impl WatchLines {
    /// Takes a chunk; returns the events whose lines it completed, in order.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> anyhow::Result<Vec<WatchEvent>> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut event: Value = serde_json::from_slice(&line).context("reading a watch event")?;
            let kind = event.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
            let object = event.get_mut("object").map(Value::take).unwrap_or(Value::Null);
            events.push(WatchEvent { kind, object });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_split_across_chunks_come_out_whole_and_in_order() {
        let mut w = WatchLines::default();
        assert!(w.push(b"{\"type\":\"ADDED\",\"obj").unwrap().is_empty());
        let events = w.push(b"ect\":{\"a\":1}}\n\n{\"type\":\"DELETED\",\"object\":{}}\n{\"ty").unwrap();
        assert_eq!(
            events,
            [
                WatchEvent { kind: "ADDED".into(), object: json!({"a": 1}) },
                WatchEvent { kind: "DELETED".into(), object: json!({}) },
            ]
        );
        let events = w.push(b"pe\":\"BOOKMARK\"}\n").unwrap();
        assert_eq!(events, [WatchEvent { kind: "BOOKMARK".into(), object: Value::Null }]);
    }

    #[test]
    fn a_line_that_is_not_json_is_an_error() {
        let err = WatchLines::default().push(b"not json\n").unwrap_err();
        assert!(format!("{err:#}").contains("reading a watch event"), "{err:#}");
    }
}
