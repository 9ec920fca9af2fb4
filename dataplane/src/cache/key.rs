//! Cache keys: a SHA-256 over an unambiguous, length-prefixed encoding of everything that can
//! change a variant's bytes.

use crate::error::{Classify, Fault};
use http::StatusCode;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Version of the encoder settings, hashed into every key. Bump it whenever the ffmpeg
/// arguments change, so variants encoded the old way are never served for the new way.
pub const ENCODER_VERSION: &str = "1";

/// Domain separation: a key can never equal a digest of the same bytes made for another purpose.
const DOMAIN: &[u8] = b"vr-cache-key\0";

/// Everything that identifies a variant's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyParts<'a> {
    /// Origin rule name.
    pub origin: &'a str,
    /// Source name within the origin.
    pub source: &'a str,
    /// The resolved object key or path at the source.
    pub source_key: &'a str,
    /// The source's validator (ETag, or last-modified + length) so a changed source gets new keys.
    pub validator: &'a str,
    /// `Variant::canonical()`, or `"original"` for the untransformed source.
    pub variant: &'a str,
}

/// The SHA-256 identity of one cached variant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// Derives the key of `parts` under the current [`ENCODER_VERSION`].
    ///
    /// Guarantee: every part is length-prefixed, so distinct part tuples encode to distinct
    /// byte strings (`"ab"+"c"` never equals `"a"+"bc"`); keys differ unless SHA-256 collides.
    pub fn derive(parts: &KeyParts<'_>) -> Self {
        Self::derive_versioned(parts, ENCODER_VERSION)
    }

    fn derive_versioned(parts: &KeyParts<'_>, encoder_version: &str) -> Self {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        for part in [
            encoder_version,
            parts.origin,
            parts.source,
            parts.source_key,
            parts.validator,
            parts.variant,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        CacheKey(h.finalize().into())
    }

    /// Lower-case hex, 64 characters (file names, admin API, logs).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.hex())
    }
}

/// A string that is not a cache key (admin purge by key).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cache key must be 64 hexadecimal characters")]
pub struct KeyParseError;

impl Classify for KeyParseError {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
    fn code(&self) -> &'static str {
        "invalid_cache_key"
    }
    fn fault(&self) -> Fault {
        Fault::Client
    }
}

impl FromStr for CacheKey {
    type Err = KeyParseError;

    /// Parses 64 hex characters (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(KeyParseError);
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| KeyParseError)?;
        Ok(CacheKey(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts<'a>(o: &'a str, s: &'a str, k: &'a str, v: &'a str, var: &'a str) -> KeyParts<'a> {
        KeyParts {
            origin: o,
            source: s,
            source_key: k,
            validator: v,
            variant: var,
        }
    }

    #[test]
    fn each_part_changes_the_key() {
        let base = CacheKey::derive(&parts("o", "s", "k", "v", "x"));
        for p in [
            parts("O", "s", "k", "v", "x"),
            parts("o", "S", "k", "v", "x"),
            parts("o", "s", "K", "v", "x"),
            parts("o", "s", "k", "V", "x"),
            parts("o", "s", "k", "v", "X"),
        ] {
            assert_ne!(CacheKey::derive(&p), base, "{p:?}");
        }
    }

    #[test]
    fn ambiguous_concatenations_give_different_keys() {
        let a = CacheKey::derive(&parts("ab", "c", "k", "v", "x"));
        let b = CacheKey::derive(&parts("a", "bc", "k", "v", "x"));
        assert_ne!(a, b);
        let c = CacheKey::derive(&parts("o", "s", "k", "", "vx"));
        let d = CacheKey::derive(&parts("o", "s", "k", "v", "x"));
        assert_ne!(c, d);
    }

    #[test]
    fn encoder_version_changes_the_key() {
        let p = parts("o", "s", "k", "v", "x");
        assert_ne!(
            CacheKey::derive_versioned(&p, "1"),
            CacheKey::derive_versioned(&p, "2")
        );
        assert_eq!(
            CacheKey::derive(&p),
            CacheKey::derive_versioned(&p, ENCODER_VERSION)
        );
    }

    #[test]
    fn derivation_is_stable_across_releases() {
        // A changed encoding silently empties every cache; change this value deliberately.
        let k = CacheKey::derive(&parts("media", "s3", "videos/a.mp4", "\"e1\"", "original"));
        assert_eq!(k.hex(), GOLDEN);
    }
    const GOLDEN: &str = "ea731016f70048632c5ecbcb35dc36879d3ac5bef2cbce62893c82c1d46a4a75";

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let k = CacheKey::derive(&parts("o", "s", "k", "v", "x"));
        assert_eq!(k.hex().parse::<CacheKey>(), Ok(k));
        assert_eq!(k.hex().to_uppercase().parse::<CacheKey>(), Ok(k));
        assert_eq!("".parse::<CacheKey>(), Err(KeyParseError));
        assert_eq!("zz".repeat(32).parse::<CacheKey>(), Err(KeyParseError));
        assert_eq!(k.hex()[..62].parse::<CacheKey>(), Err(KeyParseError));
        assert_eq!("é".repeat(32).parse::<CacheKey>(), Err(KeyParseError));
    }

    fn tuple() -> impl Strategy<Value = [String; 5]> {
        // A tiny alphabet makes shifted boundaries and empty parts likely.
        let s = "[ab\u{0}]{0,3}";
        (s, s, s, s, s).prop_map(|(a, b, c, d, e)| [a, b, c, d, e])
    }

    proptest! {
        #[test]
        fn distinct_part_tuples_never_collide(x in tuple(), y in tuple()) {
            let kx = CacheKey::derive(&parts(&x[0], &x[1], &x[2], &x[3], &x[4]));
            let ky = CacheKey::derive(&parts(&y[0], &y[1], &y[2], &y[3], &y[4]));
            prop_assert_eq!(x == y, kx == ky);
        }
    }
}
