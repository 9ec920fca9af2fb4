//! Optional URL signing: HMAC-SHA256 over the path and the canonical query, several keys for
//! rotation, optional expiry.
