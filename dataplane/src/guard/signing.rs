//! Optional URL signing: HMAC-SHA256 over the path and the canonical query, several keys for rotation, optional expiry.
//!
//! The signed message is `path` + `?` + the canonical query: every parameter except `sig`,
//! percent-decoded (`+` is a space), sorted by name then value, re-encoded one canonical way
//! and joined with `&`. So parameter order and equivalent encodings do not matter, while any
//! change to the path, to a name or to a value breaks the signature. `exp` (unix seconds) is
//! part of the signed query, so it cannot be extended. The signature is `sig=<64 hex digits>`.

use crate::error::{Classify, Fault};
use crate::request::params::{decode_component, encode_into, query_pairs};
use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;
use std::borrow::Cow;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;
/// A decoded `(name, value)` query pair.
type DecodedPair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Query parameter holding the signature.
pub const SIG_PARAM: &str = "sig";
/// Query parameter holding the expiry (unix seconds).
pub const EXP_PARAM: &str = "exp";
/// Shortest accepted key.
pub const MIN_KEY_BYTES: usize = 16;
/// Longest query that is verified at all (bounds the work of a forged request).
pub const MAX_SIGNED_QUERY_BYTES: usize = 16 * 1024;

/// Why a request's signature was refused (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `sig` parameter.
    #[error("this URL must be signed: the sig parameter is missing")]
    Missing,
    /// The signature is malformed or does not match the path and query under any key.
    #[error("the URL signature is invalid for this path and query")]
    Invalid,
    /// The signature is valid but `exp` has passed.
    #[error("the signed URL expired")]
    Expired,
    /// The signature is valid but `exp` is missing or further ahead than the maximum lifetime.
    #[error("exp: a signed URL must carry exp at most {max_seconds} s ahead (signing.maxLifetimeSeconds)")]
    Lifetime { max_seconds: u64 },
}

impl Classify for SignatureError {
    fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }
    fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Invalid => "signature_invalid",
            SignatureError::Expired => "signature_expired",
            SignatureError::Lifetime { .. } => "signature_lifetime",
        }
    }
    fn details(&self) -> Option<serde_json::Value> {
        matches!(self, SignatureError::Lifetime { .. })
            .then(|| serde_json::json!({ "parameter": EXP_PARAM }))
    }
    fn fault(&self) -> Fault {
        Fault::Client
    }
}

/// A signing key that cannot be used (a start-up / config-load error). Never contains key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key was given.
    #[error("at least one signing key is required")]
    NoKeys,
    /// A key is too short to be safe.
    #[error("signing key {index} is {len} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort { index: usize, len: usize },
}

impl Classify for KeyError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
    fn code(&self) -> &'static str {
        "signing_key_invalid"
    }
    fn fault(&self) -> Fault {
        Fault::Server
    }
}

/// Decodes a key file's contents: surrounding whitespace is trimmed; an even number of hex
/// digits is hex-decoded, anything else is used as raw bytes. Keys shorter than
/// [`MIN_KEY_BYTES`] (after decoding) are refused.
pub fn key_from_file_contents(contents: &[u8]) -> Result<Vec<u8>, KeyError> {
    let trimmed = contents.trim_ascii();
    let looks_hex =
        !trimmed.is_empty() && trimmed.len() % 2 == 0 && trimmed.iter().all(u8::is_ascii_hexdigit);
    let key = match looks_hex.then(|| hex::decode(trimmed).ok()).flatten() {
        Some(k) => k,
        None => trimmed.to_vec(),
    };
    if key.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort {
            index: 0,
            len: key.len(),
        });
    }
    Ok(key)
}

/// Signs and verifies URLs. The first key signs; any key verifies (rotation: add the new key
/// second, roll out, move it first, roll out, drop the old one).
#[derive(Clone)]
pub struct Signer {
    /// Keyed MAC states, prepared once; cloned per use.
    signing: HmacSha256,
    others: Vec<HmacSha256>,
    /// Longest lifetime a genuine signature may claim; `None`: unbounded, `exp` optional.
    max_lifetime: Option<u64>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &(1 + self.others.len()))
            .finish()
    }
}

impl Signer {
    /// A signer over `keys` (first signs). Refuses an empty list and keys shorter than
    /// [`MIN_KEY_BYTES`].
    pub fn new(keys: Vec<Vec<u8>>) -> Result<Signer, KeyError> {
        let mut macs = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            if key.len() < MIN_KEY_BYTES {
                return Err(KeyError::TooShort {
                    index,
                    len: key.len(),
                });
            }
            // HMAC accepts keys of any length, so this cannot fail.
            if let Ok(mac) = HmacSha256::new_from_slice(key) {
                macs.push(mac);
            }
        }
        let mut macs = macs.into_iter();
        let signing = macs.next().ok_or(KeyError::NoKeys)?;
        Ok(Signer {
            signing,
            others: macs.collect(),
            max_lifetime: None,
        })
    }

    /// Refuse genuine signatures without `exp`, or with `exp` more than `max` seconds ahead
    /// ([`SignatureError::Lifetime`]); `None` (the default of [`Signer::new`]) accepts both.
    pub fn with_max_lifetime(mut self, max: Option<u64>) -> Signer {
        self.max_lifetime = max;
        self
    }

    /// Returns `query` with `exp` (when `expires` is given, replacing any existing one) and
    /// `sig` appended; an existing `sig` is dropped. Other parameters keep their spelling.
    pub fn sign(&self, path: &str, query: &str, expires: Option<u64>) -> String {
        let mut out = String::with_capacity(query.len() + 96);
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let raw_name = piece.split_once('=').map_or(piece, |(n, _)| n);
            let name = decode_component(raw_name);
            if name.as_ref() == SIG_PARAM.as_bytes()
                || (expires.is_some() && name.as_ref() == EXP_PARAM.as_bytes())
            {
                continue;
            }
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(piece);
        }
        if let Some(exp) = expires {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(EXP_PARAM);
            out.push('=');
            out.push_str(&exp.to_string());
        }
        let mut mac = self.signing.clone();
        mac.update(&message(path, &out));
        let tag = hex::encode(mac.finalize().into_bytes());
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(SIG_PARAM);
        out.push('=');
        out.push_str(&tag);
        out
    }

    /// Checks `sig` over `path` and the canonical query under every key (constant-time tag
    /// comparison), then `exp` against `now_unix`: at or past `exp` the URL is expired.
    ///
    /// Errors: [`SignatureError::Missing`] without `sig`; [`SignatureError::Invalid`] for a
    /// malformed, repeated or wrong `sig`, a malformed or repeated `exp`, or an over-long
    /// query; [`SignatureError::Expired`] only for a genuine signature whose time has passed.
    pub fn verify(&self, path: &str, query: &str, now_unix: u64) -> Result<(), SignatureError> {
        if query.len() > MAX_SIGNED_QUERY_BYTES {
            return Err(SignatureError::Invalid);
        }
        let mut sig: Option<Cow<'_, [u8]>> = None;
        let mut exp: Option<Cow<'_, [u8]>> = None;
        for (raw_name, raw_value) in query_pairs(query) {
            let name = decode_component(raw_name);
            if name.as_ref() == SIG_PARAM.as_bytes() {
                if sig.replace(decode_component(raw_value)).is_some() {
                    return Err(SignatureError::Invalid);
                }
            } else if name.as_ref() == EXP_PARAM.as_bytes()
                && exp.replace(decode_component(raw_value)).is_some()
            {
                return Err(SignatureError::Invalid);
            }
        }
        let sig = sig.ok_or(SignatureError::Missing)?;
        let tag = hex::decode(sig.as_ref()).map_err(|_| SignatureError::Invalid)?;
        let msg = message(path, query);
        let matches = std::iter::once(&self.signing)
            .chain(&self.others)
            .any(|mac| {
                let mut mac = mac.clone();
                mac.update(&msg);
                mac.verify_slice(&tag).is_ok()
            });
        if !matches {
            return Err(SignatureError::Invalid);
        }
        let lifetime = |max_seconds| SignatureError::Lifetime { max_seconds };
        match exp {
            Some(exp) => {
                let expires: u64 = std::str::from_utf8(&exp)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .ok_or(SignatureError::Invalid)?;
                if now_unix >= expires {
                    return Err(SignatureError::Expired);
                }
                match self.max_lifetime {
                    Some(max) if expires - now_unix > max => Err(lifetime(max)),
                    _ => Ok(()),
                }
            }
            None => match self.max_lifetime {
                Some(max) => Err(lifetime(max)),
                None => Ok(()),
            },
        }
    }
}

/// The signed message: `path?canonical-query`, where the canonical query is every parameter
/// except `sig`, decoded, sorted by (name, value) and re-encoded one way.
fn message(path: &str, query: &str) -> Vec<u8> {
    let mut pairs: Vec<DecodedPair<'_>> = query_pairs(query)
        .map(|(n, v)| (decode_component(n), decode_component(v)))
        .filter(|(n, _)| n.as_ref() != SIG_PARAM.as_bytes())
        .collect();
    pairs.sort();
    let mut canonical = String::with_capacity(query.len() + 16);
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            canonical.push('&');
        }
        encode_into(n, &mut canonical);
        canonical.push('=');
        encode_into(v, &mut canonical);
    }
    let mut msg = Vec::with_capacity(path.len() + 1 + canonical.len());
    msg.extend_from_slice(path.as_bytes());
    msg.push(b'?');
    msg.extend_from_slice(canonical.as_bytes());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &[u8] = b"0123456789abcdef-key-a";
    const KEY_B: &[u8] = b"0123456789abcdef-key-b";

    fn signer(keys: &[&[u8]]) -> Signer {
        Signer::new(keys.iter().map(|k| k.to_vec()).collect()).expect("valid keys")
    }

    #[test]
    fn a_signed_url_verifies() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/videos/a.mp4", "width=640&height=360", None);
        assert!(q.starts_with("width=640&height=360&sig="), "{q}");
        assert_eq!(s.verify("/videos/a.mp4", &q, 0), Ok(()));
    }

    #[test]
    fn an_empty_query_can_be_signed() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/videos/a.mp4", "", None);
        assert!(q.starts_with("sig="));
        assert_eq!(s.verify("/videos/a.mp4", &q, 0), Ok(()));
    }

    #[test]
    fn reordering_and_equivalent_encodings_still_verify() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/v.mp4", "b=2&a=x+y&c=%7E", None);
        let sig = q.rsplit_once("sig=").map(|(_, s)| s).unwrap_or_default();
        let reordered = format!("sig={sig}&c=~&a=x%20y&b=2");
        assert_eq!(s.verify("/v.mp4", &reordered, 0), Ok(()));
    }

    #[test]
    fn changing_the_path_breaks_the_signature() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/videos/a.mp4", "width=640", None);
        assert_eq!(
            s.verify("/videos/b.mp4", &q, 0),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn changing_adding_or_removing_any_parameter_breaks_the_signature() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/v.mp4", "width=640&height=360", Some(1_000));
        for tampered in [
            q.replace("width=640", "width=641"),
            q.replace("height=360", "h=360"),
            q.replace("width=640&", ""),
            format!("debug=1&{q}"),
            q.replace("exp=1000", "exp=2000"),
            q.replace("&exp=1000", ""),
        ] {
            assert_eq!(
                s.verify("/v.mp4", &tampered, 0),
                Err(SignatureError::Invalid),
                "{tampered}"
            );
        }
    }

    #[test]
    fn a_missing_signature_is_reported_as_missing() {
        let s = signer(&[KEY_A]);
        assert_eq!(
            s.verify("/v.mp4", "width=640", 0),
            Err(SignatureError::Missing)
        );
        assert_eq!(s.verify("/v.mp4", "", 0), Err(SignatureError::Missing));
    }

    #[test]
    fn malformed_or_repeated_signatures_are_invalid() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/v.mp4", "width=640", None);
        for bad in [
            "width=640&sig=zz".to_string(),
            "width=640&sig=".to_string(),
            format!("{q}&{}", q.rsplit('&').next().unwrap_or_default()),
        ] {
            assert_eq!(s.verify("/v.mp4", &bad, 0), Err(SignatureError::Invalid));
        }
    }

    #[test]
    fn any_configured_key_verifies_and_the_first_signs() {
        let old = signer(&[KEY_A]);
        let rotated = signer(&[KEY_B, KEY_A]);
        let by_old = old.sign("/v.mp4", "w=1", None);
        let by_new = rotated.sign("/v.mp4", "w=1", None);
        assert_eq!(rotated.verify("/v.mp4", &by_old, 0), Ok(()));
        assert_eq!(rotated.verify("/v.mp4", &by_new, 0), Ok(()));
        assert_eq!(
            old.verify("/v.mp4", &by_new, 0),
            Err(SignatureError::Invalid)
        );
        assert_eq!(signer(&[KEY_B]).verify("/v.mp4", &by_new, 0), Ok(()));
    }

    #[test]
    fn expiry_is_enforced_only_after_the_signature_checks_out() {
        let s = signer(&[KEY_A]);
        let q = s.sign("/v.mp4", "width=640", Some(1_000));
        assert!(q.contains("exp=1000"));
        assert_eq!(s.verify("/v.mp4", &q, 999), Ok(()));
        assert_eq!(s.verify("/v.mp4", &q, 1_000), Err(SignatureError::Expired));
        assert_eq!(s.verify("/v.mp4", &q, 5_000), Err(SignatureError::Expired));
        let forged = q.replace("exp=1000", "exp=10");
        assert_eq!(
            s.verify("/v.mp4", &forged, 5_000),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn signing_replaces_an_existing_signature_and_expiry() {
        let s = signer(&[KEY_A]);
        let once = s.sign("/v.mp4", "w=1", Some(10));
        let twice = s.sign("/v.mp4", &once, Some(20));
        assert_eq!(twice.matches("sig=").count(), 1);
        assert_eq!(twice.matches("exp=").count(), 1);
        assert!(twice.contains("exp=20"));
        assert_eq!(s.verify("/v.mp4", &twice, 15), Ok(()));
    }

    #[test]
    fn over_long_queries_are_refused_without_hashing() {
        let s = signer(&[KEY_A]);
        let q = format!("a={}&sig=00", "x".repeat(MAX_SIGNED_QUERY_BYTES));
        assert_eq!(s.verify("/v.mp4", &q, 0), Err(SignatureError::Invalid));
    }

    #[test]
    fn signature_errors_are_403_with_distinct_codes() {
        let codes: Vec<_> = [
            SignatureError::Missing,
            SignatureError::Invalid,
            SignatureError::Expired,
        ]
        .iter()
        .map(|e| {
            assert_eq!(e.status(), StatusCode::FORBIDDEN);
            assert_eq!(e.fault(), Fault::Client);
            e.code()
        })
        .collect();
        assert_eq!(
            codes,
            [
                "signature_missing",
                "signature_invalid",
                "signature_expired"
            ]
        );
    }

    #[test]
    fn key_files_in_hex_are_decoded_and_others_used_raw() {
        let hex_key = key_from_file_contents(b"  00112233445566778899aabbccddeeff\n");
        assert_eq!(hex_key.map(|k| k.len()), Ok(16));
        let raw = key_from_file_contents(b"a raw passphrase that is long\n");
        assert_eq!(raw, Ok(b"a raw passphrase that is long".to_vec()));
    }

    #[test]
    fn short_keys_are_refused_without_revealing_them() {
        let err = key_from_file_contents(b"00112233").unwrap_err();
        assert_eq!(err, KeyError::TooShort { index: 0, len: 4 });
        assert!(!err.to_string().contains("0011"));
        assert!(key_from_file_contents(b"   \n").is_err());
        assert_eq!(
            Signer::new(vec![KEY_A.to_vec(), b"short".to_vec()]).unwrap_err(),
            KeyError::TooShort { index: 1, len: 5 }
        );
        assert_eq!(Signer::new(vec![]).unwrap_err(), KeyError::NoKeys);
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let s = signer(&[KEY_A, KEY_B]);
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "Signer { keys: 2 }");
    }

    #[test]
    fn a_maximum_lifetime_refuses_urls_without_exp_or_with_a_far_exp() {
        let s = signer(&[KEY_A]).with_max_lifetime(Some(600));
        let none = s.sign("/v.mp4", "w=1", None);
        let e = s.verify("/v.mp4", &none, 1_000).unwrap_err();
        assert_eq!(e, SignatureError::Lifetime { max_seconds: 600 });
        assert_eq!(e.code(), "signature_lifetime");
        assert!(e.to_string().starts_with("exp:"), "{e}");
        assert_eq!(e.details(), Some(serde_json::json!({ "parameter": "exp" })));
        let far = s.sign("/v.mp4", "w=1", Some(1_000 + 601));
        assert_eq!(
            s.verify("/v.mp4", &far, 1_000),
            Err(SignatureError::Lifetime { max_seconds: 600 })
        );
        let near = s.sign("/v.mp4", "w=1", Some(1_000 + 600));
        assert_eq!(s.verify("/v.mp4", &near, 1_000), Ok(()));
        // A forged signature is still just invalid, whatever its exp.
        assert_eq!(
            s.verify("/v.mp4", &none.replace("w=1", "w=2"), 1_000),
            Err(SignatureError::Invalid)
        );
        // Opting out accepts URLs without exp.
        let open = signer(&[KEY_A]).with_max_lifetime(None);
        assert_eq!(open.verify("/v.mp4", &none, 1_000), Ok(()));
    }
}
