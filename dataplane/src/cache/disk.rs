//! Local-disk cache layer: one file per object plus a JSON metadata sidecar, written through
//! temp files and renames, indexed in memory, LRU bounded by total bytes.
//!
//! Layout: `dir/<first 2 hex>/<hex>.obj` and `dir/<first 2 hex>/<hex>.meta`; temp files are
//! `dir/<2 hex>/.tmp-<hex>-<random>` in the same directory so a rename is atomic.

use super::lru::Lru;
use super::meta::read_at;
use super::{count_eviction, lock, publish, CacheError, CacheKey, Layer, LayerStats, Meta};
use super::{Payload, Stored};
use crate::body::FILE_CHUNK;
use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const NAME: &str = "disk";
const OBJ_SUFFIX: &str = ".obj";
const META_SUFFIX: &str = ".meta";
const TMP_PREFIX: &str = ".tmp-";

/// The disk layer.
///
/// Guarantees:
/// - a reader never sees a partial object: data and metadata are written to temp files,
///   synced, then renamed into place under the index lock, and the index is updated last;
/// - after a crash, [`DiskLayer::open`] deletes temp files, halves without their other half,
///   unreadable metadata and objects whose length disagrees with their metadata;
/// - total bytes never exceed `max_bytes` (least recently used objects are evicted first;
///   an object larger than `max_bytes` is not stored);
/// - a returned [`Payload::File`] is already open, so eviction while it streams is harmless.
///
/// Blocking filesystem work runs on tokio's blocking pool.
pub struct DiskLayer {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

struct State {
    lru: Lru<()>,
    evictions: u64,
}

/// A temp file removed on drop unless it was renamed into place.
struct TempPath(PathBuf);

impl TempPath {
    fn new(shard: &Path, hex: &str) -> Self {
        let suffix: u64 = rand::random();
        TempPath(shard.join(format!("{TMP_PREFIX}{hex}-{suffix:016x}")))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        // After a successful rename the path no longer exists and this is a harmless NotFound.
        let _ = fs::remove_file(&self.0);
    }
}

fn is_shard_name(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `src` to the new file `tmp`, synced; returns its length.
fn write_object(tmp: &Path, src: &Stored) -> io::Result<u64> {
    match src {
        Stored::Bytes(b) => {
            let mut f = File::create_new(tmp)?;
            f.write_all(b)?;
            f.sync_all()?;
            Ok(b.len() as u64)
        }
        Stored::File(path) => {
            // A hard link costs nothing; across filesystems fall back to a copy.
            if fs::hard_link(path, tmp).is_err() {
                fs::copy(path, tmp)?;
            }
            let f = File::open(tmp)?;
            f.sync_all()?;
            Ok(f.metadata()?.len())
        }
        Stored::Open { file, len } => {
            let mut out = File::create_new(tmp)?;
            let mut buf = vec![0u8; FILE_CHUNK];
            let mut pos = 0u64;
            while pos < *len {
                let want = usize::try_from(*len - pos).map_or(buf.len(), |r| r.min(buf.len()));
                let n = read_at(file, &mut buf[..want], pos)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                out.write_all(&buf[..n])?;
                pos += n as u64;
            }
            out.sync_all()?;
            Ok(*len)
        }
    }
}

impl Inner {
    fn shard(&self, hex: &str) -> PathBuf {
        self.dir.join(&hex[..2])
    }

    fn paths(&self, key: &CacheKey) -> (PathBuf, PathBuf) {
        let hex = key.hex();
        let shard = self.shard(&hex);
        (
            shard.join(format!("{hex}{OBJ_SUFFIX}")),
            shard.join(format!("{hex}{META_SUFFIX}")),
        )
    }

    /// Deletes both files of `key` (metadata first, so a crash leaves an orphan object that
    /// open() cleans, never metadata pointing at nothing useful).
    fn delete_files(&self, key: &CacheKey) {
        let (obj, meta) = self.paths(key);
        for p in [meta, obj] {
            if let Err(e) = remove_if_exists(&p) {
                tracing::warn!(layer = NAME, key = %key, error = %e, "cache: deleting a file failed");
            }
        }
    }

    fn publish(&self, st: &State) {
        publish(&self.metrics, NAME, st.lru.bytes(), st.lru.len());
    }

    fn evict_to_bound(&self, st: &mut State) {
        while st.lru.bytes() > self.max_bytes {
            let Some((key, _)) = st.lru.pop_lru() else {
                break;
            };
            self.delete_files(&key);
            st.evictions += 1;
            count_eviction(&self.metrics, NAME);
        }
    }

    fn get(&self, key: &CacheKey) -> Result<Option<(Meta, Payload)>, CacheError> {
        let mut st = lock(&self.state);
        let Some(entry) = st.lru.get(key) else {
            return Ok(None);
        };
        let meta = entry.meta.clone();
        let (obj, _) = self.paths(key);
        // Opened under the lock: a concurrent eviction or replacement either happens before
        // (we see the new state) or after (our open file keeps the old bytes readable).
        let file = match File::open(&obj) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(layer = NAME, key = %key, "cache: object file vanished; dropping entry");
                st.lru.remove(key);
                self.delete_files(key);
                self.publish(&st);
                return Ok(None);
            }
            Err(e) => return Err(CacheError::io(NAME, "open object")(e)),
        };
        let len = file
            .metadata()
            .map_err(CacheError::io(NAME, "stat object"))?
            .len();
        if len != meta.length {
            tracing::warn!(layer = NAME, key = %key, len, expected = meta.length, "cache: object length disagrees with its metadata; dropping entry");
            st.lru.remove(key);
            self.delete_files(key);
            self.publish(&st);
            return Ok(None);
        }
        Ok(Some((
            meta,
            Payload::File {
                file: Arc::new(file),
                len,
            },
        )))
    }

    fn put(&self, key: &CacheKey, meta: &Meta, src: &Stored) -> Result<(), CacheError> {
        let expected = match src {
            Stored::Bytes(b) => b.len() as u64,
            Stored::File(p) => fs::metadata(p)
                .map_err(CacheError::io(NAME, "stat source file"))?
                .len(),
            Stored::Open { len, .. } => *len,
        };
        if expected > self.max_bytes {
            return Ok(());
        }
        let hex = key.hex();
        let shard = self.shard(&hex);
        fs::create_dir_all(&shard).map_err(CacheError::io(NAME, "create shard directory"))?;

        let tmp_obj = TempPath::new(&shard, &hex);
        let len = write_object(&tmp_obj.0, src).map_err(CacheError::io(NAME, "write object"))?;
        if len > self.max_bytes {
            return Ok(());
        }
        let mut meta = meta.clone();
        meta.length = len;
        let json = serde_json::to_vec(&meta).map_err(|source| CacheError::Meta {
            layer: NAME,
            key: hex.clone(),
            source,
        })?;
        let tmp_meta = TempPath::new(&shard, &hex);
        (|| {
            let mut f = File::create_new(&tmp_meta.0)?;
            f.write_all(&json)?;
            f.sync_all()
        })()
        .map_err(CacheError::io(NAME, "write metadata"))?;

        let (obj, meta_path) = self.paths(key);
        let mut st = lock(&self.state);
        // Old metadata goes first: a crash in between leaves an orphan object, which open()
        // deletes, never new metadata beside an old object or the reverse.
        let committed = remove_if_exists(&meta_path)
            .and_then(|()| fs::rename(&tmp_obj.0, &obj))
            .and_then(|()| fs::rename(&tmp_meta.0, &meta_path));
        if let Err(e) = committed {
            st.lru.remove(key);
            self.delete_files(key);
            self.publish(&st);
            return Err(CacheError::io(NAME, "rename into place")(e));
        }
        st.lru.insert(*key, meta, len, ());
        self.evict_to_bound(&mut st);
        self.publish(&st);
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> bool {
        let mut st = lock(&self.state);
        let removed = st.lru.remove(key).is_some();
        if removed {
            self.delete_files(key);
        }
        self.publish(&st);
        removed
    }

    fn purge_tag(&self, tag: &str) -> usize {
        let mut st = lock(&self.state);
        let keys = st.lru.tagged(tag);
        for k in &keys {
            st.lru.remove(k);
            self.delete_files(k);
        }
        self.publish(&st);
        keys.len()
    }

    /// Rebuilds the index from the directory, cleaning what a crash may have left behind.
    fn scan(&self) -> Result<(), CacheError> {
        fs::create_dir_all(&self.dir).map_err(CacheError::io(NAME, "create cache directory"))?;
        let mut found = Vec::new();
        let entries =
            fs::read_dir(&self.dir).map_err(CacheError::io(NAME, "list cache directory"))?;
        for entry in entries {
            let entry = entry.map_err(CacheError::io(NAME, "list cache directory"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_shard_name(name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.scan_shard(&entry.path(), name, &mut found);
            }
        }
        // Least recently written first, so the oldest objects are evicted first.
        found.sort_by_key(|(mtime, ..)| *mtime);
        let mut st = lock(&self.state);
        for (_, key, meta) in found {
            let len = meta.length;
            st.lru.insert(key, meta, len, ());
        }
        self.evict_to_bound(&mut st);
        self.publish(&st);
        Ok(())
    }

    fn scan_shard(
        &self,
        shard: &Path,
        shard_name: &str,
        found: &mut Vec<(SystemTime, CacheKey, Meta)>,
    ) {
        let entries = match fs::read_dir(shard) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(layer = NAME, shard = shard_name, error = %e, "cache: listing a shard failed; skipped");
                return;
            }
        };
        // hex → (object present, metadata present)
        let mut halves: HashMap<String, (bool, bool)> = HashMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                if let Err(e) = remove_if_exists(&entry.path()) {
                    tracing::warn!(layer = NAME, file = name, error = %e, "cache: deleting a temp file failed");
                }
            } else if let Some(hex) = name.strip_suffix(OBJ_SUFFIX) {
                halves.entry(hex.to_owned()).or_default().0 = true;
            } else if let Some(hex) = name.strip_suffix(META_SUFFIX) {
                halves.entry(hex.to_owned()).or_default().1 = true;
            }
        }
        for (hex, (has_obj, has_meta)) in halves {
            let obj = shard.join(format!("{hex}{OBJ_SUFFIX}"));
            let meta_path = shard.join(format!("{hex}{META_SUFFIX}"));
            let key = hex
                .parse::<CacheKey>()
                .ok()
                .filter(|k| k.hex() == hex && hex.starts_with(shard_name));
            let loaded = match key {
                Some(key) if has_obj && has_meta => load_entry(&obj, &meta_path)
                    .map(|(mtime, meta)| (mtime, key, meta))
                    .map_err(|e| tracing::warn!(layer = NAME, key = %key, error = %e, "cache: dropping an unreadable entry")),
                _ => Err(()),
            };
            match loaded {
                Ok(entry) => found.push(entry),
                Err(()) => {
                    for p in [&meta_path, &obj] {
                        if let Err(e) = remove_if_exists(p) {
                            tracing::warn!(layer = NAME, file = %p.display(), error = %e, "cache: deleting a stray file failed");
                        }
                    }
                }
            }
        }
    }
}

/// Reads one entry's metadata and checks the object against it.
fn load_entry(obj: &Path, meta_path: &Path) -> io::Result<(SystemTime, Meta)> {
    let meta: Meta = serde_json::from_slice(&fs::read(meta_path)?).map_err(io::Error::other)?;
    let stat = fs::metadata(obj)?;
    if stat.len() != meta.length {
        return Err(io::Error::other(format!(
            "object has {} bytes, metadata says {}",
            stat.len(),
            meta.length
        )));
    }
    Ok((stat.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta))
}

impl DiskLayer {
    /// Opens (creating if needed) the cache under `dir`, holding at most `max_bytes`.
    ///
    /// The index is rebuilt from the directory, so a restart keeps the cache; temp files,
    /// orphaned halves and inconsistent entries are deleted; if the directory holds more than
    /// `max_bytes`, the oldest objects are evicted.
    ///
    /// Errors: the directory cannot be created or listed.
    pub async fn open(
        dir: impl AsRef<Path>,
        max_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Self, CacheError> {
        let inner = Arc::new(Inner {
            dir: dir.as_ref().to_path_buf(),
            max_bytes,
            metrics,
            state: Mutex::new(State {
                lru: Lru::new(),
                evictions: 0,
            }),
        });
        let scanning = inner.clone();
        tokio::task::spawn_blocking(move || scanning.scan())
            .await
            .map_err(|_| CacheError::Task { layer: NAME })??;
        Ok(DiskLayer { inner })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, CacheError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|_| CacheError::Task { layer: NAME })?
    }
}

impl Layer for DiskLayer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn accepts(&self, len: u64) -> bool {
        len <= self.inner.max_bytes
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<(Meta, Payload)>, CacheError>> {
        let key = *key;
        Box::pin(self.blocking(move |i| i.get(&key)))
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        meta: &'a Meta,
        src: &'a Stored,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        let (key, meta, src) = (*key, meta.clone(), src.clone());
        Box::pin(self.blocking(move |i| i.put(&key, &meta, &src)))
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, CacheError>> {
        let key = *key;
        Box::pin(self.blocking(move |i| Ok(i.remove(&key))))
    }

    fn purge_tag<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<usize, CacheError>> {
        let tag = tag.to_owned();
        Box::pin(self.blocking(move |i| Ok(i.purge_tag(&tag))))
    }

    fn stats(&self) -> LayerStats {
        let st = lock(&self.inner.state);
        LayerStats {
            layer: NAME,
            objects: st.lru.len() as u64,
            bytes: st.lru.bytes(),
            max_bytes: self.inner.max_bytes,
            evictions: st.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testutil::*;

    async fn open(dir: &Path, max: u64) -> DiskLayer {
        DiskLayer::open(dir, max, Arc::new(Metrics::new()))
            .await
            .unwrap()
    }

    /// Every regular file under `dir`, relative names.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for shard in fs::read_dir(dir).unwrap().flatten() {
            if shard.file_type().unwrap().is_dir() {
                for f in fs::read_dir(shard.path()).unwrap().flatten() {
                    out.push(f.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn disk_layer_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let m = meta(4, &["video-a"]);
        {
            let d = open(dir.path(), 1000).await;
            d.put(&key("a"), &m, &bytes(4, 9)).await.unwrap();
        }
        let d = open(dir.path(), 1000).await;
        let (got, p) = d.get(&key("a")).await.unwrap().unwrap();
        assert_eq!(got, m);
        assert_eq!(payload_bytes(&p).await, vec![9; 4]);
        assert_eq!(d.stats().bytes, 4);
        // The tag index is rebuilt too.
        assert_eq!(d.purge_tag("video-a").await.unwrap(), 1);
        assert!(files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_partial_write_is_never_served_and_is_cleaned_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), 1000).await;
        d.put(&key("good"), &meta(3, &[]), &bytes(3, 1))
            .await
            .unwrap();
        // What a crash can leave: a temp file, an object without metadata, metadata without
        // an object, and an object shorter than its metadata says.
        for (name, data) in [
            ("partial", None),
            ("orphan-obj", Some(false)),
            ("orphan-meta", Some(true)),
        ] {
            let hex = key(name).hex();
            let shard = dir.path().join(&hex[..2]);
            fs::create_dir_all(&shard).unwrap();
            let file = match data {
                None => format!("{TMP_PREFIX}{hex}-0000000000000001"),
                Some(false) => format!("{hex}{OBJ_SUFFIX}"),
                Some(true) => format!("{hex}{META_SUFFIX}"),
            };
            fs::write(shard.join(file), b"xy").unwrap();
        }
        let hex = key("short").hex();
        let shard = dir.path().join(&hex[..2]);
        fs::create_dir_all(&shard).unwrap();
        fs::write(shard.join(format!("{hex}{OBJ_SUFFIX}")), b"x").unwrap();
        fs::write(
            shard.join(format!("{hex}{META_SUFFIX}")),
            serde_json::to_vec(&meta(5, &[])).unwrap(),
        )
        .unwrap();

        assert!(d.get(&key("partial")).await.unwrap().is_none());
        drop(d);
        let d = open(dir.path(), 1000).await;
        let good = key("good").hex();
        assert_eq!(
            files(dir.path()),
            vec![
                format!("{good}{META_SUFFIX}"),
                format!("{good}{OBJ_SUFFIX}")
            ]
        );
        for k in ["partial", "orphan-obj", "orphan-meta", "short"] {
            assert!(d.get(&key(k)).await.unwrap().is_none(), "{k}");
        }
        assert_eq!(d.stats().objects, 1);
    }

    #[tokio::test]
    async fn lru_eviction_keeps_disk_bytes_within_max() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), 100).await;
        for i in 0..10u8 {
            d.put(&key(&i.to_string()), &meta(30, &[]), &bytes(30, i))
                .await
                .unwrap();
            assert!(d.stats().bytes <= 100);
        }
        let s = d.stats();
        assert_eq!((s.objects, s.bytes, s.evictions), (3, 90, 7));
        assert_eq!(files(dir.path()).len(), 6, "evicted files are deleted");
        assert!(d.get(&key("9")).await.unwrap().is_some());
        assert!(d.get(&key("0")).await.unwrap().is_none());
        // An object bigger than the whole layer is not stored and evicts nothing.
        d.put(&key("huge"), &meta(101, &[]), &bytes(101, 0))
            .await
            .unwrap();
        assert!(d.get(&key("huge")).await.unwrap().is_none());
        assert_eq!(d.stats().objects, 3);
    }

    #[tokio::test]
    async fn reopening_with_a_smaller_bound_evicts_down_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), 1000).await;
        for i in 0..5u8 {
            d.put(&key(&i.to_string()), &meta(30, &[]), &bytes(30, i))
                .await
                .unwrap();
        }
        drop(d);
        let d = open(dir.path(), 70).await;
        assert!(d.stats().bytes <= 70);
        assert_eq!(files(dir.path()).len(), 4);
    }

    #[tokio::test]
    async fn concurrent_puts_of_one_key_are_safe() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(open(dir.path(), 1 << 20).await);
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let d = d.clone();
                tokio::spawn(async move {
                    let len = 1000 + usize::from(i);
                    d.put(&key("same"), &meta(len as u64, &[]), &bytes(len, i))
                        .await
                        .unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let (m, p) = d.get(&key("same")).await.unwrap().unwrap();
        let data = payload_bytes(&p).await;
        assert_eq!(data.len() as u64, m.length);
        let fill = data[0];
        assert_eq!(data.len(), 1000 + usize::from(fill));
        assert!(data.iter().all(|b| *b == fill));
        assert_eq!(d.stats().objects, 1);
        assert_eq!(files(dir.path()).len(), 2, "no temp file is left behind");
    }

    #[tokio::test]
    async fn an_open_payload_survives_eviction_while_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), 1000).await;
        d.put(&key("a"), &meta(3, &[]), &bytes(3, 5)).await.unwrap();
        let (_, p) = d.get(&key("a")).await.unwrap().unwrap();
        assert!(d.remove(&key("a")).await.unwrap());
        assert!(files(dir.path()).is_empty());
        assert_eq!(payload_bytes(&p).await, vec![5; 3]);
    }

    #[tokio::test]
    async fn disk_stores_from_a_temp_file_the_caller_then_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(&dir.path().join("cache"), 1000).await;
        let src = dir.path().join("transform.out");
        fs::write(&src, b"encoded").unwrap();
        d.put(&key("a"), &meta(0, &[]), &Stored::File(src.clone()))
            .await
            .unwrap();
        fs::remove_file(&src).unwrap();
        let (m, p) = d.get(&key("a")).await.unwrap().unwrap();
        assert_eq!(m.length, 7, "length comes from the bytes stored");
        assert_eq!(payload_bytes(&p).await, b"encoded");
    }

    #[tokio::test]
    async fn disk_stores_from_an_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), 1 << 20).await;
        let data: Vec<u8> = (0..FILE_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let src = Stored::Open {
            file: Arc::new(f),
            len: data.len() as u64,
        };
        d.put(&key("a"), &meta(0, &[]), &src).await.unwrap();
        let (_, p) = d.get(&key("a")).await.unwrap().unwrap();
        assert_eq!(payload_bytes(&p).await, data);
    }
}
