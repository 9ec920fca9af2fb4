//! One operation (stat, fetch, input, open) on the sources of a route: the sources in order,
//! the metadata cache, the size limit, and one attempt per source kind.

use super::compile::{CompiledSource, Key, Kind, Rule};
use super::error::{OriginError, SourceError};
use super::{http, local, presign, s3, Fetched, Origins, Route, SourceMeta};
use crate::body::Body;
use crate::error::Classify;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Stat,
    Fetch,
    /// Like `Fetch`, but an S3 source may answer with a presigned URL instead of a file.
    Input,
    Open,
    /// Bytes `(start, count)` of an object of `total` bytes (`(start, count, total)`),
    /// streamed with the range forwarded to the origin.
    OpenRange(u64, u64, u64),
}

pub(super) enum Done {
    Meta(SourceMeta),
    Fetched(Fetched),
    Opened(SourceMeta, Body),
    /// Part of an object: its metadata is not known from the answer alone.
    Range(Body),
}

impl Origins {
    /// Tries the sources in order: on not-found and on retryable failure the next one,
    /// otherwise stop with the error.
    pub(super) async fn run(&self, route: &Route, op: Op) -> Result<Done, OriginError> {
        let Some(rule) = self.rule(route) else {
            return Err(OriginError::NotFound {
                origin: route.origin.clone(),
            });
        };
        let mut first_failure: Option<OriginError> = None;
        for src in &rule.sources {
            let key = match &src.kind {
                Kind::Local(l) => l.key(&route.captures).map(Key::Local),
                Kind::Http(h) => h.key(&route.captures).map(Key::Http),
                Kind::S3(s) => s.key(&route.captures).map(Key::S3),
            }
            .map_err(|e| e.named(&rule.name, &src.name, self.max_input))?;
            let meta_key = (
                rule.name.clone(),
                src.name.clone(),
                src.fingerprint,
                key.as_string(),
            );
            // A source known not to have the object is skipped by every operation, so
            // `fetch` and `open` pick the same source `stat` reported.
            match self.state.cached(&meta_key, self.revalidate) {
                Some(Some(meta)) if op == Op::Stat => {
                    self.check_size(&meta)?;
                    return Ok(Done::Meta(meta));
                }
                Some(None) => continue,
                _ => {}
            }
            match self.try_source(rule, src, &key, op).await {
                Ok(Some(done)) => {
                    let meta = match &done {
                        Done::Meta(m) | Done::Opened(m, _) => m,
                        Done::Fetched(f) => &f.meta,
                        Done::Range(_) => return Ok(done),
                    };
                    self.state
                        .remember(meta_key, Some(meta.clone()), self.revalidate);
                    if op == Op::Stat {
                        self.check_size(meta)?;
                    }
                    return Ok(done);
                }
                Ok(None) => self.state.remember(meta_key, None, self.revalidate),
                Err(e) if e.retryable() => {
                    first_failure.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_failure.unwrap_or(OriginError::NotFound {
            origin: rule.name.clone(),
        }))
    }

    fn check_size(&self, meta: &SourceMeta) -> Result<(), OriginError> {
        match meta.length {
            Some(len) if len > self.max_input => Err(OriginError::TooLarge {
                origin: meta.origin.clone(),
                source: meta.source.clone(),
                limit: self.max_input,
                size: Some(len),
            }),
            _ => Ok(()),
        }
    }

    /// One attempt on one source, by its kind.
    pub(super) async fn attempt(
        &self,
        rule: &Rule,
        src: &CompiledSource,
        key: &Key,
        op: Op,
    ) -> Result<Done, SourceError> {
        let (origin, source) = (rule.name.as_str(), src.name.as_str());
        match (&src.kind, key) {
            (Kind::Local(l), Key::Local(k)) => self.attempt_local(l, k, op, origin, source).await,
            (Kind::Http(h), Key::Http(url)) => self.attempt_http(h, url, op, origin, source).await,
            (Kind::S3(s), Key::S3(k)) => self.attempt_s3(s, k, op, origin, source).await,
            // A key is always built by its own source's kind.
            _ => Err(SourceError::Io("source kind mismatch".into())),
        }
    }

    async fn attempt_local(
        &self,
        l: &local::LocalSource,
        k: &str,
        op: Op,
        origin: &str,
        source: &str,
    ) -> Result<Done, SourceError> {
        match op {
            Op::Stat => Ok(Done::Meta(l.find(k).await?.meta(origin, source, k))),
            Op::Fetch | Op::Input => {
                let found = l.find(k).await?;
                if found.len > self.max_input {
                    return Err(SourceError::TooLarge(Some(found.len)));
                }
                Ok(Done::Fetched(Fetched {
                    meta: found.meta(origin, source, k),
                    path: found.path,
                    url: None,
                    _spool: None,
                }))
            }
            Op::Open => {
                let (found, body) = l.open(k).await?;
                Ok(Done::Opened(found.meta(origin, source, k), body))
            }
            // Local originals are served from the file itself, with ranges, by the caller.
            Op::OpenRange(..) => Err(SourceError::Io(
                "ranges of local sources are read from the file".into(),
            )),
        }
    }

    async fn attempt_http(
        &self,
        h: &http::HttpSource,
        url: &reqwest::Url,
        op: Op,
        origin: &str,
        source: &str,
    ) -> Result<Done, SourceError> {
        let client = &self.state.client;
        let k = url.as_str();
        match op {
            Op::Stat => Ok(Done::Meta(
                h.head(client, url).await?.meta(origin, source, k),
            )),
            Op::Fetch | Op::Input => {
                let head = h.head(client, url).await?;
                if let Some(len) = head.length.filter(|l| *l > self.max_input) {
                    return Err(SourceError::TooLarge(Some(len)));
                }
                let (meta, spool) = h
                    .spool(client, url, self.max_input, &self.state.temp_dir)
                    .await?;
                Ok(Done::Fetched(Fetched {
                    meta: meta.meta(origin, source, k),
                    path: spool.to_path_buf(),
                    url: None,
                    _spool: Some(spool),
                }))
            }
            Op::Open => {
                let (meta, body) = h.open(client, url).await?;
                Ok(Done::Opened(meta.meta(origin, source, k), body))
            }
            Op::OpenRange(start, count, total) => Ok(Done::Range(
                h.open_range(client, url, (start, count, total)).await?,
            )),
        }
    }

    async fn attempt_s3(
        &self,
        s: &Arc<s3::S3Source>,
        k: &str,
        op: Op,
        origin: &str,
        source: &str,
    ) -> Result<Done, SourceError> {
        let shown = || s.display_key(k);
        match op {
            Op::Stat => Ok(Done::Meta(s.head(k).await?.meta(origin, source, shown()))),
            Op::Input if s.presign.transform_input => {
                let head = s.head(k).await?;
                if let Some(len) = head.length.filter(|l| *l > self.max_input) {
                    return Err(SourceError::TooLarge(Some(len)));
                }
                let url = self.presigned(origin, source, s, k).await?;
                Ok(Done::Fetched(Fetched {
                    meta: head.meta(origin, source, shown()),
                    path: PathBuf::new(),
                    url: Some(url),
                    _spool: None,
                }))
            }
            Op::Fetch | Op::Input => {
                let (meta, spool) = s.spool(k, self.max_input, &self.state.temp_dir).await?;
                Ok(Done::Fetched(Fetched {
                    meta: meta.meta(origin, source, shown()),
                    path: spool.to_path_buf(),
                    url: None,
                    _spool: Some(spool),
                }))
            }
            Op::Open => {
                let (meta, body) = s.open(k).await?;
                Ok(Done::Opened(meta.meta(origin, source, shown()), body))
            }
            Op::OpenRange(start, count, total) => {
                Ok(Done::Range(s.open_range(k, (start, count, total)).await?))
            }
        }
    }

    /// A presigned GET URL for `key` of an S3 source, from the process's presign cache.
    pub(super) async fn presigned(
        &self,
        origin: &str,
        source: &str,
        s: &Arc<s3::S3Source>,
        key: &str,
    ) -> Result<Arc<str>, SourceError> {
        let life = presign::Lifetime {
            lifetime: Duration::from_secs(s.presign.lifetime_seconds.into()),
            margin: Duration::from_secs(s.presign.safety_margin_seconds.into()),
        };
        let (src, k) = (s.clone(), key.to_string());
        let sign: presign::Signer = Arc::new(move || {
            let (src, k) = (src.clone(), k.clone());
            Box::pin(async move { src.presign_get(&k, SystemTime::now()).await })
        });
        self.state
            .presign
            .url((origin, source, key, "GET"), life, sign)
            .await
    }
}
