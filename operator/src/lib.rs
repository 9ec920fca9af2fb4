//! video-resizer operator, the acting side: `VideoResizerConfig` + `Derivative` → validated,
//! rendered, immutable versioned ConfigMaps and the data-plane workload (Deployment, Service,
//! HPA, PDB, RBAC), with kstatus conditions and Events.
//!
//! Reconcile is classify → compute → act. Everything that decides lives in the pure core crate
//! ([`vr_operator_core`]: the plan, the rollout state machine, the canary verdict); this crate
//! reads the world from watch-fed stores ([`controller::stores`]), measures analysis windows
//! ([`analysis`] providers), performs the plan with server-side apply under one field manager
//! ([`controller`]), holds the leader Lease ([`lease`]) and exports its own metrics
//! ([`metrics`], [`api_requests`]).

pub mod analysis;
pub mod api_requests;
pub mod controller;
pub mod lease;
pub mod metrics;

pub use vr_operator_core as core;
