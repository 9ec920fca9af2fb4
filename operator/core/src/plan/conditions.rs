//! Status conditions, set from what the plan decided: `Ready`, kstatus' `Reconciling` and
//! `Stalled`, `Progressing`, `Degraded` and `RolledBack`. A condition's `lastTransitionTime`
//! changes only when its status flips, so re-applying the same spec produces byte-identical
//! status (no write, no self-triggered reconcile).
//!
//! What each state reads as (kstatus, the reading of Flux, `kubectl wait` and cli-utils):
//!
//! | state | `Ready` | `Reconciling` | `Stalled` | kstatus |
//! | --- | --- | --- | --- | --- |
//! | fully rolled out, pods ready | True | False | False | Current |
//! | canary, activation, bake, waiting for pods | False (True while baking) | True | False | InProgress |
//! | the spec's revision rolled back (held back) | False, reason `RolledBack` | False | True | Failed |
//! | invalid spec | False, reason `InvalidSpec` | False | True | Failed |
//!
//! A rolled-back change is never `Ready`: the spec's content does not serve, so
//! `kubectl wait --for=condition=Ready` and kstatus-based tools fail instead of reporting
//! success; the reason and the numbers that failed it are in the message.

use crate::reason::{ConditionType, Reason};
use crate::rollout;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use vr_crds::contract;
use vr_crds::rollout::{RolloutState, RolloutStatus};

/// Cuts `s` to at most `max` bytes (on a character boundary), marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Sets a condition, changing `lastTransitionTime` only when the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: bool,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status_s = if status { "True" } else { "False" };
    let message = truncate(message, 2000);
    match conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(c) => {
            if c.status != status_s {
                c.last_transition_time = Time(now);
            }
            c.status = status_s.into();
            c.reason = reason.as_str().into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.as_str().into(),
            status: status_s.into(),
            reason: reason.as_str().into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Whether `conditions` say `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_.as_str() && c.status == "True")
}

/// What the conditions of a valid spec are set from.
pub struct Facts<'a> {
    /// Number of canary steps configured.
    pub steps: usize,
    pub bake_seconds: u32,
    /// The rollout step's decision.
    pub ro: &'a rollout::Output,
    /// The running canary (a rollout that is not baking), if any.
    pub canary: Option<&'a RolloutStatus>,
    pub ready_replicas: i32,
    /// The pointer this plan applies differs from the observed one.
    pub pointer_changes: bool,
    /// `r<N>` of the revision serving stable traffic.
    pub active_label: &'a str,
    pub generation: Option<i64>,
    pub now: Timestamp,
}

/// Sets every condition of a valid spec. Each condition is set once per pass (an override
/// set after a first value would flip `lastTransitionTime` on every pass).
pub fn update(conditions: &mut Vec<Condition>, f: &Facts<'_>) {
    degradation(conditions, f);
    let (mut ready, progressing) = availability_of(f);
    let mut reconciling = progressing.clone();
    let stalled = match held_back(conditions, f) {
        Some(message) => {
            // The change failed and nothing happens until the spec changes or a retry is
            // asked: never Ready, whatever the serving revision does.
            ready = (false, Reason::RolledBack, message.clone());
            reconciling = (
                false,
                Reason::RolledBack,
                "nothing to do until the spec changes or a retry is asked".into(),
            );
            (true, Reason::RolledBack, message)
        }
        None => (false, Reason::Reconciled, String::new()),
    };
    for (type_, (status, reason, message)) in [
        (ConditionType::Ready, ready),
        (ConditionType::Progressing, progressing),
        (ConditionType::Reconciling, reconciling),
        (ConditionType::Stalled, stalled),
    ] {
        set_condition(
            conditions,
            type_,
            status,
            reason,
            &message,
            f.generation,
            f.now,
        );
    }
}

/// The message of `Ready` and `Stalled` while the spec's revision is held back (after a
/// rollback or an abort, with no canary running); `None` otherwise.
fn held_back(conditions: &[Condition], f: &Facts<'_>) -> Option<String> {
    if f.ro.held_back.is_none() || f.canary.is_some() {
        return None;
    }
    let why = conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Degraded.as_str())
        .map(|c| c.message.clone())
        .unwrap_or_default();
    Some(format!("{why}; {} keeps serving", f.active_label))
}

/// One condition's value: status, reason, message.
type Value = (bool, Reason, String);

/// The values of `Ready` and `Progressing`.
fn availability_of(f: &Facts<'_>) -> (Value, Value) {
    let label = f.active_label;
    if let Some(r) = f.canary {
        let paused = r.state == RolloutState::Paused;
        let what = format!(
            "canary {} at {}% of traffic (step {}/{}{}), {label} serves the rest",
            r.revision,
            r.weight,
            r.step + 1,
            f.steps,
            if paused { ", paused" } else { "" }
        );
        let reason = if paused {
            Reason::RolloutPaused
        } else {
            Reason::Canary
        };
        (
            (false, Reason::RolloutInProgress, what.clone()),
            (true, reason, what),
        )
    } else if f.ready_replicas >= 1 && !(f.pointer_changes && f.ro.rollout.is_none()) {
        let available = format!(
            "{label} is active and {} data-plane pod(s) are ready",
            f.ready_replicas
        );
        let progressing = match &f.ro.rollout {
            Some(r) => (
                true,
                Reason::Baking,
                format!(
                    "{} promoted; watched for {}s after promotion",
                    r.revision, f.bake_seconds
                ),
            ),
            None => (
                false,
                Reason::Reconciled,
                format!("{label} is fully rolled out"),
            ),
        };
        ((true, Reason::Available, available), progressing)
    } else if f.pointer_changes {
        let activating = format!("activating {label}");
        (
            (false, Reason::Activating, activating.clone()),
            (true, Reason::Activating, activating),
        )
    } else {
        (
            (
                false,
                Reason::NoReadyPods,
                "no data-plane pod is ready yet".into(),
            ),
            (
                true,
                Reason::WaitingForPods,
                "waiting for data-plane pods to become ready".into(),
            ),
        )
    }
}

/// `Degraded` (a revision held back) and `RolledBack` (set by a rollback or abort, cleared by
/// the next promotion).
fn degradation(conditions: &mut Vec<Condition>, f: &Facts<'_>) {
    let (ro, generation, now) = (f.ro, f.generation, f.now);
    match &ro.held_back {
        Some(h) => {
            let why = ro
                .history
                .iter()
                .find(|r| r.revision == h.revision)
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "rolled back".into());
            set_condition(
                conditions,
                ConditionType::Degraded,
                true,
                Reason::RolledBack,
                &format!(
                    "{} is held back until the spec changes or a retry is asked ({}): {why}",
                    h.revision,
                    contract::ANNOTATION_RETRY
                ),
                generation,
                now,
            );
        }
        None => set_condition(
            conditions,
            ConditionType::Degraded,
            false,
            Reason::Reconciled,
            "the spec is valid",
            generation,
            now,
        ),
    }
    if let Some(why) = &ro.rolled_back {
        set_condition(
            conditions,
            ConditionType::RolledBack,
            true,
            Reason::RolledBack,
            why,
            generation,
            now,
        );
    } else if ro.promoted
        && conditions
            .iter()
            .any(|c| c.type_ == ConditionType::RolledBack.as_str())
    {
        set_condition(
            conditions,
            ConditionType::RolledBack,
            false,
            Reason::Promoted,
            &format!("{} was promoted", f.active_label),
            generation,
            now,
        );
    }
}
