//! Canary statistics for video-resizer: sequential, anytime-valid decisions on whether a canary
//! config revision is worse than the stable one, from the numbers the data planes expose.
//!
//! Pure: no I/O, no clock, no Kubernetes. The operator scrapes (or queries) the data planes at
//! every look, turns the deltas into a [`Look`], adds it to the rollout's [`Evidence`] and asks
//! [`decide`] what to do. Every look may be the one that decides; the error rates stated in
//! [`decision`] hold however many looks are taken. `docs/canary-statistics.md` explains the
//! method, the error rates and the knobs.
//!
//! - [`confidence`]: confidence sequences for a rate (beta-binomial mixture martingales);
//! - [`errors`]: canary vs stable error rates with a tolerated increase;
//! - [`latency`]: canary vs stable latency per pod, per kind, per time block, on histograms;
//! - [`decision`]: the policy, the evidence and the combined decision.

pub mod confidence;
pub mod decision;
pub mod errors;
pub mod latency;

pub use decision::{
    decide, failing_rules, outcome, Decision, Evidence, LimitEvidence, Look, Outcome, Policy,
    PolicyError, Rule,
};
pub use errors::{Counts, ErrorClass};
pub use latency::{Histogram, HistogramError, LatencyEvidence, PodLatency, TRANSFORM};
