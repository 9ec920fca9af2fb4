//! video-resizer operator: `VideoResizerConfig` + `Derivative` → validated, rendered,
//! immutable versioned ConfigMaps and the data-plane workload (Deployment, Service, HPA, PDB,
//! RBAC), with kstatus conditions and Events.
//!
//! Reconcile is classify → compute → act: `reconcile::plan` is a pure function from the spec,
//! the derivatives and the observed children to the desired children, orphans, status and
//! events; `controller` performs it with server-side apply under one field manager.

pub mod analysis;
pub mod api_requests;
pub mod children;
pub mod controller;
pub mod lease;
pub mod metrics;
pub mod reconcile;
pub mod rollout;
