//! Variant cache layers (memory, disk, a shared S3 bucket) and lifetimes by status class.

use super::defaults::*;
use super::S3Bucket;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The shared cache layer: variants stored in an S3 bucket, below memory and disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedCache {
    /// Where the bucket is and how to sign for it.
    #[serde(flatten)]
    pub bucket: S3Bucket,
    /// Key prefix of every object the layer writes (variants, metadata, the tag index).
    #[serde(default = "default_shared_prefix")]
    pub prefix: String,
    /// Timeout of each request to the bucket, in seconds.
    #[serde(default = "default_shared_timeout")]
    pub timeout_seconds: u32,
    /// How often each process looks for purges made through another process, in seconds.
    #[serde(default = "default_purge_poll")]
    pub purge_poll_seconds: u32,
}

/// Cache lifetimes by response status class, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TtlByStatus {
    /// 2xx.
    #[serde(default = "ttl_ok")]
    pub ok: u32,
    /// 3xx.
    #[serde(default = "ttl_redirects")]
    pub redirects: u32,
    /// 4xx.
    #[serde(default = "ttl_client_error")]
    pub client_error: u32,
    /// 5xx.
    #[serde(default = "ttl_server_error")]
    pub server_error: u32,
}

impl Default for TtlByStatus {
    fn default() -> Self {
        TtlByStatus {
            ok: ttl_ok(),
            redirects: ttl_redirects(),
            client_error: ttl_client_error(),
            server_error: ttl_server_error(),
        }
    }
}

impl TtlByStatus {
    /// The lifetime for a status code.
    pub fn for_status(&self, status: u16) -> u32 {
        match status {
            200..=299 => self.ok,
            300..=399 => self.redirects,
            400..=499 => self.client_error,
            _ => self.server_error,
        }
    }
}

/// Variant cache configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    /// Default lifetimes by status class (an origin's `ttl` overrides them).
    #[serde(default)]
    pub ttl: TtlByStatus,
    /// In-memory layer.
    #[serde(default)]
    pub memory: MemoryCache,
    /// On-disk layer (off when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskCache>,
    /// Shared layer in an S3 bucket, below memory and disk (off when omitted). Not part of
    /// the CRD's `spec.cache` (whose credentials are Secret references): the CRD has
    /// `spec.sharedCache`, which the renderer maps here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub shared: Option<SharedCache>,
    /// Prefix of generated cache tags.
    #[serde(default = "default_tag_prefix")]
    pub tag_prefix: String,
    /// How long a source's validator (ETag, Last-Modified, size) is trusted before it is
    /// checked again, in seconds. Cache hits within this window cost no origin request.
    #[serde(default = "default_revalidate")]
    pub source_revalidate_seconds: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: TtlByStatus::default(),
            memory: MemoryCache::default(),
            disk: None,
            shared: None,
            tag_prefix: default_tag_prefix(),
            source_revalidate_seconds: default_revalidate(),
        }
    }
}

/// In-memory cache layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryCache {
    /// Total bytes held (0 disables the layer).
    #[serde(default = "default_memory_bytes")]
    pub max_bytes: u64,
    /// Largest single object held in memory (larger ones live on disk only).
    #[serde(default = "default_memory_object")]
    pub max_object_bytes: u64,
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache {
            max_bytes: default_memory_bytes(),
            max_object_bytes: default_memory_object(),
        }
    }
}

/// On-disk cache layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskCache {
    /// Directory for cached variants (created if missing).
    pub path: String,
    /// Total bytes held; least recently used objects are evicted past it.
    #[serde(default = "default_disk_bytes")]
    pub max_bytes: u64,
}
