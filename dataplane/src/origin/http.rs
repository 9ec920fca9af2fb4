//! HTTP(S) source: URL template with a literal host, auth from files, HEAD for size, GET
//! spooled to a temp file (limit enforced while streaming) or streamed through.
//!
//! Redirects are never followed (a 3xx is an upstream error naming the source), so a source
//! can never send us to another host; captures are percent-encoded per path segment and the
//! expanded URL must keep the template's scheme, host and port.

use super::rules::{encode_segments, Template};
use super::{SourceError, SourceMeta};
use crate::body::{self, Body};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest::Url;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// A compiled HTTP source.
#[derive(Debug)]
pub(super) struct HttpSource {
    template: Template,
    /// `scheme://host:port` of the template, which every expanded URL must keep.
    authority: (String, String, Option<u16>),
    auth: Option<(HeaderName, HeaderValue)>,
    /// Bound on connecting + response headers, and on each wait for a body chunk.
    pub timeout: Duration,
}

/// What a response's headers say about the object.
#[derive(Debug, Clone, Default)]
pub(super) struct HttpMeta {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub length: Option<u64>,
    pub content_type: Option<String>,
}

impl HttpSource {
    /// Compiles the source. Errors are `(field, message)` for the config path; messages
    /// never contain the content of auth files.
    pub fn compile(
        cfg: &vr_crds::dataplane::HttpSource,
        default_timeout: Duration,
    ) -> Result<HttpSource, (&'static str, String)> {
        let template = Template::parse(&cfg.url).map_err(|m| ("url", m))?;
        let prefix = template.literal_prefix();
        let after_scheme = prefix.split_once("://").map_or("", |(_, rest)| rest);
        if !after_scheme.contains('/') {
            return Err((
                "url",
                "the host must be literal: placeholders may only appear after the first '/' of the path".into(),
            ));
        }
        // Parse the template with placeholders filled, to learn and check its authority.
        let sample = template
            .expand(|_| Ok::<_, ()>("x".to_string()))
            .map_err(|()| ("url", "cannot expand".to_string()))?;
        let url = Url::parse(&sample).map_err(|e| ("url", format!("is not a valid URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err((
                "url",
                "credentials in the URL are refused; use auth with a file".into(),
            ));
        }
        let host = url
            .host_str()
            .ok_or(("url", "has no host".to_string()))?
            .to_string();
        let authority = (url.scheme().to_string(), host, url.port_or_known_default());
        let auth = match &cfg.auth {
            None => None,
            Some(vr_crds::dataplane::HttpAuth::Bearer { token_file }) => {
                let token = read_secret(token_file).map_err(|m| ("auth.tokenFile", m))?;
                let value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    (
                        "auth.tokenFile",
                        "the token is not a valid header value".to_string(),
                    )
                })?;
                Some((http::header::AUTHORIZATION, value))
            }
            Some(vr_crds::dataplane::HttpAuth::Header { name, value_file }) => {
                let name = HeaderName::try_from(name.as_str())
                    .map_err(|_| ("auth.name", "is not a valid header name".to_string()))?;
                let value = read_secret(value_file).map_err(|m| ("auth.valueFile", m))?;
                let value = HeaderValue::try_from(value).map_err(|_| {
                    (
                        "auth.valueFile",
                        "the value is not a valid header value".to_string(),
                    )
                })?;
                Some((name, value))
            }
        };
        let auth = auth.map(|(n, mut v)| {
            v.set_sensitive(true);
            (n, v)
        });
        let timeout = cfg
            .timeout_seconds
            .map_or(default_timeout, |s| Duration::from_secs(s.into()));
        Ok(HttpSource {
            template,
            authority,
            auth,
            timeout,
        })
    }

    /// The URL for these captures (each capture percent-encoded per segment).
    pub fn key(&self, captures: &[(String, String)]) -> Result<Url, SourceError> {
        let text = self.template.expand(|name| {
            encode_segments(super::capture(captures, name)).map_err(|r| SourceError::BadPath(r.0))
        })?;
        let url = Url::parse(&text)
            .map_err(|_| SourceError::BadPath("the expanded source URL is not valid"))?;
        let same = url.scheme() == self.authority.0
            && url.host_str() == Some(self.authority.1.as_str())
            && url.port_or_known_default() == self.authority.2;
        if !same {
            return Err(SourceError::BadPath(
                "the expanded source URL changes the host",
            ));
        }
        Ok(url)
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &Url,
    ) -> reqwest::RequestBuilder {
        let mut req = client.request(method, url.clone());
        if let Some((name, value)) = &self.auth {
            req = req.header(name.clone(), value.clone());
        }
        req
    }

    /// Sends a request and waits for the response headers within the timeout; maps every
    /// status other than 200 to an error.
    async fn send(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &Url,
    ) -> Result<reqwest::Response, SourceError> {
        self.send_request(self.request(client, method, url)).await
    }

    async fn send_request(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SourceError> {
        let fut = req.send();
        let resp = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| SourceError::Timeout(self.timeout))?
            .map_err(|e| request_error(&e, self.timeout))?;
        match status_error(resp.status()) {
            None => Ok(resp),
            Some(e) => Err(e),
        }
    }

    /// HEAD (or, where HEAD is not allowed, the headers of a GET whose body is not read).
    pub async fn head(&self, client: &reqwest::Client, url: &Url) -> Result<HttpMeta, SourceError> {
        match self.send(client, reqwest::Method::HEAD, url).await {
            Ok(resp) => Ok(HttpMeta::from_headers(resp.headers())),
            Err(SourceError::Upstream(405 | 501)) => {
                let resp = self.send(client, reqwest::Method::GET, url).await?;
                Ok(HttpMeta::from_headers(resp.headers()))
            }
            Err(e) => Err(e),
        }
    }

    /// GETs the object into a new temp file under `temp_dir`, refusing more than `limit`
    /// bytes (the temp file is deleted on every error).
    pub async fn spool(
        &self,
        client: &reqwest::Client,
        url: &Url,
        limit: u64,
        temp_dir: &Path,
    ) -> Result<(HttpMeta, tempfile::TempPath), SourceError> {
        let mut resp = self.send(client, reqwest::Method::GET, url).await?;
        let mut meta = HttpMeta::from_headers(resp.headers());
        if let Some(len) = meta.length {
            if len > limit {
                return Err(SourceError::TooLarge(Some(len)));
            }
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
            let chunk = tokio::time::timeout(self.timeout, resp.chunk())
                .await
                .map_err(|_| SourceError::Timeout(self.timeout))?
                .map_err(|e| request_error(&e, self.timeout))?;
            let Some(chunk) = chunk else { break };
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

    /// GETs the object and streams the body through (each chunk within the timeout).
    pub async fn open(
        &self,
        client: &reqwest::Client,
        url: &Url,
    ) -> Result<(HttpMeta, Body), SourceError> {
        let resp = self.send(client, reqwest::Method::GET, url).await?;
        let meta = HttpMeta::from_headers(resp.headers());
        Ok((meta, pump(resp, self.timeout, 0, None)))
    }

    /// Streams bytes `start .. start + count` of an object of `total` bytes, asking the origin
    /// for exactly them (`Range: bytes=start-end`), so a 1-byte range costs the origin one
    /// byte, not the object. A 206 must say `Content-Range: bytes start-end/total`; a 200 (an
    /// origin without ranges) must be the whole `total`, and is skipped to `start` and cut
    /// after `count` bytes. Anything else — the object changed size since its metadata was
    /// read — is an upstream error, before any byte is sent.
    pub async fn open_range(
        &self,
        client: &reqwest::Client,
        url: &Url,
        (start, count, total): (u64, u64, u64),
    ) -> Result<Body, SourceError> {
        let end = start + count.max(1) - 1;
        let req = self
            .request(client, reqwest::Method::GET, url)
            .header(http::header::RANGE, format!("bytes={start}-{end}"));
        let resp = self.send_request(req).await?;
        let text = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let length: Option<u64> = text(http::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        match resp.status().as_u16() {
            206 => {
                let want = format!("bytes {start}-{end}/{total}");
                if text(http::header::CONTENT_RANGE).as_deref() != Some(want.as_str()) {
                    return Err(SourceError::Upstream(206));
                }
                Ok(pump(resp, self.timeout, 0, Some(count)))
            }
            _ if length == Some(total) => Ok(pump(resp, self.timeout, start, Some(count))),
            s => Err(SourceError::Upstream(s)),
        }
    }
}

/// Streams `resp`'s body through a task (so the body handed to hyper is Send + Sync), each
/// chunk within `timeout`, dropping the first `skip` bytes and ending after `take` bytes.
/// When the client goes away the receiver is dropped, `send` fails and the task ends,
/// dropping the upstream response.
fn pump(mut resp: reqwest::Response, timeout: Duration, skip: u64, take: Option<u64>) -> Body {
    let (mut skip, mut left) = (skip, take.unwrap_or(u64::MAX));
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // A task pumps the body so the stream handed to hyper is Send + Sync; when the
    // client goes away the receiver is dropped, `send` fails and the task ends,
    // dropping the upstream response.
    tokio::spawn(async move {
        while left > 0 {
            let item = match tokio::time::timeout(timeout, resp.chunk()).await {
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "source stopped sending",
                )),
                Ok(Err(e)) => Err(std::io::Error::other(describe(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(mut b))) => {
                    let drop_now = usize::try_from(skip).map_or(b.len(), |s| s.min(b.len()));
                    skip -= drop_now as u64;
                    let _ = b.split_to(drop_now);
                    let keep = usize::try_from(left).map_or(b.len(), |l| l.min(b.len()));
                    b.truncate(keep);
                    left -= keep as u64;
                    if b.is_empty() {
                        continue;
                    }
                    Ok(b)
                }
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    body::stream(ChannelStream(rx))
}

impl HttpMeta {
    fn from_headers(h: &HeaderMap) -> HttpMeta {
        let text = |name: http::header::HeaderName| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        HttpMeta {
            etag: text(http::header::ETAG),
            last_modified: text(http::header::LAST_MODIFIED),
            length: text(http::header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            content_type: text(http::header::CONTENT_TYPE),
        }
    }

    /// Source metadata. The validator is the ETag, else Last-Modified + Content-Length,
    /// else the length alone; empty when the source gives none of them.
    pub fn meta(&self, origin: &str, source: &str, key: &str) -> SourceMeta {
        let validator = match (&self.etag, &self.last_modified, self.length) {
            (Some(etag), _, _) => format!("etag:{etag}"),
            (None, Some(lm), Some(len)) => format!("lm:{lm};len:{len}"),
            (None, Some(lm), None) => format!("lm:{lm}"),
            (None, None, Some(len)) => format!("len:{len}"),
            (None, None, None) => String::new(),
        };
        SourceMeta {
            origin: origin.to_string(),
            source: source.to_string(),
            key: key.to_string(),
            validator,
            length: self.length,
            content_type: self.content_type.clone(),
            last_modified: self
                .last_modified
                .as_deref()
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        }
    }
}

/// Maps a response status to an error (`None` for 200 and 203).
fn status_error(status: StatusCode) -> Option<SourceError> {
    match status.as_u16() {
        // 206 only ever answers our own `Range` (open_range checks its Content-Range).
        200 | 203 | 206 => None,
        404 | 410 => Some(SourceError::NotFound),
        401 | 403 => Some(SourceError::Auth(status.as_u16())),
        s => Some(SourceError::Upstream(s)),
    }
}

fn request_error(e: &reqwest::Error, timeout: Duration) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout(timeout)
    } else {
        SourceError::Network(describe(e))
    }
}

/// The innermost cause of a client error (never the URL, never a header).
fn describe(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("connection failed: {cause}")
    } else {
        cause.to_string()
    }
}

/// Reads a secret file, trimming trailing whitespace. The message names the failure, never
/// the content.
fn read_secret(path: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {}", e.kind()))?;
    let trimmed = text.trim_end();
    if trimmed.is_empty() {
        return Err(format!("{path:?} is empty"));
    }
    Ok(trimmed.to_string())
}

/// A body stream fed by the pump task.
pub(super) struct ChannelStream(pub(super) mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_util::Stream for ChannelStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
