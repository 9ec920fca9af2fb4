//! `vr-operator` binary (wired up with the controller).
fn main() {}
