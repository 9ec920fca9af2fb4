//! S3 connections shared by S3 sources and the shared cache layer: a client built from a
//! bucket block (endpoint, region, path-style, credentials from files or the default AWS
//! provider chain), and the classification of S3 failures.
//!
//! Credential files are read when a config revision is compiled, so a missing or unreadable
//! Secret fails the reload (naming the config path) and never a request; afterwards they are
//! re-read at most every [`CREDENTIALS_REREAD`], so a rotated Secret (kubelet rewrites the
//! mounted files) is picked up without a new revision, and the owner is told the new
//! fingerprint (the presign cache drops URLs signed with the old keys). The client carries no
//! timeout of its own: callers bound each operation.

use aws_credential_types::provider::{self, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::SdkError;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use vr_crds::dataplane::{S3Bucket, S3Credentials};

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

/// How often credential files are re-read (and how long the SDK keeps what they said).
pub const CREDENTIALS_REREAD: Duration = Duration::from_secs(30);

/// Called with the new fingerprint when a source's credential files change.
pub type OnRotate = Arc<dyn Fn(&str) + Send + Sync>;

impl Connection {
    /// Builds a connection for `b`; static credentials are read from their files now.
    /// Errors are `(field, message)` relative to the bucket block, e.g.
    /// `("credentials.secretAccessKeyFile", "cannot read …")`; never the content of a secret.
    pub fn compile(
        b: &S3Bucket,
        on_rotate: Option<OnRotate>,
    ) -> Result<Connection, (&'static str, String)> {
        let region = Region::new(b.region.clone());
        let (provider, fingerprint) = match &b.credentials {
            Some(c) => {
                let (creds, fp) = read_credentials(c)?;
                let files = FileCredentials {
                    files: c.clone(),
                    state: Mutex::new((Instant::now(), creds, fp.clone())),
                    on_rotate,
                };
                (
                    aws_sdk_s3::config::SharedCredentialsProvider::new(files),
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

/// Reads a credentials block: the credentials (expiring after [`CREDENTIALS_REREAD`], so the
/// SDK asks again) and their fingerprint. Errors are `(field, message)`.
fn read_credentials(c: &S3Credentials) -> Result<(Credentials, String), (&'static str, String)> {
    let id = read_secret(&c.access_key_id_file).map_err(|m| ("credentials.accessKeyIdFile", m))?;
    let secret = read_secret(&c.secret_access_key_file)
        .map_err(|m| ("credentials.secretAccessKeyFile", m))?;
    let token = match &c.session_token_file {
        Some(f) => Some(read_secret(f).map_err(|m| ("credentials.sessionTokenFile", m))?),
        None => None,
    };
    let mut h = Sha256::new();
    for part in [id.as_str(), &secret, token.as_deref().unwrap_or("")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let fp = hex::encode(&h.finalize()[..8]);
    let expiry = SystemTime::now() + CREDENTIALS_REREAD;
    let creds = Credentials::new(id, secret, token, Some(expiry), "video-resizer-files");
    Ok((creds, fp))
}

/// Static credentials from files, re-read at most every [`CREDENTIALS_REREAD`]. A failed
/// re-read (a Secret being rewritten) keeps the last good credentials.
struct FileCredentials {
    files: S3Credentials,
    state: Mutex<(Instant, Credentials, String)>,
    on_rotate: Option<OnRotate>,
}

impl std::fmt::Debug for FileCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials themselves.
        f.debug_struct("FileCredentials")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl FileCredentials {
    fn current(&self) -> Credentials {
        let mut st = crate::sync::lock(&self.state);
        if st.0.elapsed() < CREDENTIALS_REREAD / 2 {
            return st.1.clone();
        }
        match read_credentials(&self.files) {
            Ok((creds, fp)) => {
                let rotated = fp != st.2;
                *st = (Instant::now(), creds.clone(), fp.clone());
                drop(st);
                if rotated {
                    tracing::info!("S3 credential files changed; using the new credentials");
                    if let Some(cb) = &self.on_rotate {
                        cb(&fp);
                    }
                }
                creds
            }
            Err((field, message)) => {
                tracing::warn!(field, %message, "re-reading S3 credential files failed; keeping the last good ones");
                st.0 = Instant::now();
                st.1.clone()
            }
        }
    }
}

impl ProvideCredentials for FileCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::ready(Ok(self.current()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn rotated_credential_files_are_picked_up_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (id, secret) = (dir.path().join("id"), dir.path().join("secret"));
        std::fs::write(&id, "AKID1").unwrap();
        std::fs::write(&secret, "first-secret").unwrap();
        let files = S3Credentials {
            access_key_id_file: id.display().to_string(),
            secret_access_key_file: secret.display().to_string(),
            session_token_file: None,
        };
        let (creds, fp) = read_credentials(&files).unwrap();
        let rotations = Arc::new(AtomicUsize::new(0));
        let r = rotations.clone();
        let provider = FileCredentials {
            files,
            state: Mutex::new((Instant::now(), creds, fp)),
            on_rotate: Some(Arc::new(move |_: &str| {
                r.fetch_add(1, Ordering::SeqCst);
            })),
        };
        std::fs::write(&secret, "second-secret").unwrap();
        // Within the re-read interval the files are not looked at.
        assert_eq!(provider.current().secret_access_key(), "first-secret");
        tokio::time::advance(CREDENTIALS_REREAD).await;
        assert_eq!(provider.current().secret_access_key(), "second-secret");
        assert_eq!(rotations.load(Ordering::SeqCst), 1);
        // A Secret caught mid-rewrite (empty file) keeps the last good credentials.
        std::fs::write(&secret, "").unwrap();
        tokio::time::advance(CREDENTIALS_REREAD).await;
        assert_eq!(provider.current().secret_access_key(), "second-secret");
        assert_eq!(rotations.load(Ordering::SeqCst), 1);
        assert!(!format!("{provider:?}").contains("second-secret"));
    }
}
