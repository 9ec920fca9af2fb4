//! Local directory source: template → relative path confined to the canonical root.
//!
//! Confinement is checked twice: the relative path is refused if it could climb (absolute,
//! `..`, backslash, NUL, empty segments), then the joined path is canonicalised (symlinks
//! resolved) and must still lie under the canonical root and be a regular file. A symlink
//! inside the root that points inside the root works; one that points outside is refused.

use super::rules::{check_relative, Template};
use super::{SourceError, SourceMeta};
use crate::body::{self, Body};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tokio::io::AsyncReadExt;

/// A compiled local source.
#[derive(Debug)]
pub(super) struct LocalSource {
    /// Canonical root directory.
    root: PathBuf,
    template: Template,
}

/// A file found under the root.
#[derive(Debug)]
pub(super) struct LocalFile {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
}

impl LocalSource {
    /// Compiles the source; `root` must exist and be a directory (errors are messages for
    /// the config path of the failing field, returned as `(field, message)`).
    pub fn compile(
        cfg: &vr_crds::dataplane::LocalSource,
    ) -> Result<LocalSource, (&'static str, String)> {
        let template = Template::parse(&cfg.path).map_err(|m| ("path", m))?;
        let root = std::fs::canonicalize(&cfg.root)
            .map_err(|e| ("root", format!("cannot open directory {:?}: {e}", cfg.root)))?;
        if !root.is_dir() {
            return Err(("root", format!("{:?} is not a directory", cfg.root)));
        }
        Ok(LocalSource { root, template })
    }

    /// The relative path for these captures (decoded text, substituted as is).
    pub fn key(&self, captures: &[(String, String)]) -> Result<String, SourceError> {
        let rel = self
            .template
            .expand(|name| Ok::<_, SourceError>(super::capture(captures, name).to_string()))?;
        check_relative(&rel).map_err(|r| SourceError::BadPath(r.0))?;
        Ok(rel)
    }

    /// Finds the file for `key` (from [`LocalSource::key`]).
    pub async fn find(&self, key: &str) -> Result<LocalFile, SourceError> {
        let joined = self.root.join(key);
        let canonical = tokio::fs::canonicalize(&joined).await.map_err(io_error)?;
        if !canonical.starts_with(&self.root) {
            return Err(SourceError::BadPath(
                "the file resolves outside the source root",
            ));
        }
        let md = tokio::fs::metadata(&canonical).await.map_err(io_error)?;
        if !md.is_file() {
            return Err(SourceError::NotFound);
        }
        Ok(LocalFile {
            path: canonical,
            len: md.len(),
            modified: md.modified().ok(),
        })
    }

    /// Opens the file for `key` and streams it whole.
    pub async fn open(&self, key: &str) -> Result<(LocalFile, Body), SourceError> {
        let found = self.find(key).await?;
        let file = tokio::fs::File::open(&found.path).await.map_err(io_error)?;
        // Trust the open handle, not the earlier stat: the file may have been replaced.
        let md = file.metadata().await.map_err(io_error)?;
        if !md.is_file() {
            return Err(SourceError::NotFound);
        }
        let found = LocalFile {
            len: md.len(),
            modified: md.modified().ok(),
            ..found
        };
        let reader = file.take(found.len);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, body::FILE_CHUNK);
        Ok((found, body::stream(stream)))
    }
}

impl LocalFile {
    /// Metadata for the file; the validator is size + modification time in nanoseconds.
    pub fn meta(&self, origin: &str, source: &str, key: &str) -> SourceMeta {
        let nanos = self
            .modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        SourceMeta {
            origin: origin.to_string(),
            source: source.to_string(),
            key: key.to_string(),
            validator: format!("{}-{nanos}", self.len),
            length: Some(self.len),
            content_type: content_type_of(&self.path).map(str::to_string),
            last_modified: self.modified,
        }
    }
}

fn io_error(e: io::Error) -> SourceError {
    const ENAMETOOLONG: i32 = nix::errno::Errno::ENAMETOOLONG as i32;
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => SourceError::NotFound,
        _ if e.raw_os_error() == Some(ENAMETOOLONG) => SourceError::NotFound,
        _ => SourceError::Io(e.kind().to_string()),
    }
}

/// Content type by file extension (the common video, audio and image containers).
pub(super) fn content_type_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" => "video/mp4",
        "m4v" => "video/x-m4v",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => return None,
    })
}
