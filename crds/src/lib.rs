//! The contract between the operator and the data plane: plain data types, no client, no server.
//!
//! * [`media`] — the vocabulary of a transformation (modes, fits, formats, times) shared by the
//!   URL API, derivatives and the config model.
//! * [`dataplane`] — the rendered data-plane config (what a versioned ConfigMap holds and what
//!   `vr-dataplane --config FILE` reads), with one [`dataplane::DataPlaneConfig::validate`] that
//!   reports every error with its path.

pub mod contract;
pub mod dataplane;
pub mod media;

pub use dataplane::{ConfigError, DataPlaneConfig, ValidationErrors};
