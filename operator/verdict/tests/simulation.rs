//! Simulated rollouts with known error rates and latency distributions, looked at after every
//! scrape: the decision rule must keep its stated false-rollback and false-pass rates, decide a
//! canary that fails every request within the time the canary suite allows, see a latency
//! regression through a CPU-heavy neighbour without blaming a healthy canary for it, and give no
//! verdict on too little traffic.
//!
//! The default cases are sized to run in seconds; `simulation_figures` (ignored) runs the large
//! numbers reported in `docs/canary-statistics.md`:
//! `cargo test -p vr-verdict --release --test simulation -- --ignored --nocapture`.

mod sim;

use proptest::prelude::*;
use sim::{allowed, percentile, run, Behaviour, Neighbour, Scenario, StopAt};
use vr_verdict::{Outcome, Policy, Rule};

fn counts_only(rate: f64, weight: f64, stable: f64, canary: f64, horizon: f64) -> Scenario {
    Scenario {
        rate,
        weight,
        stable: Behaviour {
            server_error: stable,
            ..Behaviour::default()
        },
        canary: Behaviour {
            server_error: canary,
            ..Behaviour::default()
        },
        horizon_seconds: horizon,
        ..Scenario::default()
    }
}

/// The canary suite's bad change: 80 req/s, the default first step (10 %), every canary request
/// failing. Decision times over `runs` seeds, looking every `look` seconds.
fn all_fail_decision_times(look: f64, client: bool, runs: u64) -> Vec<f64> {
    let mut sc = counts_only(80.0, 0.10, 0.0, 0.0, 30.0);
    sc.look_seconds = look;
    if client {
        sc.canary.client_error = 1.0;
    } else {
        sc.canary.server_error = 1.0;
    }
    (0..runs)
        .map(|seed| {
            let r = run(&sc, &Policy::default(), seed, StopAt::Fail);
            assert_eq!(r.outcome, Outcome::Fail, "seed {seed}: {r:?}");
            r.at
        })
        .collect()
}

#[test]
fn a_canary_failing_every_request_is_decided_within_three_looks_of_a_second() {
    // Rollback p50 < 6 s end to end leaves ~3 s for the decision (pointer write and data-plane
    // pick-up take the rest).
    for client in [false, true] {
        let t = all_fail_decision_times(1.0, client, 60);
        assert!(percentile(&t, 0.5) <= 3.0, "p50 {:?}", percentile(&t, 0.5));
        assert!(
            percentile(&t, 0.95) <= 4.0,
            "p95 {:?}",
            percentile(&t, 0.95)
        );
        let t = all_fail_decision_times(2.0, client, 60);
        assert!(
            percentile(&t, 0.5) <= 4.0,
            "2 s looks p50 {:?}",
            percentile(&t, 0.5)
        );
    }
}

#[test]
fn a_healthy_canary_is_not_rolled_back_while_looked_at_every_second() {
    // Stable and canary alike (0.5 % 5xx), looked at every second for two minutes, 300 runs.
    let policy = Policy::default();
    let sc = counts_only(80.0, 0.10, 0.005, 0.005, 120.0);
    let fails = (0..300)
        .filter(|seed| run(&sc, &policy, *seed, StopAt::Fail).outcome == Outcome::Fail)
        .count();
    assert!(
        fails <= allowed(policy.alpha(), 300),
        "{fails} false rollbacks in 300"
    );
}

#[test]
fn two_requests_a_second_give_no_verdict() {
    // The suite's low-traffic case: 2 req/s, weight 50 %, a healthy change, watched for 60 s.
    let sc = counts_only(2.0, 0.5, 0.0, 0.0, 60.0);
    for seed in 0..50 {
        let r = run(&sc, &Policy::default(), seed, StopAt::Decision);
        assert!(
            matches!(r.outcome, Outcome::Inconclusive | Outcome::Continue),
            "seed {seed}: {r:?}"
        );
    }
    // The first 20 s (under 20 canary requests, most seeds) are Inconclusive outright.
    let short = counts_only(2.0, 0.5, 0.0, 0.0, 12.0);
    let inconclusive = (0..50)
        .filter(|seed| {
            run(&short, &Policy::default(), *seed, StopAt::Decision).outcome
                == Outcome::Inconclusive
        })
        .count();
    assert!(inconclusive >= 45, "{inconclusive}/50");
}

/// The canary suite's latency case: 50 req/s, 4 % fresh frames (transforms), weight 50 %;
/// stable frames take ~100 ms on an idle pod, the canary's `ratio` times as long.
fn latency_scenario(ratio: f64, neighbour: Neighbour, horizon: f64) -> Scenario {
    let stable = Behaviour {
        transform_median: 0.1,
        transform_sigma: 0.3,
        ..Behaviour::default()
    };
    Scenario {
        rate: 50.0,
        weight: 0.5,
        transform_share: 0.04,
        stable,
        canary: Behaviour {
            transform_median: stable.transform_median * ratio,
            ..stable
        },
        neighbour,
        horizon_seconds: horizon,
        latency: true,
        ..Scenario::default()
    }
}

#[test]
fn a_busy_neighbour_does_not_make_a_healthy_canary_slower() {
    let policy = Policy::default();
    let mut sc = latency_scenario(1.0, Neighbour::HEAVY, 120.0);
    // Transforms everywhere: the latency rule sees plenty of comparable pairs.
    sc.transform_share = 0.3;
    let runs = 60;
    let fails = (0..runs)
        .filter(|seed| {
            let r = run(&sc, &policy, 1000 + seed, StopAt::Fail);
            r.rules.contains(&Rule::LatencyIncrease)
        })
        .count();
    assert!(
        fails <= allowed(policy.alpha(), runs as usize),
        "{fails} latency false rollbacks in {runs}"
    );
}

#[test]
fn a_latency_regression_is_rolled_back_through_a_busy_neighbour() {
    // Canary frames 5× slower (the suite's 4K PNG frames), CPU-heavy neighbour, today's
    // factor-2 buckets, 90 s (the suite's deadline).
    let sc = latency_scenario(5.0, Neighbour::HEAVY, 90.0);
    let mut times = Vec::new();
    for seed in 0..20 {
        let r = run(&sc, &Policy::default(), 2000 + seed, StopAt::Fail);
        if r.outcome == Outcome::Fail {
            assert_eq!(r.rules, vec![Rule::LatencyIncrease], "seed {seed}");
            times.push(r.at);
        }
    }
    assert!(times.len() >= 19, "caught {} of 20", times.len());
    assert!(
        percentile(&times, 0.5) <= 60.0,
        "p50 {}",
        percentile(&times, 0.5)
    );
}

proptest! {
    // Statistical properties: the scenarios are drawn from a fixed seed, so the test is the
    // same on every run (a rate check on random draws must never flake), and each case runs
    // enough rollouts for the rate bound (3 sigma) to mean something.
    #![proptest_config(ProptestConfig {
        cases: 6,
        rng_seed: proptest::test_runner::RngSeed::Fixed(16),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// At the edge of the tolerance (canary exactly `tolerance` worse than stable), looking every
    /// second: rolled back in at most `α` of rollouts, passed in at most `α` of them.
    #[test]
    fn at_the_tolerance_false_rollbacks_and_false_passes_stay_within_alpha(
        confidence in prop_oneof![Just(0.8), Just(0.9), Just(0.95)],
        stable in 0.0f64..0.05,
        tolerance in 0.01f64..0.10,
        rate in 20.0f64..200.0,
        weight in 0.05f64..0.5,
        seed in any::<u64>(),
    ) {
        let policy = Policy {
            confidence,
            max_error_increase: tolerance,
            max_error_rate: None,
            ..Policy::default()
        };
        let sc = counts_only(rate, weight, stable, stable + tolerance, 60.0);
        let runs = 40usize;
        let (mut fails, mut passes) = (0, 0);
        for i in 0..runs as u64 {
            let r = run(&sc, &policy, seed.wrapping_add(i), StopAt::Fail);
            fails += usize::from(r.outcome == Outcome::Fail);
            passes += usize::from(r.ever_passed);
        }
        prop_assert!(fails <= allowed(policy.alpha(), runs), "{} false rollbacks in {}", fails, runs);
        prop_assert!(passes <= allowed(policy.alpha(), runs), "{} false passes in {}", passes, runs);
    }

    /// A canary clearly worse than tolerated (3× the tolerance above stable) is rolled back in
    /// at least 90 % of runs within five minutes at 80 req/s and 10–50 % weight (the miss rate
    /// at this distance; at the tolerance itself nothing can be promised).
    #[test]
    fn a_canary_three_tolerances_worse_is_rolled_back(
        stable in 0.0f64..0.03,
        tolerance in 0.02f64..0.10,
        weight in 0.1f64..0.5,
        seed in any::<u64>(),
    ) {
        let policy = Policy { max_error_increase: tolerance, max_error_rate: None, ..Policy::default() };
        let sc = counts_only(80.0, weight, stable, stable + 3.0 * tolerance, 300.0);
        let runs = 20usize;
        let caught = (0..runs as u64)
            .filter(|i| run(&sc, &policy, seed.wrapping_add(*i), StopAt::Fail).outcome == Outcome::Fail)
            .count();
        prop_assert!(caught * 10 >= runs * 9, "{} of {} caught", caught, runs);
    }

    /// A busy neighbour with any spell lengths and strength never makes a healthy canary's
    /// latency fail more often than `α` (a lenient confidence, so that the bound is testable).
    #[test]
    fn latency_false_rollbacks_stay_within_alpha_whatever_the_neighbour(
        calm in 1.0f64..20.0, busy in 1.0f64..20.0, factor in 1.0f64..8.0, sigma in 0.0f64..1.0,
        jitter in 0.0f64..0.5, share in 0.02f64..0.5, weight in 0.1f64..0.5, seed in any::<u64>(),
    ) {
        let policy = Policy { confidence: 0.8, ..Policy::default() };
        let mut sc = latency_scenario(1.0, Neighbour { calm_seconds: calm, busy_seconds: busy, busy_factor: factor, busy_sigma: sigma, jitter }, 60.0);
        sc.transform_share = share;
        sc.weight = weight;
        let runs = 20usize;
        let fails = (0..runs as u64)
            .filter(|i| run(&sc, &policy, seed.wrapping_add(*i), StopAt::Fail).rules.contains(&Rule::LatencyIncrease))
            .count();
        prop_assert!(fails <= allowed(policy.alpha(), runs), "{} of {}", fails, runs);
    }
}

/// The figures of `docs/canary-statistics.md`.
#[test]
#[ignore = "figures: minutes in release mode"]
fn simulation_figures() {
    let policy = Policy::default();
    println!("policy: {policy:?}");
    // 1. Time to decide a canary failing every request (80 req/s, 10 %).
    for (look, client) in [(1.0, false), (2.0, false), (1.0, true)] {
        let t = all_fail_decision_times(look, client, 1000);
        println!(
            "ALL_FAIL look={look}s class={} runs=1000 decided_at p50={}s p95={}s max={}s",
            if client { "4xx" } else { "5xx" },
            percentile(&t, 0.5),
            percentile(&t, 0.95),
            percentile(&t, 1.0)
        );
    }
    // 2. Partial failures: time to rollback (default policy: also maxErrorRate 5 %).
    for p in [0.8, 0.5, 0.2, 0.1, 0.05] {
        let sc = counts_only(80.0, 0.10, 0.0, p, 300.0);
        let runs: Vec<_> = (0..1000)
            .map(|s| run(&sc, &policy, s, StopAt::Fail))
            .collect();
        let t: Vec<f64> = runs
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| r.at)
            .collect();
        let req: Vec<f64> = runs
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| r.canary_requests as f64)
            .collect();
        println!(
            "PARTIAL canary_5xx={p} stable_5xx=0 rate=80 weight=10%: caught={}/1000 within 300 s, at p50={}s p95={}s ({} canary requests at p50)",
            t.len(),
            percentile(&t, 0.5),
            percentile(&t, 0.95),
            percentile(&req, 0.5)
        );
    }
    // 3. False rollbacks and false passes at the default confidence (α = 1 %), looking every
    //    second for ten minutes.
    for (stable, canary, label) in [
        (0.0, 0.0, "healthy, 0 % both"),
        (0.005, 0.005, "healthy, 0.5 % both"),
        (0.0, 0.02, "at the tolerance, 0 % → 2 %"),
        (0.01, 0.03, "at the tolerance, 1 % → 3 %"),
        (0.01, 0.04, "1.5 tolerances worse, 1 % → 4 %"),
    ] {
        let sc = counts_only(80.0, 0.10, stable, canary, 600.0);
        let n = 5000;
        let runs: Vec<_> = (0..n)
            .map(|s| run(&sc, &policy, 10_000 + s, StopAt::Fail))
            .collect();
        let fails = runs.iter().filter(|r| r.outcome == Outcome::Fail).count();
        let passes = runs.iter().filter(|r| r.ever_passed).count();
        println!(
            "ERRORS {label}, 80 req/s at 10 %, a look every second for 600 s, runs={n}: rolled_back={fails} ({:.2} %) passed_first={passes} ({:.2} %)",
            100.0 * fails as f64 / n as f64,
            100.0 * passes as f64 / n as f64
        );
    }
    // 4. Time to pass a healthy canary.
    for (rate, weight) in [(80.0, 0.1), (80.0, 0.5), (10.0, 0.1), (2.0, 0.5)] {
        let sc = counts_only(rate, weight, 0.0, 0.0, 3600.0);
        let runs: Vec<_> = (0..200)
            .map(|s| run(&sc, &policy, s, StopAt::Decision))
            .collect();
        let t: Vec<f64> = runs
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .map(|r| r.at)
            .collect();
        let req: Vec<f64> = runs
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .map(|r| r.canary_requests as f64)
            .collect();
        println!(
            "PASS healthy (0 % errors) rate={rate} weight={weight}: passed={}/200 at p50={}s ({} canary requests)",
            t.len(),
            percentile(&t, 0.5),
            percentile(&req, 0.5)
        );
    }
    // 5. Latency: a healthy canary beside a CPU-heavy neighbour, new rule vs the old p95 ratio.
    for (share, label) in [
        (0.04, "suite mix, 4 % transforms"),
        (0.3, "30 % transforms"),
    ] {
        let mut sc = latency_scenario(1.0, Neighbour::HEAVY, 300.0);
        sc.transform_share = share;
        let n = 1000;
        let runs: Vec<_> = (0..n)
            .map(|s| run(&sc, &policy, 20_000 + s, StopAt::Never))
            .collect();
        let new = runs
            .iter()
            .filter(|r| {
                r.first_fail
                    .as_ref()
                    .is_some_and(|(_, rules)| rules.contains(&Rule::LatencyIncrease))
            })
            .count();
        let old = runs.iter().filter(|r| r.old_rule_failed).count();
        println!(
            "LATENCY_HEALTHY {label}, heavy neighbour, 300 s, runs={n}: new_rule_rollbacks={new} old_p95_ratio_rule_rollbacks={old}"
        );
    }
    // 6. Latency regressions through the neighbour, 120 s.
    for (share, sigma, ratio) in [
        (0.04, 0.3, 5.0),
        (0.04, 0.3, 3.4),
        (0.04, 0.5, 3.4),
        (0.10, 0.3, 3.4),
        (0.10, 0.5, 3.4),
        (0.04, 0.5, 1.5),
        (0.10, 0.5, 1.5),
    ] {
        for fine in [false, true] {
            let mut sc = latency_scenario(ratio, Neighbour::HEAVY, 120.0);
            sc.transform_share = share;
            sc.stable.transform_sigma = sigma;
            sc.canary.transform_sigma = sigma;
            if fine {
                sc.bounds = sim::quarter_octave_buckets();
            }
            let n = 500;
            let runs: Vec<_> = (0..n)
                .map(|s| run(&sc, &policy, 30_000 + s, StopAt::Never))
                .collect();
            let t: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.first_fail.as_ref())
                .filter(|(_, rules)| rules.contains(&Rule::LatencyIncrease))
                .map(|(at, _)| *at)
                .collect();
            let within90 = t.iter().filter(|x| **x <= 90.0).count();
            let old = runs.iter().filter(|r| r.old_rule_failed).count();
            println!(
                "LATENCY_REGRESSION {ratio}× (σ {sigma}) {:.0} % transforms, {}: caught {within90}/{n} within 90 s, {}/{n} within 120 s, at p50={}s p90={}s | old p95-ratio rule: {old}/{n}",
                share * 100.0,
                if fine { "quarter-octave buckets (1.68× applied)" } else { "factor-2 buckets (2× applied)" },
                t.len(),
                percentile(&t, 0.5),
                percentile(&t, 0.9),
            );
        }
    }
    // 7. Low traffic.
    let sc = counts_only(2.0, 0.5, 0.0, 0.0, 60.0);
    let runs: Vec<_> = (0..1000)
        .map(|s| run(&sc, &policy, s, StopAt::Decision))
        .collect();
    let decided = runs
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass | Outcome::Fail))
        .count();
    let inconclusive = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Inconclusive)
        .count();
    println!("LOW_TRAFFIC 2 req/s weight 50 %, 60 s: decided {decided}/1000, still below minRequests {inconclusive}/1000");
}
