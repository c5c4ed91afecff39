//! Stored bytes to wire bytes without building a `serde_json::Value`: the
//! stored form of an object is its JSON without `metadata.resourceVersion`,
//! so the wire form is the stored bytes with `"resourceVersion":"<rev>"`
//! written right after the `{` of the top-level `metadata` object.
//!
//! Owns finding that `{` safely: the lenient [`Scan`] walks the top-level
//! keys (skipping values without decoding them) and the keys of `metadata`,
//! and gives up, so that callers parse instead, whenever the bytes are not
//! the plain shape the store writes: no `metadata` object, a key with
//! escapes, a `resourceVersion` already present, or anything malformed. It
//! must not allocate or do I/O.

use super::scan::{Lenient, Scan};
use crate::store::Revision;

/// Where the `resourceVersion` field goes in `stored`: the index right after
/// the `{` of the top-level `metadata` object, and whether that object is
/// empty. `None` when the bytes are not of the plain stored shape.
pub fn splice_point(stored: &[u8]) -> Option<(usize, bool)> {
    let mut scan = Scan::lenient(stored);
    let mut found = None;
    scan.object(|scan, member| {
        if member.key == b"metadata" {
            if found.is_some() {
                return None;
            }
            found = Some(metadata_start(scan)?);
            return Some(());
        }
        scan.value().map(drop)
    })?;
    if !scan.at_end() {
        return None;
    }
    found
}

/// [`splice_point`] for bytes known to be one well-formed JSON object, such
/// as those a write just serialised: the scan stops at the end of
/// `metadata` instead of checking the rest of the object.
pub fn splice_point_of_json(stored: &[u8]) -> Option<(usize, bool)> {
    let mut scan = Scan::lenient(stored);
    let mut found = None;
    let _ = scan.object(|scan, member| {
        if member.key != b"metadata" {
            return scan.value().map(drop);
        }
        found = Some(metadata_start(scan)?);
        // Stop: the rest of the object is not needed.
        None
    });
    found
}

/// Calls `each` with the key and the raw value bytes of every field of the
/// top-level `metadata` object of `stored`, without reading past that
/// object. `None` when the scan cannot tell (no `metadata` object before
/// anything it refuses, see the module doc): `each` may then have seen some
/// fields, and callers parse instead.
pub fn metadata_fields<'a>(stored: &'a [u8], mut each: impl FnMut(&[u8], &'a [u8])) -> Option<()> {
    let mut scan = Scan::lenient(stored);
    let mut done = false;
    let _ = scan.object(|scan, member| {
        if member.key != b"metadata" {
            return scan.value().map(drop);
        }
        scan.object(|scan, member| {
            let value = scan.value()?;
            each(member.key, &stored[value.start..value.end]);
            Some(())
        })?;
        done = true;
        // Stop: the rest of the object is not needed.
        None
    });
    done.then_some(())
}

/// Appends `stored` with `metadata.resourceVersion = rev` spliced in at
/// `point` (from [`splice_point`]) to `out`.
pub fn append_spliced(out: &mut Vec<u8>, stored: &[u8], point: (usize, bool), rev: Revision) {
    let (at, empty) = point;
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rev.to_string().as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&stored[at..]);
}

/// Reads the `metadata` object at the cursor: the index right after its `{`
/// and whether it is empty; `None` when it is not an object or already
/// holds a `resourceVersion`.
fn metadata_start(scan: &mut Lenient<'_>) -> Option<(usize, bool)> {
    let mut empty = true;
    let object = scan.object(|scan, member| {
        empty = false;
        if member.key == b"resourceVersion" {
            return None;
        }
        scan.value().map(drop)
    })?;
    Some((object.start + 1, empty))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn spliced(stored: &[u8], rev: Revision) -> Option<Value> {
        let point = splice_point(stored)?;
        let mut out = Vec::new();
        append_spliced(&mut out, stored, point, rev);
        Some(serde_json::from_slice(&out).expect("spliced bytes are JSON"))
    }

    #[test]
    fn splice_matches_parse_and_stamp() {
        for obj in [
            json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "a", "labels": {"x": "}{"}},
                   "spec": {"a": [1, {"b": "\"metadata\":{"}], "c": null}}),
            json!({"a": {"metadata": {"deep": true}}, "metadata": {}, "z": 1.5e3}),
        ] {
            let stored = crate::object::to_stored(&obj);
            let want = crate::object::from_stored(&stored, 42).unwrap();
            assert_eq!(spliced(&stored, 42), Some(want), "{obj}");
        }
    }

    #[test]
    fn the_short_scans_stop_at_metadata() {
        let stored = br#"{"apiVersion":"v","metadata":{"name":"a","labels":{"x":"}"}},"spec":{"z":[1]}}"#;
        assert_eq!(splice_point_of_json(stored), splice_point(stored));
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let fields = |stored: &[u8]| {
            let mut seen = Vec::new();
            metadata_fields(stored, |k, v| seen.push(format!("{}={}", s(k), s(v)))).map(|()| seen)
        };
        assert_eq!(fields(stored), Some(vec![r#"name="a""#.to_string(), r#"labels={"x":"}"}"#.into()]));
        // What follows `metadata` is not read.
        assert!(splice_point_of_json(br#"{"metadata":{},"spec":"#).is_some());
        assert_eq!(fields(br#"{"metadata":{"n":1},"#), Some(vec!["n=1".to_string()]));
        assert_eq!(splice_point_of_json(br#"{"metadata":{"resourceVersion":"1"}}"#), None);
        assert_eq!(fields(br#"{"spec":{}}"#), None);
        assert_eq!(fields(br#"{"metadata":"x"}"#), None);
        assert_eq!(fields(br#"{"metadata":{"n":1"#), None);
    }

    #[test]
    fn odd_shapes_are_refused() {
        for raw in [
            &br#"{"metadata":{"resourceVersion":"3","name":"a"}}"#[..],
            br#"{"metadata":{"resource\u0056ersion":"3"}}"#,
            br#"{"metadata":"x"}"#,
            br#"{"b\"metadata":{"x":1},"metadata":{"name":"q"}}"#,
            br#"{"spec":{}}"#,
            br#"[1,2]"#,
            br#"{"metadata":{"name":"a"}"#,
            br#"{"metadata":{"name":"a"}}trailing"#,
            br#"{"metadata":{"name":"a"},"metadata":{}}"#,
        ] {
            assert_eq!(spliced(raw, 1), None, "{}", String::from_utf8_lossy(raw));
        }
    }
}
