//! A compiled config revision: everything a request needs from the config, prepared once at
//! load time (regexes compiled, derivatives parsed, key and token files read), so the request
//! path does no parsing and no file I/O for config.
//!
//! A [`Runtime`] is immutable; a new revision is a new value swapped in atomically, and a
//! request keeps the `Arc<Runtime>` it started with until it finishes.

use crate::guard::auth::{self, Tokens};
use crate::guard::signing::Signer;
use crate::origin::{OriginState, Origins};
use crate::request::params::ParamsConfig;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use vr_crds::dataplane::{DataPlaneConfig, FieldError, TransformErrorPolicy, TtlByStatus};
use vr_crds::dataplane::{HttpAuth, Source};
use vr_crds::ValidationErrors;

/// A parsed and validated config document: what a config source (the file, a ConfigMap)
/// hands to [`Runtime::compile`].
#[derive(Debug, Clone)]
pub struct Document {
    pub config: DataPlaneConfig,
    /// SHA-256 of the document's bytes (hex).
    pub digest: String,
    /// Directory relative file paths in the config are resolved against.
    pub base: std::path::PathBuf,
}

/// One compiled config revision.
pub struct Runtime {
    pub config: Arc<DataPlaneConfig>,
    /// Content digest of the document it came from.
    pub digest: String,
    pub params: ParamsConfig,
    pub origins: Origins,
    /// Present when any signing key is configured (verification is enforced when
    /// `signing.required`).
    pub signer: Option<Signer>,
    pub tokens: Tokens,
    pub debug_networks: Vec<ipnet::IpNet>,
    pub video_extensions: HashSet<String>,
    /// Per-origin settings the request path needs, resolved once (defaults applied).
    pub origin_settings: HashMap<String, OriginSettings>,
    /// The shared S3 cache layer's bucket (`cache.shared`), installed into the long-lived
    /// layer when this revision goes live.
    pub shared_cache: Option<Arc<crate::cache::shared::SharedBucket>>,
}

/// What the request path needs from one origin rule, with the config's defaults applied.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub ttl: TtlByStatus,
    /// The origin's own cache tags.
    pub cache_tags: Vec<String>,
    pub on_transform_error: TransformErrorPolicy,
}

impl Runtime {
    /// Compiles a validated document; reads key and token files (errors name the config path).
    pub fn compile(
        doc: Document,
        origin_state: Arc<OriginState>,
    ) -> Result<Runtime, ValidationErrors> {
        let cfg = doc.config;
        let mut errs = Vec::<FieldError>::new();
        let origins = match Origins::compile(&with_absolute_paths(&cfg, &doc.base), origin_state) {
            Ok(o) => Some(o),
            Err(e) => {
                errs.extend(e.0);
                None
            }
        };
        let tokens = match Tokens::load(&cfg.admin.tokens, &doc.base) {
            Ok(t) => Some(t),
            Err(e) => {
                errs.extend(e.0);
                None
            }
        };
        let mut keys = Vec::new();
        for (i, f) in cfg.signing.key_files.iter().enumerate() {
            let path = auth::resolve(&doc.base, f);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    crate::guard::signing::key_from_file_contents(&b).map_err(|e| e.to_string())
                }) {
                Ok(k) => keys.push(k),
                Err(m) => errs.push(FieldError {
                    path: format!("signing.keyFiles[{i}]"),
                    message: format!("{}: {m}", path.display()),
                }),
            }
        }
        let debug_networks = cfg
            .debug
            .allowed_networks
            .iter()
            .filter_map(|n| {
                n.parse::<ipnet::IpNet>()
                    .ok()
                    .or_else(|| n.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
            })
            .collect();
        let signer = if keys.is_empty() {
            None
        } else {
            match Signer::new(keys) {
                Ok(s) => Some(s),
                Err(e) => {
                    errs.push(FieldError {
                        path: "signing.keyFiles".into(),
                        message: e.to_string(),
                    });
                    None
                }
            }
        };
        let shared_cache = match &with_absolute_paths(&cfg, &doc.base).cache.shared {
            None => None,
            Some(sh) => match crate::cache::shared::SharedBucket::compile(sh) {
                Ok(b) => Some(Arc::new(b)),
                Err((field, message)) => {
                    errs.push(FieldError {
                        path: format!("cache.shared.{field}"),
                        message,
                    });
                    None
                }
            },
        };
        let (Some(origins), Some(tokens), true) = (origins, tokens, errs.is_empty()) else {
            return Err(ValidationErrors(errs));
        };
        Ok(Runtime {
            params: crate::request::params::compile(&cfg),
            origins,
            signer,
            tokens,
            debug_networks,
            video_extensions: cfg.passthrough.video_extensions.iter().cloned().collect(),
            origin_settings: cfg
                .origins
                .iter()
                .map(|o| {
                    let settings = OriginSettings {
                        ttl: o.ttl.unwrap_or(cfg.cache.ttl),
                        cache_tags: o.cache_tags.clone(),
                        on_transform_error: o.on_transform_error,
                    };
                    (o.name.clone(), settings)
                })
                .collect(),
            digest: doc.digest,
            shared_cache,
            config: Arc::new(cfg),
        })
    }

    /// The revision label.
    pub fn revision(&self) -> &str {
        &self.config.revision
    }

    /// Whether `peer` may use debug views.
    pub fn debug_allowed(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.debug_networks.iter().any(|n| n.contains(&peer))
    }
}

/// A copy of `cfg` whose relative file paths (local roots, auth files) are resolved against
/// the config file's directory, so a config means the same thing whatever the working directory.
fn with_absolute_paths(cfg: &DataPlaneConfig, base: &std::path::Path) -> DataPlaneConfig {
    let abs = |p: &str| auth::resolve(base, p).to_string_lossy().into_owned();
    let mut c = cfg.clone();
    for o in &mut c.origins {
        for s in &mut o.sources {
            match s {
                Source::Local(l) => l.root = abs(&l.root),
                Source::Http(h) => match &mut h.auth {
                    Some(HttpAuth::Bearer { token_file }) => *token_file = abs(token_file),
                    Some(HttpAuth::Header { value_file, .. }) => *value_file = abs(value_file),
                    None => {}
                },
                Source::S3(s3) => absolute_credentials(&mut s3.bucket, &abs),
            }
        }
    }
    if let Some(shared) = &mut c.cache.shared {
        absolute_credentials(&mut shared.bucket, &abs);
    }
    c
}

fn absolute_credentials(b: &mut vr_crds::dataplane::S3Bucket, abs: &impl Fn(&str) -> String) {
    if let Some(cr) = &mut b.credentials {
        cr.access_key_id_file = abs(&cr.access_key_id_file);
        cr.secret_access_key_file = abs(&cr.secret_access_key_file);
        if let Some(t) = &mut cr.session_token_file {
            *t = abs(t);
        }
    }
}
