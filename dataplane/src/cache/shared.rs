//! The shared cache layer: variants in an S3 bucket, below memory and disk, shared by every
//! data-plane process that points at the bucket.
//!
//! Layout under the configured prefix `P`:
//! - `P v/<key>`: the variant's bytes (with its `Content-Type`);
//! - `P m/<key>.json`: its [`Meta`] (resolved parameters, content type, length, tags, created
//!   and expiry times) — written after the bytes, so a reader that finds metadata finds bytes;
//! - `P t/<tag>/<key>`: an empty object per tag (the tag index: a purge lists one tag's prefix,
//!   never the whole bucket);
//! - `P purges/<millis>-<random>`: a purge record holding a tag, which every process follows
//!   to drop that tag from its own memory and disk layers.
//!
//! Guarantees: writes are first-writer-wins (`If-None-Match: *`), so two processes finishing
//! the same variant never interleave bytes; TTL is enforced on read by [`super::Cache`]; an
//! unreachable bucket never fails a request — operations become misses, are counted in
//! `vr_shared_cache_errors`, and the state change is logged once (not per request), with
//! operations skipped for [`BACKOFF`] after a failure.

use super::{lock, CacheError, CacheKey, Layer, LayerStats, Meta, Payload, Stored};
use crate::metrics::Metrics;
use crate::s3::{Connection, Failure};
use arc_swap::ArcSwapOption;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const NAME: &str = "s3";

/// After a failure caused by the bucket being unreachable, operations are skipped (misses,
/// no-op stores) for this long, so a dead bucket costs requests nothing.
pub const BACKOFF: Duration = Duration::from_secs(5);

/// Objects up to this size are read into memory; larger ones into an unlinked temp file.
const IN_MEMORY: u64 = 8 << 20;

/// Purge records older than this are deleted by whichever process sees them.
const PURGE_RECORD_TTL: Duration = Duration::from_secs(3600);

/// A compiled `cache.shared` block (built with each config revision).
#[derive(Debug)]
pub struct SharedBucket {
    conn: Connection,
    prefix: String,
    timeout: Duration,
    poll: Duration,
    /// The block it was compiled from (to tell a changed block from a re-installed one).
    source: vr_crds::dataplane::SharedCache,
}

impl SharedBucket {
    /// Compiles the block; errors are `(field, message)` relative to `cache.shared`.
    pub fn compile(
        cfg: &vr_crds::dataplane::SharedCache,
    ) -> Result<SharedBucket, (&'static str, String)> {
        Ok(SharedBucket {
            conn: Connection::compile(&cfg.bucket, None)?,
            prefix: cfg.prefix.clone(),
            timeout: Duration::from_secs(cfg.timeout_seconds.into()),
            poll: Duration::from_secs(cfg.purge_poll_seconds.max(1).into()),
            source: cfg.clone(),
        })
    }

    /// Whether `other` points at the same bucket with the same settings.
    fn same(&self, other: &SharedBucket) -> bool {
        self.source == other.source
            && self.conn.credentials_fingerprint == other.conn.credentials_fingerprint
    }

    fn body_key(&self, key: &CacheKey) -> String {
        format!("{}v/{}", self.prefix, key.hex())
    }
    fn meta_key(&self, key: &CacheKey) -> String {
        format!("{}m/{}.json", self.prefix, key.hex())
    }
    fn tag_prefix(&self, tag: &str) -> String {
        format!("{}t/{tag}/", self.prefix)
    }
    fn purges_prefix(&self) -> String {
        format!("{}purges/", self.prefix)
    }

    async fn bounded<T, E>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, aws_sdk_s3::error::SdkError<E>>>,
    ) -> Result<T, OpError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(OpError(op, Failure::Network("timed out".into()))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(OpError(op, Failure::of(&e))),
        }
    }

    async fn get_bytes(&self, op: &'static str, key: String) -> Result<Option<Bytes>, OpError> {
        let req = self
            .conn
            .client
            .get_object()
            .bucket(&self.conn.bucket)
            .key(key)
            .send();
        match self.bounded(op, req).await {
            Ok(out) => {
                let fut = out.body.collect();
                let data = tokio::time::timeout(self.timeout, fut)
                    .await
                    .map_err(|_| OpError(op, Failure::Network("timed out".into())))?
                    .map_err(|_| OpError(op, Failure::Network("body broke off".into())))?;
                Ok(Some(data.into_bytes()))
            }
            Err(OpError(_, Failure::NotFound)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `key` unless it exists (first writer wins). `Ok(false)`: it existed.
    async fn put_new(
        &self,
        op: &'static str,
        key: String,
        body: ByteStream,
        content_type: Option<&str>,
    ) -> Result<bool, OpError> {
        let mut req = self
            .conn
            .client
            .put_object()
            .bucket(&self.conn.bucket)
            .key(key)
            .if_none_match("*")
            .body(body);
        if let Some(ct) = content_type {
            req = req.content_type(ct);
        }
        match self.bounded(op, req.send()).await {
            Ok(_) => Ok(true),
            // 409: a concurrent conditional write of the same key is in progress; it wins.
            Err(OpError(_, Failure::PreconditionFailed | Failure::Status(409))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, op: &'static str, key: String) -> Result<(), OpError> {
        let req = self
            .conn
            .client
            .delete_object()
            .bucket(&self.conn.bucket)
            .key(key)
            .send();
        match self.bounded(op, req).await {
            Ok(_) | Err(OpError(_, Failure::NotFound)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Keys under `prefix` (after `start_after`), following continuation tokens.
    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Vec<String>, OpError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .conn
                .client
                .list_objects_v2()
                .bucket(&self.conn.bucket)
                .prefix(prefix);
            if let Some(t) = &token {
                req = req.continuation_token(t);
            } else if let Some(s) = start_after {
                req = req.start_after(s);
            }
            let page = self.bounded("list", req.send()).await?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn meta(&self, key: &CacheKey) -> Result<Option<Meta>, OpError> {
        let Some(json) = self.get_bytes("get metadata", self.meta_key(key)).await? else {
            return Ok(None);
        };
        // Unreadable metadata (another version, a torn write) reads as a miss.
        Ok(serde_json::from_slice(&json).ok())
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, OpError> {
        let meta = self.meta(key).await?;
        // Metadata first: once it is gone, readers miss even if the rest is still there.
        self.delete("delete metadata", self.meta_key(key)).await?;
        self.delete("delete object", self.body_key(key)).await?;
        if let Some(m) = &meta {
            for tag in &m.tags {
                let k = format!("{}{}", self.tag_prefix(tag), key.hex());
                self.delete("delete tag index", k).await?;
            }
        }
        Ok(meta.is_some())
    }
}

/// A failed bucket operation: which, and how.
#[derive(Debug)]
struct OpError(&'static str, Failure);

impl OpError {
    fn into_cache(self) -> CacheError {
        CacheError::Io {
            layer: NAME,
            op: self.0,
            source: io::Error::other(self.1.to_string()),
        }
    }
}

/// The layer. Holds no bucket until a config revision with `cache.shared` is installed
/// ([`SharedLayer::configure`]); until then it is disabled and skipped.
pub struct SharedLayer {
    bucket: ArcSwapOption<SharedBucket>,
    metrics: Arc<Metrics>,
    /// Where large objects read from the bucket are spooled (unlinked at once).
    work_dir: PathBuf,
    /// The layers above this one, which purge records from other processes are applied to.
    upper: Vec<Arc<dyn Layer>>,
    up: AtomicBool,
    skip_until: Mutex<Option<Instant>>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SharedLayer {
    pub fn new(
        metrics: Arc<Metrics>,
        work_dir: PathBuf,
        upper: Vec<Arc<dyn Layer>>,
    ) -> Arc<SharedLayer> {
        metrics.shared_cache_up.set(1);
        Arc::new(SharedLayer {
            bucket: ArcSwapOption::empty(),
            metrics,
            work_dir,
            upper,
            up: AtomicBool::new(true),
            skip_until: Mutex::new(None),
            follower: Mutex::new(None),
        })
    }

    /// Points the layer at `bucket` (or disables it). An unchanged bucket keeps its state; a
    /// new one restarts the purge follower. Must be called inside a tokio runtime.
    pub fn configure(self: &Arc<Self>, bucket: Option<Arc<SharedBucket>>) {
        let current = self.bucket.load_full();
        let unchanged = match (&current, &bucket) {
            (Some(a), Some(b)) => a.same(b),
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return;
        }
        self.bucket.store(bucket.clone());
        let mut follower = lock(&self.follower);
        if let Some(h) = follower.take() {
            h.abort();
        }
        if let Some(b) = bucket {
            tracing::info!(bucket = %b.conn.bucket, prefix = %b.prefix, "shared cache layer configured");
            let weak = Arc::downgrade(self);
            *follower = Some(tokio::spawn(follow_purges(weak, b)));
        }
    }

    /// The bucket, unless none is configured or it failed less than [`BACKOFF`] ago.
    fn usable(&self) -> Option<Arc<SharedBucket>> {
        let b = self.bucket.load_full()?;
        match *lock(&self.skip_until) {
            Some(until) if Instant::now() < until => None,
            _ => Some(b),
        }
    }

    /// Records the outcome of a bucket operation: failures of reachability start a backoff;
    /// the up/down state change is logged once.
    fn observe<T>(&self, r: Result<T, OpError>) -> Result<T, CacheError> {
        match r {
            Ok(v) => {
                if !self.up.swap(true, Ordering::SeqCst) {
                    self.metrics.shared_cache_up.set(1);
                    tracing::info!("shared cache bucket is reachable again");
                }
                *lock(&self.skip_until) = None;
                Ok(v)
            }
            Err(e) => {
                self.metrics.shared_cache_errors.inc();
                let unreachable = matches!(e.1, Failure::Network(_) | Failure::Auth(_))
                    || matches!(e.1, Failure::Status(s) if s >= 500);
                if unreachable {
                    *lock(&self.skip_until) = Some(Instant::now() + BACKOFF);
                    if self.up.swap(false, Ordering::SeqCst) {
                        self.metrics.shared_cache_up.set(0);
                        tracing::warn!(op = e.0, error = %e.1, "shared cache bucket is unreachable; serving goes on without it");
                    }
                }
                Err(e.into_cache())
            }
        }
    }

    async fn get_inner(
        &self,
        b: &SharedBucket,
        key: &CacheKey,
    ) -> Result<Option<(Meta, Payload)>, OpError> {
        let Some(meta) = b.meta(key).await? else {
            return Ok(None);
        };
        let req = b
            .conn
            .client
            .get_object()
            .bucket(&b.conn.bucket)
            .key(b.body_key(key))
            .send();
        let out = match b.bounded("get object", req).await {
            Ok(out) => out,
            Err(OpError(_, Failure::NotFound)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let spool_err =
            |op: &'static str| move |_| OpError(op, Failure::Network("body broke off".into()));
        let payload = if meta.length <= IN_MEMORY {
            let data = tokio::time::timeout(b.timeout, out.body.collect())
                .await
                .map_err(|_| OpError("get object", Failure::Network("timed out".into())))?
                .map_err(spool_err("get object"))?
                .into_bytes();
            Payload::Bytes(data)
        } else {
            let mut file = tempfile::tempfile_in(&self.work_dir).map_err(|e| {
                OpError(
                    "spool object",
                    Failure::Network(format!("temp file: {}", e.kind())),
                )
            })?;
            let mut stream = out.body;
            loop {
                let next = tokio::time::timeout(b.timeout, stream.next())
                    .await
                    .map_err(|_| OpError("get object", Failure::Network("timed out".into())))?;
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(spool_err("get object"))?;
                file.write_all(&chunk).map_err(|e| {
                    OpError(
                        "spool object",
                        Failure::Network(format!("temp file: {}", e.kind())),
                    )
                })?;
            }
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            Payload::File {
                file: Arc::new(file),
                len,
            }
        };
        // A torn or foreign object (length differs from its metadata) is a miss.
        if payload.len() != meta.length {
            return Ok(None);
        }
        Ok(Some((meta, payload)))
    }

    async fn put_inner(
        &self,
        b: &SharedBucket,
        key: &CacheKey,
        meta: &Meta,
        src: &Stored,
    ) -> Result<(), OpError> {
        let body = match src {
            Stored::Bytes(bytes) => ByteStream::from(bytes.clone()),
            Stored::File(path) => ByteStream::from_path(path).await.map_err(|e| {
                OpError("read object", Failure::Network(format!("source file: {e}")))
            })?,
            Stored::Open { file, len } => {
                let p = Payload::File {
                    file: file.clone(),
                    len: *len,
                };
                let data = p.to_bytes().await.map_err(|e| {
                    OpError(
                        "read object",
                        Failure::Network(format!("source file: {}", e.kind())),
                    )
                })?;
                ByteStream::from(data)
            }
        };
        // Tag index first: a purge that races this store still finds the key.
        for tag in &meta.tags {
            let k = format!("{}{}", b.tag_prefix(tag), key.hex());
            b.put_new("put tag index", k, ByteStream::from_static(b""), None)
                .await?;
        }
        b.put_new(
            "put object",
            b.body_key(key),
            body,
            Some(meta.content_type.as_str()),
        )
        .await?;
        let json = serde_json::to_vec(meta).map_err(|e| {
            OpError(
                "encode metadata",
                Failure::Network(format!("metadata: {e}")),
            )
        })?;
        b.put_new(
            "put metadata",
            b.meta_key(key),
            ByteStream::from(json),
            Some("application/json"),
        )
        .await?;
        Ok(())
    }

    async fn purge_inner(&self, b: &SharedBucket, tag: &str) -> Result<usize, OpError> {
        let prefix = b.tag_prefix(tag);
        let mut n = 0;
        for k in b.list(&prefix, None).await? {
            let Some(key) = k
                .strip_prefix(&prefix)
                .and_then(|hex| hex.parse::<CacheKey>().ok())
            else {
                continue;
            };
            if b.remove(&key).await? {
                n += 1;
            }
            b.delete("delete tag index", k).await?;
        }
        // Tell the other processes (they drop the tag from their own layers).
        let record = format!(
            "{}{:015}-{:08x}",
            b.purges_prefix(),
            unix_millis(SystemTime::now()),
            rand::random::<u32>()
        );
        b.put_new(
            "put purge record",
            record,
            ByteStream::from(Bytes::from(tag.to_string())),
            Some("text/plain"),
        )
        .await?;
        Ok(n)
    }
}

fn unix_millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Follows the purge records other processes write: each new record's tag is purged from
/// this process's upper layers. Records older than [`PURGE_RECORD_TTL`] are deleted.
async fn follow_purges(layer: std::sync::Weak<SharedLayer>, b: Arc<SharedBucket>) {
    let prefix = b.purges_prefix();
    // Only records written from now on: older purges were applied when they happened.
    let mut cursor = format!("{prefix}{:015}", unix_millis(SystemTime::now()));
    let mut ticker = tokio::time::interval(b.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(layer) = layer.upgrade() else { return };
        let keys = match b.list(&prefix, Some(&cursor)).await {
            Ok(k) => k,
            Err(e) => {
                let _ = layer.observe::<()>(Err(e));
                continue;
            }
        };
        let horizon = unix_millis(SystemTime::now()).saturating_sub(PURGE_RECORD_TTL.as_millis());
        for k in keys {
            cursor = k.clone();
            let tag = match b.get_bytes("get purge record", k.clone()).await {
                Ok(Some(t)) => String::from_utf8_lossy(&t).into_owned(),
                _ => continue,
            };
            for upper in &layer.upper {
                match upper.purge_tag(&tag).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(layer = upper.name(), tag = %tag, removed = n, "applied a purge from the shared cache")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(layer = upper.name(), tag = %tag, error = %e, "applying a shared purge failed")
                    }
                }
            }
            let written = k
                .strip_prefix(&prefix)
                .and_then(|r| r.split('-').next())
                .and_then(|m| m.parse::<u128>().ok());
            if written.is_some_and(|w| w < horizon) {
                let _ = b.delete("delete purge record", k).await;
            }
        }
    }
}

impl Layer for SharedLayer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self) -> bool {
        self.bucket.load().is_some()
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<(Meta, Payload)>, CacheError>> {
        Box::pin(async move {
            let Some(b) = self.usable() else {
                return Ok(None);
            };
            let r = self.get_inner(&b, key).await;
            self.observe(r)
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        meta: &'a Meta,
        src: &'a Stored,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let Some(b) = self.usable() else {
                return Ok(());
            };
            let r = self.put_inner(&b, key, meta, src).await;
            self.observe(r)
        })
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let Some(b) = self.usable() else {
                return Ok(false);
            };
            let r = b.remove(key).await;
            self.observe(r)
        })
    }

    fn purge_tag<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<usize, CacheError>> {
        Box::pin(async move {
            // A purge is an explicit admin action: try even during a backoff.
            let Some(b) = self.bucket.load_full() else {
                return Ok(0);
            };
            let r = self.purge_inner(&b, tag).await;
            self.observe(r)
        })
    }

    fn stats(&self) -> LayerStats {
        // The bucket's occupancy is not tracked (it is shared and unbounded here).
        LayerStats {
            layer: NAME,
            objects: 0,
            bytes: 0,
            max_bytes: 0,
            evictions: 0,
        }
    }
}
