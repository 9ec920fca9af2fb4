//! How a decision is explained to the user: which rule failed on what numbers, how strong the
//! evidence is (an anytime-valid p-value), and how many more requests a pass needs.

use super::*;

pub(super) fn explain_failure(policy: &Policy, evidence: &Evidence, rule: Rule) -> (f64, String) {
    let alpha = policy.alpha();
    let (c, s) = (&evidence.canary, &evidence.stable);
    match rule {
        Rule::ErrorRate => {
            let max = policy.max_error_rate.unwrap_or(1.0);
            let p = smallest_level(|a| {
                errors::canary_lower(c.server_errors, c.requests, policy.fail_level(a)) > max
            });
            let lo = errors::canary_lower(c.server_errors, c.requests, policy.fail_level(alpha));
            (
                p,
                format!(
                    "canary 5xx {}/{} (≥ {}) > maxErrorRate {}",
                    c.server_errors,
                    c.requests,
                    pct(lo),
                    pct(max)
                ),
            )
        }
        Rule::ErrorRateIncrease | Rule::ClientErrorRateIncrease => {
            let (class, tolerance) = if rule == Rule::ErrorRateIncrease {
                (ErrorClass::Server, policy.max_error_increase)
            } else {
                (
                    ErrorClass::Client,
                    policy.max_client_error_increase.unwrap_or(1.0),
                )
            };
            let p = smallest_level(|a| errors::fails(class, c, s, tolerance, policy.fail_level(a)));
            let inc = Increase::of(class, c, s, policy.fail_level(alpha), alpha / 2.0);
            (
                p,
                format!(
                    "canary {l} {}/{} (≥ {}) exceeds stable {l} {}/{} (≤ {}) by more than {}",
                    c.errors(class),
                    c.requests,
                    pct(inc.canary.lower),
                    s.errors(class),
                    s.requests,
                    pct(inc.stable.upper),
                    points(tolerance),
                    l = class.label()
                ),
            )
        }
        Rule::LatencyIncrease => {
            let l = &evidence.latency;
            let lo = confidence::lower_bound(
                l.slower,
                l.trials,
                alpha * policy.alpha_shares().1,
                LATENCY_PRIOR,
            );
            (
                latency_p(policy, l),
                format!(
                    "canary slower than {:.2}× stable in {:.1} of {:.1} comparable pairs ({}, ≥ {}; at most 50 % tolerated) — {} blocks of {}s in the same pod and kind, {} canary / {} stable requests{}",
                    l.factor
                        .unwrap_or(1.0 + policy.max_latency_increase.unwrap_or(0.0)),
                    l.slower,
                    l.trials,
                    pct(l.slower / l.trials),
                    pct(lo),
                    l.blocks,
                    policy.latency_block_seconds,
                    l.canary_observations,
                    l.stable_observations,
                    floor_note(policy.latency_floor_seconds)
                ),
            )
        }
        Rule::LatencyLimit => {
            let e = &evidence.limit;
            (
                limit_p(policy, e),
                format!(
                    "canary transforms above maxP95 {} ms: {}/{} (more than the 5 % a p95 allows)",
                    (policy.max_p95_seconds.unwrap_or(0.0) * 1000.0).round(),
                    e.above,
                    e.observations
                ),
            )
        }
    }
}

pub(super) fn latency_summary(policy: &Policy, l: &LatencyEvidence) -> String {
    if policy.max_latency_increase.is_none() {
        return String::new();
    }
    if l.trials <= 0.0 {
        return format!(
            "; latency: no comparable pairs yet ({} blocks compared)",
            l.blocks
        );
    }
    format!(
        "; latency: canary slower than {:.2}× stable in {:.1} of {:.1} comparable pairs",
        l.factor.unwrap_or(1.0),
        l.slower,
        l.trials
    )
}

pub(super) fn floor_note(floor: f64) -> String {
    if floor > 0.0 {
        format!(", latencies under {} ms tied", (floor * 1000.0).round())
    } else {
        String::new()
    }
}

/// The anytime p-value (on the overall `α` scale) of an e-value tested at level `α × share`:
/// `1 / (e × share)`, capped at 1.
pub(super) fn p_from_e(ln_e: f64, share: f64) -> f64 {
    if ln_e.is_nan() || share <= 0.0 {
        return 1.0;
    }
    (-ln_e - share.ln()).exp().min(1.0)
}

/// The smallest overall level `a` in `(0, 1]` at which `holds(a)` is true, for a condition that
/// only gets easier as `a` grows (bisection on `ln a`). 1 when it never holds below 1.
pub(super) fn smallest_level(holds: impl Fn(f64) -> bool) -> f64 {
    let top = 1.0 - 1e-12;
    if !holds(top) {
        return 1.0;
    }
    let (mut lo, mut hi) = ((1e-300f64).ln(), top.ln());
    if holds(lo.exp()) {
        return lo.exp();
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if holds(mid.exp()) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi.exp()
}

/// Canary requests still needed for `class` to pass if both revisions keep their current rates
/// and traffic shares; `None` if they never would.
pub(super) fn requests_to_pass(
    class: ErrorClass,
    c: &Counts,
    s: &Counts,
    tolerance: f64,
    level: f64,
) -> Option<u64> {
    if c.requests == 0 {
        return None;
    }
    let rate = |x: &Counts| {
        if x.requests == 0 {
            0.0
        } else {
            x.errors(class) as f64 / x.requests as f64
        }
    };
    if rate(c) - rate(s) >= tolerance {
        return None;
    }
    let scaled = |f: f64| {
        let sc = |x: &Counts| {
            let n = (x.requests as f64 * f).round() as u64;
            let e = (x.errors(class) as f64 * f).round() as u64;
            match class {
                ErrorClass::Server => Counts::new(n, e, 0),
                ErrorClass::Client => Counts::new(n, 0, e),
            }
        };
        errors::passes(class, &sc(c), &sc(s), tolerance, level)
    };
    let mut hi = 1.0f64;
    while !scaled(hi) {
        hi *= 2.0;
        if hi > 1e7 {
            return None;
        }
    }
    let mut lo = hi / 2.0;
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if scaled(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(((hi - 1.0).max(0.0) * c.requests as f64).ceil() as u64)
}

pub(super) fn pct(v: f64) -> String {
    let p = v * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{:.0} %", p)
    } else {
        format!("{:.1} %", p)
    }
}

pub(super) fn points(v: f64) -> String {
    let p = v * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{:.0} points", p)
    } else {
        format!("{:.1} points", p)
    }
}

pub(super) fn sci(v: f64) -> String {
    if v >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}
