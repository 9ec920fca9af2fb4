//! Byte-bounded LRU bookkeeping shared by the memory and disk layers: recency order, sizes and
//! the tag index used by purge.

use super::key::CacheKey;
use super::meta::Meta;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One indexed object; `value` is what the layer keeps beside the metadata.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub meta: Meta,
    pub size: u64,
    pub value: V,
    tick: u64,
}

/// Index of a layer. Not thread-safe: layers wrap it in a mutex held only for bookkeeping.
#[derive(Debug)]
pub(crate) struct Lru<V> {
    entries: HashMap<CacheKey, Entry<V>>,
    /// Recency: smallest tick = least recently used.
    order: BTreeMap<u64, CacheKey>,
    tags: HashMap<String, HashSet<CacheKey>>,
    bytes: u64,
    next_tick: u64,
}

impl<V> Lru<V> {
    pub fn new() -> Self {
        Lru {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tags: HashMap::new(),
            bytes: 0,
            next_tick: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// Looks `key` up and marks it most recently used.
    pub fn get(&mut self, key: &CacheKey) -> Option<&Entry<V>> {
        let tick = self.tick();
        let entry = self.entries.get_mut(key)?;
        self.order.remove(&entry.tick);
        entry.tick = tick;
        self.order.insert(tick, *key);
        Some(entry)
    }

    /// Inserts (or replaces) `key` as most recently used; returns the replaced entry.
    pub fn insert(&mut self, key: CacheKey, meta: Meta, size: u64, value: V) -> Option<Entry<V>> {
        let old = self.remove(&key);
        let tick = self.tick();
        for tag in &meta.tags {
            self.tags.entry(tag.clone()).or_default().insert(key);
        }
        self.order.insert(tick, key);
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                meta,
                size,
                value,
                tick,
            },
        );
        old
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &CacheKey) -> Option<Entry<V>> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.tick);
        self.bytes -= entry.size;
        for tag in &entry.meta.tags {
            if let Some(set) = self.tags.get_mut(tag) {
                set.remove(key);
                if set.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
        Some(entry)
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(CacheKey, Entry<V>)> {
        let (_, key) = self.order.first_key_value()?;
        let key = *key;
        self.remove(&key).map(|e| (key, e))
    }

    /// Keys of every entry carrying `tag`.
    pub fn tagged(&self, tag: &str) -> Vec<CacheKey> {
        self.tags
            .get(tag)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::KeyParts;
    use std::time::UNIX_EPOCH;

    fn key(n: &str) -> CacheKey {
        CacheKey::derive(&KeyParts {
            origin: "o",
            source: "s",
            source_key: n,
            validator: "v",
            variant: "x",
        })
    }

    fn meta(tags: &[&str]) -> Meta {
        Meta {
            content_type: "video/mp4".into(),
            length: 0,
            status: 200,
            created: UNIX_EPOCH,
            expires: UNIX_EPOCH,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            etag: "\"e\"".into(),
            last_modified: UNIX_EPOCH,
            variant: "x".into(),
            cache_control: None,
        }
    }

    #[test]
    fn pop_lru_returns_the_least_recently_used_entry() {
        let mut l = Lru::new();
        l.insert(key("a"), meta(&[]), 1, ());
        l.insert(key("b"), meta(&[]), 2, ());
        l.insert(key("c"), meta(&[]), 3, ());
        assert_eq!(l.bytes(), 6);
        l.get(&key("a"));
        assert_eq!(l.pop_lru().map(|(k, _)| k), Some(key("b")));
        assert_eq!(l.pop_lru().map(|(k, _)| k), Some(key("c")));
        assert_eq!(l.pop_lru().map(|(k, _)| k), Some(key("a")));
        assert!(l.pop_lru().is_none());
        assert_eq!(l.bytes(), 0);
    }

    #[test]
    fn replacing_an_entry_updates_bytes_and_tags() {
        let mut l = Lru::new();
        l.insert(key("a"), meta(&["t1", "t1"]), 5, ());
        let old = l.insert(key("a"), meta(&["t2"]), 7, ());
        assert_eq!(old.map(|e| e.size), Some(5));
        assert_eq!(l.bytes(), 7);
        assert_eq!(l.len(), 1);
        assert!(l.tagged("t1").is_empty());
        assert_eq!(l.tagged("t2"), vec![key("a")]);
        l.remove(&key("a"));
        assert!(l.tagged("t2").is_empty());
        assert!(l.tags.is_empty());
    }
}
