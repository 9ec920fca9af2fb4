//! Property tests across the URL API and the cache key: two parameter sets that can produce
//! different bytes never share a key; aliases and canonical names that mean the same variant
//! always do; a changed source (validator) never reuses a key.

use proptest::prelude::*;
use vr_dataplane::cache::{CacheKey, KeyParts};
use vr_dataplane::request::params;
use vr_dataplane::request::variant::Transform;

const CONFIG: &str = r#"
origins:
  - name: videos
    matcher: '^/videos/(?P<n>[a-z]+)\.mp4$'
    sources: [{kind: local, name: disk, root: /nonexistent, path: '${n}.mp4'}]
derivatives:
  mobile: {width: 640, height: 360}
"#;

fn config() -> params::ParamsConfig {
    let cfg = vr_crds::DataPlaneConfig::from_yaml(CONFIG).expect("valid config");
    params::compile(&cfg)
}

/// One transform parameter: (canonical name, alias name if any, value spelled canonically,
/// value spelled for the alias).
fn param() -> impl Strategy<Value = (&'static str, &'static str, String, String)> {
    prop_oneof![
        (10u32..2000).prop_map(|w| ("width", "w", w.to_string(), w.to_string())),
        (10u32..2000).prop_map(|h| ("height", "h", h.to_string(), h.to_string())),
        prop_oneof![
            Just(("cover", "crop")),
            Just(("contain", "fill")),
            Just(("pad", "pad")),
            Just(("scale-down", "scale-down"))
        ]
        .prop_map(|(c, a)| ("fit", "obj-fit", c.to_string(), a.to_string())),
        (0u64..600).prop_map(|t| ("time", "start", format!("{t}s"), format!("{t}"))),
        (1u64..60).prop_map(|d| (
            "duration",
            "dur",
            format!("{d}s"),
            format!("{}ms", d * 1000)
        )),
        prop_oneof![Just("low"), Just("medium"), Just("high")].prop_map(|q| (
            "quality",
            "q",
            q.to_string(),
            q.to_string()
        )),
        any::<bool>().prop_map(|a| ("audio", "mute", a.to_string(), (!a).to_string())),
        prop_oneof![Just(("mp4", "h264")), Just(("webm", "webm"))].prop_map(|(c, a)| (
            "format",
            "imformat",
            c.to_string(),
            a.to_string()
        )),
    ]
}

fn params_set() -> impl Strategy<Value = Vec<(&'static str, &'static str, String, String)>> {
    proptest::collection::vec(param(), 0..6).prop_map(|mut v| {
        // One value per parameter (the first wins in this generator).
        let mut seen = std::collections::HashSet::new();
        v.retain(|p| seen.insert(p.0));
        v
    })
}

fn key_for(query: &str, cfg: &params::ParamsConfig, validator: &str) -> Option<(CacheKey, String)> {
    let r = params::resolve(query, &http::HeaderMap::new(), cfg).ok()?;
    let canonical = match r.transform {
        Transform::Variant(v) => v.canonical(),
        Transform::Original => "original".into(),
    };
    let key = CacheKey::derive(&KeyParts {
        origin: "videos",
        source: "disk",
        source_key: "a.mp4",
        validator,
        variant: &canonical,
    });
    Some((key, canonical))
}

fn canonical_query(set: &[(&str, &str, String, String)]) -> String {
    set.iter()
        .map(|(n, _, v, _)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn alias_query(set: &[(&str, &str, String, String)]) -> String {
    set.iter()
        .map(|(_, a, _, v)| format!("{a}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn aliases_and_canonical_names_share_a_key(set in params_set()) {
        let cfg = config();
        let a = key_for(&canonical_query(&set), &cfg, "v1");
        let b = key_for(&alias_query(&set), &cfg, "v1");
        prop_assert_eq!(a.is_some(), b.is_some());
        if let (Some((ka, ca)), Some((kb, cb))) = (a, b) {
            prop_assert_eq!(ca, cb);
            prop_assert_eq!(ka, kb);
        }
    }

    #[test]
    fn keys_are_equal_exactly_when_the_resolved_variants_are(x in params_set(), y in params_set()) {
        let cfg = config();
        if let (Some((kx, cx)), Some((ky, cy))) = (key_for(&canonical_query(&x), &cfg, "v1"), key_for(&alias_query(&y), &cfg, "v1")) {
            prop_assert_eq!(kx == ky, cx == cy, "{} vs {}", cx, cy);
        }
    }

    #[test]
    fn a_changed_source_never_reuses_a_key(set in params_set()) {
        let cfg = config();
        let q = canonical_query(&set);
        if let (Some((k1, _)), Some((k2, _))) = (key_for(&q, &cfg, "etag:1"), key_for(&q, &cfg, "etag:2")) {
            prop_assert_ne!(k1, k2);
        }
    }
}

#[test]
fn parameters_that_change_bytes_change_the_key() {
    let cfg = config();
    let base = key_for("width=640&height=360", &cfg, "v").expect("valid").0;
    for q in [
        "width=640&height=360&fit=cover",
        "width=640&height=360&time=2s",
        "width=640&height=360&duration=3s",
        "width=640&height=360&audio=false",
        "width=640&height=360&format=webm",
        "width=640&height=360&quality=high",
        "width=640&height=360&fps=24",
        "width=640&height=360&bitrate=800k",
        "width=641&height=360",
    ] {
        assert_ne!(key_for(q, &cfg, "v").expect("valid").0, base, "{q}");
    }
    // Playback hints and filename do not change the bytes, so they share the key.
    for q in [
        "width=640&height=360&loop=true",
        "width=640&height=360&filename=a",
        "h=360&w=640",
    ] {
        assert_eq!(key_for(q, &cfg, "v").expect("valid").0, base, "{q}");
    }
}
