//! Unit tests of the config model: parsing, defaults and validation.

use super::*;

const S3_CONFIG: &str = r#"
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
      - kind: s3
        name: bucket
        bucket: media-raw
        endpoint: http://127.0.0.1:9000
        forcePathStyle: true
        key: 'raw/${name}.mp4'
        credentials:
          accessKeyIdFile: /secrets/s3/id
          secretAccessKeyFile: /secrets/s3/secret
cache:
  shared:
    bucket: variants
    endpoint: http://127.0.0.1:9000
    forcePathStyle: true
"#;

#[test]
fn an_s3_source_and_a_shared_cache_parse_with_their_defaults() {
    let cfg = DataPlaneConfig::from_yaml(S3_CONFIG).expect("valid");
    let Source::S3(s) = &cfg.origins[0].sources[0] else {
        panic!("not an s3 source");
    };
    assert_eq!(s.bucket.bucket, "media-raw");
    assert_eq!(s.bucket.region, "us-east-1");
    assert!(s.bucket.force_path_style);
    assert_eq!(s.presign, Presign::default());
    let shared = cfg.cache.shared.as_ref().expect("shared layer");
    assert_eq!(shared.prefix, "video-resizer/");
    assert!(shared.bucket.credentials.is_none());
}

#[test]
fn s3_blocks_refuse_unknown_fields() {
    let typo = S3_CONFIG.replace(
        "forcePathStyle: true\n        key",
        "forcePathStyl: true\n        key",
    );
    assert!(DataPlaneConfig::from_yaml(&typo).is_err());
}

#[test]
fn bad_s3_settings_are_reported_with_their_paths() {
    let bad = S3_CONFIG
        .replace("bucket: media-raw", "bucket: Media_Raw")
        .replace("endpoint: http://127.0.0.1:9000\n        force", "endpoint: ftp://x\n        force")
        .replace("'raw/${name}.mp4'", "'raw/${nope}.mp4'\n        presign:\n          lifetimeSeconds: 60\n          safetyMarginSeconds: 60")
        ;
    let Err(ConfigError::Invalid(errs)) = DataPlaneConfig::from_yaml(&bad) else {
        panic!("accepted");
    };
    let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "origins[0].sources[0].bucket",
        "origins[0].sources[0].endpoint",
        "origins[0].sources[0].key",
        "origins[0].sources[0].presign.safetyMarginSeconds",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
}

const MINIMAL: &str = r#"
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.(?P<ext>mp4|webm)$'
    sources:
      - kind: local
        name: disk
        root: examples/media
        path: '${name}.${ext}'
derivatives:
  mobile: { width: 640, height: 360 }
"#;

#[test]
fn minimal_config_parses_with_defaults() {
    let cfg = DataPlaneConfig::from_yaml(MINIMAL).expect("valid");
    assert_eq!(cfg.revision, "standalone");
    assert_eq!(cfg.params.validation, ValidationMode::Strict);
    assert_eq!(cfg.cache.ttl.ok, 86_400);
    assert_eq!(cfg.cache.ttl.server_error, 10);
}

#[test]
fn an_omitted_responsive_block_means_the_same_as_an_empty_one() {
    let omitted = DataPlaneConfig::from_yaml(MINIMAL).expect("valid");
    let empty = DataPlaneConfig::from_yaml(&format!("{MINIMAL}responsive: {{}}\n")).expect("valid");
    assert_eq!(omitted.responsive, empty.responsive);
    assert_eq!(omitted.responsive.slow_downlink_mbps, 1.5);
}

#[test]
fn unknown_fields_are_refused_with_their_name() {
    let text = MINIMAL.replace("derivatives:", "derivativs:");
    let err = DataPlaneConfig::from_yaml(&text).unwrap_err().to_string();
    assert!(err.contains("derivativs"), "{err}");
}

#[test]
fn every_error_is_reported_at_once_with_its_path() {
    let text = r#"
origins:
  - name: Videos
    matcher: '^/videos/(?P<name>[a-z'
    sources:
      - kind: http
        name: web
        url: 'ftp://x/${nope}'
derivatives:
  mobile: { width: 5, mode: frame, format: mp4, time: 'soon' }
responsive:
  defaultDerivative: tablet
limits:
  ffmpegThreads: 0
"#;
    let Err(ConfigError::Invalid(errs)) = DataPlaneConfig::from_yaml(text) else {
        panic!("expected validation errors");
    };
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "origins[0].name",
        "origins[0].matcher",
        "origins[0].sources[0].url",
        "derivatives.mobile.width",
        "derivatives.mobile.format",
        "derivatives.mobile.time",
        "responsive.defaultDerivative",
        "limits.ffmpegThreads",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn template_placeholders_must_be_captures() {
    let text = MINIMAL.replace("'${name}.${ext}'", "'${name}.${missing}'");
    let err = DataPlaneConfig::from_yaml(&text).unwrap_err().to_string();
    assert!(
        err.contains("origins[0].sources[0].path") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn http_host_cannot_come_from_a_capture() {
    let text = MINIMAL.replace(
        "      - kind: local\n        name: disk\n        root: examples/media\n        path: '${name}.${ext}'",
        "      - kind: http\n        name: web\n        url: 'https://${name}/x.mp4'",
    );
    let err = DataPlaneConfig::from_yaml(&text).unwrap_err().to_string();
    assert!(err.contains("host must be literal"), "{err}");
}

#[test]
fn template_placeholder_syntax() {
    assert_eq!(
        template_placeholders("a/${x}/${y_1}.mp4"),
        Ok(vec!["x", "y_1"])
    );
    assert!(template_placeholders("a/$x").is_err());
    assert!(template_placeholders("a/${x").is_err());
    assert!(template_placeholders("a/${}").is_err());
}

#[test]
fn ttl_by_status_class() {
    let t = TtlByStatus::default();
    assert_eq!(t.for_status(200), 86_400);
    assert_eq!(t.for_status(304), 3_600);
    assert_eq!(t.for_status(404), 60);
    assert_eq!(t.for_status(503), 10);
}

#[test]
fn local_roots_may_not_cover_credentials_or_system_paths() {
    let doc = |root: &str| {
        format!(
            r#"
origins:
  - name: files
    matcher: '^/files/(?P<name>[a-z0-9_-]+)$'
    sources:
      - {{ kind: local, name: disk, root: '{root}', path: '${{name}}' }}
admin:
  tokens:
    - {{ name: ops, tokenFile: secrets/admin-token, scopes: [admin] }}
"#
        )
    };
    let refused = |root: &str| match DataPlaneConfig::from_yaml(&doc(root)) {
        Err(ConfigError::Invalid(e)) => {
            e.0.iter()
                .find(|f| f.path == "origins[0].sources[0].root")
                .map(|f| f.message.clone())
        }
        _ => None,
    };
    for root in [
        "/",
        "/etc",
        "/etc/video-resizer/secrets",
        "/etc/video-resizer/secrets/admin",
        "/var/run/secrets/kubernetes.io",
        "/proc/self",
        "/dev",
        "/srv/../etc",
        // The directory of the admin token file (relative paths share the config's base).
        "secrets",
        "./secrets/../secrets",
        ".",
    ] {
        assert!(refused(root).is_some(), "{root} must be refused");
    }
    assert!(refused("secrets").unwrap().contains("secrets/admin-token"));
    for root in ["/srv/videos", "media", "/var/lib/videos", "/etc-videos"] {
        assert_eq!(refused(root), None, "{root} must be accepted");
    }
}
