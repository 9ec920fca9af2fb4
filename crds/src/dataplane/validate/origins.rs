//! Validation of `origins`: names, matchers, sources and their templates.

use super::*;
use std::collections::BTreeSet;

/// `origins`: names, matchers, and every source against the matcher's captures.
pub(super) fn origins(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    if cfg.origins.is_empty() {
        errs.push("origins", "at least one origin is required");
    }
    let mut origin_names = BTreeSet::new();
    for (i, o) in cfg.origins.iter().enumerate() {
        let p = format!("origins[{i}]");
        validate_name(&o.name, &format!("{p}.name"), errs);
        if !origin_names.insert(o.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!("duplicate origin name {:?}", o.name),
            );
        }
        let captures = match validate_regex(&o.matcher) {
            Ok(c) => Some(c),
            Err(m) => {
                errs.push(format!("{p}.matcher"), m);
                None
            }
        };
        if o.sources.is_empty() {
            errs.push(format!("{p}.sources"), "at least one source is required");
        }
        let mut source_names = BTreeSet::new();
        for (j, s) in o.sources.iter().enumerate() {
            let sp = format!("{p}.sources[{j}]");
            if let Source::Local(l) = s {
                local_root(&l.root, &credential_files(cfg), &format!("{sp}.root"), errs);
            }
            let name = s.name();
            validate_name(name, &format!("{sp}.name"), errs);
            if !source_names.insert(name) {
                errs.push(
                    format!("{sp}.name"),
                    format!("duplicate source name {name:?}"),
                );
            }
            source(s, &sp, captures.as_ref(), errs);
        }
        if let Some(t) = &o.ttl {
            validate_ttl(t, &format!("{p}.ttl"), errs);
        }
        for (k, tag) in o.cache_tags.iter().enumerate() {
            if !tag_ok(tag) {
                errs.push(
                    format!("{p}.cacheTags[{k}]"),
                    "tags use letters, digits, '-', '_', '.', ':' (1–128 characters)",
                );
            }
        }
    }
}

/// One source of an origin: its template against the matcher's captures, its kind's settings.
fn source(s: &Source, sp: &str, captures: Option<&BTreeSet<String>>, errs: &mut ValidationErrors) {
    match s {
        Source::Local(l) => {
            if l.root.trim().is_empty() {
                errs.push(format!("{sp}.root"), "must not be empty");
            }
            validate_template(&l.path, captures, &format!("{sp}.path"), errs);
        }
        Source::S3(s3) => {
            validate_template(&s3.key, captures, &format!("{sp}.key"), errs);
            validate_s3_bucket(&s3.bucket, sp, errs);
            if let Some(t) = s3.timeout_seconds {
                if t == 0 || t > 3600 {
                    errs.push(format!("{sp}.timeoutSeconds"), "must be between 1 and 3600");
                }
            }
            let pr = &s3.presign;
            if pr.lifetime_seconds == 0 || pr.lifetime_seconds > PRESIGN_MAX_SECONDS {
                errs.push(
                    format!("{sp}.presign.lifetimeSeconds"),
                    format!("must be between 1 and {PRESIGN_MAX_SECONDS} (one week)"),
                );
            } else if pr.safety_margin_seconds >= pr.lifetime_seconds {
                errs.push(
                    format!("{sp}.presign.safetyMarginSeconds"),
                    "must be less than presign.lifetimeSeconds",
                );
            }
        }
        Source::Http(h) => http_source(h, sp, captures, errs),
    }
}

/// An HTTP source: a literal host, a timeout in range, a usable auth header.
fn http_source(
    h: &HttpSource,
    sp: &str,
    captures: Option<&BTreeSet<String>>,
    errs: &mut ValidationErrors,
) {
    validate_template(&h.url, captures, &format!("{sp}.url"), errs);
    if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
        errs.push(format!("{sp}.url"), "must start with http:// or https://");
    } else if h
        .url
        .split("://")
        .nth(1)
        .is_none_or(|r| r.starts_with('$') || r.starts_with('/') || r.is_empty())
    {
        errs.push(
            format!("{sp}.url"),
            "the host must be literal (captures may only appear in the path)",
        );
    }
    if let Some(t) = h.timeout_seconds {
        if t == 0 || t > 3600 {
            errs.push(format!("{sp}.timeoutSeconds"), "must be between 1 and 3600");
        }
    }
    match &h.auth {
        Some(HttpAuth::Bearer { token_file }) if token_file.trim().is_empty() => {
            errs.push(format!("{sp}.auth.tokenFile"), "must not be empty");
        }
        Some(HttpAuth::Header { name, value_file }) => {
            if http_header_name_ok(name) {
                if is_hop_or_reserved_header(name) {
                    errs.push(
                        format!("{sp}.auth.name"),
                        format!("{name:?} cannot be used as an auth header"),
                    );
                }
            } else {
                errs.push(
                    format!("{sp}.auth.name"),
                    "must be a valid HTTP header name",
                );
            }
            if value_file.trim().is_empty() {
                errs.push(format!("{sp}.auth.valueFile"), "must not be empty");
            }
        }
        _ => {}
    }
}

/// Paths a local source may never serve from: credential mounts, the service-account token,
/// and kernel/device file systems (anything at or under them).
const FORBIDDEN_ROOTS: &[&str] = &[
    "/etc/video-resizer/secrets",
    "/var/run/secrets",
    "/run/secrets",
    "/proc",
    "/sys",
    "/dev",
];

/// Every file the config reads a credential from (`…File`, `keyFiles`), as written.
fn credential_files(cfg: &DataPlaneConfig) -> Vec<String> {
    fn walk(key: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if key.ends_with("File") => out.push(s.clone()),
            serde_json::Value::Array(a) => {
                for x in a {
                    walk(key, x, out);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(k, x, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(cfg) {
        walk("", &v, &mut out);
    }
    out
}

/// `path` made absolute against a stand-in base (relative paths in one document share the
/// same base) with `.` and `..` resolved lexically.
fn lexical(path: &str) -> Vec<String> {
    let full = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/\u{0}base/{path}")
    };
    let mut parts: Vec<String> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_owned()),
        }
    }
    parts
}

/// A local source's `root` may not hold credential files of this config, lie in or above a
/// credential mount or a kernel file system, or be the file-system root: a client could
/// otherwise read them through the public port (issue 15, row 3).
fn local_root(root: &str, credentials: &[String], field: &str, errs: &mut ValidationErrors) {
    if root.trim().is_empty() {
        return;
    }
    let r = lexical(root);
    if r.is_empty() {
        errs.push(field, "must not be the file-system root");
        return;
    }
    for f in FORBIDDEN_ROOTS {
        let f = lexical(f);
        if r.starts_with(&f) || f.starts_with(&r) {
            errs.push(
                field,
                format!(
                    "overlaps /{}: local roots may not cover credential mounts or system paths",
                    f.join("/")
                ),
            );
            return;
        }
    }
    if let Some(file) = credentials.iter().find(|c| lexical(c).starts_with(&r)) {
        errs.push(
            field,
            format!("holds the credential file {file:?}: it would be served to clients"),
        );
    }
}
