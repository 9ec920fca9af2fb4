//! The status of a Derivative: whether the preset it declares serves, and if not, why.
//!
//! A Derivative is served through its config's revisions, so its `Ready` is read from the
//! config it names (`spec.config`, same namespace) as the config's last reconcile left it:
//!
//! | config | `Ready` | `Reconciling` | `Stalled` | kstatus |
//! | --- | --- | --- | --- | --- |
//! | missing | False, `ConfigNotFound` | True (waiting for it) | False | InProgress |
//! | not reconciled at its current generation yet | False, `WaitingForConfig` | True | False | InProgress |
//! | invalid, with errors naming this Derivative | False, `InvalidSpec` (those errors) | False | True | Failed |
//! | invalid for other reasons | False, `ConfigInvalid` | False | True | Failed |
//! | valid | True, `InUse` | False | False | Current |
//!
//! A missing config is waited for rather than failed: GitOps tools apply objects in any order.

use super::conditions::set_condition;
use crate::reason::{ConditionType, Reason};
use k8s_openapi::jiff::Timestamp;
use vr_crds::resources::{Derivative, DerivativeStatus, Phase, VideoResizerConfig};

/// The status `d` should have, given its config (`None`: no such config in its namespace).
/// Conditions keep their `lastTransitionTime` unless their status flips, so the same inputs
/// give the same status (no write).
pub fn derivative_status(
    d: &Derivative,
    config: Option<&VideoResizerConfig>,
    now: Timestamp,
) -> DerivativeStatus {
    let generation = d.metadata.generation;
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let wanted = &d.spec.config;
    let (ready, reason, message, stalled) = match config {
        None => (
            false,
            Reason::ConfigNotFound,
            format!(
                "VideoResizerConfig {wanted} does not exist in this namespace (spec.config); \
                 waiting for it"
            ),
            false,
        ),
        Some(cfg) => {
            let status = cfg.status.as_ref();
            let observed = status.and_then(|s| s.observed_generation);
            let invalid = status.is_some_and(|s| {
                matches!(s.phase, Some(Phase::Invalid))
                    || (matches!(s.phase, Some(Phase::Degraded)) && s.message.is_some())
            });
            if status.is_none() || observed != cfg.metadata.generation {
                (
                    false,
                    Reason::WaitingForConfig,
                    format!("VideoResizerConfig {wanted} has not reconciled its spec yet"),
                    false,
                )
            } else if invalid {
                let prefix = format!("Derivative/{name} ");
                let mine: Vec<&str> = status
                    .and_then(|s| s.message.as_deref())
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with(&prefix))
                    .collect();
                if mine.is_empty() {
                    (
                        false,
                        Reason::ConfigInvalid,
                        format!(
                            "the spec of VideoResizerConfig {wanted} is invalid, so no revision \
                             includes this preset yet (see its status)"
                        ),
                        true,
                    )
                } else {
                    (false, Reason::InvalidSpec, mine.join("\n"), true)
                }
            } else {
                (
                    true,
                    Reason::InUse,
                    format!("part of VideoResizerConfig {wanted}"),
                    false,
                )
            }
        }
    };
    let reconciling = !ready && !stalled;
    let mut conditions = d
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    for (type_, status, message) in [
        (ConditionType::Ready, ready, message.as_str()),
        (
            ConditionType::Reconciling,
            reconciling,
            if reconciling { message.as_str() } else { "" },
        ),
        (
            ConditionType::Stalled,
            stalled,
            if stalled { message.as_str() } else { "" },
        ),
    ] {
        set_condition(
            &mut conditions,
            type_,
            status,
            reason,
            message,
            generation,
            now,
        );
    }
    DerivativeStatus {
        observed_generation: generation,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_crds::resources::VideoResizerConfigStatus;

    fn derivative() -> Derivative {
        let mut d: Derivative = serde_yaml::from_str(
            "apiVersion: videoresizer.io/v1alpha1\nkind: Derivative\nmetadata: { name: mobile, namespace: media, generation: 3 }\nspec: { config: web, width: 640 }\n",
        )
        .expect("derivative parses");
        d.metadata.generation = Some(3);
        d
    }

    fn config(status: Option<VideoResizerConfigStatus>) -> VideoResizerConfig {
        let mut c: VideoResizerConfig = serde_yaml::from_str(include_str!(
            "../../../../crds/examples/videoresizerconfig.yaml"
        ))
        .expect("example config parses");
        c.metadata.generation = Some(2);
        c.status = status;
        c
    }

    fn reconciled(phase: Phase, message: Option<&str>) -> VideoResizerConfigStatus {
        VideoResizerConfigStatus {
            observed_generation: Some(2),
            phase: Some(phase),
            message: message.map(str::to_owned),
            ..VideoResizerConfigStatus::default()
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    /// `(status, reason)` of each of Ready, Reconciling, Stalled.
    fn read(s: &DerivativeStatus) -> Vec<(String, String, String)> {
        ["Ready", "Reconciling", "Stalled"]
            .iter()
            .map(|t| {
                let c = s
                    .conditions
                    .iter()
                    .find(|c| c.type_ == *t)
                    .expect("condition set");
                (t.to_string(), c.status.clone(), c.reason.clone())
            })
            .collect()
    }

    fn expect(s: &DerivativeStatus, ready: bool, reason: &str, reconciling: bool, stalled: bool) {
        let b = |v: bool| if v { "True" } else { "False" }.to_string();
        let got = read(s);
        assert_eq!(
            got.iter().map(|(_, st, _)| st.clone()).collect::<Vec<_>>(),
            [b(ready), b(reconciling), b(stalled)],
            "{got:?}"
        );
        assert_eq!(got[0].2, reason);
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn a_missing_config_is_waited_for_and_named() {
        let s = derivative_status(&derivative(), None, t(0));
        expect(&s, false, "ConfigNotFound", true, false);
        assert!(s.conditions[0].message.contains("VideoResizerConfig web"));
    }

    #[test]
    fn a_config_that_has_not_reconciled_its_spec_is_waited_for() {
        let s = derivative_status(&derivative(), Some(&config(None)), t(0));
        expect(&s, false, "WaitingForConfig", true, false);
        let mut stale = reconciled(Phase::Ready, None);
        stale.observed_generation = Some(1);
        let s = derivative_status(&derivative(), Some(&config(Some(stale))), t(0));
        expect(&s, false, "WaitingForConfig", true, false);
    }

    #[test]
    fn errors_that_name_the_derivative_stall_it_with_those_errors() {
        let message = "spec.origins[0].matcher: bad\nDerivative/mobile spec.width: must be at least 10\nDerivative/mobile2 spec.height: too big";
        let cfg = config(Some(reconciled(Phase::Degraded, Some(message))));
        let s = derivative_status(&derivative(), Some(&cfg), t(0));
        expect(&s, false, "InvalidSpec", false, true);
        let ready = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(
            ready.message,
            "Derivative/mobile spec.width: must be at least 10"
        );
    }

    #[test]
    fn an_invalid_config_stalls_its_derivatives_and_a_valid_one_makes_them_ready() {
        let cfg = config(Some(reconciled(
            Phase::Invalid,
            Some("spec.origins: empty"),
        )));
        let s = derivative_status(&derivative(), Some(&cfg), t(0));
        expect(&s, false, "ConfigInvalid", false, true);

        let mut d = derivative();
        d.status = Some(s);
        let cfg = config(Some(reconciled(Phase::Ready, None)));
        let s = derivative_status(&d, Some(&cfg), t(10));
        expect(&s, true, "InUse", false, false);
        let ready = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.last_transition_time.0, t(10), "flipped");
        // A rollout in progress or a rollback is the config's business, not the preset's.
        for phase in [Phase::Progressing, Phase::Degraded] {
            let cfg = config(Some(reconciled(phase, None)));
            expect(
                &derivative_status(&d, Some(&cfg), t(0)),
                true,
                "InUse",
                false,
                false,
            );
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_status() {
        let cfg = config(Some(reconciled(Phase::Ready, None)));
        let mut d = derivative();
        let first = derivative_status(&d, Some(&cfg), t(0));
        d.status = Some(first.clone());
        assert_eq!(derivative_status(&d, Some(&cfg), t(99)), first);
    }
}
