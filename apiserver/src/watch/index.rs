//! The fields watches are routed by: a watch whose field selector pins one of
//! them to a value (`spec.agent=a1` on tasks) asks the store for the events
//! of that value only ([`Store::watch_indexed`]), so with many such watchers
//! each event wakes the one or two that want it rather than all of them.
//!
//! Owns the table of indexed fields and reading a field from stored bytes
//! without building a `serde_json::Value`. It must not filter events: the
//! watch still applies its whole selector (with transitions) to what it
//! gets, so routing only ever saves work and never changes what is sent.
//!
//! [`Store::watch_indexed`]: crate::store::Store::watch_indexed

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::selector::{FieldOp, FieldSelector};
use crate::store::WatchIndex;

/// The indexed fields. Adding one (say `spec.agent` of offers) is a line
/// here and a reader below.
pub(crate) static INDEXES: &[WatchIndex] =
    &[WatchIndex { prefix: "/registry/tasks/", field: "spec.agent", read: spec_agent }];

fn spec_agent(stored: &[u8]) -> Option<Cow<'_, str>> {
    read_field(stored, "spec.agent")
}

/// The index and value a watch of `prefix` with `fields` can be narrowed
/// to: the first indexed field covering `prefix` that `fields` pins with `=`.
pub(crate) fn narrow<'a>(prefix: &str, fields: Option<&'a FieldSelector>) -> Option<(&'static WatchIndex, &'a str)> {
    let fields = fields?;
    INDEXES.iter().filter(|i| prefix.starts_with(i.prefix)).find_map(|i| Some((i, fields.exact(i.field)?)))
}

/// The text of the field at dotted `path` in stored JSON bytes, exactly as a
/// field selector reads it ([`FieldSelector::value_of`]); `None` when the
/// bytes are not JSON. Objects on the way are walked without being built;
/// anything unusual (arrays on the path, a non-string value, a repeated key)
/// falls back to a full decode.
pub(crate) fn read_field<'a>(stored: &'a [u8], path: &str) -> Option<Cow<'a, str>> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut de = serde_json::Deserializer::from_slice(stored);
    match Walk(&segments).deserialize(&mut de).and_then(|text| de.end().map(|()| text)) {
        Ok(text) => Some(text),
        Err(_) => {
            let object: Value = serde_json::from_slice(stored).ok()?;
            Some(Cow::Owned(FieldSelector::value_of(&object, path).into_owned()))
        }
    }
}

/// Whether stored bytes pass every term of `fields`, each field read as
/// [`read_field`] reads it; `None` when the bytes are not JSON. Terms on
/// `metadata.resourceVersion` must be left to the decoded object (the stored
/// bytes leave it out): see [`bytes_can_match`].
pub(crate) fn fields_match(stored: &[u8], fields: &FieldSelector) -> Option<bool> {
    for (path, op, want) in fields.requirements() {
        let have = read_field(stored, path)?;
        let holds = match op {
            FieldOp::Equals => have == want,
            FieldOp::NotEquals => have != want,
        };
        if !holds {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether [`fields_match`] on stored bytes decides `fields` as the
/// decoded object would.
pub(crate) fn bytes_can_match(fields: &FieldSelector) -> bool {
    fields.requirements().all(|(path, _, _)| !path.starts_with("metadata.resourceVersion"))
}

/// Walks the remaining path segments of a value; errors mean "decode it
/// fully instead", not "invalid".
struct Walk<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Walk<'_> {
    /// A scalar: the field's text at the end of the path, else missing.
    fn scalar<'de, E: de::Error>(&self, text: Cow<'de, str>) -> Result<Cow<'de, str>, E> {
        Ok(if self.0.is_empty() { text } else { Cow::Borrowed("") })
    }

    /// A value this walk does not read itself.
    fn unusual<T, E: de::Error>(&self) -> Result<T, E> {
        Err(E::custom("decode fully"))
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((segment, rest)) = self.0.split_first() else { return self.unusual() };
        let mut found = None;
        while let Some(key) = map.next_key_seed(Key)? {
            if key != *segment {
                map.next_value::<IgnoredAny>()?;
            } else if found.is_some() {
                return self.unusual();
            } else {
                found = Some(map.next_value_seed(Walk(rest))?);
            }
        }
        Ok(found.unwrap_or(Cow::Borrowed("")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.unusual()
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.scalar(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.scalar(Cow::Owned(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(""))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.number_or_bool()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.number_or_bool()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.number_or_bool()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.number_or_bool()
    }
}

impl Walk<'_> {
    /// Inside the path a number or boolean has no fields; at its end its
    /// text is the decoder's business.
    fn number_or_bool<'de, E: de::Error>(&self) -> Result<Cow<'de, str>, E> {
        if self.0.is_empty() {
            self.unusual()
        } else {
            Ok(Cow::Borrowed(""))
        }
    }
}

/// An object key, borrowed when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(raw: &str) -> Option<String> {
        read_field(raw.as_bytes(), "spec.agent").map(Cow::into_owned)
    }

    #[test]
    fn reads_what_a_field_selector_reads() {
        let cases = [
            json!({"metadata": {"name": "t", "labels": {"spec": "x"}}, "spec": {"cpus": 1, "agent": "a1"}}),
            json!({"spec": {"agent": "a\"b\\c,d=e\u{e9}"}}),
            json!({"spec": {"agent": null}}),
            json!({"spec": {"agent": 3}}),
            json!({"spec": {"agent": 1.5}}),
            json!({"spec": {"agent": true}}),
            json!({"spec": {"agent": {"x": [1, 2]}}}),
            json!({"spec": {"agentx": "a1", "nested": {"agent": "no"}}}),
            json!({"spec": "a1"}),
            json!({"spec": ["a1"]}),
            json!({"spec": null}),
            json!({"status": {"agent": "a1"}}),
            json!([1, 2]),
            json!("a1"),
        ];
        for object in cases {
            let want = FieldSelector::value_of(&object, "spec.agent").into_owned();
            assert_eq!(read(&object.to_string()), Some(want), "{object}");
        }
    }

    #[test]
    fn unusual_bytes_agree_with_a_full_decode() {
        // Repeated keys: the decoder keeps the last one.
        assert_eq!(read(r#"{"spec":{"agent":"a1","agent":"a2"}}"#).as_deref(), Some("a2"));
        assert_eq!(read(r#"{"spec":{"agent":"a1"},"spec":{"cpus":1}}"#).as_deref(), Some(""));
        // Escaped keys are compared unescaped.
        assert_eq!(read(r#"{"sp\u0065c":{"\u0061gent":"a9"}}"#).as_deref(), Some("a9"));
        assert_eq!(read(r#" { "spec" : { "agent" : "a1" } } "#).as_deref(), Some("a1"));
    }

    #[test]
    fn bytes_that_are_not_json_cannot_be_read() {
        for raw in [r#"{"spec":{"agent":"a1"}"#, r#"{"spec":{"agent":"a1"}}x"#, "", "{not json"] {
            assert_eq!(read(raw), None, "{raw}");
        }
    }

    #[test]
    fn field_terms_on_bytes_decide_as_on_the_object() {
        let objects = [
            json!({"metadata": {"name": "t1"}, "spec": {"agent": "a1"}, "status": {"state": "RUNNING"}}),
            json!({"metadata": {"name": "t2"}, "spec": {"agent": "a2"}, "status": {"state": "PENDING"}}),
            json!({"metadata": {"name": "t3"}, "spec": {}}),
            json!({"metadata": {"name": "t4"}, "spec": {"agent": 7}}),
        ];
        let selectors = [
            "spec.agent=a1",
            "spec.agent!=a1",
            "spec.agent=a1,status.state=RUNNING",
            "spec.agent=a2,status.state!=PENDING",
            "spec.agent=",
            "metadata.name=t3,spec.agent!=a1",
        ];
        for raw in selectors {
            let fields = FieldSelector::parse(raw).unwrap();
            assert!(bytes_can_match(&fields));
            for object in &objects {
                let bytes = serde_json::to_vec(object).unwrap();
                assert_eq!(fields_match(&bytes, &fields), Some(fields.matches(object)), "{raw} on {object}");
            }
        }
        let fields = FieldSelector::parse("spec.agent=a1").unwrap();
        assert_eq!(fields_match(b"{not json", &fields), None);
        assert!(!bytes_can_match(&FieldSelector::parse("metadata.resourceVersion=5").unwrap()));
    }

    #[test]
    fn exact_selectors_on_indexed_fields_narrow_the_watch() {
        let tasks = crate::path::collection_prefix(meseta_schemas::registry::by_plural("tasks").unwrap(), None);
        assert_eq!(tasks, INDEXES[0].prefix, "the index covers every task");
        let pinned = FieldSelector::parse("status.state=RUNNING,spec.agent=a7").unwrap();
        let (index, value) = narrow("/registry/tasks/ns/", Some(&pinned)).expect("narrowed");
        assert_eq!((index.field, value), ("spec.agent", "a7"));
        assert!(narrow("/registry/offers/", Some(&pinned)).is_none(), "offers are not indexed");
        let negated = FieldSelector::parse("spec.agent!=a7").unwrap();
        assert!(narrow("/registry/tasks/", Some(&negated)).is_none());
        assert!(narrow("/registry/tasks/", None).is_none());
    }
}
