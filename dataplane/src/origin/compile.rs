//! Compiling the origins of a config revision: matchers, templates, local roots, auth files
//! and S3 connections, each error named by its config path.

use super::breaker::Breaker;
use super::{http, local, s3, BreakerPolicy, OriginState, Origins, RetryPolicy};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use vr_crds::dataplane::Source;
use vr_crds::{DataPlaneConfig, ValidationErrors};

#[derive(Debug)]
pub(super) enum Kind {
    Local(local::LocalSource),
    Http(http::HttpSource),
    S3(Arc<s3::S3Source>),
}

#[derive(Debug)]
pub(super) struct CompiledSource {
    pub(super) name: String,
    /// Hash of the source's config: cached metadata is only reused by an identical source.
    pub(super) fingerprint: u64,
    pub(super) kind: Kind,
    pub(super) breaker: Arc<Breaker>,
}

#[derive(Debug)]
pub(super) struct Rule {
    pub(super) name: String,
    pub(super) matcher: regex::Regex,
    pub(super) sources: Vec<CompiledSource>,
}

/// The key of an object within one source.
pub(super) enum Key {
    Local(String),
    Http(reqwest::Url),
    S3(String),
}

impl Key {
    pub(super) fn as_string(&self) -> String {
        match self {
            Key::Local(p) => p.clone(),
            Key::Http(u) => u.to_string(),
            Key::S3(k) => k.clone(),
        }
    }
}

impl Origins {
    /// Compiles the origins of a (validated) config: matchers (linear-time engine with a
    /// size limit), templates, local roots (must exist) and auth files (read now, so a
    /// missing Secret fails the reload, not a request). Every error names its config path,
    /// e.g. `origins[0].sources[1].auth.tokenFile`, and never the content of a secret.
    pub fn compile(
        cfg: &DataPlaneConfig,
        state: Arc<OriginState>,
    ) -> Result<Origins, ValidationErrors> {
        let mut errs = Vec::new();
        let default_timeout = Duration::from_secs(cfg.limits.fetch_timeout_seconds.into());
        let mut rules = Vec::new();
        for (i, o) in cfg.origins.iter().enumerate() {
            let matcher = regex::RegexBuilder::new(&o.matcher)
                .size_limit(vr_crds::dataplane::MATCHER_SIZE_LIMIT)
                .dfa_size_limit(vr_crds::dataplane::MATCHER_SIZE_LIMIT)
                .build();
            let matcher = match matcher {
                Ok(m) => Some(m),
                Err(e) => {
                    errs.push(field_error(
                        format!("origins[{i}].matcher"),
                        format!("does not compile: {e}"),
                    ));
                    None
                }
            };
            let mut sources = Vec::new();
            for (j, s) in o.sources.iter().enumerate() {
                let kind = match s {
                    Source::Local(l) => local::LocalSource::compile(l).map(Kind::Local),
                    Source::Http(h) => {
                        http::HttpSource::compile(h, default_timeout).map(Kind::Http)
                    }
                    Source::S3(c) => {
                        // A rotated Secret drops the source's presigned URLs at once.
                        let presign = Arc::downgrade(&state.presign);
                        let (origin, source) = (o.name.clone(), c.name.clone());
                        let on_rotate: crate::s3::OnRotate = Arc::new(move |fp: &str| {
                            if let Some(p) = presign.upgrade() {
                                p.credentials(&origin, &source, fp);
                            }
                        });
                        s3::S3Source::compile(c, default_timeout, Some(on_rotate))
                    }
                    .map(|src| {
                        state.presign.credentials(
                            &o.name,
                            &c.name,
                            &src.conn.credentials_fingerprint,
                        );
                        Kind::S3(Arc::new(src))
                    }),
                };
                match kind {
                    Ok(kind) => sources.push(CompiledSource {
                        name: s.name().to_string(),
                        fingerprint: fingerprint(s),
                        kind,
                        breaker: state.breaker(&o.name, s.name()),
                    }),
                    Err((field, message)) => errs.push(field_error(
                        format!("origins[{i}].sources[{j}].{field}"),
                        message,
                    )),
                }
            }
            if let Some(matcher) = matcher {
                rules.push(Rule {
                    name: o.name.clone(),
                    matcher,
                    sources,
                });
            }
        }
        if !errs.is_empty() {
            return Err(ValidationErrors(errs));
        }
        Ok(Origins {
            rules,
            state,
            retry: RetryPolicy::from(&cfg.resilience),
            breaker_policy: BreakerPolicy::from(&cfg.resilience),
            max_input: cfg.limits.max_input_bytes,
            revalidate: Duration::from_secs(cfg.cache.source_revalidate_seconds.into()),
        })
    }
}

fn field_error(path: String, message: String) -> vr_crds::dataplane::FieldError {
    vr_crds::dataplane::FieldError { path, message }
}

fn fingerprint(s: &Source) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{s:?}").hash(&mut h);
    h.finish()
}
