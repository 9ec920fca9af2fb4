//! Variant cache: keys, metadata, layers (memory, disk; S3 later) behind one interface, TTL on
//! read, tags and purge. OWNER: cache helper.
