//! A simulator of canary rollouts for the decision rule: requests arriving second by second at
//! a few pods, split between the revisions by weight, failing and taking time according to each
//! revision's known behaviour, on pods that a busy neighbour slows down — and the operator
//! looking every `look_seconds`, as it will in the cluster.
#![allow(dead_code)]

use vr_verdict::latency::{Histogram, PodLatency, TRANSFORM};
use vr_verdict::{failing_rules, outcome, Counts, Evidence, Look, Outcome, Policy, Rule};

/// xoshiro256** seeded by splitmix64: fast, reproducible, good enough for simulation.
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 40.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.uniform();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// How one revision behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub server_error: f64,
    pub client_error: f64,
    /// Median transform latency (seconds) on an idle pod, and its log-normal spread.
    pub transform_median: f64,
    pub transform_sigma: f64,
    /// Median hit latency (seconds).
    pub hit_median: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            server_error: 0.0,
            client_error: 0.0,
            transform_median: 0.12,
            transform_sigma: 0.5,
            hit_median: 0.002,
        }
    }
}

/// A CPU-heavy neighbour: the machine and each pod alternate between calm and busy spells;
/// a busy spell multiplies every request's latency on the pod by a random factor.
#[derive(Debug, Clone, Copy)]
pub struct Neighbour {
    /// Mean calm and busy spell lengths (seconds).
    pub calm_seconds: f64,
    pub busy_seconds: f64,
    /// Median slowdown while busy, and its log-normal spread (per second).
    pub busy_factor: f64,
    pub busy_sigma: f64,
    /// Per-second jitter of every pod even when calm (log-normal sigma).
    pub jitter: f64,
}

impl Neighbour {
    pub const NONE: Neighbour = Neighbour {
        calm_seconds: 1e12,
        busy_seconds: 1.0,
        busy_factor: 1.0,
        busy_sigma: 0.0,
        jitter: 0.0,
    };
    /// The e2e suite's CPU-heavy process beside the data planes, roughly: a few seconds calm,
    /// a few seconds busy at 2–6× slower.
    pub const HEAVY: Neighbour = Neighbour {
        calm_seconds: 6.0,
        busy_seconds: 4.0,
        busy_factor: 3.0,
        busy_sigma: 0.5,
        jitter: 0.15,
    };
}

/// A simulated rollout.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub rate: f64,
    pub weight: f64,
    pub pods: usize,
    /// Share of requests that are transforms (the rest are hits).
    pub transform_share: f64,
    pub stable: Behaviour,
    pub canary: Behaviour,
    pub neighbour: Neighbour,
    pub look_seconds: f64,
    pub horizon_seconds: f64,
    /// Bucket bounds of the latency histograms.
    pub bounds: Vec<f64>,
    /// Simulate latency at all (off: counts only, faster).
    pub latency: bool,
    /// Compare latencies per pod (the default) or pooled across pods per block.
    pub per_pod: bool,
}

/// The data plane's current request-latency buckets: 1 ms × 2^i, 17 bounds.
pub fn factor_two_buckets() -> Vec<f64> {
    (0..17).map(|i| 0.001 * 2f64.powi(i)).collect()
}

/// The proposed analysis buckets: 1 ms × 2^(i/4), 65 bounds (≈ 65 s).
pub fn quarter_octave_buckets() -> Vec<f64> {
    (0..65).map(|i| 0.001 * 2f64.powf(i as f64 / 4.0)).collect()
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            rate: 80.0,
            weight: 0.10,
            pods: 3,
            transform_share: 0.0,
            stable: Behaviour::default(),
            canary: Behaviour::default(),
            neighbour: Neighbour::NONE,
            look_seconds: 1.0,
            horizon_seconds: 60.0,
            bounds: factor_two_buckets(),
            latency: false,
            per_pod: true,
        }
    }
}

/// When to stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// At the first `Fail` (false-rollback and time-to-rollback measurements).
    Fail,
    /// At the first `Fail` or `Pass` (a step that advances on `Pass`).
    Decision,
    /// Never: run to the horizon (to compare with the old rule over the same time).
    Never,
}

/// What a run ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub outcome: Outcome,
    /// Seconds since the start at the deciding look.
    pub at: f64,
    pub rules: Vec<Rule>,
    pub canary_requests: u64,
    /// Whether the old window rule (p95 ratio, 5 s windows, failure limit 1) rolled back.
    pub old_rule_failed: bool,
    pub ever_passed: bool,
    /// First look at which the new rule failed, and the rules then (any stop mode).
    pub first_fail: Option<(f64, Vec<Rule>)>,
}

struct PodState {
    busy: bool,
}

fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// Runs one rollout of `sc` under `policy` with `seed`.
pub fn run(sc: &Scenario, policy: &Policy, seed: u64, stop: StopAt) -> Run {
    let mut rng = Rng::new(seed);
    let mut ev = Evidence::default();
    let mut pods: Vec<PodState> = (0..sc.pods).map(|_| PodState { busy: false }).collect();
    let mut machine_busy = false;
    let nb = sc.bounds.len() + 1;
    // Per pod × kind (0 hit, 1 transform) × revision (0 canary, 1 stable) counts since the last look.
    let mut hist = vec![
        [
            [vec![0u64; nb], vec![0u64; nb]],
            [vec![0u64; nb], vec![0u64; nb]]
        ];
        sc.pods
    ];
    let (mut dc, mut ds) = (Counts::default(), Counts::default());
    // Old rule: per 5 s window, transform buckets pooled across pods.
    let mut old = [vec![0u64; nb], vec![0u64; nb]];
    let mut old_failed_windows = 0;
    let mut old_canary_requests = 0u64;
    let mut old_rule_failed = false;
    let mut ever_passed = false;
    let mut first_fail: Option<(f64, Vec<Rule>)> = None;
    let mut next_look = sc.look_seconds;
    let mut t = 0.0;
    while t < sc.horizon_seconds {
        t += 1.0;
        // Neighbour: spells flip with probability 1/mean per second.
        let flip = |busy: bool, rng: &mut Rng| {
            let mean = if busy {
                sc.neighbour.busy_seconds
            } else {
                sc.neighbour.calm_seconds
            };
            rng.bernoulli(1.0 / mean.max(1.0))
        };
        if flip(machine_busy, &mut rng) {
            machine_busy = !machine_busy;
        }
        for (p, pod) in pods.iter_mut().enumerate() {
            if flip(pod.busy, &mut rng) {
                pod.busy = !pod.busy;
            }
            let busy = pod.busy || machine_busy;
            let mut slowdown = (sc.neighbour.jitter * rng.normal()).exp();
            if busy {
                slowdown *=
                    sc.neighbour.busy_factor * (sc.neighbour.busy_sigma * rng.normal()).exp();
            }
            for (side, share, behaviour) in [
                (0usize, sc.weight, &sc.canary),
                (1, 1.0 - sc.weight, &sc.stable),
            ] {
                let n = rng.poisson(sc.rate * share / sc.pods as f64);
                let counts = if side == 0 { &mut dc } else { &mut ds };
                if side == 0 {
                    old_canary_requests += n;
                }
                for _ in 0..n {
                    counts.requests += 1;
                    if rng.bernoulli(behaviour.server_error) {
                        counts.server_errors += 1;
                    } else if rng.bernoulli(behaviour.client_error) {
                        counts.client_errors += 1;
                    }
                    if !sc.latency {
                        continue;
                    }
                    let transform = rng.bernoulli(sc.transform_share);
                    let v = if transform {
                        behaviour.transform_median
                            * (behaviour.transform_sigma * rng.normal()).exp()
                    } else {
                        behaviour.hit_median * (0.3 * rng.normal()).exp()
                    } * slowdown;
                    let b = bucket(&sc.bounds, v);
                    hist[p][usize::from(transform)][side][b] += 1;
                    if transform {
                        old[side][b] += 1;
                    }
                }
            }
        }
        // The old rule's 5 s windows (p95 ratio 300 %, floor 250 ms, both ≥ minRequests/4
        // transforms, minRequests canary requests).
        if sc.latency && (t as u64) % 5 == 0 {
            let q = |h: &Vec<u64>| quantile(&sc.bounds, h, 0.95);
            let (nc, ns) = (old[0].iter().sum::<u64>(), old[1].iter().sum::<u64>());
            let enough = policy.min_requests / 4;
            if let (Some(cp), Some(sp)) = (q(&old[0]), q(&old[1])) {
                let judged = old_canary_requests >= policy.min_requests;
                if judged && nc >= enough && ns >= enough && cp > 0.25 && cp > 3.0 * sp {
                    old_failed_windows += 1;
                    if old_failed_windows > 1 {
                        old_rule_failed = true;
                    }
                }
            }
            old = [vec![0u64; nb], vec![0u64; nb]];
            old_canary_requests = 0;
        }
        if t + 1e-9 >= next_look {
            next_look += sc.look_seconds;
            let mut latency = Vec::new();
            if sc.latency {
                for (p, kinds) in hist.iter_mut().enumerate() {
                    for (k, sides) in kinds.iter_mut().enumerate() {
                        let [c, s] = sides;
                        if c.iter().chain(s.iter()).all(|x| *x == 0) {
                            continue;
                        }
                        latency.push(PodLatency {
                            pod: if sc.per_pod {
                                format!("pod-{p}")
                            } else {
                                "all".into()
                            },
                            kind: if k == 1 {
                                TRANSFORM.into()
                            } else {
                                "hit".into()
                            },
                            canary: Histogram::new(
                                sc.bounds.clone(),
                                std::mem::replace(c, vec![0; nb]),
                            )
                            .unwrap(),
                            stable: Histogram::new(
                                sc.bounds.clone(),
                                std::mem::replace(s, vec![0; nb]),
                            )
                            .unwrap(),
                        });
                    }
                }
            }
            let look = Look {
                at_seconds: t,
                canary: std::mem::take(&mut dc),
                stable: std::mem::take(&mut ds),
                latency,
            };
            let notes = ev.observe(policy, &look);
            assert!(notes.is_empty(), "{notes:?}");
            let o = outcome(policy, &ev);
            ever_passed |= o == Outcome::Pass;
            if o == Outcome::Fail && first_fail.is_none() {
                first_fail = Some((t, failing_rules(policy, &ev)));
            }
            let stop_now = match stop {
                StopAt::Fail => o == Outcome::Fail,
                StopAt::Decision => matches!(o, Outcome::Fail | Outcome::Pass),
                StopAt::Never => false,
            };
            if stop_now {
                return Run {
                    outcome: o,
                    at: t,
                    rules: failing_rules(policy, &ev),
                    canary_requests: ev.canary.requests,
                    old_rule_failed,
                    ever_passed,
                    first_fail,
                };
            }
        }
    }
    Run {
        outcome: outcome(policy, &ev),
        at: t,
        rules: Vec::new(),
        canary_requests: ev.canary.requests,
        old_rule_failed,
        ever_passed,
        first_fail,
    }
}

/// Prometheus' `histogram_quantile` on per-bucket counts.
pub fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut cum = 0.0;
    for (i, c) in counts.iter().enumerate() {
        let below = cum;
        cum += *c as f64;
        if cum >= rank {
            if i == bounds.len() {
                return bounds.last().copied();
            }
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let upper = bounds[i];
            if *c == 0 {
                return Some(upper);
            }
            return Some(lower + (upper - lower) * (rank - below) / *c as f64);
        }
    }
    bounds.last().copied()
}

/// How many of `n` events a rate at most `p` allows, with a 3-sigma margin (+1 for tiny `n p`).
pub fn allowed(p: f64, n: usize) -> usize {
    let n = n as f64;
    (p * n + 3.0 * (p * (1.0 - p) * n).sqrt() + 1.0).floor() as usize
}

/// The `q` quantile (0–1) of `v` (nearest rank).
pub fn percentile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}
