//! What a cache entry is made of: its metadata, the payload a lookup returns, and the finished
//! transform a store accepts.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// Metadata stored with every cached object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// `Content-Type` of the object.
    pub content_type: String,
    /// Length of the object in bytes.
    pub length: u64,
    /// HTTP status the object is served with (ranges and conditionals apply to 200 only).
    pub status: u16,
    /// When the object was stored.
    #[serde(with = "unix_secs")]
    pub created: SystemTime,
    /// When the object stops being served (TTL by status class, enforced on read).
    #[serde(with = "unix_secs")]
    pub expires: SystemTime,
    /// Cache tags (`video-<source>`, `video-derivative-<name>`, …) for purge.
    pub tags: Vec<String>,
    /// A complete entity-tag as sent in `ETag` (`"abc"` or `W/"abc"`); a bare value is quoted
    /// when served.
    pub etag: String,
    /// `Last-Modified` of the object.
    #[serde(with = "unix_secs")]
    pub last_modified: SystemTime,
    /// `Variant::canonical()` or `"original"` (for the admin API and debugging).
    pub variant: String,
    /// `Cache-Control` to send, when the caller fixed one at store time.
    pub cache_control: Option<String>,
}

impl Meta {
    /// Whether the object must no longer be served at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires <= now
    }
}

/// Serializes a `SystemTime` as whole seconds since the Unix epoch (times before it become 0).
mod unix_secs {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        s.serialize_u64(secs)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = u64::deserialize(d)?;
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| D::Error::custom("timestamp out of range"))
    }
}

/// The bytes of a cache hit.
#[derive(Clone, Debug)]
pub enum Payload {
    /// In memory; slicing is zero-copy.
    Bytes(Bytes),
    /// An already open file of `len` bytes. Because it is open, eviction or replacement of the
    /// cache entry while it streams is harmless. Read it with positional reads only (the file
    /// offset may be shared by clones).
    File { file: Arc<std::fs::File>, len: u64 },
}

impl Payload {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole payload in memory (used to fill a memory layer from a lower one).
    pub async fn to_bytes(&self) -> io::Result<Bytes> {
        match self {
            Payload::Bytes(b) => Ok(b.clone()),
            Payload::File { file, len } => {
                let (file, len) = (file.clone(), *len);
                tokio::task::spawn_blocking(move || read_range(&file, 0, len))
                    .await
                    .map_err(io::Error::other)?
                    .map(Bytes::from)
            }
        }
    }
}

/// A finished object handed to [`crate::cache::Cache::put`].
#[derive(Clone, Debug)]
pub enum Stored {
    /// In memory.
    Bytes(Bytes),
    /// A complete temp file the layers may hard-link, copy or read; the caller deletes it
    /// afterwards (layers never keep a reference to this path).
    File(PathBuf),
    /// An open file of `len` bytes (a hit in a lower layer filling the upper ones); layers read
    /// it with positional reads.
    Open { file: Arc<std::fs::File>, len: u64 },
}

impl From<&Payload> for Stored {
    fn from(p: &Payload) -> Self {
        match p {
            Payload::Bytes(b) => Stored::Bytes(b.clone()),
            Payload::File { file, len } => Stored::Open {
                file: file.clone(),
                len: *len,
            },
        }
    }
}

/// Reads into `buf` at `offset` without touching the file's shared offset.
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// Reads exactly `len` bytes at `offset` (blocking); a short file is `UnexpectedEof`.
pub(crate) fn read_range(file: &std::fs::File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("range too large for memory"))?;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = read_at(file, &mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn meta_serializes_times_as_unix_seconds() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let m = Meta {
            content_type: "video/mp4".into(),
            length: 3,
            status: 200,
            created: t,
            expires: t + Duration::from_secs(60),
            tags: vec!["video-a".into()],
            etag: "\"e\"".into(),
            last_modified: t,
            variant: "original".into(),
            cache_control: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["created"], 1_700_000_000u64);
        assert_eq!(v["expires"], 1_700_000_060u64);
        let back: Meta = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn read_range_reads_positionally_and_reports_short_files() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"hello world").unwrap();
        assert_eq!(read_range(&f, 6, 5).unwrap(), b"world");
        assert_eq!(read_range(&f, 0, 5).unwrap(), b"hello");
        let err = read_range(&f, 6, 6).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
