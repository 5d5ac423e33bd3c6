//! Typed reading of the fields a decoder looks at on every delta, as forgiving as reading them
//! out of a `serde_json::Value` (a field of the wrong type counts as absent) but without
//! building one: the hot frames are read straight into borrowed strings.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A field read as text when it is a JSON string and skipped otherwise, as
/// `value.as_str()` would. Borrowed from the frame when the string has no escapes.
#[derive(Default)]
pub(crate) struct LenientStr<'a>(pub Option<Cow<'a, str>>);

impl<'a> LenientStr<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text, or an empty string when the field was absent or not a string.
    pub(crate) fn into_string(self) -> String {
        self.0.map(Cow::into_owned).unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LenientStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LenientStr<'a>, D::Error> {
        d.deserialize_any(LenientStrVisitor(std::marker::PhantomData))
    }
}

struct LenientStrVisitor<'a>(std::marker::PhantomData<&'a str>);

impl<'de: 'a, 'a> Visitor<'de> for LenientStrVisitor<'a> {
    type Value = LenientStr<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E>(self, v: &str) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E>(self, v: String) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(Some(Cow::Owned(v))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(None))
    }

    fn visit_unit<E>(self) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(None))
    }

    fn visit_none<E>(self) -> Result<LenientStr<'a>, E> {
        Ok(LenientStr(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LenientStr<'a>, D::Error> {
        LenientStr::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LenientStr<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LenientStr(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LenientStr<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(LenientStr(None))
    }
}

/// A struct read field by field from a JSON object, whose `Default` stands for any value that
/// is not an object (as `value.get(field)` finds nothing in one).
pub(crate) trait FromObject<'de>: Default {
    fn from_object<M: MapAccess<'de>>(map: M) -> Result<Self, M::Error>;
}

/// Deserialize a [`FromObject`] type: an object with `from_object`, anything else skipped.
pub(crate) fn object_or_default<'de, D: Deserializer<'de>, T: FromObject<'de>>(
    d: D,
) -> Result<T, D::Error> {
    d.deserialize_any(ObjectVisitor(std::marker::PhantomData))
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_object(map)
    }

    fn visit_str<E>(self, _: &str) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_none<E>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        object_or_default(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        field: LenientStr<'a>,
        #[serde(default)]
        after: Option<u32>,
    }

    fn read(json: &str) -> (Option<String>, bool, Option<u32>) {
        let p: Probe = serde_json::from_str(json).expect("valid probe");
        let borrowed = matches!(p.field.0, Some(Cow::Borrowed(_)));
        (p.field.0.map(Cow::into_owned), borrowed, p.after)
    }

    #[test]
    fn strings_are_read_and_borrowed_unless_escaped() {
        assert_eq!(
            read(r#"{"field":"fox "}"#),
            (Some("fox ".into()), true, None)
        );
        assert_eq!(
            read(r#"{"field":"a\nb"}"#),
            (Some("a\nb".into()), false, None)
        );
    }

    #[test]
    fn any_other_value_counts_as_absent_and_is_skipped_whole() {
        for v in [
            "null",
            "1",
            "-2",
            "1.5",
            "true",
            "[1,[2]]",
            r#"{"a":{"b":"c"}}"#,
        ] {
            let json = format!(r#"{{"field":{v},"after":7}}"#);
            assert_eq!(read(&json), (None, false, Some(7)), "{v}");
        }
        assert_eq!(read(r#"{"after":7}"#), (None, false, Some(7)));
    }
}
