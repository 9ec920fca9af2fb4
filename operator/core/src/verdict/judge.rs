//! One window's numbers → a verdict ([`judge`]), and the results recorded when there are no
//! numbers to judge (an unreadable provider, no window yet).

use k8s_openapi::jiff::Timestamp;
use vr_crds::rollout::{AnalysisResult, AnalysisSpec, RevisionNumbers, Verdict};

/// Judges one window of `canary` against `stable` under `spec`, as the field docs of
/// [`AnalysisSpec`] say. `window_seconds` and `now` are recorded in the result.
///
/// Rules, in order:
/// 1. fewer than `minRequests` canary requests → `Inconclusive` (no other rule is applied);
/// 2. canary 5xx share > `maxErrorRatePercent` → fail;
/// 3. canary 5xx share − stable 5xx share > `maxErrorRateIncreasePercent` points → fail;
/// 4. canary 4xx share − stable 4xx share > `maxClientErrorRateIncreasePercent` points → fail;
/// 5. canary p95 of transformed requests > `maxP95Milliseconds` (when set) → fail;
/// 6. canary p95 / stable p95 > `maxP95RatioPercent`, checked only when both revisions
///    transformed at least `minRequests / 4` requests and the canary's p95 is above
///    `latencyFloorMilliseconds` → fail.
///
/// Rules 3, 4 and 6 compare with the stable revision and are skipped when it served no request
/// in the window (at weight 100 there is nothing to compare with; the absolute rules still
/// hold). Shares are compared exactly (integer arithmetic), so `5/100` is not above 5 %.
/// Every broken rule adds one reason with its numbers; `Pass` has no reasons.
pub fn judge(
    spec: &AnalysisSpec,
    canary: &RevisionNumbers,
    stable: &RevisionNumbers,
    window_seconds: u32,
    now: Timestamp,
) -> AnalysisResult {
    let mut reasons = Vec::new();
    let verdict = if canary.requests < u64::from(spec.min_requests) {
        reasons.push(format!(
            "canary served {} requests < minRequests {}",
            canary.requests, spec.min_requests
        ));
        Verdict::Inconclusive
    } else {
        broken_rules(spec, canary, stable, &mut reasons);
        if reasons.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    };
    AnalysisResult {
        verdict,
        time: now.to_string(),
        window_seconds,
        canary: canary.clone(),
        stable: stable.clone(),
        reasons,
    }
}

/// The result recorded when the numbers could not be read (`Error`, with the reason).
pub fn error_result(window_seconds: u32, now: Timestamp, reason: String) -> AnalysisResult {
    AnalysisResult {
        verdict: Verdict::Error,
        time: now.to_string(),
        window_seconds,
        canary: RevisionNumbers::default(),
        stable: RevisionNumbers::default(),
        reasons: vec![reason],
    }
}

/// The result recorded when a provider has no window yet (first scrape after start: a
/// baseline): `Inconclusive`, with the reason.
pub fn no_window_result(window_seconds: u32, now: Timestamp, reason: String) -> AnalysisResult {
    AnalysisResult {
        verdict: Verdict::Inconclusive,
        time: now.to_string(),
        window_seconds,
        canary: RevisionNumbers::default(),
        stable: RevisionNumbers::default(),
        reasons: vec![reason],
    }
}

fn broken_rules(
    spec: &AnalysisSpec,
    canary: &RevisionNumbers,
    stable: &RevisionNumbers,
    reasons: &mut Vec<String>,
) {
    let c5 = canary.server_errors;
    let c4 = canary.client_errors;
    let cn = canary.requests;
    if exceeds(c5, cn, spec.max_error_rate_percent) {
        reasons.push(format!(
            "canary 5xx {} ({c5}/{cn}) > maxErrorRatePercent {}",
            pct(c5, cn),
            spec.max_error_rate_percent
        ));
    }
    let sn = stable.requests;
    if sn > 0 {
        let s5 = stable.server_errors;
        if exceeds_by(c5, cn, s5, sn, spec.max_error_rate_increase_percent) {
            reasons.push(format!(
                "canary 5xx {} ({c5}/{cn}) exceeds stable {} ({s5}/{sn}) by more than maxErrorRateIncreasePercent {}",
                pct(c5, cn),
                pct(s5, sn),
                spec.max_error_rate_increase_percent
            ));
        }
        let s4 = stable.client_errors;
        if exceeds_by(c4, cn, s4, sn, spec.max_client_error_rate_increase_percent) {
            reasons.push(format!(
                "canary 4xx {} ({c4}/{cn}) exceeds stable {} ({s4}/{sn}) by more than maxClientErrorRateIncreasePercent {}",
                pct(c4, cn),
                pct(s4, sn),
                spec.max_client_error_rate_increase_percent
            ));
        }
    }
    let Some(cp) = canary.p95_milliseconds.filter(|p| !p.is_nan()) else {
        return;
    };
    if let Some(max) = spec.max_p95_milliseconds {
        if cp > f64::from(max) {
            reasons.push(format!("canary p95 {} > maxP95Milliseconds {max}", ms(cp)));
        }
    }
    let enough = u64::from(spec.min_requests / 4);
    let Some(sp) = stable.p95_milliseconds.filter(|p| !p.is_nan()) else {
        return;
    };
    if sn > 0
        && canary.transformed >= enough
        && stable.transformed >= enough
        && cp > f64::from(spec.latency_floor_milliseconds)
    {
        let limit = f64::from(spec.max_p95_ratio_percent);
        // A stable p95 of 0 makes any canary latency above the floor an unbounded ratio.
        let ratio = if sp > 0.0 {
            cp * 100.0 / sp
        } else {
            f64::INFINITY
        };
        if ratio > limit {
            reasons.push(format!(
                "canary p95 {} is {:.0}% of stable {} > maxP95RatioPercent {} (transformed {} / {})",
                ms(cp),
                ratio,
                ms(sp),
                spec.max_p95_ratio_percent,
                canary.transformed,
                stable.transformed
            ));
        }
    }
}

/// `part / whole > limit %`, exactly.
pub(super) fn exceeds(part: u64, whole: u64, limit: u32) -> bool {
    whole > 0 && u128::from(part) * 100 > u128::from(limit) * u128::from(whole)
}

/// `cp / cn − sp / sn > limit %`, exactly (both wholes > 0).
fn exceeds_by(cp: u64, cn: u64, sp: u64, sn: u64, limit: u32) -> bool {
    if cn == 0 || sn == 0 {
        return false;
    }
    let lhs = 100 * (i128::from(cp) * i128::from(sn) - i128::from(sp) * i128::from(cn));
    lhs > i128::from(limit) * i128::from(cn) * i128::from(sn)
}

fn pct(part: u64, whole: u64) -> String {
    let n = RevisionNumbers {
        requests: whole,
        server_errors: part,
        ..RevisionNumbers::default()
    };
    let p = n.server_error_percent();
    if p == p.trunc() {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}
