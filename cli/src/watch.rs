//! `status --watch`: where a config's rollout stands, read as kstatus reads it, so the exit
//! code of `vrctl status --watch --timeout 10m` can gate a CI pipeline on the outcome.
//!
//! * [`Outcome::Done`] (exit 0): the operator observed the current spec, `Ready` is True and
//!   nothing is in progress (`Reconciling` is not True) — a canary was promoted and its bake
//!   ended, or nothing had to change.
//! * [`Outcome::Failed`] (exit 1): `Stalled` is True — the spec's revision was rolled back (or
//!   aborted) and is held back, or the spec is invalid. The message says why.
//! * [`Outcome::Waiting`]: anything else (not observed yet, a canary, activation, a bake,
//!   pods not ready); the watch goes on until its timeout (exit 3).

use vr_crds::resources::VideoResizerConfig;

/// Where a config's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rolled out and ready.
    Done(String),
    /// Rolled back, aborted or invalid; needs a fix or a retry.
    Failed(String),
    /// Still moving.
    Waiting(String),
}

/// Reads `cfg`'s status as kstatus does (observedGeneration, `Stalled`, `Reconciling`, `Ready`).
pub fn outcome(cfg: &VideoResizerConfig) -> Outcome {
    let Some(st) = cfg.status.as_ref() else {
        return Outcome::Waiting("the operator has not reconciled this config yet".into());
    };
    if st.observed_generation != cfg.metadata.generation {
        return Outcome::Waiting(format!(
            "the operator has not observed generation {} yet",
            cfg.metadata.generation.unwrap_or_default()
        ));
    }
    let find = |t: &str| st.conditions.iter().find(|c| c.type_ == t);
    let is_true = |t: &str| find(t).is_some_and(|c| c.status == "True");
    let said = |t: &str| {
        find(t)
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| format!("no {t} condition"))
    };
    if is_true("Stalled") {
        Outcome::Failed(said("Stalled"))
    } else if is_true("Reconciling") {
        Outcome::Waiting(said("Reconciling"))
    } else if is_true("Ready") {
        Outcome::Done(said("Ready"))
    } else {
        Outcome::Waiting(said("Ready"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use vr_crds::resources::VideoResizerConfigStatus;

    fn cfg(observed: i64, conditions: &[(&str, &str, &str)]) -> VideoResizerConfig {
        let mut c: VideoResizerConfig = serde_yaml::from_str(
            "apiVersion: videoresizer.io/v1alpha1\nkind: VideoResizerConfig\nmetadata: {name: web}\nspec:\n  origins:\n    - name: v\n      matcher: '^/(?P<f>.+)$'\n      sources: [{name: s, kind: http, http: {url: 'https://e.example/${f}'}}]\n",
        )
        .expect("config parses");
        c.metadata.generation = Some(2);
        c.status = Some(VideoResizerConfigStatus {
            observed_generation: Some(observed),
            conditions: conditions
                .iter()
                .map(|(t, s, r)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: (*r).into(),
                    message: format!("{r} said so"),
                    observed_generation: Some(observed),
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..VideoResizerConfigStatus::default()
        });
        c
    }

    #[test]
    fn ready_with_nothing_in_progress_is_done() {
        let c = cfg(
            2,
            &[
                ("Ready", "True", "Available"),
                ("Reconciling", "False", "Reconciled"),
                ("Stalled", "False", "Reconciled"),
            ],
        );
        assert_eq!(
            outcome(&c),
            Outcome::Done("Available: Available said so".into())
        );
    }

    #[test]
    fn a_held_back_or_invalid_spec_is_failed_with_the_reason() {
        let c = cfg(
            2,
            &[
                ("Ready", "False", "RolledBack"),
                ("Stalled", "True", "RolledBack"),
            ],
        );
        assert!(matches!(outcome(&c), Outcome::Failed(m) if m.starts_with("RolledBack")));
    }

    #[test]
    fn a_canary_a_bake_or_an_unobserved_spec_is_waited_for() {
        let canary = cfg(
            2,
            &[
                ("Ready", "False", "RolloutInProgress"),
                ("Reconciling", "True", "Canary"),
            ],
        );
        assert!(matches!(outcome(&canary), Outcome::Waiting(m) if m.starts_with("Canary")));
        let baking = cfg(
            2,
            &[
                ("Ready", "True", "Available"),
                ("Reconciling", "True", "Baking"),
            ],
        );
        assert!(matches!(outcome(&baking), Outcome::Waiting(m) if m.starts_with("Baking")));
        let stale = cfg(
            1,
            &[
                ("Ready", "True", "Available"),
                ("Stalled", "True", "RolledBack"),
            ],
        );
        assert!(matches!(outcome(&stale), Outcome::Waiting(m) if m.contains("generation 2")));
        let mut none = cfg(2, &[]);
        none.status = None;
        assert!(matches!(outcome(&none), Outcome::Waiting(_)));
    }
}
