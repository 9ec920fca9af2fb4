//! The contract between the operator and the data plane: plain data types, no client, no server.
//!
//! * [`contract`] — every name one side writes and another reads: Kubernetes labels, names and
//!   annotations, HTTP headers ([`contract::headers`]), metric names and label keys
//!   ([`contract::metrics`]).
//! * [`media`] — the vocabulary of a transformation (modes, fits, formats, times) shared by the
//!   URL API, derivatives and the config model.
//! * [`dataplane`] — the rendered data-plane config (what a versioned ConfigMap holds and what
//!   `vr-dataplane --config FILE` reads), with one [`dataplane::DataPlaneConfig::validate`] that
//!   reports every error with its path.
//! * [`resources`] — the custom resources users write (`VideoResizerConfig`, `Derivative`) and
//!   their CRDs.
//! * [`render`] — the pure function from those resources to a validated, hashed data-plane
//!   config document.
//! * [`rollout`] — the canary rollout policy and the rollout state recorded in status.
//! * [`reference`] — Markdown reference pages generated from the CRD schema.

pub mod contract;
pub mod dataplane;
pub mod media;
pub mod reference;
pub mod render;
pub mod resources;
pub mod rollout;

pub use dataplane::{ConfigError, DataPlaneConfig, ValidationErrors};
