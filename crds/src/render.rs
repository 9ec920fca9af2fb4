//! Renders a `VideoResizerConfig` and its `Derivative`s into the data-plane config document
//! that a revision ConfigMap holds: validated, deterministic and content-hashed.
//!
//! This is the one pure function between what users write and what the data plane reads; the
//! operator and the CLI both call it, so they cannot disagree about what a spec means.

use crate::contract::secret_file_path;
use crate::dataplane::{
    Admin, AdminToken, DataPlaneConfig, FieldError, HttpAuth, HttpSource, LocalSource, Origin,
    S3Bucket, S3Credentials, S3Source, SharedCache, Signing, Source, ValidationErrors,
};
use crate::resources::{
    AuthType, Derivative, HttpAuthSpec, OriginSpec, S3BucketSpec, S3CredentialsSpec, SecretKeyRef,
    SourceKind, SourceSpec, VideoResizerConfig,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Revision written into [`Rendered::document`]. The hash is computed over the document with
/// this placeholder, so the same content hashes the same whatever revision number it gets.
pub const PLACEHOLDER_REVISION: &str = "unassigned";

/// A validated data-plane config, ready to be stored in a revision ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The config, with `revision` set to [`PLACEHOLDER_REVISION`].
    pub config: DataPlaneConfig,
    /// The YAML document of `config` (revision = [`PLACEHOLDER_REVISION`]).
    pub document: String,
    /// SHA-256 (lower-case hex) of `document`: equal content, equal hash.
    pub hash: String,
    /// Every `(secret, key)` the document refers to; the data-plane pods must mount them at
    /// [`secret_file_path`].
    pub secrets: BTreeSet<(String, String)>,
    /// `document` without its first (revision) line.
    body: String,
}

/// Renders `config` with the `derivatives` that belong to it.
///
/// * Only derivatives whose `spec.config` equals the config's name (and whose namespace is the
///   config's, when both are set) are used; others are ignored. Each is keyed by its
///   `metadata.name`.
/// * Secret references become file paths ([`secret_file_path`]) and are listed in
///   [`Rendered::secrets`]; no secret value is ever read or written.
/// * The result is deterministic: derivatives are sorted by name and every map is ordered, so
///   identical inputs give an identical document and hash. `workload` and
///   `revisionHistoryLimit` do not reach the document (changing them creates no revision).
///
/// # Errors
/// Every problem at once, each located in the user's objects: `spec.origins[0].matcher` for the
/// config, `Derivative/mobile spec.width` for a derivative.
pub fn render(
    config: &VideoResizerConfig,
    derivatives: &[Derivative],
) -> Result<Rendered, ValidationErrors> {
    let mut errs = Vec::new();
    let mut secrets = BTreeSet::new();
    let spec = &config.spec;
    let name = config.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errs.push(err("metadata.name", "the config has no name"));
    }

    // Index maps from rendered positions back to the spec, since malformed sources are left
    // out of the rendered config (they would only produce confusing follow-up errors).
    let mut source_index: Vec<Vec<usize>> = Vec::new();
    let mut origins = Vec::with_capacity(spec.origins.len());
    for (i, o) in spec.origins.iter().enumerate() {
        let (origin, kept) = render_origin(i, o, &mut secrets, &mut errs);
        origins.push(origin);
        source_index.push(kept);
    }

    let presets = presets_of(config, derivatives, name, &mut errs);

    let mut path_of = |r: &SecretKeyRef| {
        secrets.insert((r.name.clone(), r.key.clone()));
        secret_file_path(&r.name, &r.key)
    };
    let signing = Signing {
        required: spec.signing.required,
        key_files: spec
            .signing
            .key_secret_refs
            .iter()
            .map(&mut path_of)
            .collect(),
        max_lifetime_seconds: spec
            .signing
            .max_lifetime_seconds
            .unwrap_or(Signing::default().max_lifetime_seconds),
        allow_no_expiry: spec.signing.allow_no_expiry,
    };
    let admin = Admin {
        tokens: spec
            .admin
            .tokens
            .iter()
            .map(|t| AdminToken {
                name: t.name.clone(),
                token_file: path_of(&t.secret_ref),
                scopes: t.scopes.clone(),
            })
            .collect(),
    };

    let cfg = DataPlaneConfig {
        revision: PLACEHOLDER_REVISION.to_owned(),
        origins,
        derivatives: presets,
        responsive: spec.responsive.clone(),
        params: spec.params.clone(),
        signing,
        limits: spec.limits.clone(),
        cache: crate::dataplane::CacheConfig {
            shared: spec.shared_cache.as_ref().map(|sh| SharedCache {
                bucket: s3_bucket(&sh.bucket, &mut secrets),
                prefix: sh.prefix.clone().unwrap_or_else(|| "video-resizer/".into()),
                timeout_seconds: sh.timeout_seconds.unwrap_or(10),
                purge_poll_seconds: sh.purge_poll_seconds.unwrap_or(2),
            }),
            ..spec.cache.clone()
        },
        passthrough: spec.passthrough.clone(),
        resilience: spec.resilience.clone(),
        admin,
        debug: spec.debug.clone(),
    };

    if let Err(found) = cfg.validate() {
        relocate(found, spec, &source_index, &cfg, &mut errs);
    }
    if !errs.is_empty() {
        return Err(ValidationErrors(errs));
    }

    document_of(cfg, secrets)
}

/// The derivatives of `config` (same name and namespace), keyed by name.
fn presets_of(
    config: &VideoResizerConfig,
    derivatives: &[Derivative],
    name: &str,
    errs: &mut Vec<FieldError>,
) -> BTreeMap<String, crate::dataplane::Derivative> {
    let mut presets = BTreeMap::new();
    for d in derivatives {
        if d.spec.config != name || !same_namespace(config, d) {
            continue;
        }
        let Some(dname) = d.metadata.name.as_deref() else {
            errs.push(err("Derivative/<unnamed> metadata.name", "must be set"));
            continue;
        };
        if presets
            .insert(dname.to_owned(), d.spec.preset.clone())
            .is_some()
        {
            errs.push(err(
                format!("Derivative/{dname} metadata.name"),
                "duplicate derivative name",
            ));
        }
    }
    presets
}

/// The rendered config's validation errors, located in the user's objects (`spec.…`,
/// `Derivative/NAME …`); errors that only follow from a source already reported are dropped.
fn relocate(
    found: ValidationErrors,
    spec: &crate::resources::VideoResizerConfigSpec,
    source_index: &[Vec<usize>],
    cfg: &DataPlaneConfig,
    errs: &mut Vec<FieldError>,
) {
    let names: Vec<&str> = cfg.derivatives.keys().map(String::as_str).collect();
    for e in found.0 {
        // An origin whose only sources were left out is already reported.
        let emptied = |i: usize| source_index[i].len() < spec.origins[i].sources.len();
        if let Some(i) = e
            .path
            .strip_prefix("origins[")
            .and_then(|r| r.strip_suffix("].sources"))
            .and_then(|i| i.parse::<usize>().ok())
        {
            if i < source_index.len() && emptied(i) {
                continue;
            }
        }
        let Some(path) = user_path(&e.path, source_index, &names) else {
            continue;
        };
        // The data plane speaks of files; the user wrote Secret references.
        let message = if e.path == "signing.keyFiles" {
            "at least one key is required when signing.required is true".to_owned()
        } else {
            e.message
        };
        errs.push(FieldError { path, message });
    }
}

/// The document (with the placeholder revision) and its hash.
fn document_of(
    cfg: DataPlaneConfig,
    secrets: BTreeSet<(String, String)>,
) -> Result<Rendered, ValidationErrors> {
    let full = serde_yaml::to_string(&cfg).map_err(|e| one_err("spec", e.to_string()))?;
    let first_line = format!("revision: {PLACEHOLDER_REVISION}\n");
    let body = full
        .strip_prefix(&first_line)
        .ok_or_else(|| {
            one_err(
                "spec",
                "internal: rendered document does not start with its revision",
            )
        })?
        .to_owned();
    let document = format!("{}{body}", revision_line(PLACEHOLDER_REVISION));
    let hash = hex::encode(Sha256::digest(document.as_bytes()));
    Ok(Rendered {
        config: cfg,
        document,
        hash,
        secrets,
        body,
    })
}

/// The final document of a revision: [`Rendered::document`] with `revision: "<label>"`
/// (the label, e.g. `r7`, is quoted, so it always reads back as that string).
pub fn with_revision(rendered: &Rendered, revision_label: &str) -> String {
    format!("{}{}", revision_line(revision_label), rendered.body)
}

fn revision_line(label: &str) -> String {
    let mut quoted = String::with_capacity(label.len() + 2);
    for c in label.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => quoted.push(c),
        }
    }
    format!("revision: \"{quoted}\"\n")
}

fn render_origin(
    i: usize,
    o: &OriginSpec,
    secrets: &mut BTreeSet<(String, String)>,
    errs: &mut Vec<FieldError>,
) -> (Origin, Vec<usize>) {
    let mut sources = Vec::with_capacity(o.sources.len());
    let mut kept = Vec::with_capacity(o.sources.len());
    for (j, s) in o.sources.iter().enumerate() {
        let p = format!("spec.origins[{i}].sources[{j}]");
        if let Some(src) = render_source(&p, s, secrets, errs) {
            sources.push(src);
            kept.push(j);
        }
    }
    let origin = Origin {
        name: o.name.clone(),
        matcher: o.matcher.clone(),
        sources,
        ttl: o.ttl,
        cache_tags: o.cache_tags.clone(),
        on_transform_error: o.on_transform_error,
    };
    (origin, kept)
}

/// One source, or `None` (with an error) when the block its `kind` names is missing.
fn render_source(
    p: &str,
    s: &SourceSpec,
    secrets: &mut BTreeSet<(String, String)>,
    errs: &mut Vec<FieldError>,
) -> Option<Source> {
    let own = match s.kind {
        SourceKind::Local => "local",
        SourceKind::Http => "http",
        SourceKind::S3 => "s3",
    };
    let blocks = [
        ("local", s.local.is_some()),
        ("http", s.http.is_some()),
        ("s3", s.s3.is_some()),
    ];
    for (other, set) in blocks {
        if set && other != own {
            errs.push(err(
                format!("{p}.{other}"),
                format!("must not be set when kind is {own}"),
            ));
        }
    }
    match s.kind {
        SourceKind::Local => {
            let Some(l) = &s.local else {
                errs.push(err(format!("{p}.local"), "required when kind is local"));
                return None;
            };
            Some(Source::Local(LocalSource {
                name: s.name.clone(),
                root: l.root.clone(),
                path: l.path.clone(),
            }))
        }
        SourceKind::Http => {
            let Some(h) = &s.http else {
                errs.push(err(format!("{p}.http"), "required when kind is http"));
                return None;
            };
            let auth = h
                .auth
                .as_ref()
                .map(|a| render_auth(&format!("{p}.http.auth"), a, secrets, errs));
            Some(Source::Http(HttpSource {
                name: s.name.clone(),
                url: h.url.clone(),
                auth,
                timeout_seconds: h.timeout_seconds,
            }))
        }
        SourceKind::S3 => {
            let Some(b) = &s.s3 else {
                errs.push(err(format!("{p}.s3"), "required when kind is s3"));
                return None;
            };
            Some(Source::S3(S3Source {
                name: s.name.clone(),
                bucket: s3_bucket(&b.bucket, secrets),
                key: b.key.clone(),
                timeout_seconds: b.timeout_seconds,
                presign: b.presign.clone(),
            }))
        }
    }
}

/// A bucket of the rendered config: the region defaulted, credentials as mounted files.
fn s3_bucket(b: &S3BucketSpec, secrets: &mut BTreeSet<(String, String)>) -> S3Bucket {
    S3Bucket {
        bucket: b.bucket.clone(),
        region: b.region.clone().unwrap_or_else(|| "us-east-1".into()),
        endpoint: b.endpoint.clone(),
        force_path_style: b.force_path_style,
        credentials: b.credentials.as_ref().map(|c| s3_credentials(c, secrets)),
    }
}

/// S3 credentials as the files their Secret keys are mounted at.
fn s3_credentials(
    c: &S3CredentialsSpec,
    secrets: &mut BTreeSet<(String, String)>,
) -> S3Credentials {
    let mut file = |r: &SecretKeyRef| {
        secrets.insert((r.name.clone(), r.key.clone()));
        secret_file_path(&r.name, &r.key)
    };
    S3Credentials {
        access_key_id_file: file(&c.access_key_id),
        secret_access_key_file: file(&c.secret_access_key),
        session_token_file: c.session_token.as_ref().map(file),
    }
}

fn render_auth(
    p: &str,
    a: &HttpAuthSpec,
    secrets: &mut BTreeSet<(String, String)>,
    errs: &mut Vec<FieldError>,
) -> HttpAuth {
    secrets.insert((a.secret_ref.name.clone(), a.secret_ref.key.clone()));
    let file = secret_file_path(&a.secret_ref.name, &a.secret_ref.key);
    match a.type_ {
        AuthType::Bearer => {
            if a.header_name.is_some() {
                errs.push(err(
                    format!("{p}.headerName"),
                    "must not be set for type bearer",
                ));
            }
            HttpAuth::Bearer { token_file: file }
        }
        // A missing headerName renders as "" and is reported by validate() as
        // `auth.name`, which maps back to `headerName`.
        AuthType::Header => HttpAuth::Header {
            name: a.header_name.clone().unwrap_or_default(),
            value_file: file,
        },
    }
}

fn same_namespace(config: &VideoResizerConfig, d: &Derivative) -> bool {
    match (&config.metadata.namespace, &d.metadata.namespace) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Maps a path of the rendered config (`origins[0].sources[1].url`) to the user's object
/// (`spec.origins[0].sources[1].http.url`). `None` for the placeholder revision, which the
/// user does not control.
fn user_path(path: &str, source_index: &[Vec<usize>], derivatives: &[&str]) -> Option<String> {
    if path == "revision" {
        return None;
    }
    if let Some(rest) = path.strip_prefix("derivatives.") {
        // Names may contain '.', so match the longest known name.
        let name = derivatives
            .iter()
            .filter(|n| rest == **n || rest.starts_with(&format!("{n}.")))
            .max_by_key(|n| n.len());
        return Some(match name {
            Some(n) if rest.len() > n.len() => format!("Derivative/{n} spec{}", &rest[n.len()..]),
            Some(n) => format!("Derivative/{n} metadata.name"),
            None => format!("spec.{path}"),
        });
    }
    if path == "signing.keyFiles" || path.starts_with("signing.keyFiles[") {
        return Some(format!(
            "spec.signing.keySecretRefs{}",
            &path["signing.keyFiles".len()..]
        ));
    }
    if let Some(rest) = path.strip_prefix("admin.tokens[") {
        if let Some((idx, field)) = rest.split_once(']') {
            let field = if field == ".tokenFile" {
                ".secretRef"
            } else {
                field
            };
            return Some(format!("spec.admin.tokens[{idx}]{field}"));
        }
    }
    if let Some(rest) = path.strip_prefix("cache.shared") {
        let rest = rest.replace("File", "");
        return Some(format!("spec.sharedCache{rest}"));
    }
    if let Some(mapped) = origin_path(path, source_index) {
        return Some(mapped);
    }
    Some(format!("spec.{path}"))
}

fn origin_path(path: &str, source_index: &[Vec<usize>]) -> Option<String> {
    let rest = path.strip_prefix("origins[")?;
    let (i, rest) = rest.split_once(']')?;
    let oi: usize = i.parse().ok()?;
    let Some(rest) = rest.strip_prefix(".sources[") else {
        return Some(format!("spec.origins[{oi}]{rest}"));
    };
    let (j, field) = rest.split_once(']')?;
    let rendered_j: usize = j.parse().ok()?;
    let j = source_index
        .get(oi)
        .and_then(|m| m.get(rendered_j))
        .copied()
        .unwrap_or(rendered_j);
    let field = match field {
        ".root" => ".local.root",
        ".path" => ".local.path",
        ".url" => ".http.url",
        ".timeoutSeconds" => ".http.timeoutSeconds",
        ".auth.tokenFile" | ".auth.valueFile" => ".http.auth.secretRef",
        ".auth.name" => ".http.auth.headerName",
        ".bucket" | ".region" | ".endpoint" | ".key" => {
            return Some(format!("spec.origins[{oi}].sources[{j}].s3{field}"))
        }
        f if f.starts_with(".presign.") => {
            return Some(format!("spec.origins[{oi}].sources[{j}].s3{f}"))
        }
        ".credentials.accessKeyIdFile" => ".s3.credentials.accessKeyId",
        ".credentials.secretAccessKeyFile" => ".s3.credentials.secretAccessKey",
        ".credentials.sessionTokenFile" => ".s3.credentials.sessionToken",
        other => other,
    };
    Some(format!("spec.origins[{oi}].sources[{j}]{field}"))
}

fn err(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.into(),
        message: message.into(),
    }
}

fn one_err(path: &str, message: impl Into<String>) -> ValidationErrors {
    ValidationErrors(vec![err(path, message)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane;
    use crate::resources::DerivativeSpec;
    use serde::Deserialize;

    const EXAMPLE_CONFIG: &str = include_str!("../examples/videoresizerconfig.yaml");
    const EXAMPLE_DERIVATIVES: &str = include_str!("../examples/derivatives.yaml");

    fn example() -> (VideoResizerConfig, Vec<Derivative>) {
        let config: VideoResizerConfig = serde_yaml::from_str(EXAMPLE_CONFIG).expect("config");
        let derivatives = serde_yaml::Deserializer::from_str(EXAMPLE_DERIVATIVES)
            .map(|doc| Derivative::deserialize(doc).expect("derivative"))
            .collect();
        (config, derivatives)
    }

    fn derivative(name: &str, config: &str, preset: &str) -> Derivative {
        let preset: dataplane::Derivative = serde_yaml::from_str(preset).expect("preset");
        Derivative::new(
            name,
            DerivativeSpec {
                config: config.into(),
                preset,
            },
        )
    }

    fn paths(e: &ValidationErrors) -> Vec<&str> {
        e.0.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn the_example_renders_to_a_document_the_data_plane_accepts() {
        let (config, derivatives) = example();
        let r = render(&config, &derivatives).expect("renders");
        assert_eq!(r.hash.len(), 64);
        let final_doc = with_revision(&r, "r1");
        let parsed = DataPlaneConfig::from_yaml(&final_doc).expect("data plane accepts it");
        assert_eq!(parsed.revision, "r1");
        assert_eq!(
            parsed.derivatives.keys().collect::<Vec<_>>(),
            ["desktop", "mobile", "tablet", "thumbnail"]
        );
        let mut expected = r.config.clone();
        expected.revision = "r1".into();
        assert_eq!(parsed, expected);
        // The placeholder document parses too, to the rendered config itself.
        assert_eq!(
            DataPlaneConfig::from_yaml(&r.document).expect("valid"),
            r.config
        );
    }

    #[test]
    fn identical_inputs_render_identical_documents_in_any_derivative_order() {
        let (config, mut derivatives) = example();
        let a = render(&config, &derivatives).expect("renders");
        derivatives.reverse();
        let b = render(&config, &derivatives).expect("renders");
        assert_eq!(a.document, b.document);
        assert_eq!(a.hash, b.hash);
    }

    #[test]
    fn a_derivative_change_changes_the_hash() {
        let (config, mut derivatives) = example();
        let before = render(&config, &derivatives).expect("renders").hash;
        derivatives[0].spec.preset.width = Some(600);
        let after = render(&config, &derivatives).expect("renders").hash;
        assert_ne!(before, after);
    }

    #[test]
    fn the_revision_label_changes_only_the_revision_line_and_never_the_hash() {
        let (config, derivatives) = example();
        let r = render(&config, &derivatives).expect("renders");
        let r1 = with_revision(&r, "r1");
        let r2 = with_revision(&r, "r2");
        assert!(r1.starts_with("revision: \"r1\"\n"), "{r1}");
        let rest = |d: &str| d.split_once('\n').map(|x| x.1.to_owned());
        assert_eq!(rest(&r1), rest(&r2));
        assert_eq!(rest(&r1), rest(&r.document));
        assert_eq!(render(&config, &derivatives).expect("renders").hash, r.hash);
    }

    #[test]
    fn a_numeric_looking_label_still_reads_back_as_a_string() {
        let (config, derivatives) = example();
        let r = render(&config, &derivatives).expect("renders");
        let parsed = DataPlaneConfig::from_yaml(&with_revision(&r, "123")).expect("valid");
        assert_eq!(parsed.revision, "123");
        assert_eq!(
            revision_line("a\"b\\c\n"),
            "revision: \"a\\\"b\\\\c\\x0a\"\n"
        );
    }

    #[test]
    fn workload_and_history_settings_do_not_change_the_document() {
        let (mut config, derivatives) = example();
        let before = render(&config, &derivatives).expect("renders");
        config.spec.workload.max_replicas = 50;
        config.spec.revision_history_limit = 3;
        assert_eq!(render(&config, &derivatives).expect("renders"), before);
    }

    #[test]
    fn derivatives_of_other_configs_and_namespaces_are_ignored() {
        let (mut config, mut derivatives) = example();
        config.metadata.namespace = Some("media".into());
        for d in &mut derivatives {
            d.metadata.namespace = Some("media".into());
        }
        let before = render(&config, &derivatives).expect("renders");
        // Invalid presets prove they are not even validated.
        let mut elsewhere = derivative("mobile", "web", "{ width: 1 }");
        elsewhere.metadata.namespace = Some("other".into());
        derivatives.push(elsewhere);
        derivatives.push(derivative("huge", "other-config", "{ width: 1 }"));
        let after = render(&config, &derivatives).expect("renders");
        assert_eq!(before.hash, after.hash);
        assert!(!after.config.derivatives.contains_key("huge"));
    }

    #[test]
    fn secrets_are_listed_and_referenced_only_as_mounted_file_paths() {
        let (config, derivatives) = example();
        let r = render(&config, &derivatives).expect("renders");
        let secrets: Vec<(&str, &str)> = r
            .secrets
            .iter()
            .map(|(s, k)| (s.as_str(), k.as_str()))
            .collect();
        assert_eq!(
            secrets,
            [
                ("admin-tokens", "ops"),
                ("media-origin", "token"),
                ("url-signing", "current"),
                ("url-signing", "previous"),
            ]
        );
        assert_eq!(
            r.config.signing.key_files,
            [
                secret_file_path("url-signing", "current"),
                secret_file_path("url-signing", "previous"),
            ]
        );
        assert_eq!(
            r.config.admin.tokens[0].token_file,
            secret_file_path("admin-tokens", "ops")
        );
        match &r.config.origins[0].sources[0] {
            Source::Http(h) => assert_eq!(
                h.auth,
                Some(HttpAuth::Bearer {
                    token_file: secret_file_path("media-origin", "token")
                })
            ),
            other => panic!("expected http, got {other:?}"),
        }
    }

    #[test]
    fn s3_sources_and_the_shared_cache_render_with_mounted_credential_files() {
        let (mut config, derivatives) = example();
        let creds: crate::resources::S3CredentialsSpec = serde_yaml::from_str(
            "accessKeyId: {name: s3-creds, key: id}\nsecretAccessKey: {name: s3-creds, key: secret}\n",
        )
        .expect("credentials");
        config.spec.origins[0].sources.insert(
            0,
            serde_yaml::from_str(&format!(
                "name: bucket\nkind: s3\ns3:\n  bucket: media-raw\n  endpoint: http://minio:9000\n  forcePathStyle: true\n  key: 'raw/${{{}}}'\n",
                "id"
            ))
            .expect("source"),
        );
        config.spec.origins[0].sources[0]
            .s3
            .as_mut()
            .expect("s3")
            .bucket
            .credentials = Some(creds.clone());
        config.spec.shared_cache =
            Some(serde_yaml::from_str("bucket: variants\nforcePathStyle: true\n").expect("shared"));
        config
            .spec
            .shared_cache
            .as_mut()
            .expect("shared")
            .bucket
            .credentials = Some(creds);
        let r = match render(&config, &derivatives) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        };
        let Source::S3(s3) = &r.config.origins[0].sources[0] else {
            panic!("not s3");
        };
        assert_eq!(s3.bucket.region, "us-east-1");
        let c = s3.bucket.credentials.as_ref().expect("credentials");
        assert_eq!(c.access_key_id_file, secret_file_path("s3-creds", "id"));
        assert_eq!(
            c.secret_access_key_file,
            secret_file_path("s3-creds", "secret")
        );
        let shared = r.config.cache.shared.as_ref().expect("shared cache");
        assert_eq!(shared.prefix, "video-resizer/");
        assert!(r.secrets.contains(&("s3-creds".into(), "secret".into())));
        // The document the data plane reads carries the shared block.
        assert!(r.document.contains("shared:"), "{}", r.document);
    }

    #[test]
    fn invalid_inputs_report_every_error_with_the_users_path() {
        let (mut config, mut derivatives) = example();
        let spec = &mut config.spec;
        spec.origins[0].matcher = "^/videos/(?P<id>[a-z".into();
        spec.origins[0].sources[1].http.as_mut().expect("http").url = "ftp://x/y".into();
        let auth = spec.origins[0].sources[0]
            .http
            .as_mut()
            .and_then(|h| h.auth.as_mut())
            .expect("auth");
        auth.type_ = AuthType::Header;
        auth.header_name = Some("Host".into());
        spec.origins.push(OriginSpec {
            sources: vec![SourceSpec {
                name: "disk".into(),
                kind: SourceKind::Local,
                local: None,
                http: None,
                s3: None,
            }],
            name: "second".into(),
            ..spec.origins[0].clone()
        });
        spec.signing.key_secret_refs.clear();
        spec.admin.tokens[0].scopes.clear();
        spec.responsive.default_derivative = Some("missing".into());
        derivatives[0].spec.preset.width = Some(5);
        derivatives[0].spec.preset.time = Some("soon".into());
        derivatives.push(derivative("Bad_Name", "web", "{}"));

        let errs = render(&config, &derivatives).expect_err("invalid");
        let got = paths(&errs);
        for expected in [
            "spec.origins[0].matcher",
            "spec.origins[0].sources[1].http.url",
            "spec.origins[0].sources[0].http.auth.headerName",
            "spec.origins[1].sources[0].local",
            "spec.signing.keySecretRefs",
            "spec.admin.tokens[0].scopes",
            "spec.responsive.defaultDerivative",
            "Derivative/mobile spec.width",
            "Derivative/mobile spec.time",
            "Derivative/Bad_Name metadata.name",
        ] {
            assert!(got.contains(&expected), "missing {expected} in {got:?}");
        }
        // The source left out for its missing block is not also reported as "no sources".
        assert!(!got.contains(&"spec.origins[1].sources"), "{got:?}");
        // Secrets never appear in messages: only references exist anyway.
        assert!(errs.to_string().contains("Derivative/mobile spec.width: "));
    }

    #[test]
    fn a_source_keeps_its_spec_index_after_an_earlier_one_is_left_out() {
        let (mut config, derivatives) = example();
        let s0 = &mut config.spec.origins[0].sources[0];
        s0.kind = SourceKind::Local; // http block set, local missing
        config.spec.origins[0].sources[1]
            .http
            .as_mut()
            .expect("http")
            .timeout_seconds = Some(0);
        let errs = render(&config, &derivatives).expect_err("invalid");
        let got = paths(&errs);
        assert!(got.contains(&"spec.origins[0].sources[0].local"), "{got:?}");
        assert!(got.contains(&"spec.origins[0].sources[0].http"), "{got:?}");
        assert!(
            got.contains(&"spec.origins[0].sources[1].http.timeoutSeconds"),
            "{got:?}"
        );
    }

    #[test]
    fn dotted_derivative_names_map_to_the_right_object() {
        let (config, mut derivatives) = example();
        derivatives.push(derivative("hd.mobile", "web", "{ height: 99999 }"));
        let errs = render(&config, &derivatives).expect_err("invalid");
        assert_eq!(paths(&errs), ["Derivative/hd.mobile spec.height"]);
    }

    #[test]
    fn an_omitted_responsive_block_gets_the_same_defaults_as_an_empty_one() {
        let text = EXAMPLE_CONFIG.replace("  responsive:", "  responsive_unused:");
        let without: VideoResizerConfig = serde_yaml::from_str(&text).expect("config");
        let empty: dataplane::Responsive = serde_yaml::from_str("{}").expect("responsive");
        assert_eq!(without.spec.responsive, empty);
        assert!(empty.slow_downlink_mbps > 0.0);
    }
}
