//! The byte-level filter edit against the full decode, edit and encode it
//! stands for.

use chrono::{DateTime, Duration, TimeZone, Utc};
use meseta_schemas::kinds::{Framework, FrameworkSpec, FrameworkStatus, OfferFilter};
use serde_json::json;

use super::{parse_time, with_filter};

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, nanos).unwrap()
}

fn framework(filters: Vec<(&str, DateTime<Utc>)>) -> Framework {
    let mut fw = Framework::new("fw", FrameworkSpec::default());
    fw.metadata.namespace = Some("web".into());
    fw.metadata.uid = Some("u-1".into());
    fw.status = Some(FrameworkStatus {
        registered: true,
        dominant_share: 0.25,
        observed_revive_generation: 3,
        filters: filters.into_iter().map(|(agent, until)| OfferFilter { agent: agent.into(), until }).collect(),
        ..Default::default()
    });
    fw
}

/// The stored bytes of `fw`, as the store holds them.
fn stored(fw: &Framework) -> Vec<u8> {
    crate::object::to_stored(&serde_json::to_value(fw).unwrap()).to_vec()
}

/// What the full decode, edit and encode stores.
fn full(bytes: &[u8], agent: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Vec<u8> {
    let mut fw: Framework = serde_json::from_slice(bytes).unwrap();
    let status = fw.status.get_or_insert_with(Default::default);
    status.filters.retain(|f| f.until > now);
    match status.filters.iter_mut().find(|f| f.agent == agent) {
        Some(f) => f.until = f.until.max(until),
        None => status.filters.push(OfferFilter { agent: agent.into(), until }),
    }
    stored(&fw)
}

fn assert_same(bytes: &[u8], agent: &str, until: DateTime<Utc>, now: DateTime<Utc>) {
    let fast = with_filter(bytes, agent, until, now).expect("plain stored shape");
    let want = full(bytes, agent, until, now);
    assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(want).unwrap());
}

#[test]
fn matches_the_full_edit_for_every_case() {
    let now = at(100, 0);
    let until = now + Duration::milliseconds(1500);
    let many = framework(vec![
        ("a0", at(90, 0)),            // lapsed
        ("a1", at(100, 0)),           // lapses exactly now
        ("a2", at(101, 500_000_000)), // kept, fraction digits
        ("a3", at(200, 123_456_000)), // kept
        ("a4", at(150, 123_456_789)), // kept
        ("a5", at(101, 0)),           // the agent, earlier than `until`
        ("a6", at(500, 0)),           // the agent in another case, later than `until`
    ]);
    let bytes = stored(&many);
    assert_same(&bytes, "a5", until, now);
    assert_same(&bytes, "a6", until, now);
    assert_same(&bytes, "new", until, now);
    assert_same(&bytes, "a0", until, now);
}

#[test]
fn an_absent_filter_list_is_inserted_in_key_order() {
    let now = at(100, 0);
    let until = now + Duration::seconds(5);
    // Filters skip serialising when empty: the key is absent.
    let bytes = stored(&framework(vec![]));
    assert!(!String::from_utf8_lossy(&bytes).contains("filters"));
    assert_same(&bytes, "a1", until, now);
    // Every filter lapsed: the list becomes the new one alone.
    assert_same(&stored(&framework(vec![("a0", at(1, 0))])), "a1", until, now);
}

#[test]
fn sparse_status_objects_get_the_list_in_the_right_place() {
    let now = at(100, 0);
    let until = now + Duration::seconds(5);
    let cases = [
        (json!({"status": {}}), json!({"status": {"filters": []}})),
        (json!({"status": {"allocated": {}}}), json!({"status": {"allocated": {}, "filters": []}})),
        (json!({"status": {"registered": true}}), json!({"status": {"filters": [], "registered": true}})),
    ];
    for (given, shape) in cases {
        let bytes = serde_json::to_vec(&given).unwrap();
        let out = with_filter(&bytes, "a1", until, now).expect("plain shape");
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut want = shape;
        want["status"]["filters"] = json!([{"agent": "a1", "until": until}]);
        assert_eq!(out, want);
        // Still compact and in key order.
        assert_eq!(serde_json::to_vec(&out).unwrap(), serde_json::to_vec(&want).unwrap());
    }
}

#[test]
fn other_shapes_are_left_to_the_full_decode() {
    let now = at(100, 0);
    let until = now + Duration::seconds(5);
    let filter = |f: serde_json::Value| serde_json::to_vec(&json!({"status": {"filters": [f]}})).unwrap();
    let refused = [
        b"{\"metadata\":{}}".to_vec(),                                           // no status
        b"{\"status\":null}".to_vec(),                                           // not an object
        b"{ \"status\":{}}".to_vec(),                                            // whitespace
        b"{\"status\":{},\"status\":{}}".to_vec(),                               // repeated key
        filter(json!({"agent": "a\"1", "until": "2030-01-01T00:00:00Z"})),       // escapes
        filter(json!({"agent": "a1", "until": "2030-01-01T00:00:00+00:00"})),    // other time form
        filter(json!({"agent": "a1", "until": "2030-01-01T00:00:00.5Z"})),       // other fraction width
        filter(json!({"agent": "a1", "until": "2030-01-01T00:00:00Z", "x": 1})), // another field
        br#"{"status":{"filters":[{"until":"2030-01-01T00:00:00Z","agent":"a1"}]}}"#.to_vec(), // key order
        serde_json::to_vec(&json!({"status": {"filters": [
            {"agent": "a1", "until": "2030-01-01T00:00:00Z"},
            {"agent": "a1", "until": "2030-01-02T00:00:00Z"}]}}))
        .unwrap(), // one agent twice
        b"{\"status\":{}}x".to_vec(),                                            // trailing bytes
        b"{\"status\":{\"filters\":[}}".to_vec(),                                // malformed
    ];
    for bytes in refused {
        assert!(with_filter(&bytes, "a1", until, now).is_none(), "{}", String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn bytes_cut_inside_an_escape_are_refused() {
    let now = at(100, 0);
    // Each ends in a backslash: the escape's second byte is past the end.
    for bytes in [&b"{\"status\":{},\"x\":\"a\\"[..], b"{\"status\":{\"filters\":[{\"agent\":\"\\"] {
        assert_eq!(bytes.last(), Some(&b'\\'));
        assert!(with_filter(bytes, "a1", now, now).is_none(), "{}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn times_read_as_chrono_reads_its_own_form() {
    for t in [at(0, 0), at(1, 500_000_000), at(2, 123_456_000), at(3, 123_456_789), at(-1_700_000_000, 0)] {
        let text = serde_json::to_value(t).unwrap();
        let text = text.as_str().unwrap();
        assert_eq!(parse_time(text.as_bytes()), Some(t), "{text}");
    }
    for odd in ["2030-01-01T00:00:60Z", "2030-13-01T00:00:00Z", "2030-01-01 00:00:00Z", "2030-01-01T00:00:00"] {
        assert_eq!(parse_time(odd.as_bytes()), None, "{odd}");
    }
}
