//! The canary verdict, pure: [`sequential`] adds every look's numbers to the rollout's
//! evidence and decides with `vr_verdict` (sequential, anytime-valid: see
//! `docs/canary-statistics.md`), [`Tally`] turns the sequence of results into what the rollout
//! does (continue, fail, or provider error), and [`policy`] says when the next look is due. No
//! I/O, no clock: the caller passes the time and what a provider measured ([`Sample`]).

pub mod policy;
pub mod sequential;
mod tally;
mod window;

pub use sequential::{error_result, look_result, policy_of, restore};
pub use tally::{Decision, Tally};
pub use window::{refused_canary, Sample, Window};
