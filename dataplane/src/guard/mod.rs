//! What may run: URL signatures checked before any work, scoped admin tokens and the audit log,
//! and the transform slots that shed load. Held by the process state and the compiled config,
//! used by the edge and the pipeline.

pub mod admission;
pub mod auth;
pub mod signing;
