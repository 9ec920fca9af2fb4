//! The video-resizer operator's core: everything a reconcile decides, as pure functions of
//! data. No Kubernetes client, no HTTP client, no clock, no async: the acting crate
//! (`vr-operator`) reads the world, calls in here, and performs what comes back.
//!
//! Arrows point one way: [`reason`] and [`model`] (the vocabulary and the observed world) ←
//! [`verdict`] (each look → the rollout's evidence → a sequential decision; the look policy) ←
//! [`rollout`] (the canary state machine, phase by phase) ← [`plan`] (revisions, the rollout
//! step, conditions, status and the declared children of one config).
//!
//! Flows that live here:
//! * CR → revision → pointer: [`plan::plan`] renders the spec, numbers the revision
//!   ([`plan::revisions`]) and asks [`rollout::step`] which revisions the pointer names.
//! * Rollout look → verdict → step: [`verdict::policy`] says when a look is due,
//!   [`verdict::look_result`] adds its numbers to the evidence and decides (`vr_verdict`),
//!   [`verdict::Tally`] turns results into what the rollout does, and [`rollout::step`] acts
//!   on it.

pub mod model;
pub mod observe;
pub mod plan;
pub mod reason;
pub mod rollout;
pub mod verdict;

pub use model::{EventSpec, Observed, ObservedRevision, Rev, Settings};
pub use plan::{plan, Plan};
pub use reason::{ConditionType, Reason, Transition};
