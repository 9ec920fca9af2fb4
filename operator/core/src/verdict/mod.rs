//! The canary verdict, pure: [`judge`] turns one window's numbers into a verdict, [`Tally`]
//! turns the sequence of verdicts of a rollout into a decision (continue, fail, or provider
//! error), and [`policy`] says when a window is due and how it is judged (a bake judges only
//! the absolute limits; a canary every pod refused fails). No I/O, no clock: the caller passes
//! the time and the numbers a provider measured ([`Sample`]).
//!
//! This module is the one home of the verdict: the statistics of a window (`judge`), the
//! counting over a rollout (`tally`) and the window policy (`policy`).

mod judge;
pub mod policy;
mod tally;
mod window;

pub use judge::{error_result, judge, no_window_result};
pub use tally::{Decision, Tally};
pub use window::{analyse, refused_canary, Sample, Window};

#[cfg(test)]
mod tests;
