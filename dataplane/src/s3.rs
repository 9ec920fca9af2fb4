//! S3 connections shared by S3 sources and the shared cache layer: a client built from a
//! bucket block (endpoint, region, path-style, credentials from files or the default AWS
//! provider chain), and the classification of S3 failures.
//!
//! Credentials are read once, when a config revision is compiled, so a missing or unreadable
//! Secret fails the reload (naming the config path) and never a request. The client carries
//! no timeout of its own: callers bound each operation.

use aws_credential_types::provider::{self, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::SdkError;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use tokio::sync::OnceCell;
use vr_crds::dataplane::S3Bucket;

/// A compiled S3 connection: client, bucket, and a fingerprint of the credentials.
#[derive(Clone, Debug)]
pub struct Connection {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// Changes when the credentials (or where they come from) change; never reveals them.
    pub credentials_fingerprint: String,
}

/// The HTTP client every S3 connection shares (one connection pool per process).
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    static CLIENT: OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient> =
        OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use aws_smithy_http_client::tls;
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https()
        })
        .clone()
}

impl Connection {
    /// Builds a connection for `b`; static credentials are read from their files now.
    /// Errors are `(field, message)` relative to the bucket block, e.g.
    /// `("credentials.secretAccessKeyFile", "cannot read …")`; never the content of a secret.
    pub fn compile(b: &S3Bucket) -> Result<Connection, (&'static str, String)> {
        let region = Region::new(b.region.clone());
        let (provider, fingerprint) = match &b.credentials {
            Some(c) => {
                let id = read_secret(&c.access_key_id_file)
                    .map_err(|m| ("credentials.accessKeyIdFile", m))?;
                let secret = read_secret(&c.secret_access_key_file)
                    .map_err(|m| ("credentials.secretAccessKeyFile", m))?;
                let token = match &c.session_token_file {
                    Some(f) => {
                        Some(read_secret(f).map_err(|m| ("credentials.sessionTokenFile", m))?)
                    }
                    None => None,
                };
                let mut h = Sha256::new();
                for part in [id.as_str(), &secret, token.as_deref().unwrap_or("")] {
                    h.update(part.as_bytes());
                    h.update([0]);
                }
                let fp = hex::encode(&h.finalize()[..8]);
                let creds = Credentials::new(id, secret, token, None, "video-resizer-files");
                (
                    aws_sdk_s3::config::SharedCredentialsProvider::new(creds),
                    fp,
                )
            }
            None => (
                aws_sdk_s3::config::SharedCredentialsProvider::new(DefaultChain {
                    region: region.clone(),
                    chain: Arc::new(OnceCell::new()),
                }),
                "default-chain".to_string(),
            ),
        };
        let mut cfg = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(provider)
            .http_client(http_client())
            .force_path_style(b.force_path_style)
            // Retries and breakers are ours (per source); the SDK must not add its own.
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        if let Some(e) = &b.endpoint {
            cfg = cfg.endpoint_url(e.trim_end_matches('/'));
        }
        Ok(Connection {
            client: aws_sdk_s3::Client::from_conf(cfg.build()),
            bucket: b.bucket.clone(),
            credentials_fingerprint: fingerprint,
        })
    }
}

/// The default AWS provider chain (environment, profile, web identity, container and
/// instance metadata), built on first use because building it is async.
#[derive(Debug)]
struct DefaultChain {
    region: Region,
    chain: Arc<OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>>,
}

impl ProvideCredentials for DefaultChain {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let conf = aws_config::provider_config::ProviderConfig::without_region()
                        .with_http_client(http_client())
                        .with_region(Some(self.region.clone()));
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .configure(conf)
                        .build()
                        .await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// Reads a secret file, trimming trailing whitespace. Errors name the file's problem, never
/// its content.
pub(crate) fn read_secret(path: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {}", e.kind()))?;
    let value = text.trim_end().to_string();
    if value.is_empty() {
        return Err(format!("{path:?} is empty"));
    }
    Ok(value)
}

/// How an S3 call failed, in the terms the origin and the cache need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 404 (no such key, no such bucket).
    NotFound,
    /// 412: a conditional write found the object already there.
    PreconditionFailed,
    /// 401/403: the store refused our credentials or signature.
    Auth(u16),
    /// Any other status.
    Status(u16),
    /// The request never got an answer (connect, DNS, TLS, broken connection, timeout).
    Network(String),
}

impl Failure {
    /// Classifies an SDK error. The detail of a network failure is its kind, not the request.
    pub fn of<E>(e: &SdkError<E>) -> Failure {
        let status = match e {
            SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
            SdkError::ResponseError(re) => Some(re.raw().status().as_u16()),
            _ => None,
        };
        match status {
            Some(404) => Failure::NotFound,
            Some(412) => Failure::PreconditionFailed,
            Some(s @ (401 | 403)) => Failure::Auth(s),
            Some(s) => Failure::Status(s),
            None => Failure::Network(match e {
                SdkError::TimeoutError(_) => "timed out".into(),
                SdkError::DispatchFailure(d) if d.is_io() => "connection failed".into(),
                SdkError::DispatchFailure(d) if d.is_timeout() => "timed out".into(),
                SdkError::DispatchFailure(_) => "request could not be sent".into(),
                SdkError::ConstructionFailure(_) => "request could not be built".into(),
                _ => "unexpected response".into(),
            }),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound => write!(f, "not found"),
            Failure::PreconditionFailed => write!(f, "precondition failed"),
            Failure::Auth(s) => write!(f, "credentials refused (status {s})"),
            Failure::Status(s) => write!(f, "status {s}"),
            Failure::Network(d) => write!(f, "unreachable: {d}"),
        }
    }
}
