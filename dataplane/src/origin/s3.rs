//! S3 source: key template → object in one bucket, read with SigV4 (HeadObject for the
//! validator and size, GetObject spooled or streamed) or handed out as a presigned URL.
//!
//! The bucket, endpoint and credentials come from config only; captures fill the key, which is
//! checked like a relative path (no `..`, no leading `/`), so a request can never name another
//! bucket or host. Failures are classified like any source: 404 → next source; 401/403 →
//! `Auth` naming the source; no answer → `Network`/`Timeout` (retried, counted by the breaker).

use super::http::ChannelStream;
use super::rules::{check_relative, Template};
use super::{SourceError, SourceMeta};
use crate::body::{self, Body};
use crate::s3::{Connection, Failure};
use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use vr_crds::dataplane::Presign;

/// A compiled S3 source.
#[derive(Debug)]
pub(super) struct S3Source {
    pub conn: Connection,
    template: Template,
    /// Bound on each request's response headers and each wait for a body chunk.
    pub timeout: Duration,
    pub presign: Presign,
}

/// What HeadObject/GetObject say about an object.
#[derive(Debug, Clone, Default)]
pub(super) struct S3Meta {
    pub etag: Option<String>,
    pub length: Option<u64>,
    pub content_type: Option<String>,
    pub last_modified: Option<SystemTime>,
}

impl S3Source {
    /// Compiles the source (reads static credentials now). Errors are `(field, message)`.
    /// `on_rotate` is told when the credential files change (see [`crate::s3`]).
    pub fn compile(
        cfg: &vr_crds::dataplane::S3Source,
        default_timeout: Duration,
        on_rotate: Option<crate::s3::OnRotate>,
    ) -> Result<S3Source, (&'static str, String)> {
        let template = Template::parse(&cfg.key).map_err(|m| ("key", m))?;
        let conn = Connection::compile(&cfg.bucket, on_rotate)?;
        let timeout = cfg
            .timeout_seconds
            .map_or(default_timeout, |s| Duration::from_secs(s.into()));
        Ok(S3Source {
            conn,
            template,
            timeout,
            presign: cfg.presign.clone(),
        })
    }

    /// The object key for these captures.
    pub fn key(&self, captures: &[(String, String)]) -> Result<String, SourceError> {
        let key = self
            .template
            .expand(|name| Ok::<_, SourceError>(super::capture(captures, name).to_string()))?;
        check_relative(&key).map_err(|r| SourceError::BadPath(r.0))?;
        Ok(key)
    }

    /// `s3://bucket/key`: the object's identity in metadata and cache keys.
    pub fn display_key(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.conn.bucket)
    }

    async fn bounded<T, E>(
        &self,
        fut: impl std::future::Future<Output = Result<T, aws_sdk_s3::error::SdkError<E>>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(SourceError::Timeout(self.timeout)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(source_error(Failure::of(&e), self.timeout)),
        }
    }

    /// HeadObject.
    pub async fn head(&self, key: &str) -> Result<S3Meta, SourceError> {
        let out = self
            .bounded(
                self.conn
                    .client
                    .head_object()
                    .bucket(&self.conn.bucket)
                    .key(key)
                    .send(),
            )
            .await?;
        Ok(S3Meta {
            etag: out.e_tag().map(str::to_string),
            length: out.content_length().and_then(|l| u64::try_from(l).ok()),
            content_type: out.content_type().map(str::to_string),
            last_modified: out
                .last_modified()
                .and_then(|t| SystemTime::try_from(*t).ok()),
        })
    }

    async fn get(
        &self,
        key: &str,
    ) -> Result<(S3Meta, aws_sdk_s3::primitives::ByteStream), SourceError> {
        self.get_range(key, None).await
    }

    /// GetObject, of `range` (`bytes=a-b`) when given.
    async fn get_range(
        &self,
        key: &str,
        range: Option<String>,
    ) -> Result<(S3Meta, aws_sdk_s3::primitives::ByteStream), SourceError> {
        let out = self
            .bounded(
                self.conn
                    .client
                    .get_object()
                    .bucket(&self.conn.bucket)
                    .key(key)
                    .set_range(range)
                    .send(),
            )
            .await?;
        let meta = S3Meta {
            etag: out.e_tag().map(str::to_string),
            length: out.content_length().and_then(|l| u64::try_from(l).ok()),
            content_type: out.content_type().map(str::to_string),
            last_modified: out
                .last_modified()
                .and_then(|t| SystemTime::try_from(*t).ok()),
        };
        Ok((meta, out.body))
    }

    /// GetObject into a new temp file under `temp_dir`, refusing more than `limit` bytes.
    pub async fn spool(
        &self,
        key: &str,
        limit: u64,
        temp_dir: &Path,
    ) -> Result<(S3Meta, tempfile::TempPath), SourceError> {
        let (mut meta, mut stream) = self.get(key).await?;
        if let Some(len) = meta.length.filter(|l| *l > limit) {
            return Err(SourceError::TooLarge(Some(len)));
        }
        tokio::fs::create_dir_all(temp_dir)
            .await
            .map_err(|e| SourceError::Io(format!("temp directory: {}", e.kind())))?;
        let named = tempfile::Builder::new()
            .prefix("vr-origin-")
            .tempfile_in(temp_dir)
            .map_err(|e| SourceError::Io(format!("temp file: {}", e.kind())))?;
        let (file, temp_path) = named.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut written: u64 = 0;
        loop {
            let chunk = tokio::time::timeout(self.timeout, stream.next())
                .await
                .map_err(|_| SourceError::Timeout(self.timeout))?;
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(|_| SourceError::Network("the body broke off".into()))?;
            written = written.saturating_add(chunk.len() as u64);
            if written > limit {
                return Err(SourceError::TooLarge(None));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| SourceError::Io(format!("temp file: {}", e.kind())))?;
        }
        file.flush()
            .await
            .map_err(|e| SourceError::Io(format!("temp file: {}", e.kind())))?;
        meta.length = Some(written);
        Ok((meta, temp_path))
    }

    /// GetObject streamed through (each chunk within the timeout).
    pub async fn open(&self, key: &str) -> Result<(S3Meta, Body), SourceError> {
        let (meta, stream) = self.get(key).await?;
        Ok((meta, pump(stream, self.timeout)))
    }

    /// A ranged GetObject of bytes `start .. start + count` of an object of `total` bytes,
    /// streamed through: S3 sends only those bytes. An answer of another length (the object
    /// changed since its metadata was read) is an upstream error before any byte is sent.
    pub async fn open_range(
        &self,
        key: &str,
        (start, count, _total): (u64, u64, u64),
    ) -> Result<Body, SourceError> {
        let end = start + count.max(1) - 1;
        let (meta, stream) = self
            .get_range(key, Some(format!("bytes={start}-{end}")))
            .await?;
        if meta.length != Some(count) {
            return Err(SourceError::Upstream(206));
        }
        Ok(pump(stream, self.timeout))
    }
}

/// Streams an S3 body through a task, each chunk within `timeout`.
fn pump(mut stream: aws_sdk_s3::primitives::ByteStream, timeout: Duration) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // Same shape as the HTTP source: a pump task keeps the body Send + Sync and ends
    // (dropping the S3 response) when the client goes away.
    tokio::spawn(async move {
        loop {
            let item = match tokio::time::timeout(timeout, stream.next()).await {
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "source stopped sending",
                )),
                Ok(None) => break,
                Ok(Some(Err(_))) => Err(std::io::Error::other("the source body broke off")),
                Ok(Some(Ok(b))) => Ok(b),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    body::stream(ChannelStream(rx))
}

impl S3Source {
    /// A presigned GET URL for `key`, valid from `start` for the configured lifetime. Pure
    /// computation (no request): signing needs only the credentials.
    pub async fn presign_get(&self, key: &str, start: SystemTime) -> Result<String, SourceError> {
        let cfg = PresigningConfig::builder()
            .start_time(start)
            .expires_in(Duration::from_secs(self.presign.lifetime_seconds.into()))
            .build()
            .map_err(|_| SourceError::Io("presigning settings are invalid".into()))?;
        let req = self
            .conn
            .client
            .get_object()
            .bucket(&self.conn.bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| match Failure::of(&e) {
                Failure::Network(_) => SourceError::Auth(403),
                f => source_error(f, self.timeout),
            })?;
        Ok(req.uri().to_string())
    }
}

impl S3Meta {
    /// Source metadata; the validator is the ETag, else Last-Modified + length.
    pub fn meta(&self, origin: &str, source: &str, key: String) -> SourceMeta {
        let validator = match (&self.etag, self.last_modified, self.length) {
            (Some(etag), _, _) => format!("etag:{etag}"),
            (None, Some(lm), len) => format!(
                "lm:{};len:{}",
                httpdate::fmt_http_date(lm),
                len.unwrap_or(0)
            ),
            (None, None, Some(len)) => format!("len:{len}"),
            (None, None, None) => String::new(),
        };
        SourceMeta {
            origin: origin.to_string(),
            source: source.to_string(),
            key,
            validator,
            length: self.length,
            content_type: self.content_type.clone(),
            last_modified: self.last_modified,
        }
    }
}

fn source_error(f: Failure, timeout: Duration) -> SourceError {
    match f {
        Failure::NotFound => SourceError::NotFound,
        Failure::Auth(s) => SourceError::Auth(s),
        Failure::PreconditionFailed => SourceError::Upstream(412),
        Failure::Status(s) => SourceError::Upstream(s),
        Failure::Network(d) if d == "timed out" => SourceError::Timeout(timeout),
        Failure::Network(d) => SourceError::Network(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, secret: Option<&str>) -> vr_crds::dataplane::S3Source {
        let id = dir.join("id");
        let sec = dir.join("secret");
        std::fs::write(&id, "AKIDEXAMPLE\n").unwrap();
        if let Some(s) = secret {
            std::fs::write(&sec, s).unwrap();
        }
        let yaml = format!(
            "name: bucket\nbucket: media\nendpoint: http://127.0.0.1:9\nforcePathStyle: true\nkey: 'raw/${{name}}.mp4'\ncredentials:\n  accessKeyIdFile: {}\n  secretAccessKeyFile: {}\n",
            id.display(),
            sec.display()
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn a_missing_secret_file_fails_the_compile_naming_the_field_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            S3Source::compile(&config(dir.path(), None), Duration::from_secs(5), None).unwrap_err();
        assert_eq!(err.0, "credentials.secretAccessKeyFile");
        assert!(!err.1.contains("AKIDEXAMPLE"), "{}", err.1);
    }

    #[tokio::test]
    async fn keys_that_could_climb_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = S3Source::compile(
            &config(dir.path(), Some("s3cr3t")),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        let caps = |v: &str| vec![("name".to_string(), v.to_string())];
        assert_eq!(s.key(&caps("a")).unwrap(), "raw/a.mp4");
        assert!(matches!(s.key(&caps("../x")), Err(SourceError::BadPath(_))));
        assert_eq!(s.display_key("raw/a.mp4"), "s3://media/raw/a.mp4");
    }

    #[tokio::test]
    async fn a_presigned_url_is_signed_for_the_configured_lifetime_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let s = S3Source::compile(
            &config(dir.path(), Some("s3cr3t")),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        let url = s.presign_get("raw/a.mp4", SystemTime::now()).await.unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:9/media/raw/a.mp4?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=3600"), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        assert!(
            url.contains("AKIDEXAMPLE"),
            "the access key id is part of a presigned URL"
        );
        assert!(!url.contains("s3cr3t"), "{url}");
    }
}
