//! HTTP delivery of a stored object: `Range` (single range, 416), `HEAD`, `ETag`,
//! `If-None-Match`, `If-Modified-Since`, `Last-Modified`. OWNER: cache helper.
