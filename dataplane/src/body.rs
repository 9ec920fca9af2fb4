//! The one response body type of the data plane, and constructors for it.
//!
//! Everything the service answers with — cached bytes, a file range, a live transform, a JSON
//! error — is a [`Body`], so layers can be composed without generic plumbing.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use std::io;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The response body type.
pub type Body = BoxBody<Bytes, io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body of bytes already in memory (zero-copy: `Bytes` is reference counted).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON body.
pub fn json(value: &serde_json::Value) -> Body {
    full(serde_json::to_vec(value).unwrap_or_default())
}

/// A body from a stream of chunks.
pub fn stream<S>(s: S) -> Body
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static,
{
    BodyExt::boxed(StreamBody::new(s.map(|r| r.map(Frame::data))))
}

/// Chunk size used when streaming files.
pub const FILE_CHUNK: usize = 256 * 1024;

/// Streams `len` bytes of the file at `path` starting at `offset`.
///
/// The file is opened before returning, so a missing file is an error here rather than a
/// truncated response; an unlinked-but-open file (evicted meanwhile) still streams whole.
pub async fn file_range(path: &Path, offset: u64, len: u64) -> io::Result<Body> {
    let mut file = tokio::fs::File::open(path).await?;
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset)).await?;
    }
    let reader = file.take(len);
    let s = tokio_util::io::ReaderStream::with_capacity(reader, FILE_CHUNK);
    Ok(stream(s))
}
