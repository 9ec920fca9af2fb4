//! The rollout state machine, pure: from the rollout policy, the request annotations, the last
//! recorded rollout state and (when a window just ended) an analysis result, to the pointer
//! (stable, canary, weight), the new rollout state, the revision history and the events.
//!
//! No I/O and no clock: the caller passes `now` and the analysis result, so every transition
//! is a unit test. All state lives in `status` (`rollout`, `heldBack`, `history`), so a new
//! leader resumes at the same step with the same counters.
//!
//! Transitions, one module per phase, in the order [`step`] runs them:
//!
//! * **Requests** ([`requests`]; annotations, consumed once acted on): rollback-to-N (skips
//!   analysis), retry, then promote and abort of a running rollout; `paused: "true"` holds the
//!   step while present.
//! * **Bake** ([`bake`]): after a promotion the new stable revision is watched for
//!   `bakeSeconds` against the absolute limits.
//! * **Start** ([`start`]): the spec renders to content that is neither the stable revision
//!   nor held back → the canary gets `steps[0].weight`. A rollout of other content in progress
//!   is `Replaced`. With no stable revision yet, or no steps, the new revision takes all
//!   traffic at once.
//! * **Window** ([`canary`]): every analysis window's verdict is tallied (`failureLimit`,
//!   `consecutiveErrorLimit`; inconclusive neither passes nor fails). Data-plane health (ready
//!   pods below the rollout's baseline, container restarts above it) fails at once.
//! * **Advance** ([`canary`]): a step whose pause has passed with at least one passing window
//!   at this step, the latest window passing, moves to the next weight; after the last step
//!   the canary is **promoted** (stable := canary).
//! * **Fail** ([`end`]): weight 0 at once, the revision is `RolledBack` with the numbers that
//!   failed it, its content is held back until the spec changes (a new generation) or a retry
//!   is asked.

mod bake;
mod canary;
mod decision;
mod end;
mod history;
mod requests;
mod start;

pub use decision::{Input, Output};
pub use history::HISTORY_LIMIT;

use decision::stable_only;
use std::ops::ControlFlow;

/// One step of the rollout state machine.
pub fn step(input: Input<'_>) -> Output {
    let prev = input.prev;
    let mut out = Output {
        pointer: stable_only(input.stable.as_ref().unwrap_or(&input.target)),
        rollout: prev.rollout.clone(),
        held_back: prev.held_back.clone(),
        history: prev.history.clone(),
        consumed: Vec::new(),
        events: Vec::new(),
        rolled_back: None,
        promoted: false,
        wake_after: None,
        started: false,
    };
    // A held-back revision is lifted by a new generation.
    if out
        .held_back
        .as_ref()
        .is_some_and(|h| h.generation != input.generation)
    {
        out.held_back = None;
    }
    if requests::rollback_to(&input, &mut out).is_break() {
        return out;
    }
    requests::retry(&input, &mut out);
    // The revision serving stable traffic; with none yet the target takes everything.
    let Some(stable) = input.stable.clone() else {
        start::first_revision(&input, &mut out);
        return out;
    };
    if bake::resume(&input, &stable, &mut out).is_break()
        || start::nothing_to_roll_out(&input, &stable, &mut out).is_break()
    {
        return out;
    }
    let ControlFlow::Continue((ro, window)) = start::running_rollout(&input, &stable, &mut out)
    else {
        return out;
    };
    let ControlFlow::Continue(ro) = requests::end_rollout(&input, &stable, ro, &mut out) else {
        return out;
    };
    canary::canary(&input, &stable, ro, window, &mut out);
    out
}

#[cfg(test)]
mod tests;
