//! `vr-dataplane` binary: parse flags, load config, serve.
fn main() {}
