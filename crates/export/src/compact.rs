//! Compact JSON, byte for byte as `serde_json::to_writer` writes it, for the lines of the
//! document that make up the bulk of a big export (a run or an incident each). Escaping every
//! key and string a byte at a time was about two thirds of rendering a run: this serializer
//! looks at eight bytes at a time and copies the runs that need no escape in one go. Numbers
//! are written by `serde_json` itself (so they are formatted exactly as it formats them).

use serde::Serialize;
use serde::ser::{self, Impossible};

type Error = serde_json::Error;

/// Append `value` to `out` as compact JSON.
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Compact { out })
}

struct Compact<'a> {
    out: &'a mut Vec<u8>,
}

impl Compact<'_> {
    fn number<T: Serialize>(&mut self, n: T) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &n)
    }
}

/// What a byte becomes in a JSON string, as `serde_json` escapes it: 0 for itself, `u` for
/// `\u00XX`, else the letter after the backslash.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `word` is a quote, a backslash or a control character
/// (never wrong when it says no).
fn any_to_escape(word: u64) -> bool {
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGHS;
    let zero = |w: u64| below(w, 1);
    (below(word, 0x20) | zero(word ^ (ONES * b'"' as u64)) | zero(word ^ (ONES * b'\\' as u64)))
        != 0
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `bytes[start..i]` needs no escape and is not written yet.
    let mut start = 0;
    let mut i = 0;
    loop {
        // Eight bytes at a time while none needs an escape; then those eight (or the last
        // few) a byte at a time.
        let chunk: &[u8] = match bytes[i..].first_chunk::<8>() {
            Some(word) if !any_to_escape(u64::from_le_bytes(*word)) => {
                i += 8;
                continue;
            }
            Some(word) => word,
            None => &bytes[i..],
        };
        for (at, &byte) in (i..).zip(chunk) {
            let escape = ESCAPE[byte as usize];
            if escape == 0 {
                continue;
            }
            out.extend_from_slice(&bytes[start..at]);
            if escape == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xf) as usize],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
            start = at + 1;
        }
        i += chunk.len();
        if chunk.len() < 8 {
            break;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Members of an array or an object, with the commas between them.
struct Members<'s, 'a> {
    ser: &'s mut Compact<'a>,
    first: bool,
    /// What closes the compound: `]`, `}`, or `}}` for a variant holding a struct or tuple.
    close: &'static [u8],
}

impl<'s, 'a> Members<'s, 'a> {
    fn open(ser: &'s mut Compact<'a>, open: &[u8], close: &'static [u8]) -> Self {
        ser.out.extend_from_slice(open);
        Members {
            ser,
            first: true,
            close,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.ser.out.push(b',');
        }
        self.first = false;
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.ser)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.comma();
        write_str(self.ser.out, key);
        self.ser.out.push(b':');
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), Error> {
        self.ser.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// `{"variant":` before a variant's value.
fn variant_key(out: &mut Vec<u8>, variant: &str) {
    out.push(b'{');
    write_str(out, variant);
    out.push(b':');
}

impl<'s, 'a> ser::Serializer for &'s mut Compact<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Members<'s, 'a>;
    type SerializeTuple = Members<'s, 'a>;
    type SerializeTupleStruct = Members<'s, 'a>;
    type SerializeTupleVariant = Members<'s, 'a>;
    type SerializeMap = Members<'s, 'a>;
    type SerializeStruct = Members<'s, 'a>;
    type SerializeStructVariant = Members<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name.starts_with("$serde_json::") {
            // A type `serde_json` writes its own way (a raw value, an arbitrary-precision
            // number): none is in the document; refused rather than written otherwise.
            return Err(ser::Error::custom(format!("{name} is not supported here")));
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        variant_key(self.out, variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Ok(Members::open(self, b"[", b"]"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Ok(Members::open(self, b"[", b"]"))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Ok(Members::open(self, b"[", b"]"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        variant_key(self.out, variant);
        Ok(Members::open(self, b"[", b"]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Ok(Members::open(self, b"{", b"}"))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Ok(Members::open(self, b"{", b"}"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        variant_key(self.out, variant);
        Ok(Members::open(self, b"{", b"}}"))
    }
}

impl ser::SerializeSeq for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

impl ser::SerializeTuple for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

impl ser::SerializeTupleStruct for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

impl ser::SerializeTupleVariant for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

impl ser::SerializeStruct for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

impl ser::SerializeStructVariant for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

impl ser::SerializeMap for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(MapKey {
            out: &mut *self.ser.out,
        })?;
        self.ser.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        Members::end(self)
    }
}

/// A map key: the document's maps are keyed by strings. Any other key is refused (`serde_json`
/// would quote some of them); nothing in the document has one.
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

fn key_not_a_string() -> Error {
    ser::Error::custom("a map key that is not a string")
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_bool(self, _v: bool) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_i8(self, _v: i8) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_i16(self, _v: i16) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_i32(self, _v: i32) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_i64(self, _v: i64) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_u8(self, _v: u8) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_u16(self, _v: u16) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_u32(self, _v: u32) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_u64(self, _v: u64) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_not_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_not_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_not_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_not_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_not_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_not_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_not_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_not_a_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both<T: Serialize + ?Sized>(value: &T) -> (String, String) {
        let mut ours = Vec::new();
        write(&mut ours, value).unwrap();
        let theirs = serde_json::to_vec(value).unwrap();
        (
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap(),
        )
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it() {
        let every: String = (0u8..=0x7f).map(char::from).collect();
        let texts = [
            String::new(),
            every.clone(),
            every.repeat(3),
            "caf\u{e9} \u{1f600} \u{2028}\u{7f}".to_owned(),
            "exactly8".to_owned(),
            "eight b\"".to_owned(),
            "a\\b\"c\nd\u{1}e\u{1f}f\tg\rh\u{8}i\u{c}j".repeat(5),
        ];
        for text in &texts {
            let (ours, theirs) = both(text);
            assert_eq!(ours, theirs);
            // Every offset, so that each byte is met at each place in a word.
            for start in 0..text.len().min(17) {
                if let Some(tail) = text.get(start..) {
                    let (ours, theirs) = both(tail);
                    assert_eq!(ours, theirs);
                }
            }
        }
    }

    #[test]
    fn values_of_every_shape_are_written_as_serde_json_writes_them() {
        #[derive(Serialize)]
        enum Variants {
            Unit,
            Newtype(u8),
            Tuple(i32, String),
            Struct { a: Option<bool>, b: Vec<u8> },
        }
        #[derive(Serialize)]
        struct Wrapper(String);
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Tagged {
            Cli,
            Control { client: String },
        }
        let value = json!({
            "null": null, "t": true, "f": false, "n": [0, -1, u64::MAX, i64::MIN, 1.5, -0.0, 1e300],
            "s": "x\"y", "nested": {"a": [[], {}], "b": {"c": "d"}}, "k\ney": 1,
        });
        assert_eq!(both(&value).0, both(&value).1);
        let shapes = (
            Variants::Unit,
            Variants::Newtype(7),
            Variants::Tuple(-3, "t".into()),
            Variants::Struct {
                a: None,
                b: vec![1, 2],
            },
            Wrapper("w".into()),
            [Tagged::Cli, Tagged::Control { client: "c".into() }],
            ('\n', 'é', (), f32::NAN, f64::INFINITY, 3u128, -4i128),
            std::collections::BTreeMap::from([("b", 2), ("a", 1)]),
            Some(Option::<u8>::None),
        );
        assert_eq!(both(&shapes).0, both(&shapes).1);
    }

    #[test]
    fn the_runs_and_incidents_of_the_fixture_homes_are_written_as_serde_json_writes_them() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut runs = 0;
        for home in ["home-v1", "home-v1-partial"] {
            let home = fixtures.join(home);
            for dir in std::fs::read_dir(home.join("pods")).unwrap() {
                let pod = dir.unwrap().file_name().into_string().unwrap();
                for sanitize in [false, true] {
                    let request = crate::ExportRequest {
                        home: home.clone(),
                        pod: pod.clone(),
                        tree: false,
                        sanitize,
                    };
                    let doc = crate::export(&request, &mut |_| {}).unwrap();
                    for run in doc.pods.iter().flat_map(|p| &p.runs) {
                        let (ours, theirs) = both(run);
                        assert_eq!(ours, theirs);
                        runs += 1;
                    }
                    for incident in &doc.incidents {
                        let (ours, theirs) = both(incident);
                        assert_eq!(ours, theirs);
                    }
                }
            }
        }
        assert!(runs >= 10, "{runs} runs compared");
    }

    #[test]
    fn a_key_that_is_not_a_string_is_refused() {
        let map = std::collections::BTreeMap::from([(1, 2)]);
        assert!(write(&mut Vec::new(), &map).is_err());
    }
}
