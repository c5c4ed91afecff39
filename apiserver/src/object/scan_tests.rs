//! The scanner's offsets and refusals, and its view of serialised values
//! against serde_json's own parse.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{Scan, Span};

/// Every member of the object at the start of `b` as `(key, key bytes,
/// value bytes)`, or `None` when the scan refuses it.
fn members<const C: bool>(mut scan: Scan<'_, C>, b: &[u8]) -> Option<Vec<(String, String, String)>> {
    let text = |span: Span| String::from_utf8(b[span.start..span.end].to_vec()).unwrap();
    let mut seen = Vec::new();
    scan.object(|scan, member| {
        let value = scan.value()?;
        seen.push((String::from_utf8(member.key.to_vec()).unwrap(), text(member.key_span), text(value)));
        Some(())
    })?;
    scan.at_end().then_some(seen)
}

fn owned(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter().map(|&(k, ks, v)| (k.to_owned(), ks.to_owned(), v.to_owned())).collect()
}

#[test]
fn members_are_reported_with_their_offsets() {
    let b = br#"{"a":1,"bc":[true,null],"d":{"e":"x\"}"}}"#;
    let want = owned(&[("a", r#""a""#, "1"), ("bc", r#""bc""#, "[true,null]"), ("d", r#""d""#, r#"{"e":"x\"}"}"#)]);
    assert_eq!(members(Scan::compact(b), b), Some(want.clone()));
    assert_eq!(members(Scan::lenient(b), b), Some(want.clone()));

    let mut starts = Vec::new();
    Scan::compact(b).object(|scan, member| {
        starts.push((member.key_span, scan.pos()));
        scan.value().map(drop)
    });
    let span = |start, end| Span { start, end };
    assert_eq!(starts, [(span(1, 4), 5), (span(7, 11), 12), (span(24, 27), 28)]);
}

#[test]
fn whitespace_moves_the_offsets_and_only_the_lenient_scan_takes_it() {
    let b = b" {\n  \"a\" : 1 ,\n  \"bc\":\t[ true , null ],\"d\" :{ \"e\" : \"x\\\"}\" }\r\n} ";
    let want =
        owned(&[("a", r#""a""#, "1"), ("bc", r#""bc""#, "[ true , null ]"), ("d", r#""d""#, r#"{ "e" : "x\"}" }"#)]);
    assert_eq!(members(Scan::lenient(b), b), Some(want));
    assert_eq!(members(Scan::compact(b), b), None);

    let mut keys = Vec::new();
    let object = Scan::lenient(b).object(|scan, member| {
        let value = scan.value()?;
        keys.push((member.key_span.start, value.start));
        Some(())
    });
    assert_eq!(object, Some(Span { start: 1, end: b.len() - 1 }));
    assert_eq!(keys, [(5, 11), (17, 23), (39, 44)]);
}

#[test]
fn nested_objects_and_arrays_are_walked_and_skipped_alike() {
    let b = br#"{"a":[[1,{"b":[]}],{}],"c":{"d":{"e":[-1.5e+3]}}}"#;
    let mut depth_first = Vec::new();
    let walked = Scan::compact(b).object(|scan, member| {
        let start = scan.pos();
        let skipped = scan.clone().value()?;
        let walked = match b[start] {
            b'[' => scan.array(|scan| scan.value().map(drop))?,
            _ => scan.object(|scan, _| scan.value().map(drop))?,
        };
        assert_eq!(walked, skipped);
        depth_first.push((member.key, walked));
        Some(())
    });
    assert_eq!(walked, Some(Span { start: 0, end: b.len() }));
    assert_eq!(
        depth_first,
        [(&b"a"[..], Span { start: 5, end: 22 }), (&b"c"[..], Span { start: 27, end: b.len() - 1 })]
    );
    assert_eq!(Scan::lenient(b).value(), Scan::compact(b).value());
}

#[test]
fn strings_with_escapes_are_skipped_whole() {
    for raw in [r#""""#, r#""\"""#, r#""\\""#, r#""a\\\"b""#, r#""\u00e9\n}]""#, "\"caf\u{e9}\""] {
        let b = format!(r#"{{"k":{raw},"z":0}}"#);
        let want = owned(&[("k", r#""k""#, raw), ("z", r#""z""#, "0")]);
        assert_eq!(members(Scan::compact(b.as_bytes()), b.as_bytes()), Some(want.clone()), "{b}");
        assert_eq!(members(Scan::lenient(b.as_bytes()), b.as_bytes()), Some(want), "{b}");
    }
    assert_eq!(Scan::compact(br#""a\"b""#).plain_string(), None);
    assert_eq!(Scan::compact(br#""ab""#).plain_string(), Some(&b"ab"[..]));
}

#[test]
fn malformed_input_is_refused() {
    for raw in [
        &br#"{"a":1"#[..],
        br#"{"a":1,}"#,
        br#"{"a" 1}"#,
        br#"{"a":}"#,
        br#"{"a":"x}"#,
        br#"{"a":"x\"#,
        br#"{"a":[1,2}"#,
        br#"{a:1}"#,
        br#"{"a\"b":1}"#,
        br#"{"a":1}x"#,
        br#"[1]"#,
        b"",
    ] {
        let text = String::from_utf8_lossy(raw);
        assert_eq!(members(Scan::compact(raw), raw), None, "compact {text}");
        assert_eq!(members(Scan::lenient(raw), raw), None, "lenient {text}");
    }
    // The compact scan checks what it skips; the lenient one only finds its end.
    for raw in [&br#"{"a":tru}"#[..], br#"{"a":1x}"#, br#"{"a":[1 2]}"#, br#"{"a":{"b\"":1}}"#, br#"{"a":[}}"#] {
        let text = String::from_utf8_lossy(raw);
        assert_eq!(members(Scan::compact(raw), raw), None, "compact {text}");
        assert!(members(Scan::lenient(raw), raw).is_some(), "lenient {text}");
    }
}

/// Values with keys that serialise without escapes (the scanner refuses
/// escaped keys), any strings, and numbers of every form serde_json writes.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map("[a-z0-9 _.é-]{0,6}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The value at the scan, rebuilt from what the scanner reports: containers
/// from their members, leaves (and keys) parsed from their reported bytes.
/// Checks on the way that skipping a value ends where walking it does.
fn rebuilt<const C: bool>(scan: &mut Scan<'_, C>, b: &[u8]) -> Option<Value> {
    let skipped = scan.clone().value()?;
    let (value, span) = match b[skipped.start] {
        b'{' => {
            let mut map = Map::new();
            let span = scan.object(|scan, member| {
                let quoted: String = serde_json::from_slice(&b[member.key_span.start..member.key_span.end]).unwrap();
                assert_eq!(quoted.as_bytes(), member.key);
                let key = String::from_utf8(member.key.to_vec()).unwrap();
                map.insert(key, rebuilt(scan, b)?);
                Some(())
            })?;
            (Value::Object(map), span)
        }
        b'[' => {
            let mut items = Vec::new();
            let span = scan.array(|scan| {
                items.push(rebuilt(scan, b)?);
                Some(())
            })?;
            (Value::Array(items), span)
        }
        _ => {
            let span = scan.value()?;
            (serde_json::from_slice(&b[span.start..span.end]).unwrap(), span)
        }
    };
    assert_eq!(span, skipped);
    Some(value)
}

fn view<const C: bool>(mut scan: Scan<'_, C>, b: &[u8]) -> Option<Value> {
    let value = rebuilt(&mut scan, b)?;
    scan.at_end().then_some(value)
}

proptest! {
    #[test]
    fn the_scanner_sees_what_serde_json_parses(value in json_value()) {
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let parsed: Value = serde_json::from_slice(&compact).unwrap();
        prop_assert_eq!(view(Scan::compact(&compact), &compact), Some(parsed.clone()));
        prop_assert_eq!(view(Scan::lenient(&compact), &compact), Some(parsed.clone()));
        prop_assert_eq!(view(Scan::lenient(&pretty), &pretty), Some(parsed.clone()));
        // Pretty output is compact only where it has no whitespace to add.
        let same = (pretty == compact).then_some(parsed);
        prop_assert_eq!(view(Scan::compact(&pretty), &pretty), same);
    }
}
