//! Text that never changes once written and is usually short (user names, approvers), held
//! inside the value when it fits instead of in a heap allocation of its own.
//!
//! jitd holds every record it loads, 100,000 active grants among them, and each such name as
//! a `Box<str>` was a 32-byte heap chunk besides the 16 bytes pointing at it. Held inline, the
//! value is 24 bytes and there is no chunk; longer text goes to the heap as before.
//!
//! Text that is usually absent (a ticket, a role, a failure) is [`RareText`] instead: one
//! pointer wide, so an absent one costs 8 bytes in every record rather than 16.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// The longest text held inline: what fits beside its length and the variant's tag in the
/// 24 bytes a heap string needs anyway (pointer, length, tag).
const INLINE: usize = 22;

/// Immutable text, inline up to 22 bytes. Compared, hashed and shown as the `str` it holds.
#[derive(Clone)]
pub struct ShortText(Repr);

#[derive(Clone)]
enum Repr {
    /// Always valid UTF-8: only ever filled from a `str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl ShortText {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Cannot fail (filled from a `str`); checked rather than assumed, so no `unsafe`.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for ShortText {
    fn from(s: &str) -> ShortText {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            ShortText(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            ShortText(Repr::Heap(s.into()))
        }
    }
}

impl From<String> for ShortText {
    fn from(s: String) -> ShortText {
        if s.len() <= INLINE {
            ShortText::from(s.as_str())
        } else {
            ShortText(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl From<Box<str>> for ShortText {
    fn from(s: Box<str>) -> ShortText {
        if s.len() <= INLINE {
            ShortText::from(&*s)
        } else {
            ShortText(Repr::Heap(s))
        }
    }
}

impl From<ShortText> for String {
    fn from(s: ShortText) -> String {
        match s.0 {
            Repr::Heap(s) => s.into(),
            Repr::Inline { .. } => s.as_str().to_owned(),
        }
    }
}

impl Default for ShortText {
    fn default() -> ShortText {
        ShortText::from("")
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortText {}

impl PartialEq<String> for ShortText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Hash for ShortText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the `str`'s own hash: `Borrow<str>` requires it.
        self.as_str().hash(state)
    }
}

impl<'de> Deserialize<'de> for ShortText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ShortText, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = ShortText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            // Borrowed or escaped text alike is copied in once, with no String in between.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ShortText, E> {
                Ok(ShortText::from(v))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ShortText, E> {
                Ok(ShortText::from(v))
            }
        }
        d.deserialize_str(Text)
    }
}

/// Immutable text that most records do not have, held one pointer wide (`Option<RareText>`
/// is 8 bytes; an `Option<Box<str>>` is 16). The price is a second allocation when present.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RareText(Box<Box<str>>);

impl RareText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RareText {
    fn from(s: &str) -> RareText {
        RareText(Box::new(s.into()))
    }
}

impl From<String> for RareText {
    fn from(s: String) -> RareText {
        RareText(Box::new(s.into_boxed_str()))
    }
}

impl From<Box<str>> for RareText {
    fn from(s: Box<str>) -> RareText {
        RareText(Box::new(s))
    }
}

impl From<RareText> for String {
    fn from(s: RareText) -> String {
        (*s.0).into()
    }
}

impl<'de> Deserialize<'de> for RareText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RareText, D::Error> {
        String::deserialize(d).map(RareText::from)
    }
}

/// What both text types share: each is read, compared, shown and written as the `str` it
/// holds (`as_str`), and stored as a plain JSON string, so the files keep their format.
macro_rules! str_like {
    ($t:ty) => {
        impl From<&String> for $t {
            fn from(s: &String) -> $t {
                <$t>::from(s.as_str())
            }
        }

        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self.as_str(), f)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

str_like!(ShortText);
str_like!(RareText);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_no_wider_than_a_heap_string_with_a_tag_and_an_absent_one_costs_nothing_more() {
        assert_eq!(std::mem::size_of::<ShortText>(), 24);
        assert_eq!(std::mem::size_of::<Option<ShortText>>(), 24);
    }

    #[test]
    fn rare_text_is_one_pointer_wide_and_reads_back_as_written() {
        assert_eq!(std::mem::size_of::<Option<RareText>>(), 8);
        for text in [
            "",
            "INC-4711",
            "a note longer than any inline text would hold",
        ] {
            let rare = RareText::from(text);
            assert_eq!(rare.as_str(), text);
            let json = serde_json::to_string(&Some(rare.clone())).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(
                serde_json::from_str::<Option<RareText>>(&json).unwrap(),
                Some(rare)
            );
        }
        assert_eq!(
            serde_json::from_str::<Option<RareText>>("null").unwrap(),
            None
        );
    }

    #[test]
    fn text_of_any_length_reads_back_as_written_and_compares_as_its_str() {
        for text in [
            "",
            "root",
            "exactly-twenty-two-ch.",
            "twenty-three characters",
            "émile ünïcødé, spanning the inline limit",
            "a much longer reason for asking for root on this host",
        ] {
            let short = ShortText::from(text);
            assert_eq!(short.as_str(), text);
            assert_eq!(short, ShortText::from(text.to_string()));
            assert_eq!(short, ShortText::from(Box::<str>::from(text)));
            assert_eq!(String::from(short.clone()), text);
            let json = serde_json::to_string(&short).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<ShortText>(&json).unwrap(), short);
        }
        assert_ne!(ShortText::from("alice"), ShortText::from("alicf"));
        assert_ne!(ShortText::from("alice"), ShortText::from("alice "));
    }

    #[test]
    fn escaped_json_text_is_unescaped_and_non_strings_are_refused() {
        let s: ShortText = serde_json::from_str(r#""tab\there \"q\"""#).unwrap();
        assert_eq!(s, "tab\there \"q\"");
        assert!(serde_json::from_str::<ShortText>("42").is_err());
        assert!(serde_json::from_str::<ShortText>("null").is_err());
    }
}
