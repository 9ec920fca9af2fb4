//! Anytime-valid confidence sequences for a rate (the mean of observations in `[0, 1]`), from
//! Robbins' beta-binomial mixture martingale.
//!
//! For `k` successes in `n` trials and a candidate rate `p`, the mixture likelihood ratio is
//!
//! ```text
//! M(p) = B(a + k, b + n − k) / B(a, b)  /  (p^k (1 − p)^(n − k))
//! ```
//!
//! (`B` the beta function, `Beta(a, b)` the mixing prior). Under the true rate `p`, `M(p)` is a
//! non-negative martingale starting at 1, so by Ville's inequality the probability that it
//! *ever* reaches `1 / level` — however often it is looked at, whenever one stops — is at most
//! `level`. The confidence sequence is `{p : M(p) < 1 / level}`, an interval around `k / n`; its
//! lower and upper ends are each valid one-sided bounds at `level`, simultaneously for every
//! look.
//!
//! Counts may be fractional and the observations need only lie in `[0, 1]` (the latency test
//! feeds expected pair outcomes): `x ↦ (q/p)^x ((1−q)/(1−p))^(1−x)` is convex, so an observation
//! in `[0, 1]` with mean `p` contributes at most what a Bernoulli(`p`) one does, and the
//! martingale becomes a supermartingale — still valid.
//!
//! The prior only moves power around (where the bounds tighten fastest), never validity.

use std::f64::consts::PI;

/// The `Beta(a, b)` mixing prior of a confidence sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub a: f64,
    pub b: f64,
}

/// Jeffreys' prior `Beta(½, ½)`: mass near both 0 and 1, so a rate near 1 (a canary failing
/// everything) is bounded away from 0 after a handful of requests.
pub const JEFFREYS: Prior = Prior { a: 0.5, b: 0.5 };

/// A prior leaning towards small rates, `Beta(0.2, 2)`: upper bounds of rates near 0 (error
/// rates of a healthy revision) tighten fastest, at little cost for large rates.
pub const SMALL_RATES: Prior = Prior { a: 0.2, b: 2.0 };

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; relative error below 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// `ln B(a, b)`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `ln M(p)` for `k` successes in `n` trials (`0 ≤ k ≤ n`, clamped), against rate `p`.
/// `+∞` when `p` is impossible for the data (`p = 0` with a success, `p = 1` with a failure).
pub fn ln_e_value(k: f64, n: f64, p: f64, prior: Prior) -> f64 {
    Mixture::new(k, n, prior).ln_e(p)
}

/// The data of one confidence sequence, with the constant part of `ln M` computed once.
struct Mixture {
    k: f64,
    f: f64,
    ln_marginal: f64,
}

impl Mixture {
    fn new(k: f64, n: f64, prior: Prior) -> Mixture {
        let n = if n.is_finite() { n.max(0.0) } else { 0.0 };
        let k = if k.is_finite() { k.clamp(0.0, n) } else { 0.0 };
        let f = n - k;
        Mixture {
            k,
            f,
            ln_marginal: ln_beta(prior.a + k, prior.b + f) - ln_beta(prior.a, prior.b),
        }
    }

    fn ln_e(&self, p: f64) -> f64 {
        let term = |count: f64, rate: f64| {
            if count <= 0.0 {
                0.0
            } else if rate <= 0.0 {
                f64::NEG_INFINITY
            } else {
                count * rate.ln()
            }
        };
        let ln_null = term(self.k, p) + term(self.f, 1.0 - p);
        if ln_null == f64::NEG_INFINITY {
            return f64::INFINITY;
        }
        self.ln_marginal - ln_null
    }
}

/// Lower end of the confidence sequence at `level` (0 < level < 1): a rate below it has been
/// rejected. Valid simultaneously over all looks: `P(∃ look: lower > true rate) ≤ level`.
pub fn lower_bound(k: f64, n: f64, level: f64, prior: Prior) -> f64 {
    bound(k, n, level, prior, false)
}

/// Upper end of the confidence sequence at `level`: `P(∃ look: upper < true rate) ≤ level`.
pub fn upper_bound(k: f64, n: f64, level: f64, prior: Prior) -> f64 {
    bound(k, n, level, prior, true)
}

fn bound(k: f64, n: f64, level: f64, prior: Prior, upper: bool) -> f64 {
    let n = if n.is_finite() { n.max(0.0) } else { 0.0 };
    let k = if k.is_finite() { k.clamp(0.0, n) } else { 0.0 };
    if n <= 0.0 || !(level > 0.0 && level < 1.0) {
        return if upper { 1.0 } else { 0.0 };
    }
    let m = Mixture::new(k, n, prior);
    let threshold = (1.0 / level).ln();
    let centre = k / n;
    // M(centre) ≤ 1 (a mixture of likelihoods never beats the best one), so the centre is always
    // inside; the end is where ln M crosses the threshold on the way out (ln M is convex in p).
    let (mut inside, mut outside) = if upper { (centre, 1.0) } else { (centre, 0.0) };
    if m.ln_e(outside) < threshold {
        return outside;
    }
    while (outside - inside).abs() > 1e-10 {
        let mid = 0.5 * (inside + outside);
        if m.ln_e(mid) < threshold {
            inside = mid;
        } else {
            outside = mid;
        }
    }
    // The outside point: the bound errs wide, never claiming more than the data shows.
    outside
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ln_gamma_matches_known_values() {
        let cases = [
            (1.0, 0.0),
            (2.0, 0.0),
            (0.5, PI.sqrt().ln()),
            (5.0, 24f64.ln()),
            (10.5, 1_133_278.388_7f64.ln()),
            (0.1, 9.513_507_698_668_732f64.ln()),
        ];
        for (x, want) in cases {
            let got = ln_gamma(x);
            assert!((got - want).abs() < 1e-8, "lnΓ({x}) = {got}, want {want}");
        }
        // Stirling for large arguments.
        let x = 1e6f64;
        let stirling = (x - 0.5) * x.ln() - x + 0.5 * (2.0 * PI).ln() + 1.0 / (12.0 * x);
        assert!((ln_gamma(x) - stirling).abs() / stirling < 1e-12);
    }

    #[test]
    fn a_canary_failing_every_request_is_bounded_high_after_a_few() {
        // 8 of 8 failed: the rate is above 25 % at level 1/1000.
        let lo = lower_bound(8.0, 8.0, 0.001, JEFFREYS);
        assert!(lo > 0.25, "{lo}");
        assert_eq!(upper_bound(8.0, 8.0, 0.001, JEFFREYS), 1.0);
    }

    #[test]
    fn no_errors_bound_the_rate_near_zero_only_with_many_requests() {
        let few = upper_bound(0.0, 50.0, 0.005, SMALL_RATES);
        let many = upper_bound(0.0, 2000.0, 0.005, SMALL_RATES);
        assert!(few > 0.05 && many < 0.005, "{few} {many}");
        assert_eq!(lower_bound(0.0, 2000.0, 0.005, SMALL_RATES), 0.0);
    }

    #[test]
    fn no_data_bounds_nothing() {
        assert_eq!(lower_bound(0.0, 0.0, 0.01, JEFFREYS), 0.0);
        assert_eq!(upper_bound(0.0, 0.0, 0.01, JEFFREYS), 1.0);
        assert_eq!(lower_bound(f64::NAN, 5.0, 0.01, JEFFREYS), 0.0);
    }

    proptest! {
        #[test]
        fn the_bounds_enclose_the_observed_rate(
            n in 1u32..5000, frac in 0.0f64..=1.0, level in 1e-6f64..0.5,
        ) {
            let n = f64::from(n);
            let k = (n * frac).round();
            let (lo, hi) = (lower_bound(k, n, level, JEFFREYS), upper_bound(k, n, level, JEFFREYS));
            prop_assert!(0.0 <= lo && lo <= k / n + 1e-9 && k / n <= hi + 1e-9 && hi <= 1.0, "{} {} {}", lo, k / n, hi);
        }

        #[test]
        fn a_stricter_level_never_narrows_the_bounds(
            n in 1u32..2000, frac in 0.0f64..=1.0, level in 1e-6f64..0.2,
        ) {
            let n = f64::from(n);
            let k = (n * frac).round();
            prop_assert!(lower_bound(k, n, level / 10.0, JEFFREYS) <= lower_bound(k, n, level, JEFFREYS) + 1e-9);
            prop_assert!(upper_bound(k, n, level / 10.0, JEFFREYS) + 1e-9 >= upper_bound(k, n, level, JEFFREYS));
        }

        #[test]
        fn the_bounds_sit_where_the_e_value_reaches_the_threshold(
            n in 1u32..2000, frac in 0.0f64..=1.0, level in 1e-6f64..0.2,
        ) {
            let n = f64::from(n);
            let k = (n * frac).round();
            let t = (1.0 / level).ln();
            let lo = lower_bound(k, n, level, SMALL_RATES);
            if lo > 0.0 {
                prop_assert!(ln_e_value(k, n, lo, SMALL_RATES) >= t - 1e-6);
                prop_assert!(ln_e_value(k, n, lo + 1e-6, SMALL_RATES) < t + 1e-3);
            }
        }
    }
}
