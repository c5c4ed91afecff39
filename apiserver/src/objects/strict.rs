//! A deserializer adapter that notes whether the type being decoded ignored
//! any part of its input, without noting where: the short way's test for
//! unknown fields (`typed`), which only needs yes or no and leaves the
//! wording to the general way.
//!
//! Owns the wrapping: every nested deserializer, visitor, sequence, map and
//! enum the decode reaches is wrapped in turn, and an input field the type
//! skips (serde's `deserialize_ignored_any`) sets the flag. Unlike
//! `serde_ignored` it keeps no path, so it copies no map key. It must not
//! change what is decoded. serde_json's raw values pass through unwrapped,
//! so that a field may keep its input's text.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// The newtype name serde_json gives its raw values' decode.
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// Decodes through `de`, setting `ignored` when the type skips any of the input.
pub(crate) struct Strict<'a, D> {
    de: D,
    ignored: &'a Cell<bool>,
}

impl<'a, D> Strict<'a, D> {
    pub(crate) fn new(de: D, ignored: &'a Cell<bool>) -> Self {
        Strict { de, ignored }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.de.$method(Wrap { visitor, ignored: self.ignored })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<'_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_unit_struct(name, Wrap { visitor, ignored: self.ignored })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        if name == RAW_VALUE {
            // Taken whole: nothing in it is ignored.
            return self.de.deserialize_newtype_struct(name, visitor);
        }
        self.de.deserialize_newtype_struct(name, Wrap { visitor, ignored: self.ignored })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_tuple(len, Wrap { visitor, ignored: self.ignored })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_tuple_struct(name, len, Wrap { visitor, ignored: self.ignored })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_struct(name, fields, Wrap { visitor, ignored: self.ignored })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_enum(name, variants, Wrap { visitor, ignored: self.ignored })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.ignored.set(true);
        self.de.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor whose nested deserializers are wrapped.
struct Wrap<'a, V> {
    visitor: V,
    ignored: &'a Cell<bool>,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit!(
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128) visit_f32(f32)
        visit_f64(f64) visit_char(char) visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Strict { de, ignored: self.ignored })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Strict { de, ignored: self.ignored })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Wrap { visitor: seq, ignored: self.ignored })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Wrap { visitor: map, ignored: self.ignored })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(Wrap { visitor: data, ignored: self.ignored })
    }
}

/// A seed that decodes through a wrapped deserializer.
struct Seed<'a, S> {
    seed: S,
    ignored: &'a Cell<bool>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Strict { de, ignored: self.ignored })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.visitor.next_element_seed(Seed { seed, ignored: self.ignored })
    }

    fn size_hint(&self) -> Option<usize> {
        self.visitor.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.visitor.next_key_seed(Seed { seed, ignored: self.ignored })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.visitor.next_value_seed(Seed { seed, ignored: self.ignored })
    }

    fn size_hint(&self) -> Option<usize> {
        self.visitor.size_hint()
    }
}

impl<'de, 'a, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'a, A> {
    type Error = A::Error;
    type Variant = Wrap<'a, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.visitor.variant_seed(Seed { seed, ignored: self.ignored })?;
        Ok((value, Wrap { visitor: variant, ignored: self.ignored }))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.visitor.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.visitor.newtype_variant_seed(Seed { seed, ignored: self.ignored })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.visitor.tuple_variant(len, Wrap { visitor, ignored: self.ignored })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.visitor.struct_variant(fields, Wrap { visitor, ignored: self.ignored })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{json, Value};

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
        #[serde(default)]
        choice: Option<Choice>,
        #[serde(default)]
        tagged: Option<Tagged>,
        #[serde(default)]
        open: Option<Value>,
        #[serde(default)]
        raw: Option<Raw>,
    }

    /// A raw value, compared by its text.
    #[derive(Debug, Deserialize)]
    #[serde(transparent)]
    struct Raw(Box<serde_json::value::RawValue>);

    impl PartialEq for Raw {
        fn eq(&self, other: &Self) -> bool {
            self.0.get() == other.0.get()
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: u32,
        #[serde(default)]
        b: Option<Box<Inner>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    enum Choice {
        Plain,
        Wrapped(Inner),
        Shaped { a: u32 },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "type")]
    enum Tagged {
        One { a: u32 },
    }

    /// The decode through the adapter, whether it flagged anything, and
    /// what `serde_ignored` reports for the same input.
    fn both(input: &Value) -> (Option<Outer>, bool, bool) {
        let text = serde_json::to_string(input).unwrap();
        let ignored = Cell::new(false);
        let mut de = serde_json::Deserializer::from_str(&text);
        let strict = Outer::deserialize(Strict::new(&mut de, &ignored)).ok();
        let mut reported = false;
        let mut de = serde_json::Deserializer::from_str(&text);
        let mut note = |_: serde_ignored::Path<'_>| reported = true;
        let _ = Outer::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note));
        (strict, ignored.get(), reported)
    }

    #[test]
    fn an_unknown_field_anywhere_is_noted() {
        let cases = [
            json!({"name": "n", "x": 1}),
            json!({"name": "n", "inner": {"a": 1, "x": {"deep": [1]}}}),
            json!({"name": "n", "inner": {"a": 1, "b": {"a": 2, "x": null}}}),
            json!({"name": "n", "list": [{"a": 1}, {"a": 2, "x": true}]}),
            json!({"name": "n", "map": {"k": {"a": 1, "x": "y"}}}),
            json!({"name": "n", "choice": {"wrapped": {"a": 1, "x": 1}}}),
            json!({"name": "n", "choice": {"shaped": {"a": 1, "x": 1}}}),
        ];
        for case in cases {
            let (decoded, ignored, reported) = both(&case);
            assert!(decoded.is_some(), "{case}");
            assert!(ignored, "{case}");
            assert!(reported, "serde_ignored agrees: {case}");
        }
    }

    #[test]
    fn known_fields_open_values_and_raw_values_are_not_noted_and_decode_as_without_it() {
        let input = json!({"name": "n", "inner": {"a": 1, "b": {"a": 2}}, "list": [{"a": 3}],
            "map": {"k": {"a": 4}}, "choice": "plain", "tagged": {"type": "One", "a": 5},
            "open": {"anything": [1, {"x": 2}]}, "raw": {"kept": [1.50, "as sent"]}});
        let (decoded, ignored, reported) = both(&input);
        assert!(!ignored && !reported);
        let plain: Outer = serde_json::from_str(&input.to_string()).unwrap();
        let decoded = decoded.unwrap();
        assert_eq!(decoded.raw.as_ref().unwrap().0.get(), r#"{"kept":[1.5,"as sent"]}"#);
        assert_eq!(decoded, plain);
    }

    #[test]
    fn bad_input_fails_as_without_it() {
        for case in [json!({"name": 1}), json!({"inner": {"a": 1}}), json!({"name": "n", "choice": "nope"})] {
            let (decoded, _, _) = both(&case);
            assert!(decoded.is_none(), "{case}");
            assert!(serde_json::from_str::<Outer>(&case.to_string()).is_err());
        }
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), (0u32..9).prop_map(Value::from)]
    }

    fn inner() -> impl Strategy<Value = Value> {
        let leaf = (0u32..9, proptest::option::of("[xyz]"), json_leaf()).prop_map(|(a, extra, v)| {
            let mut o = json!({"a": a});
            if let Some(k) = extra {
                o[k] = v;
            }
            o
        });
        leaf.prop_recursive(3, 8, 2, |nested| (0u32..9, nested).prop_map(|(a, b)| json!({"a": a, "b": b})))
    }

    proptest! {
        /// Against serde_ignored on generated inputs, with and without
        /// unknown fields at any depth: the same verdict and the same object.
        #[test]
        fn agrees_with_serde_ignored(
            top_extra in proptest::option::of(json_leaf()),
            inner_value in proptest::option::of(inner()),
            list in proptest::collection::vec(inner(), 0..3),
        ) {
            let mut input = json!({"name": "n", "list": list});
            if let Some(v) = inner_value {
                input["inner"] = v;
            }
            if let Some(v) = top_extra {
                input["zz"] = v;
            }
            let (decoded, ignored, reported) = both(&input);
            prop_assert_eq!(ignored, reported, "{}", input);
            prop_assert_eq!(decoded, serde_json::from_str::<Outer>(&input.to_string()).ok());
        }
    }
}
