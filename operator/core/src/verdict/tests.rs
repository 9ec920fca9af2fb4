use super::*;
use judge::exceeds;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use vr_crds::rollout::RolloutStatus;
use vr_crds::rollout::{AnalysisResult, AnalysisSpec, RevisionNumbers, Verdict};

fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

fn nums(requests: u64, e5: u64, e4: u64, transformed: u64, p95: Option<f64>) -> RevisionNumbers {
    RevisionNumbers {
        requests,
        server_errors: e5,
        client_errors: e4,
        transformed,
        p95_milliseconds: p95,
    }
}

fn judge_default(c: &RevisionNumbers, s: &RevisionNumbers) -> AnalysisResult {
    judge(&AnalysisSpec::default(), c, s, 5, now())
}

#[test]
fn too_few_canary_requests_is_inconclusive_even_when_all_fail() {
    let r = judge_default(&nums(19, 19, 0, 0, None), &nums(100, 0, 0, 0, None));
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert_eq!(
        r.reasons,
        vec!["canary served 19 requests < minRequests 20"]
    );
    assert_eq!(r.time, "1970-01-01T00:00:00Z");
    assert_eq!(r.window_seconds, 5);
}

#[test]
fn a_healthy_canary_passes_without_reasons() {
    let r = judge_default(
        &nums(100, 1, 3, 50, Some(120.0)),
        &nums(900, 9, 27, 450, Some(100.0)),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.reasons);
    assert!(r.reasons.is_empty());
}

#[test]
fn absolute_error_rate_fails_with_the_numbers() {
    let r = judge_default(&nums(40, 5, 0, 0, None), &nums(0, 0, 0, 0, None));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(
        r.reasons,
        vec!["canary 5xx 12.5% (5/40) > maxErrorRatePercent 5"]
    );
}

#[test]
fn exactly_at_the_limit_is_not_above_it() {
    let r = judge_default(&nums(100, 5, 0, 0, None), &nums(100, 3, 0, 0, None));
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.reasons);
}

#[test]
fn error_rate_increase_over_stable_fails() {
    let r = judge_default(&nums(100, 4, 0, 0, None), &nums(100, 1, 0, 0, None));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(
        r.reasons,
        vec!["canary 5xx 4% (4/100) exceeds stable 1% (1/100) by more than maxErrorRateIncreasePercent 2"]
    );
}

#[test]
fn client_error_increase_fails_but_equal_client_errors_do_not() {
    let bad = judge_default(&nums(100, 0, 40, 0, None), &nums(100, 0, 5, 0, None));
    assert_eq!(bad.verdict, Verdict::Fail);
    assert!(bad.reasons[0].contains("maxClientErrorRateIncreasePercent 10"));
    let same = judge_default(&nums(100, 0, 40, 0, None), &nums(100, 0, 35, 0, None));
    assert_eq!(same.verdict, Verdict::Pass);
}

#[test]
fn relative_rules_are_skipped_without_stable_traffic() {
    let r = judge_default(
        &nums(100, 3, 50, 100, Some(5000.0)),
        &nums(0, 0, 0, 0, None),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.reasons);
}

#[test]
fn absolute_p95_limit_applies_when_set() {
    let spec = AnalysisSpec {
        max_p95_milliseconds: Some(500),
        ..AnalysisSpec::default()
    };
    let r = judge(
        &spec,
        &nums(100, 0, 0, 1, Some(812.4)),
        &nums(0, 0, 0, 0, None),
        5,
        now(),
    );
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(
        r.reasons,
        vec!["canary p95 812 ms > maxP95Milliseconds 500"]
    );
}

#[test]
fn p95_ratio_fails_above_the_floor_with_enough_transforms() {
    let r = judge_default(
        &nums(100, 0, 0, 5, Some(900.0)),
        &nums(100, 0, 0, 5, Some(200.0)),
    );
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(
        r.reasons,
        vec!["canary p95 900 ms is 450% of stable 200 ms > maxP95RatioPercent 300 (transformed 5 / 5)"]
    );
}

#[test]
fn p95_ratio_is_ignored_below_the_floor_or_with_few_transforms() {
    let below = judge_default(
        &nums(100, 0, 0, 50, Some(240.0)),
        &nums(100, 0, 0, 50, Some(10.0)),
    );
    assert_eq!(below.verdict, Verdict::Pass);
    let few = judge_default(
        &nums(100, 0, 0, 4, Some(900.0)),
        &nums(100, 0, 0, 50, Some(10.0)),
    );
    assert_eq!(few.verdict, Verdict::Pass);
    let few_stable = judge_default(
        &nums(100, 0, 0, 50, Some(900.0)),
        &nums(100, 0, 0, 4, Some(10.0)),
    );
    assert_eq!(few_stable.verdict, Verdict::Pass);
}

#[test]
fn every_broken_rule_is_reported() {
    let spec = AnalysisSpec {
        max_p95_milliseconds: Some(100),
        ..AnalysisSpec::default()
    };
    let r = judge(
        &spec,
        &nums(100, 50, 40, 50, Some(2000.0)),
        &nums(100, 0, 0, 50, Some(100.0)),
        5,
        now(),
    );
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.reasons.len(), 5, "{:?}", r.reasons);
}

#[test]
fn tally_fails_at_window_failure_limit_plus_one() {
    let spec = AnalysisSpec {
        failure_limit: 1,
        ..AnalysisSpec::default()
    };
    let mut t = Tally::default();
    assert_eq!(t.observe(&spec, Verdict::Fail), Decision::Continue);
    assert_eq!(t.observe(&spec, Verdict::Pass), Decision::Continue);
    assert!(matches!(
        t.observe(&spec, Verdict::Fail),
        Decision::Fail { .. }
    ));
    assert!(matches!(
        t.observe(&spec, Verdict::Pass),
        Decision::Fail { .. }
    ));
}

#[test]
fn tally_reports_provider_error_after_the_error_limit_and_recovers() {
    let spec = AnalysisSpec {
        consecutive_error_limit: 2,
        ..AnalysisSpec::default()
    };
    let mut t = Tally::default();
    assert_eq!(t.observe(&spec, Verdict::Error), Decision::Continue);
    assert!(matches!(
        t.observe(&spec, Verdict::Error),
        Decision::ProviderError { .. }
    ));
    assert!(matches!(
        t.observe(&spec, Verdict::Error),
        Decision::ProviderError { .. }
    ));
    assert_eq!(t.observe(&spec, Verdict::Inconclusive), Decision::Continue);
    assert_eq!(t.consecutive_errors, 0);
    assert_eq!(t.observe(&spec, Verdict::Error), Decision::Continue);
}

#[test]
fn tally_round_trips_through_rollout_status() {
    let t = Tally {
        passed_windows: 1,
        failed_windows: 2,
        inconclusive_windows: 3,
        consecutive_errors: 4,
    };
    let mut status = RolloutStatus::default();
    t.write_to(&mut status);
    assert_eq!(Tally::from_status(&status), t);
    let json = serde_json::to_value(t).unwrap();
    assert_eq!(json["failedWindows"], 2);
}

#[test]
fn next_step_resets_only_the_passes() {
    let mut t = Tally {
        passed_windows: 3,
        failed_windows: 1,
        inconclusive_windows: 2,
        consecutive_errors: 1,
    };
    t.next_step();
    assert_eq!(t.passed_windows, 0);
    assert_eq!(
        (
            t.failed_windows,
            t.inconclusive_windows,
            t.consecutive_errors
        ),
        (1, 2, 1)
    );
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Pass),
        Just(Verdict::Fail),
        Just(Verdict::Inconclusive),
        Just(Verdict::Error)
    ]
}

fn spec_strategy() -> impl Strategy<Value = AnalysisSpec> {
    (
        1u32..200,
        0u32..=100,
        0u32..=100,
        0u32..=100,
        proptest::option::of(1u32..5000),
        100u32..1000,
        0u32..1000,
        0u32..5,
        1u32..6,
    )
        .prop_map(
            |(min, max5, inc5, inc4, p95, ratio, floor, fl, el)| AnalysisSpec {
                min_requests: min,
                max_error_rate_percent: max5,
                max_error_rate_increase_percent: inc5,
                max_client_error_rate_increase_percent: inc4,
                max_p95_milliseconds: p95,
                max_p95_ratio_percent: ratio,
                latency_floor_milliseconds: floor,
                failure_limit: fl,
                consecutive_error_limit: el,
                ..AnalysisSpec::default()
            },
        )
}

fn numbers() -> impl Strategy<Value = RevisionNumbers> {
    (
        0u64..500,
        0u64..=100,
        0u64..=100,
        0u64..=100,
        proptest::option::of(0.0f64..10_000.0),
    )
        .prop_map(|(n, a, b, t, p)| {
            // Split n into 5xx, 4xx and the rest by the percentages drawn.
            let e5 = n * a / 100;
            let e4 = (n - e5) * b / 100;
            nums(n, e5, e4, n * t / 100, p)
        })
}

proptest! {
    #[test]
    fn only_passes_and_inconclusives_never_fail(
        spec in spec_strategy(),
        seq in proptest::collection::vec(prop_oneof![Just(Verdict::Pass), Just(Verdict::Inconclusive)], 0..60),
    ) {
        let mut t = Tally::default();
        for v in seq {
            prop_assert_eq!(t.observe(&spec, v), Decision::Continue);
        }
    }

    #[test]
    fn fails_exactly_at_the_window_that_exceeds_the_failure_limit(
        spec in spec_strategy(),
        seq in proptest::collection::vec(verdict(), 0..60),
    ) {
        let mut t = Tally::default();
        let mut fails = 0u32;
        let mut first_fail_at = None;
        for (i, v) in seq.iter().enumerate() {
            if *v == Verdict::Fail {
                fails += 1;
            }
            let d = t.observe(&spec, *v);
            if matches!(d, Decision::Fail { .. }) && first_fail_at.is_none() {
                first_fail_at = Some(i);
            }
            let failed = matches!(d, Decision::Fail { .. });
            prop_assert_eq!(failed, fails > spec.failure_limit);
        }
        let expected = seq
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == Verdict::Fail)
            .nth(spec.failure_limit as usize)
            .map(|(i, _)| i);
        prop_assert_eq!(first_fail_at, expected);
    }

    #[test]
    fn provider_error_exactly_when_errors_in_a_row_reach_the_limit(
        spec in spec_strategy(),
        seq in proptest::collection::vec(prop_oneof![
            3 => Just(Verdict::Error), 1 => Just(Verdict::Pass), 1 => Just(Verdict::Inconclusive)
        ], 0..60),
    ) {
        let mut t = Tally::default();
        let mut run = 0u32;
        for v in seq {
            run = if v == Verdict::Error { run + 1 } else { 0 };
            let d = t.observe(&spec, v);
            if run >= spec.consecutive_error_limit {
                prop_assert!(matches!(d, Decision::ProviderError { .. }), "{:?}", d);
            } else {
                prop_assert_eq!(d, Decision::Continue);
            }
        }
    }

    #[test]
    fn resuming_from_status_gives_the_same_decisions(
        spec in spec_strategy(),
        seq in proptest::collection::vec(verdict(), 0..40),
        cut in 0usize..40,
    ) {
        let mut straight = Tally::default();
        let mut resumed = Tally::default();
        for (i, v) in seq.iter().enumerate() {
            if i == cut {
                let mut status = RolloutStatus::default();
                resumed.write_to(&mut status);
                resumed = Tally::from_status(&status);
            }
            prop_assert_eq!(straight.observe(&spec, *v), resumed.observe(&spec, *v));
        }
    }

    #[test]
    fn never_passes_with_fewer_than_min_requests(
        spec in spec_strategy(), c in numbers(), s in numbers(),
    ) {
        let r = judge(&spec, &c, &s, 5, now());
        if c.requests < u64::from(spec.min_requests) {
            prop_assert_eq!(r.verdict, Verdict::Inconclusive);
        } else {
            prop_assert_ne!(r.verdict, Verdict::Inconclusive);
        }
        prop_assert_ne!(r.verdict, Verdict::Error);
        prop_assert_eq!(r.verdict == Verdict::Pass, r.reasons.is_empty());
    }

    #[test]
    fn turning_canary_successes_into_5xx_never_turns_fail_into_pass(
        spec in spec_strategy(), c in numbers(), s in numbers(), k in 0u64..100,
    ) {
        let before = judge(&spec, &c, &s, 5, now());
        let ok = c.requests - c.server_errors - c.client_errors;
        let worse = RevisionNumbers { server_errors: c.server_errors + k.min(ok), ..c.clone() };
        let after = judge(&spec, &worse, &s, 5, now());
        if before.verdict == Verdict::Fail {
            prop_assert_eq!(after.verdict, Verdict::Fail);
        }
    }

    #[test]
    fn a_slower_canary_never_turns_fail_into_pass(
        spec in spec_strategy(), c in numbers(), s in numbers(), extra in 0.0f64..5000.0,
    ) {
        let before = judge(&spec, &c, &s, 5, now());
        let slower = RevisionNumbers { p95_milliseconds: c.p95_milliseconds.map(|p| p + extra), ..c.clone() };
        let after = judge(&spec, &slower, &s, 5, now());
        if before.verdict == Verdict::Fail {
            prop_assert_eq!(after.verdict, Verdict::Fail);
        }
    }

    #[test]
    fn a_healthier_stable_never_turns_fail_into_pass(
        spec in spec_strategy(), c in numbers(), s in numbers(),
    ) {
        // Stable with the same traffic and no errors is the strictest comparison.
        let before = judge(&spec, &c, &s, 5, now());
        let clean = RevisionNumbers { server_errors: 0, client_errors: 0, ..s.clone() };
        let after = judge(&spec, &c, &clean, 5, now());
        if before.verdict == Verdict::Fail && s.requests > 0 {
            prop_assert_eq!(after.verdict, Verdict::Fail);
        }
    }

    #[test]
    fn exact_share_comparison_agrees_with_floating_point_away_from_the_edge(
        part in 0u64..10_000, extra in 0u64..10_000, limit in 0u32..=100,
    ) {
        let whole = part + extra;
        let f = if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 };
        if (f - f64::from(limit)).abs() > 1e-6 {
            prop_assert_eq!(exceeds(part, whole, limit), f > f64::from(limit));
        }
    }
}
