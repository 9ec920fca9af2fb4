//! In-process service tests that need no external program: request validation, refused paths,
//! passthrough, signing, debug access, the admin API and its audit log, live config swaps,
//! HTTP source timeouts and the input size limit.

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::{local_peer, remote_peer, request, Behavior, Harness, Origin, Reply};
use vr_dataplane::cache::{CacheKey, KeyParts, Meta, Stored};
use vr_dataplane::guard::signing::Signer;

const READ_TOKEN: &str = "reader-token-0123456789";
const PURGE_TOKEN: &str = "purger-token-0123456789";
const SIGNING_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A local origin over `media/` and, when `remote` is given, an HTTP origin under `/remote/`.
fn config(revision: &str, remote: Option<&str>, extra: &str) -> String {
    let remote = remote
        .map(|base| {
            format!(
                "  - name: remote\n    matcher: '^/remote/(?P<file>[A-Za-z0-9_.-]+)$'\n    sources:\n      - kind: http\n        name: web\n        url: '{base}/raw/${{file}}'\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"revision: {revision}
origins:
  - name: videos
    matcher: '^/videos/(?P<file>[A-Za-z0-9_.-]+)$'
    sources:
      - kind: local
        name: media
        root: media
        path: '${{file}}'
{remote}debug:
  allowedNetworks: [127.0.0.0/8]
admin:
  tokens:
    - {{ name: reader, tokenFile: read.token, scopes: [read] }}
    - {{ name: purger, tokenFile: purge.token, scopes: [purge] }}
{extra}"#
    )
}

const CLIP: &[u8] = b"pretend this is an mp4 file";

async fn harness(remote: Option<&str>, extra: &str) -> Harness {
    Harness::new(
        &config("r1", remote, extra),
        &[
            ("media/a.mp4", CLIP),
            (
                "media/captions.vtt",
                b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n",
            ),
            ("secret.mp4", b"outside the media root"),
            ("read.token", READ_TOKEN.as_bytes()),
            ("purge.token", PURGE_TOKEN.as_bytes()),
            ("sign.key", SIGNING_KEY_HEX.as_bytes()),
        ],
    )
    .await
}

fn origin_fetches(h: &Harness) -> f64 {
    h.metric("vr_origin_fetches_total", &[])
}

#[tokio::test]
async fn strict_mode_answers_400_naming_every_bad_parameter() {
    let h = harness(None, "").await;
    let r = h.get("/videos/a.mp4?width=0&foo=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_parameters");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let named: BTreeSet<String> = r.json()["error"]["details"]
        .as_array()
        .expect("details list")
        .iter()
        .map(|i| i["param"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(named, BTreeSet::from(["foo".into(), "width".into()]));
    assert_eq!(
        origin_fetches(&h),
        0.0,
        "a bad request never reaches a source"
    );
}

#[tokio::test]
async fn lenient_mode_drops_bad_parameters_and_lists_them_in_x_param_warnings() {
    let h = harness(None, "params:\n  validation: lenient\n").await;
    let r = h.get("/videos/a.mp4?width=0&foo=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        &r.body[..],
        CLIP,
        "nothing valid is left: the original is served"
    );
    let warnings = r.header("x-param-warnings").expect("X-Param-Warnings");
    assert!(
        warnings.contains("width") && warnings.contains("foo"),
        "{warnings}"
    );
}

#[tokio::test]
async fn a_path_no_origin_matches_is_404() {
    let h = harness(None, "").await;
    let r = h.get("/elsewhere/a.mp4").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "no_origin");
}

#[tokio::test]
async fn unsafe_paths_are_refused_with_400_and_nothing_is_read() {
    let h = harness(None, "").await;
    for path in [
        "/videos/%2e%2e%2fsecret.mp4",
        "/videos/..%2Fsecret.mp4",
        "/videos/a%2Fb.mp4",
        "/videos/a%00.mp4",
        "/videos/../secret.mp4",
        "/videos/%252e%252e/secret.mp4",
    ] {
        let r = h.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.code(), "bad_path", "{path}");
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("refused"), "{path}: {message}");
        assert!(!r.body.windows(6).any(|w| w == b"outside"), "{path}");
    }
    assert_eq!(origin_fetches(&h), 0.0, "no source was asked for anything");
}

#[tokio::test]
async fn methods_other_than_get_and_head_are_405() {
    let h = harness(None, "").await;
    for m in [Method::POST, Method::PUT, Method::DELETE] {
        let r = h.send(request(m.clone(), "/videos/a.mp4", &[])).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(r.code(), "method_not_allowed");
    }
}

#[tokio::test]
async fn non_video_extensions_pass_through_untransformed_with_ranges() {
    let h = harness(None, "").await;
    let whole = std::fs::read(h.media.join("captions.vtt")).expect("read");
    let r = h.get("/videos/captions.vtt?width=320").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], &whole[..]);
    assert_eq!(r.header("content-type"), Some("text/vtt"));
    assert_eq!(r.cache_status(), "PASS");

    let r = h
        .send(request(
            Method::GET,
            "/videos/captions.vtt",
            &[("range", "bytes=2-5")],
        ))
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &whole[2..=5]);
    let expected = format!("bytes 2-5/{}", whole.len());
    assert_eq!(r.header("content-range"), Some(expected.as_str()));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn signing_refuses_unsigned_tampered_and_expired_urls_and_admits_a_valid_one() {
    let h = harness(None, "signing:\n  required: true\n  keyFiles: [sign.key]\n").await;
    let signer = Signer::new(vec![hex::decode(SIGNING_KEY_HEX).expect("hex")]).expect("signer");
    let path = "/videos/a.mp4";

    let r = h.get(path).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "signature_missing");

    let good = signer.sign(path, "", Some(unix_now() + 300));
    let r = h.get(&format!("{path}?{good}")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(&r.body[..], CLIP);

    let signed = signer.sign(path, "width=320", Some(unix_now() + 300));
    let tampered = signed.replace("width=320", "width=640");
    let r = h.get(&format!("{path}?{tampered}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "signature_invalid");

    let other_path = h.get(&format!("/videos/captions.vtt?{good}")).await;
    assert_eq!(other_path.status, StatusCode::FORBIDDEN);
    assert_eq!(other_path.code(), "signature_invalid");

    let expired = signer.sign(path, "", Some(unix_now() - 10));
    let r = h.get(&format!("{path}?{expired}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "signature_expired");
}

#[tokio::test]
async fn debug_views_are_forbidden_outside_the_allowed_networks() {
    let h = harness(None, "").await;
    let uri = "/videos/a.mp4?width=320&debug=view";
    let r = h
        .send_from(request(Method::GET, uri, &[]), remote_peer())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "debug_forbidden");

    let r = h
        .send_from(request(Method::GET, uri, &[]), local_peer())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["origin"], "videos");
    assert_eq!(v["cacheKey"].as_str().map(str::len), Some(64));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        h.metric("vr_processes_spawned_total", &[]),
        0.0,
        "a debug view runs nothing"
    );
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn admin_probes_are_open_and_the_admin_api_needs_a_token_with_the_right_scope() {
    let h = harness(None, "").await;
    for (path, needle) in [
        ("/healthz", "ok"),
        ("/readyz", "r1"),
        ("/metrics", "vr_requests"),
    ] {
        let r = h.admin(request(Method::GET, path, &[])).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            String::from_utf8_lossy(&r.body).contains(needle),
            "{path} mentions {needle}"
        );
    }

    let r = h
        .admin(request(Method::GET, "/admin/cache/stats", &[]))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    let wrong = bearer("not-a-token-at-all-0000");
    let r = h
        .admin(request(
            Method::GET,
            "/admin/cache/stats",
            &[("authorization", wrong.as_str())],
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let reader = bearer(READ_TOKEN);
    let r = h
        .admin(request(
            Method::POST,
            "/admin/purge?tag=video-origin-videos",
            &[("authorization", reader.as_str())],
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "insufficient_scope");

    let r = h
        .admin(request(
            Method::GET,
            "/admin/cache/stats",
            &[("authorization", reader.as_str())],
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["layers"].is_array());
}

/// Puts one object tagged `tag` straight into the cache.
async fn cache_one(h: &Harness, tag: &str) -> CacheKey {
    let key = CacheKey::derive(&KeyParts {
        origin: "videos",
        source: "media",
        source_key: "a.mp4",
        validator: "v1",
        variant: "w=320",
    });
    let now = std::time::SystemTime::now();
    let meta = Meta {
        content_type: "video/mp4".into(),
        length: 5,
        status: 200,
        created: now,
        expires: now + Duration::from_secs(600),
        tags: vec![tag.to_owned()],
        etag: "\"x\"".into(),
        last_modified: now,
        variant: "w=320".into(),
        cache_control: None,
    };
    h.app
        .cache
        .put(&key, &meta, &Stored::Bytes(Bytes::from_static(b"bytes")))
        .await;
    key
}

#[tokio::test]
async fn purge_works_with_the_purge_scope_and_every_admin_call_is_audited() {
    let h = harness(None, "").await;
    cache_one(&h, "video-origin-videos").await;
    assert_eq!(h.cache_objects(), 1);

    // Probes are not admin actions and are not audited.
    let _ = h.admin(request(Method::GET, "/healthz", &[])).await;
    let anonymous = h
        .admin(request(Method::GET, "/admin/cache/stats", &[]))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reader = bearer(READ_TOKEN);
    let denied = h
        .admin(request(
            Method::POST,
            "/admin/purge?tag=video-origin-videos",
            &[("authorization", reader.as_str())],
        ))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let purger = bearer(PURGE_TOKEN);
    let purged = h
        .admin(request(
            Method::POST,
            "/admin/purge?tag=video-origin-videos",
            &[("authorization", purger.as_str())],
        ))
        .await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.json()["removed"], 1);
    assert_eq!(h.cache_objects(), 0, "the purge removed the object");

    let bad = h
        .admin(request(
            Method::POST,
            "/admin/purge?key=nothex",
            &[("authorization", purger.as_str())],
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let records = h.audit_records();
    let seen: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("who"), s("action"), s("result"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("anonymous", "cache-stats", "denied"),
        ("reader", "purge", "denied"),
        ("purger", "purge", "ok"),
        ("purger", "purge", "error"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
    .collect();
    assert_eq!(seen, expected);
    assert_eq!(records[2]["target"], "tag=video-origin-videos");
    for r in &records {
        assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(r["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1")));
    }
    let raw = std::fs::read_to_string(&h.audit).expect("audit");
    assert!(
        !raw.contains(READ_TOKEN) && !raw.contains(PURGE_TOKEN),
        "tokens never reach the audit log"
    );
    assert_eq!(
        h.metric(
            "vr_admin_requests_total",
            &[("action", "purge"), ("outcome", "ok")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_config_swap_changes_the_revision_of_new_requests_but_not_of_one_in_flight() {
    let origin = Origin::start(Behavior::Serve {
        body: Bytes::from_static(CLIP),
        length: true,
    })
    .await;
    let base = origin.base();
    let h = harness(Some(&base), "").await;
    origin.hold();

    let app = h.app.clone();
    let earlier = tokio::spawn(async move {
        Reply::read(
            vr_dataplane::edge::service::handle(
                &app,
                request(Method::GET, "/remote/a.mp4", &[]),
                local_peer(),
            )
            .await,
        )
        .await
    });
    assert!(
        support::wait_until(Duration::from_secs(10), || origin.gets() == 1).await,
        "the earlier request reached the origin"
    );

    h.install(&config("r2", Some(&base), ""));
    let later = h.get("/videos/a.mp4").await;
    assert_eq!(later.status, StatusCode::OK);
    assert_eq!(later.header("x-config-revision"), Some("r2"));

    origin.release();
    let earlier = earlier.await.expect("task");
    assert_eq!(earlier.status, StatusCode::OK);
    assert_eq!(&earlier.body[..], CLIP);
    assert_eq!(earlier.header("x-config-revision"), Some("r1"));

    assert_eq!(
        h.metric("vr_config_active", &[("revision", "r1")]),
        0.0,
        "r1 is no longer active"
    );
    assert_eq!(h.metric("vr_config_active", &[("revision", "r2")]), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_http_source_answers_504_within_the_fetch_timeout() {
    let origin = Origin::start(Behavior::Hang).await;
    let h = harness(
        Some(&origin.base()),
        "limits:\n  fetchTimeoutSeconds: 1\nresilience:\n  attempts: 1\n",
    )
    .await;
    let started = tokio::time::Instant::now();
    let r = h.get("/remote/a.mp4?width=320").await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.code(), "source_timeout");
    assert_eq!(r.json()["error"]["fault"], "origin");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "answered after {took:?} (fetchTimeoutSeconds: 1)"
    );
    assert!(h.work_entries().is_empty());
}

const BIG: usize = 4096;

fn big_body() -> Bytes {
    Bytes::from((0..BIG).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

#[tokio::test]
async fn a_source_over_max_input_bytes_is_413_before_anything_is_downloaded() {
    let origin = Origin::start(Behavior::Serve {
        body: big_body(),
        length: true,
    })
    .await;
    let h = harness(Some(&origin.base()), "limits:\n  maxInputBytes: 1024\n").await;
    for uri in ["/remote/a.mp4?width=320", "/remote/a.mp4"] {
        let r = h.get(uri).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_eq!(r.code(), "source_too_large", "{uri}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("maxInputBytes")),
            "{uri}"
        );
    }
    assert_eq!(origin.gets(), 0, "HEAD told the size; no GET was made");
    assert!(h.work_entries().is_empty());
}

#[tokio::test]
async fn a_source_without_a_length_is_cut_off_at_max_input_bytes_while_downloading() {
    let origin = Origin::start(Behavior::Serve {
        body: big_body(),
        length: false,
    })
    .await;
    let h = harness(Some(&origin.base()), "limits:\n  maxInputBytes: 1024\n").await;
    let r = h.get("/remote/a.mp4?width=320").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "source_too_large");
    assert!(origin.gets() >= 1);
    assert_eq!(h.metric("vr_processes_spawned_total", &[]), 0.0);
    assert!(
        support::wait_until(Duration::from_secs(5), || h.work_entries().is_empty()).await,
        "the partial download was deleted: {:?}",
        h.work_entries()
    );
}

#[tokio::test]
async fn an_oversize_source_is_served_original_when_configured() {
    for length in [true, false] {
        let origin = Origin::start(Behavior::Serve {
            body: big_body(),
            length,
        })
        .await;
        let h = harness(
            Some(&origin.base()),
            "limits:\n  maxInputBytes: 1024\n  oversize: serveOriginal\n",
        )
        .await;
        for uri in ["/remote/a.mp4?width=320", "/remote/a.mp4"] {
            let r = h.get(uri).await;
            assert_eq!(r.status, StatusCode::OK, "{uri} length={length}: {r:?}");
            assert_eq!(r.body, big_body(), "{uri} length={length}");
            assert_eq!(
                r.header("x-fallback-applied"),
                Some("oversize"),
                "{uri} length={length}"
            );
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
        assert_eq!(h.cache_objects(), 0, "a fallback is never cached");
        assert_eq!(h.metric("vr_processes_spawned_total", &[]), 0.0);
        assert!(
            support::wait_until(Duration::from_secs(5), || h.work_entries().is_empty()).await,
            "{:?}",
            h.work_entries()
        );
    }
}

#[tokio::test]
async fn the_example_standalone_config_parses_and_compiles() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone.yaml");
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("standalone.yaml");
    std::fs::copy(&example, &copy).expect("copy example");
    std::fs::create_dir_all(dir.path().join("media")).expect("media");
    std::fs::create_dir_all(dir.path().join(".secrets")).expect("secrets");
    std::fs::write(
        dir.path().join(".secrets/admin-token"),
        "example-admin-token-0123456789\n",
    )
    .expect("token");
    let doc = vr_dataplane::control::sources::file::read(&copy)
        .expect("the example parses and validates");
    assert_eq!(doc.config.revision, "standalone");
    assert!(doc.config.derivatives.contains_key("mobile"));
    let metrics = Arc::new(vr_dataplane::metrics::Metrics::new());
    let state = vr_dataplane::origin::OriginState::new(metrics, dir.path().join("work"));
    let rt =
        vr_dataplane::control::runtime::Runtime::compile(doc, state).expect("the example compiles");
    assert!(rt
        .tokens
        .authenticate(Some("Bearer example-admin-token-0123456789"))
        .is_some());
    assert!(rt.origins.route("/videos/demo.mp4").is_some());
}

#[tokio::test]
async fn a_canary_serves_its_share_says_so_in_a_header_and_is_counted_by_role() {
    let h = harness(None, "").await;
    h.install_canary(&config("r1", None, ""), &config("r2", None, ""), 3000);
    let mut seen = std::collections::HashMap::<String, Vec<String>>::new();
    for i in 0..200 {
        // Each query string is its own variant identity (the captions file is passed through).
        let uri = format!("/videos/captions.vtt?i={i}");
        let r = h.get(&uri).await;
        let rev = r.header("x-config-revision").unwrap_or("none").to_owned();
        seen.entry(uri).or_default().push(rev);
    }
    let canary = seen.values().filter(|v| v[0] == "r2").count();
    assert!((35..85).contains(&canary), "{canary} of 200 on the canary");
    // The same URL lands on the same revision again.
    for (uri, revs) in seen.iter().take(30) {
        let again = h.get(uri).await;
        assert_eq!(again.header("x-config-revision"), Some(revs[0].as_str()));
    }
    let by_role = |role: &str| h.metric("vr_requests_total", &[("role", role)]);
    assert_eq!(by_role("canary") + by_role("stable"), 230.0);
    assert!(by_role("canary") >= 35.0);
    assert_eq!(
        h.metric(
            "vr_requests_total",
            &[("role", "canary"), ("revision", "r2")]
        ),
        by_role("canary")
    );
    assert_eq!(
        h.metric(
            "vr_config_active",
            &[("revision", "r2"), ("role", "canary")]
        ),
        1.0
    );
    assert_eq!(h.metric("vr_canary_weight_basis_points", &[]), 3000.0);
}

#[tokio::test]
async fn a_failing_canary_answer_is_counted_against_the_canary_and_served_by_stable() {
    let h = harness(None, "").await;
    let broken = config("r2", None, "").replace("path: '${file}'", "path: 'missing/${file}'");
    h.install_canary(&config("r1", None, ""), &broken, 10_000);
    let r = h.get("/videos/captions.vtt").await;
    assert_eq!(r.status, StatusCode::OK, "the client gets stable's answer");
    assert_eq!(r.header("x-config-revision"), Some("r1"));
    assert_eq!(r.header("x-canary-fallback"), Some("r2"));
    assert_eq!(
        h.metric(
            "vr_requests_total",
            &[
                ("revision", "r2"),
                ("role", "canary"),
                ("status_class", "4xx")
            ]
        ),
        1.0,
        "the analysis sees the canary's failure"
    );
    assert_eq!(h.metric("vr_canary_fallbacks_total", &[]), 1.0);
    // A good canary answers by itself.
    h.install_canary(&config("r1", None, ""), &config("r3", None, ""), 10_000);
    let r = h.get("/videos/captions.vtt").await;
    assert_eq!(r.header("x-config-revision"), Some("r3"));
    assert_eq!(r.header("x-canary-fallback"), None);
}

/// The production IMQuery set (as in `examples/standalone.yaml`): breakpoints at 854 and 1280 px.
const PRODUCTION_IMQUERY: &str = r#"derivatives:
  mobile:    { width: 640,  height: 360,  quality: low }
  tablet:    { width: 1280, height: 720,  quality: medium }
  desktop:   { width: 1920, height: 1080, quality: high }
  thumbnail: { mode: frame, width: 640, height: 360, fit: cover, format: png, time: 2s }
responsive:
  breakpoints:
    - { maxWidth: 854,  derivative: mobile }
    - { maxWidth: 1280, derivative: tablet }
    - { derivative: desktop }
"#;

/// The canonical variant of a video derivative of the production set.
fn video(w: u32, h: u32, q: &str, rest: &str) -> String {
    format!("mode=video;w={w};h={h};fit=contain;fmt=mp4;q={q};c=auto;{rest}")
}

/// Resolves `uri` through the whole service as a debug view (which runs no ffmpeg) and
/// returns `(status, derivative, variant, X-Param-Warnings)`.
async fn resolved_by_service(h: &Harness, uri: &str) -> (StatusCode, String, String, String) {
    let r = h.get(&format!("{uri}&debug=view")).await;
    let v = r.json();
    (
        r.status,
        v["derivative"].as_str().unwrap_or("-").to_owned(),
        v["variant"].as_str().unwrap_or("").to_owned(),
        r.header("x-param-warnings").unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn akamai_style_urls_answer_200_with_the_expected_variant_in_strict_mode() {
    let h = harness(None, PRODUCTION_IMQUERY).await;
    let plain = "t=-;d=-;a=1;fps=-;br=-;n=-";
    let mobile = video(640, 360, "low", plain);
    let tablet = video(1280, 720, "medium", plain);
    let desktop = video(1920, 1080, "high", plain);
    let thumbnail =
        "mode=frame;w=640;h=360;fit=cover;fmt=png;q=auto;c=auto;t=2s;d=-;a=0;fps=-;br=-;n=-";
    let table: &[(&str, &str, &str)] = &[
        // imwidth picks a derivative through the breakpoints; imformat=h264 is what it makes.
        ("/videos/a.mp4?imwidth=800&imformat=h264", "mobile", &mobile),
        ("/videos/a.mp4?imwidth=854", "mobile", &mobile),
        ("/videos/a.mp4?imwidth=855", "tablet", &tablet),
        (
            "/videos/a.mp4?imwidth=1280&imformat=h264",
            "tablet",
            &tablet,
        ),
        ("/videos/a.mp4?imwidth=1920", "desktop", &desktop),
        (
            "/videos/a.mp4?imwidth=4000&imformat=mp4",
            "desktop",
            &desktop,
        ),
        // imheight alone stands for a 16:9 box: 720 px high is 1280 px wide.
        ("/videos/a.mp4?imheight=720", "tablet", &tablet),
        (
            "/videos/a.mp4?imheight=360&imformat=h264",
            "mobile",
            &mobile,
        ),
        // Density, viewport and imref ride along without changing the pick.
        (
            "/videos/a.mp4?imwidth=640&imdensity=2&im-viewwidth=1440&imref=foo%3Dbar",
            "mobile",
            &mobile,
        ),
        // impolicy names a derivative; repeating its own values is no override.
        (
            "/videos/a.mp4?impolicy=tablet&imformat=h264",
            "tablet",
            &tablet,
        ),
        (
            "/videos/a.mp4?impolicy=mobile&q=low&w=640&h=360",
            "mobile",
            &mobile,
        ),
        ("/videos/a.mp4?impolicy=thumbnail", "thumbnail", thumbnail),
        (
            "/videos/a.mp4?impolicy=thumbnail&imformat=png&obj-fit=crop",
            "thumbnail",
            thumbnail,
        ),
        // Clipping and muting are allowed overrides by default.
        (
            "/videos/a.mp4?imwidth=800&imformat=h264&start=2s&dur=3s",
            "mobile",
            &video(640, 360, "low", "t=2s;d=3s;a=1;fps=-;br=-;n=-"),
        ),
        // Without a derivative, the Akamai aliases are plain parameters.
        (
            "/videos/a.mp4?w=480&h=270&obj-fit=crop&q=high&imformat=h264&mute=true",
            "-",
            "mode=video;w=480;h=270;fit=cover;fmt=mp4;q=high;c=auto;t=-;d=-;a=0;fps=-;br=-;n=-",
        ),
        // No size at all: im-viewwidth stands in for the viewport hint.
        ("/videos/a.mp4?im-viewwidth=400", "mobile", &mobile),
    ];
    for (uri, derivative, variant) in table {
        let (status, got_derivative, got_variant, warnings) = resolved_by_service(&h, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(
            (
                got_derivative.as_str(),
                got_variant.as_str(),
                warnings.as_str()
            ),
            (*derivative, *variant, ""),
            "{uri}"
        );
    }
    // An override that changes the derivative is still refused in strict mode, by name.
    let r = h.get("/videos/a.mp4?imwidth=800&imformat=webm").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["details"][0]["param"], "imformat");
}

#[tokio::test]
async fn when_the_derivative_wins_changed_overrides_are_ignored_and_named_in_a_header() {
    let extra = format!("{PRODUCTION_IMQUERY}params:\n  onDisallowedOverride: derivativeWins\n");
    let h = harness(None, &extra).await;
    let (status, derivative, variant, warnings) =
        resolved_by_service(&h, "/videos/a.mp4?imwidth=800&imformat=webm&w=300&q=high").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(derivative, "mobile");
    assert_eq!(
        variant,
        video(640, 360, "low", "t=-;d=-;a=1;fps=-;br=-;n=-"),
        "the derivative's values won"
    );
    for param in ["w: ignored", "imformat: ignored", "q: ignored"] {
        assert!(warnings.contains(param), "{param} in {warnings:?}");
    }
    // Unknown parameters are still refused: only overrides are forgiven.
    let r = h.get("/videos/a.mp4?imwidth=800&imwidht=800").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
