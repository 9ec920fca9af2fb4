//! The error-rate comparison: is the canary's share of failed requests more than a tolerated
//! number of points above the stable revision's (fail), or provably not (pass)?
//!
//! Each revision's rate gets an anytime-valid confidence sequence ([`crate::confidence`]); the
//! difference is bounded by combining them:
//!
//! - **fail** when `lower(canary) − upper(stable) > tolerance`. If the canary is within
//!   tolerance (`p_c ≤ p_s + tolerance`) this needs one of the two bounds to be wrong, so it
//!   happens with probability at most the sum of their levels, over every look.
//! - **pass** when `upper(canary) − lower(stable) ≤ tolerance`. If the canary is *worse* than
//!   tolerated this again needs a wrong bound: probability at most the sum of those levels.
//!
//! The stable revision's rate is a nuisance parameter that is never assumed: it is bounded from
//! its own traffic. With no stable traffic (weight 100, or a bake) the stable bounds are `[0, 1]`:
//! the difference can never fail and passes only if the canary's own rate is within tolerance.

use serde::{Deserialize, Serialize};

use crate::confidence::{self, lower_bound, upper_bound, JEFFREYS, SMALL_RATES};

/// Requests of one revision: all, and those that ended in a 5xx or a 4xx.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub requests: u64,
    pub server_errors: u64,
    pub client_errors: u64,
}

impl Counts {
    /// Counts of `requests` requests with `server_errors` 5xx and `client_errors` 4xx.
    pub fn new(requests: u64, server_errors: u64, client_errors: u64) -> Counts {
        Counts {
            requests,
            server_errors,
            client_errors,
        }
    }

    /// The errors of `class`.
    pub fn errors(&self, class: ErrorClass) -> u64 {
        match class {
            ErrorClass::Server => self.server_errors,
            ErrorClass::Client => self.client_errors,
        }
    }

    /// Adds `other` (saturating; error counts are capped at the request count).
    pub fn add(&mut self, other: &Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.server_errors = self
            .server_errors
            .saturating_add(other.server_errors)
            .min(self.requests);
        self.client_errors = self
            .client_errors
            .saturating_add(other.client_errors)
            .min(self.requests);
    }
}

/// Which failures are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorClass {
    /// 5xx answers: the revision failed.
    Server,
    /// 4xx answers: e.g. an origin rule pointing at a missing path answers 404. Client mistakes
    /// reach both revisions alike, so only a difference counts.
    Client,
}

impl ErrorClass {
    /// `5xx` or `4xx`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Server => "5xx",
            ErrorClass::Client => "4xx",
        }
    }
}

/// Bounds of the canary's and the stable revision's rates of one error class, for one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBounds {
    pub lower: f64,
    pub upper: f64,
}

/// The canary's rate is above `lower` (with the fail-side level).
pub fn canary_lower(errors: u64, requests: u64, level: f64) -> f64 {
    // Jeffreys: a canary failing most requests is bounded high after a handful.
    lower_bound(errors as f64, requests as f64, level, JEFFREYS)
}

/// The canary's rate is below `upper` (pass side).
pub fn canary_upper(errors: u64, requests: u64, level: f64) -> f64 {
    upper_bound(errors as f64, requests as f64, level, SMALL_RATES)
}

/// The stable revision's rate is below `upper` (fail side).
pub fn stable_upper(errors: u64, requests: u64, level: f64) -> f64 {
    upper_bound(errors as f64, requests as f64, level, SMALL_RATES)
}

/// The stable revision's rate is above `lower` (pass side).
pub fn stable_lower(errors: u64, requests: u64, level: f64) -> f64 {
    lower_bound(errors as f64, requests as f64, level, SMALL_RATES)
}

/// How far the canary's rate of `class` can be above stable's: `(lowest, highest)` difference
/// consistent with the data, the lowest at `fail_level` per bound, the highest at `pass_level`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Increase {
    /// `lower(canary) − upper(stable)`: the canary is at least this much worse.
    pub at_least: f64,
    /// `upper(canary) − lower(stable)`: the canary is at most this much worse.
    pub at_most: f64,
    pub canary: RateBounds,
    pub stable: RateBounds,
}

impl Increase {
    /// Bounds of `canary`'s rate of `class` minus `stable`'s.
    pub fn of(
        class: ErrorClass,
        canary: &Counts,
        stable: &Counts,
        fail_level: f64,
        pass_level: f64,
    ) -> Increase {
        let (ck, cn) = (canary.errors(class), canary.requests);
        let (sk, sn) = (stable.errors(class), stable.requests);
        let c = RateBounds {
            lower: canary_lower(ck, cn, fail_level),
            upper: canary_upper(ck, cn, pass_level),
        };
        let s = RateBounds {
            lower: stable_lower(sk, sn, pass_level),
            upper: stable_upper(sk, sn, fail_level),
        };
        Increase {
            at_least: c.lower - s.upper,
            at_most: c.upper - s.lower,
            canary: c,
            stable: s,
        }
    }
}

/// Whether the canary is shown worse than `stable + tolerance` with each bound at `level`.
pub fn fails(
    class: ErrorClass,
    canary: &Counts,
    stable: &Counts,
    tolerance: f64,
    level: f64,
) -> bool {
    let (ck, cn) = (canary.errors(class), canary.requests);
    let (sk, sn) = (stable.errors(class), stable.requests);
    // The bounds enclose the observed rates: no observed excess, no proof of one.
    if cn == 0 || rate(ck, cn) - rate(sk, sn) <= tolerance {
        return false;
    }
    let x = stable_upper(sk, sn, level) + tolerance;
    // lower(canary) > x ⇔ x is below the observed rate and rejected for the canary.
    x < rate(ck, cn)
        && (x <= 0.0
            || confidence::ln_e_value(ck as f64, cn as f64, x, JEFFREYS) >= (1.0 / level).ln())
}

/// Whether the canary is shown no worse than `stable + tolerance` with each bound at `level`.
pub fn passes(
    class: ErrorClass,
    canary: &Counts,
    stable: &Counts,
    tolerance: f64,
    level: f64,
) -> bool {
    let (ck, cn) = (canary.errors(class), canary.requests);
    let (sk, sn) = (stable.errors(class), stable.requests);
    if cn == 0 || rate(ck, cn) - rate(sk, sn) > tolerance {
        return false;
    }
    let x = stable_lower(sk, sn, level) + tolerance;
    // upper(canary) ≤ x ⇔ x is at or above the observed rate and rejected for the canary.
    x >= 1.0
        || (x >= rate(ck, cn)
            && confidence::ln_e_value(ck as f64, cn as f64, x, SMALL_RATES) >= (1.0 / level).ln())
}

/// `errors / requests` (0 without requests).
pub fn rate(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_canary_failing_everything_fails_after_a_couple_dozen_requests() {
        let canary = Counts::new(24, 24, 0);
        let stable = Counts::new(216, 0, 0);
        assert!(fails(ErrorClass::Server, &canary, &stable, 0.02, 0.002));
        assert!(!passes(ErrorClass::Server, &canary, &stable, 0.02, 0.005));
    }

    #[test]
    fn equal_rates_never_fail_and_pass_with_enough_traffic() {
        let canary = Counts::new(400, 0, 0);
        let stable = Counts::new(3600, 0, 0);
        assert!(!fails(ErrorClass::Server, &canary, &stable, 0.02, 0.002));
        assert!(passes(ErrorClass::Server, &canary, &stable, 0.02, 0.005));
        let few = Counts::new(40, 0, 0);
        assert!(!passes(ErrorClass::Server, &few, &stable, 0.02, 0.005));
    }

    #[test]
    fn without_stable_traffic_only_the_canary_own_rate_counts() {
        let none = Counts::default();
        assert!(!fails(
            ErrorClass::Server,
            &Counts::new(100, 100, 0),
            &none,
            0.02,
            0.002
        ));
        assert!(passes(
            ErrorClass::Server,
            &Counts::new(500, 0, 0),
            &none,
            0.02,
            0.005
        ));
    }

    #[test]
    fn adding_counts_saturates_and_keeps_errors_within_requests() {
        let mut c = Counts::new(u64::MAX - 1, 3, 0);
        c.add(&Counts::new(5, 5, 2));
        assert_eq!(c.requests, u64::MAX);
        assert_eq!((c.server_errors, c.client_errors), (8, 2));
    }

    proptest! {
        #[test]
        fn the_fast_checks_agree_with_the_bounds(
            cn in 0u64..3000, cf in 0.0f64..=1.0, sn in 0u64..30000, sf in 0.0f64..=0.3,
            tol in 0.0f64..0.3, level in 1e-5f64..0.1,
        ) {
            let c = Counts::new(cn, (cn as f64 * cf) as u64, 0);
            let s = Counts::new(sn, (sn as f64 * sf) as u64, 0);
            let inc = Increase::of(ErrorClass::Server, &c, &s, level, level);
            // Away from the edge (the bounds are bisected to 1e-10).
            if (inc.at_least - tol).abs() > 1e-8 {
                prop_assert_eq!(fails(ErrorClass::Server, &c, &s, tol, level), inc.at_least > tol);
            }
            if (inc.at_most - tol).abs() > 1e-8 && cn > 0 {
                prop_assert_eq!(passes(ErrorClass::Server, &c, &s, tol, level), inc.at_most <= tol);
            }
        }

        #[test]
        fn never_both_fail_and_pass(
            cn in 0u64..3000, cf in 0.0f64..=1.0, sn in 0u64..30000, sf in 0.0f64..=1.0,
            tol in 0.0f64..0.3, level in 1e-5f64..0.1,
        ) {
            let c = Counts::new(cn, (cn as f64 * cf) as u64, 0);
            let s = Counts::new(sn, (sn as f64 * sf) as u64, 0);
            prop_assert!(!(fails(ErrorClass::Server, &c, &s, tol, level) && passes(ErrorClass::Server, &c, &s, tol, level)));
        }

        #[test]
        fn more_canary_errors_never_turn_a_failure_into_none(
            cn in 1u64..3000, cf in 0.0f64..=1.0, extra in 0u64..100, sn in 0u64..30000, sf in 0.0f64..0.2,
            tol in 0.0f64..0.3,
        ) {
            let k = (cn as f64 * cf) as u64;
            let c = Counts::new(cn, k, 0);
            let worse = Counts::new(cn, (k + extra).min(cn), 0);
            let s = Counts::new(sn, (sn as f64 * sf) as u64, 0);
            if fails(ErrorClass::Server, &c, &s, tol, 0.002) {
                prop_assert!(fails(ErrorClass::Server, &worse, &s, tol, 0.002));
            }
            if passes(ErrorClass::Server, &worse, &s, tol, 0.005) {
                prop_assert!(passes(ErrorClass::Server, &c, &s, tol, 0.005));
            }
        }
    }
}
