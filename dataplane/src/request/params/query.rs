//! Splitting, percent-decoding and canonical re-encoding of `application/x-www-form-urlencoded` query strings.

use std::borrow::Cow;

/// The raw `(name, value)` pieces of a query, in order. Empty pieces (`a=1&&b=2`) are skipped;
/// a piece without `=` has an empty value. Nothing is decoded.
pub(crate) fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Decodes one query component: `+` is a space, `%XX` is a byte. A `%` not followed by two hex
/// digits is kept literally (as browsers do). Borrows when there is nothing to decode.
pub(crate) fn decode(raw: &str) -> Cow<'_, [u8]> {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|b| *b == b'%' || *b == b'+') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Decodes one query component into text; `None` when the bytes are not UTF-8.
pub(crate) fn decode_str(raw: &str) -> Option<Cow<'_, str>> {
    match decode(raw) {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
    }
}

/// Appends `bytes` percent-encoded: unreserved characters (`A-Z a-z 0-9 - . _ ~`) as they are,
/// every other byte as `%XX` (upper-case). The result is the one canonical spelling of `bytes`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plus_is_a_space_and_percent_escapes_are_bytes() {
        assert_eq!(decode("a+b%20c%2B").as_ref(), b"a b c+");
        assert_eq!(decode("%e2%82%AC").as_ref(), "€".as_bytes());
    }

    #[test]
    fn broken_percent_escapes_are_kept_literally() {
        assert_eq!(decode("100%").as_ref(), b"100%");
        assert_eq!(decode("%zz%4").as_ref(), b"%zz%4");
    }

    #[test]
    fn invalid_utf8_is_reported_as_none() {
        assert_eq!(decode_str("%ff"), None);
        assert_eq!(decode_str("ok").as_deref(), Some("ok"));
    }

    #[test]
    fn pairs_skip_empty_pieces_and_default_to_empty_values() {
        let v: Vec<_> = pairs("a=1&&debug&=x&b=2=3").collect();
        assert_eq!(v, [("a", "1"), ("debug", ""), ("", "x"), ("b", "2=3")]);
    }

    proptest! {
        #[test]
        fn encoding_then_decoding_gives_back_the_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut s = String::new();
            encode_into(&bytes, &mut s);
            let decoded = decode(&s);
            prop_assert_eq!(decoded.as_ref(), bytes.as_slice());
        }
    }
}
