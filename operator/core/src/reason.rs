//! The typed vocabulary of status: condition types ([`ConditionType`]) and the reasons
//! ([`Reason`]) that events and conditions carry. The strings the API shows are the variant
//! names, generated from them, so a reason cannot be misspelled and the metrics that count
//! transitions match on the type ([`Reason::transition`]), not on text.

use std::fmt;

/// Declares a field-less enum with `ALL`, `as_str` (the variant's name) and `Display`, so the
/// strings the API shows are generated from the variants and cannot drift from them.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $vis:vis enum $ty:ident {
            $( $(#[$vmeta:meta])* $v:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $ty {
            $( $(#[$vmeta])* $v ),*
        }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),*];

            /// The name the API shows (the variant's name).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => stringify!($v)),*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// The condition types of `status.conditions`: `Ready`; kstatus' abnormal-true pair
    /// `Reconciling` (work in progress) and `Stalled` (stuck until someone acts);
    /// `Progressing` and `Degraded` (Argo CD, Flux and `kubectl` habits); and `RolledBack`,
    /// set after a rollback or an abort and cleared by the next promotion.
    pub enum ConditionType {
        Ready,
        Reconciling,
        Stalled,
        Progressing,
        Degraded,
        RolledBack,
    }
}

named! {
    /// Why: the reason of an Event or of a condition.
    pub enum Reason {
        // ---- spec and revisions
        /// The spec does not render or validate; the last good revision keeps serving.
        InvalidSpec,
        /// The spec is valid again after being invalid.
        SpecValid,
        /// A new immutable revision ConfigMap was created.
        RevisionCreated,
        /// The first revision of a config takes all traffic.
        RevisionActivated,
        // ---- availability
        /// At least one data-plane pod is ready and the active revision is fully rolled out.
        Available,
        /// No data-plane pod is ready any more.
        Unavailable,
        /// Condition: no data-plane pod is ready yet.
        NoReadyPods,
        /// Condition: waiting for data-plane pods to become ready.
        WaitingForPods,
        /// Condition: the pointer is being changed to a new revision.
        Activating,
        /// Condition: nothing to do (fully rolled out, or the spec is valid).
        Reconciled,
        // ---- derivatives
        /// Condition of a Derivative: its config is valid and serves it.
        InUse,
        /// Condition of a Derivative: the VideoResizerConfig it names does not exist.
        ConfigNotFound,
        /// Condition of a Derivative: its config has not reconciled its current spec yet.
        WaitingForConfig,
        /// Condition of a Derivative: its config's spec is invalid for other reasons, so no
        /// new revision (with this preset) is made.
        ConfigInvalid,
        // ---- the rollout
        /// A canary rollout started.
        RolloutStarted,
        /// Condition: a canary rollout is running.
        RolloutInProgress,
        /// Condition: the canary holds its step.
        Canary,
        /// Condition: the canary is paused (annotation or `onProviderError: Pause`).
        RolloutPaused,
        /// The canary moved to the next step's weight.
        StepAdvanced,
        /// A rollout stopped because the spec changed to other content.
        RolloutReplaced,
        /// A rollout stopped because the spec became invalid.
        RolloutStopped,
        /// The canary became the stable revision.
        Promoted,
        /// Condition: the promoted revision is watched for `bakeSeconds`.
        Baking,
        /// The bake after a promotion ended without a failure.
        BakeComplete,
        /// The canary (or a baking revision) was taken out of traffic by analysis, health or a
        /// rollback request.
        RolledBack,
        /// The canary was taken out of traffic because an abort was asked.
        Aborted,
        // ---- analysis
        /// Metrics unreadable `consecutiveErrorLimit` times with `onProviderError: Pause`.
        AnalysisPaused,
        /// Metrics readable again after a pause.
        AnalysisResumed,
        // ---- requests (annotations)
        /// A promotion was asked (skips analysis).
        PromoteRequested,
        /// A retry of a held-back revision was asked.
        RetryRequested,
        /// A rollback to a revision that does not exist was asked.
        RollbackRefused,
    }
}

/// A rollout transition that the operator's metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A revision taken out of traffic (`vr_operator_rollbacks_total`).
    Rollback,
    /// A canary promoted to stable (`vr_operator_promotions_total`).
    Promotion,
}

impl Reason {
    /// Whether an event with this reason is a Warning (something went wrong or needs a
    /// person), not Normal.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Reason::InvalidSpec
                | Reason::Unavailable
                | Reason::RolloutStopped
                | Reason::RolledBack
                | Reason::Aborted
                | Reason::AnalysisPaused
                | Reason::RollbackRefused
        )
    }

    /// The transition an event with this reason reports, if the metrics count it.
    pub fn transition(self) -> Option<Transition> {
        match self {
            Reason::RolledBack | Reason::Aborted => Some(Transition::Rollback),
            Reason::Promoted => Some(Transition::Promotion),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_strings_are_the_variant_names_and_unique() {
        assert_eq!(Reason::RolledBack.as_str(), "RolledBack");
        assert_eq!(ConditionType::Progressing.to_string(), "Progressing");
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }

    #[test]
    fn rollbacks_and_aborts_count_as_rollbacks_and_only_promotions_as_promotions() {
        let counted: Vec<(Reason, Transition)> = Reason::ALL
            .iter()
            .filter_map(|r| Some((*r, r.transition()?)))
            .collect();
        assert_eq!(
            counted,
            [
                (Reason::Promoted, Transition::Promotion),
                (Reason::RolledBack, Transition::Rollback),
                (Reason::Aborted, Transition::Rollback),
            ]
        );
    }
}
