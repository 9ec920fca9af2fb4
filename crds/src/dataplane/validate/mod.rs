//! Validation of a config document: every rule that needs no I/O, all violations reported at
//! once with their paths. One function per section of the document ([`origins`], [`presets`],
//! [`runtime`]); the checks shared by several sections live here.

mod origins;
mod presets;
mod runtime;

use super::*;
use crate::media::{
    parse_bitrate_kbps, parse_fps_milli, parse_time_ms, Format, Mode, DIMENSION_RANGE,
    IMAGE_COUNT_RANGE,
};
use std::collections::BTreeSet;

impl DataPlaneConfig {
    /// Parses a YAML (or JSON) document and validates it.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge(text.len()));
        }
        let cfg: DataPlaneConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Checks every rule that needs no I/O and returns all violations at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        validate_name(&self.revision, "revision", &mut errs);
        for section in [
            origins::origins,
            presets::derivatives,
            presets::responsive,
            presets::params,
            presets::signing,
            runtime::limits,
            runtime::cache,
            runtime::passthrough,
            runtime::resilience,
            runtime::admin,
        ] {
            section(self, &mut errs);
        }
        if errs.0.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Validates a derivative's values (ranges, mode/format compatibility, time syntax).
pub fn validate_derivative(d: &Derivative, p: &str, errs: &mut ValidationErrors) {
    for (field, v) in [("width", d.width), ("height", d.height)] {
        if let Some(v) = v {
            if !DIMENSION_RANGE.contains(&v) {
                errs.push(
                    format!("{p}.{field}"),
                    format!(
                        "must be between {} and {}",
                        DIMENSION_RANGE.start(),
                        DIMENSION_RANGE.end()
                    ),
                );
            }
        }
    }
    let mode = d.mode.unwrap_or(if d.format == Some(Format::M4a) {
        Mode::Audio
    } else {
        Mode::Video
    });
    if let Some(f) = d.format {
        if !mode.accepts(f) {
            errs.push(
                format!("{p}.format"),
                format!(
                    "{f} does not suit mode {mode}; expected one of {}",
                    mode.accepted_formats()
                ),
            );
        }
    }
    if mode == Mode::Audio && d.audio == Some(false) {
        errs.push(format!("{p}.audio"), "must not be false with mode audio");
    }
    for (field, v) in [("time", &d.time), ("duration", &d.duration)] {
        if let Some(v) = v {
            if let Err(m) = parse_time_ms(v) {
                errs.push(format!("{p}.{field}"), m);
            }
        }
    }
    if let Some(fps) = &d.fps {
        if let Err(m) = parse_fps_milli(fps) {
            errs.push(format!("{p}.fps"), m);
        }
    }
    if let Some(b) = &d.bitrate {
        if let Err(m) = parse_bitrate_kbps(b) {
            errs.push(format!("{p}.bitrate"), m);
        }
    }
    if let Some(n) = d.image_count {
        if !IMAGE_COUNT_RANGE.contains(&n) {
            errs.push(
                format!("{p}.imageCount"),
                format!(
                    "must be between {} and {}",
                    IMAGE_COUNT_RANGE.start(),
                    IMAGE_COUNT_RANGE.end()
                ),
            );
        }
    }
}

fn validate_ttl(t: &TtlByStatus, p: &str, errs: &mut ValidationErrors) {
    for (field, v) in [
        ("ok", t.ok),
        ("redirects", t.redirects),
        ("clientError", t.client_error),
        ("serverError", t.server_error),
    ] {
        if v > 31_536_000 {
            errs.push(
                format!("{p}.{field}"),
                "must be at most 31536000 (one year)",
            );
        }
    }
}

/// Names: 1–63 characters of `[a-z0-9-]` (DNS-label-like), since they end up in labels and tags.
fn validate_name(name: &str, path: &str, errs: &mut ValidationErrors) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        errs.push(path, format!("{name:?} must be 1–63 characters of a-z, 0-9, '-' or '.', not starting or ending with '-'"));
    }
}

fn tag_ok(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Largest compiled size of a matcher regex (bounds memory; the engine is linear-time).
pub const MATCHER_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a matcher and returns its capture names (named and numbered).
fn validate_regex(pattern: &str) -> Result<BTreeSet<String>, String> {
    if pattern.len() > 1024 {
        return Err("must be at most 1024 characters".into());
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(MATCHER_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            format!(
                "does not compile: {}",
                e.to_string().lines().last().unwrap_or("invalid regex")
            )
        })?;
    let mut names = BTreeSet::new();
    for (i, n) in re.capture_names().enumerate() {
        if i == 0 {
            continue;
        }
        names.insert(i.to_string());
        if let Some(n) = n {
            names.insert(n.to_string());
        }
    }
    names.insert("path".into());
    Ok(names)
}

/// Placeholders of a template (`${name}`); a `$` not followed by `{name}` is an error.
pub fn template_placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let Some(body) = after.strip_prefix('{') else {
            return Err("'$' must start a placeholder such as ${name}".into());
        };
        let end = body.find('}').ok_or("unclosed placeholder: missing '}'")?;
        let name = &body[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("invalid placeholder name {name:?}"));
        }
        out.push(name);
        rest = &body[end + 1..];
    }
    Ok(out)
}

/// Checks a bucket block; `p` is the path of the block's parent (fields are flattened into it).
fn validate_s3_bucket(b: &S3Bucket, p: &str, errs: &mut ValidationErrors) {
    let name_ok = (3..=63).contains(&b.bucket.len())
        && b.bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && !b.bucket.starts_with(['-', '.'])
        && !b.bucket.ends_with(['-', '.']);
    if !name_ok {
        errs.push(
            format!("{p}.bucket"),
            "must be a bucket name: 3–63 lower-case letters, digits, '-' and '.'",
        );
    }
    if b.region.trim().is_empty() {
        errs.push(format!("{p}.region"), "must not be empty");
    }
    if let Some(e) = &b.endpoint {
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(['@', '?', '#']) => {}
            _ => errs.push(
                format!("{p}.endpoint"),
                "must be an http:// or https:// URL with a host and no credentials",
            ),
        }
    }
    if let Some(c) = &b.credentials {
        if c.access_key_id_file.trim().is_empty() {
            errs.push(
                format!("{p}.credentials.accessKeyIdFile"),
                "must not be empty",
            );
        }
        if c.secret_access_key_file.trim().is_empty() {
            errs.push(
                format!("{p}.credentials.secretAccessKeyFile"),
                "must not be empty",
            );
        }
        if c.session_token_file
            .as_ref()
            .is_some_and(|f| f.trim().is_empty())
        {
            errs.push(
                format!("{p}.credentials.sessionTokenFile"),
                "must not be empty when set",
            );
        }
    }
}

fn validate_template(
    template: &str,
    captures: Option<&BTreeSet<String>>,
    path: &str,
    errs: &mut ValidationErrors,
) {
    if template.trim().is_empty() {
        errs.push(path, "must not be empty");
        return;
    }
    match template_placeholders(template) {
        Err(m) => errs.push(path, m),
        Ok(names) => {
            if let Some(caps) = captures {
                for n in names {
                    if !caps.contains(n) {
                        errs.push(path, format!("placeholder ${{{n}}} is not a capture of the origin's matcher (known: {})", caps.iter().cloned().collect::<Vec<_>>().join(", ")));
                    }
                }
            }
        }
    }
}

fn http_header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_hop_or_reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "range",
        "te",
        "upgrade",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}
