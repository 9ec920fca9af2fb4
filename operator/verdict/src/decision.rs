//! The combined decision the rollout asks for at every look: [`Evidence`] accumulates what the
//! canary and the stable revision did since the rollout began, [`decide`] turns it into
//! [`Decision`] (`Inconclusive`, `Continue`, `Pass` or `Fail`) under a [`Policy`].
//!
//! # Guarantees (for any number of looks, at any times)
//! Let `α = 1 − confidence`.
//! - **False rollback ≤ α.** If the canary is within every tolerance (5xx and 4xx rates at most
//!   `stable + tolerance`, at most `maxErrorRate`; latencies at most `factor ×` stable's in each
//!   comparable block; fewer than 5 % of transforms above `maxP95`), the probability that
//!   [`decide`] ever returns `Fail` during the rollout is at most `α`. `α` is split between
//!   the confidence bounds the fail rules use (a union bound, [`Policy::alpha_shares`]).
//! - **False pass ≤ α per error class.** If the canary's 5xx (or 4xx) rate is above
//!   `stable + tolerance`, the probability that [`decide`] ever returns `Pass` is at most `α`.
//!   Latency does not gate `Pass` (where no comparable traffic exists there is nothing to
//!   prove); it can only fail.
//! - **Minimum evidence.** No verdict before the canary served `minRequests` requests
//!   (`Inconclusive`); the latency rules also need `max(1, minRequests / 4)` comparable pair
//!   trials or observations.
//!
//! The rates are assumed constant over the rollout and requests independent given their
//! revision (see `docs/canary-statistics.md` for what breaks this and how it is mitigated).

use serde::{Deserialize, Serialize};

use crate::confidence::{self, Prior, JEFFREYS};
use crate::errors::{self, Counts, ErrorClass, Increase};
use crate::latency::{LatencyEvidence, PodLatency, TRANSFORM};

mod explain;
use explain::*;

/// Mixing prior of the latency test's "slower" probability: mean 0.75, where regressions worth
/// catching sit (only power depends on it).
const LATENCY_PRIOR: Prior = Prior { a: 3.0, b: 1.0 };

/// The knobs of the decision. Rates are fractions (0.02 = 2 points), times are seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Probability that a canary within tolerance is *not* rolled back (and that one beyond a
    /// tolerated error increase is not passed), over the whole rollout: `α = 1 − confidence`.
    pub confidence: f64,
    /// Canary requests before any verdict.
    pub min_requests: u64,
    /// Highest tolerated canary 5xx share (absolute), if any.
    pub max_error_rate: Option<f64>,
    /// Tolerated increase of the canary's 5xx share over stable's.
    pub max_error_increase: f64,
    /// Tolerated increase of the canary's 4xx share over stable's, if compared.
    pub max_client_error_increase: Option<f64>,
    /// Tolerated latency increase (1.0 = up to 2× stable's), if compared; rounded up to the
    /// latency buckets' resolution.
    pub max_latency_increase: Option<f64>,
    /// Latencies below this never count as slower (seconds).
    pub latency_floor_seconds: f64,
    /// Highest tolerated p95 of canary transforms (seconds), if any: fails when more than 5 %
    /// of them are shown above it.
    pub max_p95_seconds: Option<f64>,
    /// Length of the blocks in which a pod's canary and stable latencies are compared.
    pub latency_block_seconds: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            confidence: 0.99,
            min_requests: 20,
            max_error_rate: Some(0.05),
            max_error_increase: 0.02,
            max_client_error_increase: Some(0.10),
            max_latency_increase: Some(0.5),
            latency_floor_seconds: 0.25,
            max_p95_seconds: None,
            latency_block_seconds: 5.0,
        }
    }
}

/// A policy value out of range; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PolicyError {
    pub field: &'static str,
    pub problem: String,
}

impl Policy {
    /// Checks every field; reports the first problem.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |field, problem: &str| {
            Err(PolicyError {
                field,
                problem: problem.to_owned(),
            })
        };
        if !(self.confidence >= 0.5 && self.confidence < 1.0) {
            return err("confidence", "must be at least 0.5 and below 1");
        }
        let fraction = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if self.max_error_rate.is_some_and(|v| !fraction(v)) {
            return err("maxErrorRate", "must be between 0 and 1");
        }
        if !fraction(self.max_error_increase) {
            return err("maxErrorIncrease", "must be between 0 and 1");
        }
        if self.max_client_error_increase.is_some_and(|v| !fraction(v)) {
            return err("maxClientErrorIncrease", "must be between 0 and 1");
        }
        if self
            .max_latency_increase
            .is_some_and(|v| !(v.is_finite() && v >= 0.0))
        {
            return err("maxLatencyIncrease", "must be finite and not negative");
        }
        if !(self.latency_floor_seconds.is_finite() && self.latency_floor_seconds >= 0.0) {
            return err("latencyFloorSeconds", "must be finite and not negative");
        }
        if self
            .max_p95_seconds
            .is_some_and(|v| !(v.is_finite() && v > 0.0))
        {
            return err("maxP95Seconds", "must be finite and positive");
        }
        if !(self.latency_block_seconds.is_finite() && self.latency_block_seconds > 0.0) {
            return err("latencyBlockSeconds", "must be finite and positive");
        }
        Ok(())
    }

    /// `α = 1 − confidence`.
    pub fn alpha(&self) -> f64 {
        (1.0 - self.confidence).clamp(1e-12, 0.5)
    }

    /// How `α` is split among the one-sided bounds the fail rules use (a union bound): half
    /// to the error bounds (canary 5xx lower, stable 5xx upper, and canary/stable 4xx when
    /// compared), half to the latency rules (increase, limit) when any is enabled; evenly
    /// within each half. Returns `(error bound level, latency rule level)` as fractions of `α`.
    pub fn alpha_shares(&self) -> (f64, f64) {
        let error_bounds =
            2.0 + 2.0 * f64::from(u8::from(self.max_client_error_increase.is_some()));
        let latency_rules = f64::from(u8::from(self.max_latency_increase.is_some()))
            + f64::from(u8::from(self.max_p95_seconds.is_some()));
        if latency_rules == 0.0 {
            (1.0 / error_bounds, 0.0)
        } else {
            (0.5 / error_bounds, 0.5 / latency_rules)
        }
    }

    /// Level of each error bound when the overall false-rollback level is `alpha`.
    fn fail_level(&self, alpha: f64) -> f64 {
        alpha * self.alpha_shares().0
    }

    fn min_latency_evidence(&self) -> f64 {
        (self.min_requests / 4).max(1) as f64
    }
}

/// What one look saw since the previous one (deltas).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Look {
    /// Seconds since the rollout began (non-decreasing).
    pub at_seconds: f64,
    /// Canary requests, all pods summed.
    pub canary: Counts,
    /// Stable requests, all pods summed.
    pub stable: Counts,
    /// Latency histograms per pod and kind (only pods read at both ends of the interval).
    pub latency: Vec<PodLatency>,
}

/// Absolute latency limit evidence: canary transforms, and those certainly above the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitEvidence {
    pub observations: u64,
    pub above: u64,
}

/// Everything the rollout has seen since it began. Serializable (open latency blocks are not),
/// so a new operator leader resumes from status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Looks taken.
    pub looks: u64,
    /// Seconds since the rollout began, at the last look.
    pub seconds: f64,
    pub canary: Counts,
    pub stable: Counts,
    pub latency: LatencyEvidence,
    pub limit: LimitEvidence,
}

impl Evidence {
    /// Adds one look. Returns notes on data left out (never fails: bad data is dropped, with a
    /// note, never counted).
    pub fn observe(&mut self, policy: &Policy, look: &Look) -> Vec<String> {
        let mut notes = Vec::new();
        let at = if look.at_seconds.is_finite() && look.at_seconds >= self.seconds {
            look.at_seconds
        } else {
            notes.push(format!(
                "look at {}s is before the previous one at {}s; counted at the previous time",
                look.at_seconds, self.seconds
            ));
            self.seconds
        };
        self.looks = self.looks.saturating_add(1);
        self.seconds = at;
        self.canary.add(&look.canary);
        self.stable.add(&look.stable);
        if let Some(limit) = policy.max_p95_seconds {
            for s in look.latency.iter().filter(|s| s.kind == TRANSFORM) {
                self.limit.observations = self.limit.observations.saturating_add(s.canary.total());
                self.limit.above = self
                    .limit
                    .above
                    .saturating_add(s.canary.certainly_above(limit));
            }
        }
        if let Some(increase) = policy.max_latency_increase {
            notes.extend(self.latency.observe(
                at,
                policy.latency_block_seconds,
                &look.latency,
                increase,
                policy.latency_floor_seconds,
            ));
        }
        notes
    }
}

/// A rule that can fail a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// Canary 5xx share above `maxErrorRate`.
    ErrorRate,
    /// Canary 5xx share above stable's + tolerance.
    ErrorRateIncrease,
    /// Canary 4xx share above stable's + tolerance.
    ClientErrorRateIncrease,
    /// Canary slower than `factor ×` stable in comparable blocks.
    LatencyIncrease,
    /// Canary transforms' p95 above `maxP95`.
    LatencyLimit,
}

/// What the rollout should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Below the minimum evidence: no verdict may be given, whatever the numbers.
    Inconclusive { reason: String },
    /// Enough evidence to judge, not yet decided: keep the step and look again.
    Continue {
        reason: String,
        /// Canary requests still needed to pass at the current rates (none if they would not).
        more_requests: Option<u64>,
    },
    /// The canary is shown within the error tolerances (and no rule fails).
    Pass { reason: String, p_value: f64 },
    /// A rule is broken with the policy's confidence. `p_value` is the anytime-valid p-value of
    /// the deciding rule (the smallest `1 − confidence` at which it would have failed).
    Fail {
        rule: Rule,
        reason: String,
        p_value: f64,
    },
}

/// The verdict alone, without p-values or explanations (cheap: what simulations call at every
/// look). [`decide`] always reaches the same verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Inconclusive,
    Continue,
    Pass,
    Fail,
}

/// The verdict for `evidence` under `policy`.
pub fn outcome(policy: &Policy, evidence: &Evidence) -> Outcome {
    if evidence.canary.requests < policy.min_requests {
        Outcome::Inconclusive
    } else if !failing_rules(policy, evidence).is_empty() {
        Outcome::Fail
    } else if error_classes(policy)
        .iter()
        .all(|(class, tolerance, _)| passes_at(policy.alpha(), *class, evidence, *tolerance))
    {
        Outcome::Pass
    } else {
        Outcome::Continue
    }
}

/// The rules broken with the policy's confidence (minimum evidence of the latency rules
/// included, `minRequests` not: [`outcome`] applies it first).
pub fn failing_rules(policy: &Policy, evidence: &Evidence) -> Vec<Rule> {
    let alpha = policy.alpha();
    let level = policy.fail_level(alpha);
    let (c, s) = (&evidence.canary, &evidence.stable);
    let mut rules = Vec::new();
    if let Some(max) = policy.max_error_rate {
        // The lower bound never exceeds the observed rate: skip the bisection below it.
        if errors::rate(c.server_errors, c.requests) > max
            && errors::canary_lower(c.server_errors, c.requests, level) > max
        {
            rules.push(Rule::ErrorRate);
        }
    }
    for (class, tolerance, rule) in error_classes(policy) {
        if errors::fails(class, c, s, tolerance, level) {
            rules.push(rule);
        }
    }
    if policy.max_latency_increase.is_some() && latency_fails(policy, &evidence.latency, alpha) {
        rules.push(Rule::LatencyIncrease);
    }
    if policy.max_p95_seconds.is_some() && limit_fails(policy, &evidence.limit, alpha) {
        rules.push(Rule::LatencyLimit);
    }
    rules
}

fn error_classes(policy: &Policy) -> Vec<(ErrorClass, f64, Rule)> {
    let mut classes = vec![(
        ErrorClass::Server,
        policy.max_error_increase,
        Rule::ErrorRateIncrease,
    )];
    if let Some(t) = policy.max_client_error_increase {
        classes.push((ErrorClass::Client, t, Rule::ClientErrorRateIncrease));
    }
    classes
}

/// Pass side of one class at overall level `alpha` (each of its two bounds at `alpha / 2`).
fn passes_at(alpha: f64, class: ErrorClass, evidence: &Evidence, tolerance: f64) -> bool {
    errors::passes(
        class,
        &evidence.canary,
        &evidence.stable,
        tolerance,
        alpha / 2.0,
    )
}

fn latency_fails(policy: &Policy, l: &LatencyEvidence, alpha: f64) -> bool {
    l.trials >= policy.min_latency_evidence()
        && l.slower > l.trials / 2.0
        && latency_p(policy, l) <= alpha
}

fn latency_p(policy: &Policy, l: &LatencyEvidence) -> f64 {
    p_from_e(
        confidence::ln_e_value(l.slower, l.trials, 0.5, LATENCY_PRIOR),
        policy.alpha_shares().1,
    )
}

fn limit_fails(policy: &Policy, e: &LimitEvidence, alpha: f64) -> bool {
    e.observations as f64 >= policy.min_latency_evidence()
        && e.above as f64 > 0.05 * e.observations as f64
        && limit_p(policy, e) <= alpha
}

fn limit_p(policy: &Policy, e: &LimitEvidence) -> f64 {
    p_from_e(
        confidence::ln_e_value(e.above as f64, e.observations as f64, 0.05, JEFFREYS),
        policy.alpha_shares().1,
    )
}

/// The decision for `evidence` under `policy` (which should be [`Policy::validate`]d), with
/// the numbers that decided it: the same verdict as [`outcome`].
pub fn decide(policy: &Policy, evidence: &Evidence) -> Decision {
    let alpha = policy.alpha();
    let c = &evidence.canary;
    let s = &evidence.stable;
    if c.requests < policy.min_requests {
        return Decision::Inconclusive {
            reason: format!(
                "too little evidence: canary served {} requests < minRequests {}",
                c.requests, policy.min_requests
            ),
        };
    }
    let failing = failing_rules(policy, evidence);
    if !failing.is_empty() {
        let mut explained: Vec<(Rule, f64, String)> = failing
            .iter()
            .map(|rule| {
                let (p, text) = explain_failure(policy, evidence, *rule);
                (*rule, p, text)
            })
            .collect();
        explained.sort_by(|a, b| a.1.total_cmp(&b.1));
        let reason = explained
            .iter()
            .map(|f| f.2.clone())
            .collect::<Vec<_>>()
            .join("; ");
        return Decision::Fail {
            rule: explained[0].0,
            reason: format!(
                "{reason} ({} confidence, anytime p ≤ {})",
                pct(policy.confidence),
                sci(explained[0].1)
            ),
            p_value: explained[0].1,
        };
    }
    let mut shown = Vec::new();
    let mut open = Vec::new();
    let mut pass_p = 0.0f64;
    let mut more = Some(0u64);
    for (class, tolerance, _) in error_classes(policy) {
        let inc = Increase::of(class, c, s, policy.fail_level(alpha), alpha / 2.0);
        let text = format!(
            "{l} {}/{} vs stable {}/{}: canary ≤ stable + {}",
            c.errors(class),
            c.requests,
            s.errors(class),
            s.requests,
            points(inc.at_most.max(0.0)),
            l = class.label()
        );
        if passes_at(alpha, class, evidence, tolerance) {
            pass_p = pass_p.max(smallest_level(|a| passes_at(a, class, evidence, tolerance)));
            shown.push(text);
        } else {
            open.push(format!(
                "{text}, not yet within the tolerated {}",
                points(tolerance)
            ));
            more = match (more, requests_to_pass(class, c, s, tolerance, alpha / 2.0)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
    let latency = latency_summary(policy, &evidence.latency);
    if open.is_empty() {
        return Decision::Pass {
            reason: format!(
                "canary within tolerance after {} requests ({} confidence): {}{latency}",
                c.requests,
                pct(policy.confidence),
                shown.join("; ")
            ),
            p_value: pass_p,
        };
    }
    let needed = match more {
        Some(n) if n > 0 => format!("; about {n} more canary requests needed at these rates"),
        _ => "; these rates would not pass".to_owned(),
    };
    Decision::Continue {
        reason: format!("deciding: {}{needed}{latency}", open.join("; ")),
        more_requests: more.filter(|n| *n > 0),
    }
}

/// The anytime p-value of a failing rule and its explanation.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Histogram;
    use proptest::prelude::*;

    fn grid2() -> Vec<f64> {
        (0..17).map(|i| 0.001 * 2f64.powi(i)).collect()
    }

    fn hist(at: &[(usize, u64)]) -> Histogram {
        let b = grid2();
        let mut counts = vec![0; b.len() + 1];
        for (i, c) in at {
            counts[*i] += c;
        }
        Histogram::new(b, counts).unwrap()
    }

    fn evidence(c: Counts, s: Counts) -> Evidence {
        Evidence {
            canary: c,
            stable: s,
            ..Evidence::default()
        }
    }

    #[test]
    fn the_default_policy_is_valid_and_bad_fields_are_named() {
        assert_eq!(Policy::default().validate(), Ok(()));
        let bad = Policy {
            confidence: 1.0,
            ..Policy::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "confidence");
        let bad = Policy {
            max_p95_seconds: Some(-1.0),
            ..Policy::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("maxP95Seconds:"));
    }

    #[test]
    fn below_min_requests_is_inconclusive_even_when_everything_fails() {
        let d = decide(
            &Policy::default(),
            &evidence(Counts::new(19, 19, 0), Counts::new(500, 0, 0)),
        );
        assert!(matches!(d, Decision::Inconclusive { .. }), "{d:?}");
    }

    #[test]
    fn a_canary_failing_every_request_fails_at_min_requests_with_its_numbers() {
        let d = decide(
            &Policy::default(),
            &evidence(Counts::new(24, 24, 0), Counts::new(216, 0, 0)),
        );
        let Decision::Fail {
            rule,
            reason,
            p_value,
        } = d
        else {
            panic!("{d:?}")
        };
        assert!(matches!(rule, Rule::ErrorRate | Rule::ErrorRateIncrease));
        assert!(p_value < 1e-4, "{p_value}");
        assert!(
            reason.contains("canary 5xx 24/24") && reason.contains("99 % confidence"),
            "{reason}"
        );
    }

    #[test]
    fn a_canary_answering_404_everywhere_fails_on_the_client_error_rule() {
        let d = decide(
            &Policy::default(),
            &evidence(Counts::new(24, 0, 24), Counts::new(216, 0, 3)),
        );
        assert!(
            matches!(
                d,
                Decision::Fail {
                    rule: Rule::ClientErrorRateIncrease,
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn a_healthy_canary_continues_then_passes_with_enough_requests() {
        let p = Policy::default();
        let d = decide(
            &p,
            &evidence(Counts::new(100, 0, 1), Counts::new(900, 0, 9)),
        );
        let Decision::Continue {
            more_requests,
            reason,
        } = d
        else {
            panic!("{d:?}")
        };
        let more = more_requests.expect("would pass at these rates");
        assert!(
            more > 0 && reason.contains("more canary requests"),
            "{reason}"
        );
        let d = decide(
            &p,
            &evidence(
                Counts::new(100 + more, 0, 1),
                Counts::new(900 + 9 * more, 0, 9),
            ),
        );
        // The projection rounds counts; allow one more nudge.
        let d = match d {
            Decision::Continue { .. } => decide(
                &p,
                &evidence(
                    Counts::new(110 + more, 0, 1),
                    Counts::new(990 + 9 * more, 0, 9),
                ),
            ),
            d => d,
        };
        assert!(matches!(d, Decision::Pass { .. }), "{d:?}");
    }

    #[test]
    fn a_canary_at_the_tolerance_neither_passes_nor_fails_and_says_it_never_will() {
        let d = decide(
            &Policy::default(),
            &evidence(Counts::new(2000, 40, 0), Counts::new(18000, 0, 0)),
        );
        let Decision::Continue { more_requests, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(more_requests, None);
    }

    #[test]
    fn a_latency_regression_in_comparable_blocks_fails_the_latency_rule() {
        let p = Policy::default();
        let mut ev = evidence(Counts::new(100, 0, 0), Counts::new(100, 0, 0));
        // 30 blocks of one transform each: canary 1–2 s, stable 128–256 ms (4 buckets below).
        for block in 0..30 {
            let look = Look {
                at_seconds: block as f64 * 5.0 + 1.0,
                latency: vec![PodLatency {
                    pod: "a".into(),
                    kind: TRANSFORM.into(),
                    canary: hist(&[(11, 1)]),
                    stable: hist(&[(8, 1)]),
                }],
                ..Look::default()
            };
            ev.observe(&p, &look);
        }
        let d = decide(&p, &ev);
        let Decision::Fail { rule, reason, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(rule, Rule::LatencyIncrease);
        assert!(
            reason.contains("2.00× stable") && reason.contains("same pod"),
            "{reason}"
        );
    }

    #[test]
    fn the_absolute_latency_limit_fails_when_more_than_five_percent_are_above_it() {
        let p = Policy {
            max_p95_seconds: Some(0.5),
            ..Policy::default()
        };
        let mut ev = evidence(Counts::new(100, 0, 0), Counts::new(100, 0, 0));
        ev.observe(
            &p,
            &Look {
                at_seconds: 1.0,
                latency: vec![PodLatency {
                    pod: "a".into(),
                    kind: TRANSFORM.into(),
                    canary: hist(&[(11, 30), (5, 10)]),
                    stable: hist(&[]),
                }],
                ..Look::default()
            },
        );
        assert!(matches!(
            decide(&p, &ev),
            Decision::Fail {
                rule: Rule::LatencyLimit,
                ..
            }
        ));
    }

    #[test]
    fn looks_going_back_in_time_are_noted_not_trusted() {
        let p = Policy::default();
        let mut ev = Evidence::default();
        ev.observe(
            &p,
            &Look {
                at_seconds: 5.0,
                ..Look::default()
            },
        );
        let notes = ev.observe(
            &p,
            &Look {
                at_seconds: 2.0,
                ..Look::default()
            },
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(ev.seconds, 5.0);
        let notes = ev.observe(
            &p,
            &Look {
                at_seconds: f64::NAN,
                ..Look::default()
            },
        );
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn evidence_round_trips_through_json() {
        let mut ev = evidence(Counts::new(10, 1, 2), Counts::new(90, 0, 3));
        ev.latency.trials = 2.5;
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["canary"]["serverErrors"], 1);
        let back: Evidence = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn alpha_is_split_half_to_errors_and_half_to_latency() {
        let p = Policy::default();
        assert_eq!(p.alpha_shares(), (0.125, 0.5));
        let p = Policy {
            max_p95_seconds: Some(1.0),
            max_client_error_increase: None,
            ..Policy::default()
        };
        assert_eq!(p.alpha_shares(), (0.25, 0.25));
        let p = Policy {
            max_latency_increase: None,
            ..Policy::default()
        };
        assert_eq!(p.alpha_shares(), (0.25, 0.0));
    }

    fn random_evidence() -> impl Strategy<Value = (Policy, Evidence)> {
        (
            (0u64..600, 0.0f64..1.0, 0.0f64..1.0),
            (0u64..6000, 0.0f64..0.2, 0.0f64..0.2),
            (0.0f64..80.0, 0.0f64..1.0),
            (0u64..200, 0.0f64..0.3),
            prop_oneof![Just(0.8), Just(0.95), Just(0.99), Just(0.999)],
            proptest::option::of(0.5f64..3.0),
        )
            .prop_map(|(c, s, l, lim, confidence, p95)| {
                let policy = Policy {
                    confidence,
                    max_p95_seconds: p95,
                    ..Policy::default()
                };
                let c5 = (c.0 as f64 * c.1) as u64;
                let c4 = ((c.0 - c5) as f64 * c.2) as u64;
                let mut latency = LatencyEvidence::default();
                latency.trials = l.0;
                latency.slower = l.0 * l.1;
                let ev = Evidence {
                    canary: Counts::new(c.0, c5, c4),
                    stable: Counts::new(
                        s.0,
                        (s.0 as f64 * s.1) as u64,
                        (s.0 as f64 * s.2 * 0.5) as u64,
                    ),
                    latency,
                    limit: LimitEvidence {
                        observations: lim.0,
                        above: (lim.0 as f64 * lim.1) as u64,
                    },
                    ..Evidence::default()
                };
                (policy, ev)
            })
    }

    proptest! {
        #[test]
        fn decide_and_outcome_always_agree((policy, ev) in random_evidence()) {
            let fast = outcome(&policy, &ev);
            let full = decide(&policy, &ev);
            let same = matches!(
                (fast, &full),
                (Outcome::Inconclusive, Decision::Inconclusive { .. })
                    | (Outcome::Continue, Decision::Continue { .. })
                    | (Outcome::Pass, Decision::Pass { .. })
                    | (Outcome::Fail, Decision::Fail { .. })
            );
            prop_assert!(same, "{:?} vs {:?}", fast, full);
            match full {
                Decision::Fail { p_value, rule, .. } => {
                    prop_assert!(p_value <= policy.alpha() * (1.0 + 1e-6), "{} > α", p_value);
                    prop_assert!(failing_rules(&policy, &ev).contains(&rule));
                }
                Decision::Pass { p_value, .. } => prop_assert!(p_value <= policy.alpha() * (1.0 + 1e-6)),
                _ => {}
            }
        }

        #[test]
        fn a_higher_confidence_never_fails_where_a_lower_one_does_not(
            (policy, ev) in random_evidence(),
        ) {
            let strict = Policy { confidence: 0.9999, ..policy.clone() };
            if outcome(&strict, &ev) == Outcome::Fail {
                prop_assert_eq!(outcome(&policy, &ev), Outcome::Fail);
            }
        }
    }

    /// Canary requests (stable with 9× as many, `canary_rate` errors on both sides) at which a
    /// policy first passes, or (every canary request failing, `minRequests` aside) first fails.
    fn first(policy: &Policy, canary_rate: f64, failing: bool) -> u64 {
        let p = Policy {
            min_requests: 0,
            ..policy.clone()
        };
        (1u64..100_000)
            .find(|n| {
                let (c5, s5) = if failing {
                    (*n, 0)
                } else {
                    (
                        (*n as f64 * canary_rate) as u64,
                        (9.0 * *n as f64 * canary_rate) as u64,
                    )
                };
                let ev = evidence(Counts::new(*n, c5, 0), Counts::new(9 * n, s5, 0));
                let o = outcome(&p, &ev);
                if failing {
                    o == Outcome::Fail
                } else {
                    o == Outcome::Pass
                }
            })
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn the_sample_sizes_in_the_documentation_hold() {
        // docs/canary-statistics.md §4: (confidence, tolerance, pass at 0 %, pass at 1 %,
        // fail when failing everything).
        let rows = [
            (0.95, 0.02, 232, 789, 3),
            (0.99, 0.01, 647, 3886, 3),
            (0.99, 0.02, 315, 1069, 3),
            (0.99, 0.05, 121, 189, 3),
            (0.99, 0.10, 58, 58, 3),
            (0.999, 0.02, 432, 1391, 4),
        ];
        for (confidence, tolerance, pass0, pass1, fail) in rows {
            let p = Policy {
                confidence,
                max_error_increase: tolerance,
                ..Policy::default()
            };
            let got = (
                first(&p, 0.0, false),
                first(&p, 0.01, false),
                first(&p, 0.0, true),
            );
            assert_eq!(
                got,
                (pass0, pass1, fail),
                "confidence {confidence} tolerance {tolerance}"
            );
        }
    }

    #[test]
    fn smallest_level_finds_the_threshold() {
        let p = smallest_level(|a| a >= 0.0123);
        assert!((p - 0.0123).abs() < 1e-6, "{p}");
        assert_eq!(smallest_level(|_| false), 1.0);
    }
}
