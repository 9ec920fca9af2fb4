//! The latency comparison: is the canary slower than `factor ×` the stable revision where the
//! two are comparable — in the same pod, over the same few seconds, for the same kind of request
//! (hits with hits, transforms with transforms)?
//!
//! # Method
//! 1. **Blocks.** Histogram deltas are grouped per `(pod, kind)` into fixed time blocks
//!    (`blockSeconds`, counted from the rollout start). A block closes when a look falls in a
//!    later block; it is *comparable* when both revisions have observations in it. Closing
//!    depends only on time, never on the values, and canary and stable requests of one block
//!    arrive interleaved (routing is by URL hash), so whatever slowed the pod during the block —
//!    a busy neighbour, a noisy node, GC — slowed both sides' observations alike.
//! 2. **Pairs.** Within a block, every canary observation `c` is compared with every stable
//!    observation `s` scaled by the tolerated factor: slower (`c > factor·s`), faster, or tied
//!    (same bucket, or both below the latency floor). On a geometric bucket grid (ratio `r`)
//!    with `factor = r^m` the comparison is exact on bucket indices: `factor·s` falls in the
//!    bucket `m` above `s`'s (the factor is rounded up to the next power of `r`, so the
//!    tolerance applied is never tighter than the one asked for).
//! 3. **Trials.** A block with `m` canary and `n` stable observations supports `min(m, n)`
//!    disjoint pairs. Matching them at random, the expected untied pairs are
//!    `min(m,n)·(slower+faster)/(m·n)` and the expected slower ones `min(m,n)·slower/(m·n)`:
//!    these fractional counts are the block's trials and successes.
//! 4. **Test.** Under the hypothesis "the canary is at most `factor ×` slower"
//!    (`c ≤_st factor·s` within every block), an untied random pair is slower with probability at
//!    most ½, independently across pairs and blocks. The trials feed an anytime-valid
//!    confidence sequence for that probability; the rule fails when its lower bound exceeds ½.
//!    Replacing a random matching by its expectation keeps the test valid (the e-value is convex
//!    in the counts, Jensen), and removes the randomness from the verdict.
//!
//! Nothing is assumed about the shape of the distributions, nor about how a busy node slows
//! requests: only that within a block and kind the two revisions' requests met the same
//! conditions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kind whose canary observations the absolute latency limit (`maxP95`) applies to.
pub const TRANSFORM: &str = "transform";

/// Why a histogram cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// Bounds must be finite, positive and strictly increasing.
    #[error("histogram bounds must be finite, positive and strictly increasing")]
    Bounds,
    /// `counts` must have one entry per bound plus one for `+Inf`.
    #[error(
        "histogram has {counts} counts for {bounds} bounds (one per bound plus +Inf expected)"
    )]
    Counts { bounds: usize, counts: usize },
    /// Two histograms with different bucket layouts cannot be combined.
    #[error("histograms with different bucket layouts")]
    Layout,
    /// The comparison needs a geometric grid (`bound[i+1] / bound[i]` constant).
    #[error("latency buckets are not a geometric series (needed for an exact comparison)")]
    NotGeometric,
}

/// Observations of one revision's latency in one pod, kind and interval, per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Finite upper bounds in seconds, strictly increasing.
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative): bucket `i` is `(bounds[i−1], bounds[i]]`
    /// (`(0, bounds[0]]` for the first), the last one `(bounds[last], +Inf)`.
    counts: Vec<u64>,
}

impl Histogram {
    /// A histogram of `counts` per bucket (`bounds.len() + 1` entries, the last for `+Inf`).
    pub fn new(bounds: Vec<f64>, counts: Vec<u64>) -> Result<Histogram, HistogramError> {
        let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
        if !increasing || bounds.iter().any(|b| !b.is_finite() || *b <= 0.0) {
            return Err(HistogramError::Bounds);
        }
        if counts.len() != bounds.len() + 1 {
            return Err(HistogramError::Counts {
                bounds: bounds.len(),
                counts: counts.len(),
            });
        }
        Ok(Histogram { bounds, counts })
    }

    /// An empty histogram on `bounds`.
    pub fn empty(bounds: Vec<f64>) -> Result<Histogram, HistogramError> {
        let n = bounds.len() + 1;
        Histogram::new(bounds, vec![0; n])
    }

    /// From Prometheus cumulative buckets `(le, count)` in any order, `+Inf` included or not
    /// (without it, nothing is above the last bound). Counts are made monotone (running
    /// maximum) and rounded, as a scrape of float counters may need.
    pub fn from_cumulative(buckets: &[(f64, f64)]) -> Result<Histogram, HistogramError> {
        let mut sorted: Vec<(f64, f64)> = buckets
            .iter()
            .copied()
            .filter(|(le, _)| !le.is_nan())
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut bounds = Vec::new();
        let mut counts = Vec::new();
        let (mut below, mut running) = (0u64, 0.0f64);
        let mut inf = None;
        for (le, c) in sorted {
            let c = if c.is_finite() { c.max(0.0) } else { 0.0 };
            running = running.max(c);
            let cum = running.round() as u64;
            if le.is_infinite() {
                inf = Some(cum);
                continue;
            }
            bounds.push(le);
            counts.push(cum - below);
            below = cum;
        }
        counts.push(inf.map_or(0, |i| i.saturating_sub(below)));
        Histogram::new(bounds, counts)
    }

    /// The bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Observations per bucket, the last for `+Inf`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// All observations.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// Adds `other`'s observations (same layout required).
    pub fn add(&mut self, other: &Histogram) -> Result<(), HistogramError> {
        if self.bounds.is_empty() && self.counts.iter().all(|c| *c == 0) {
            *self = other.clone();
            return Ok(());
        }
        if !same_layout(&self.bounds, &other.bounds) {
            return Err(HistogramError::Layout);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        Ok(())
    }

    /// `self − earlier` per bucket; `None` if a bucket went down or the layout changed (the
    /// process restarted: count the whole of `self` instead, as Prometheus does).
    pub fn delta(&self, earlier: &Histogram) -> Option<Histogram> {
        if !same_layout(&self.bounds, &earlier.bounds) {
            return None;
        }
        let counts = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(a, b)| a.checked_sub(*b))
            .collect::<Option<Vec<u64>>>()?;
        Some(Histogram {
            bounds: self.bounds.clone(),
            counts,
        })
    }

    /// Observations certainly above `limit` seconds (in buckets whose lower bound is at least
    /// `limit`).
    pub fn certainly_above(&self, limit: f64) -> u64 {
        let mut n = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
            if lower >= limit {
                n = n.saturating_add(*c);
            }
        }
        n
    }
}

fn same_layout(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()))
}

/// The common ratio of a geometric series of bounds (at least two, relative tolerance 1e-6).
pub fn geometric_ratio(bounds: &[f64]) -> Option<f64> {
    if bounds.len() < 2 || bounds.iter().any(|b| !b.is_finite() || *b <= 0.0) {
        return None;
    }
    let r = bounds[1] / bounds[0];
    if r <= 1.0 {
        return None;
    }
    let ok = bounds
        .windows(2)
        .all(|w| ((w[1] / w[0]) - r).abs() <= 1e-6 * r);
    ok.then_some(r)
}

/// How a pair comparison is done on a bucket grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Buckets the stable observations are moved up: `factor = ratio^steps`.
    pub steps: usize,
    /// The factor applied (`≥` the one asked for).
    pub factor: f64,
    /// Index below which observations are merged (the latency floor and the grid's first
    /// bucket, whose scaled image is not aligned with the grid).
    pub low: usize,
    /// Index of the `+Inf` bucket.
    pub top: usize,
}

impl Scale {
    /// The comparison of `increase` (0.5 = 50 % slower tolerated) above `floor` seconds on the
    /// grid of `bounds`.
    pub fn new(bounds: &[f64], increase: f64, floor: f64) -> Result<Scale, HistogramError> {
        let ratio = geometric_ratio(bounds).ok_or(HistogramError::NotGeometric)?;
        let wanted = 1.0 + increase.max(0.0);
        // Round up: the applied tolerance is never tighter than the one asked for.
        let steps = ((wanted.ln() / ratio.ln()) - 1e-9).ceil().max(0.0) as usize;
        let top = bounds.len();
        // First bucket whose upper bound reaches the floor: everything up to it is "at the floor".
        let floor_index = bounds.iter().position(|b| *b >= floor).unwrap_or(top);
        Ok(Scale {
            steps,
            factor: ratio.powi(steps as i32),
            low: floor_index.max(steps).min(top),
            top,
        })
    }

    fn canary_index(&self, i: usize) -> usize {
        i.clamp(self.low, self.top)
    }

    fn stable_index(&self, j: usize) -> usize {
        (j + self.steps).clamp(self.low, self.top)
    }
}

/// Pairs of one block: over all `canary × stable` pairs, how many have the canary slower than
/// `factor ×` stable, faster, or tied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pairs {
    pub canary: u64,
    pub stable: u64,
    pub slower: f64,
    pub faster: f64,
    pub ties: f64,
}

impl Pairs {
    /// Compares `canary` with `stable` on `scale` (same layout required).
    pub fn compare(
        canary: &Histogram,
        stable: &Histogram,
        scale: &Scale,
    ) -> Result<Pairs, HistogramError> {
        if !same_layout(&canary.bounds, &stable.bounds) {
            return Err(HistogramError::Layout);
        }
        let width = scale.top + 1;
        let mut a = vec![0f64; width];
        let mut b = vec![0f64; width];
        for (i, c) in canary.counts.iter().enumerate() {
            a[scale.canary_index(i)] += *c as f64;
        }
        for (j, c) in stable.counts.iter().enumerate() {
            b[scale.stable_index(j)] += *c as f64;
        }
        let (m, n) = (canary.total(), stable.total());
        let mut below = 0.0;
        let total_b: f64 = b.iter().sum();
        let (mut slower, mut ties) = (0.0, 0.0);
        for x in 0..width {
            slower += a[x] * below;
            ties += a[x] * b[x];
            below += b[x];
        }
        let all = m as f64 * n as f64;
        let faster = (all - slower - ties).max(0.0);
        debug_assert!((a.iter().sum::<f64>() * total_b - all).abs() < 1e-6 * all.max(1.0));
        Ok(Pairs {
            canary: m,
            stable: n,
            slower,
            faster,
            ties,
        })
    }

    /// The block's trials and successes: `(untied, slower)` expected among `min(m, n)` randomly
    /// matched disjoint pairs.
    pub fn trials(&self) -> (f64, f64) {
        let all = self.canary as f64 * self.stable as f64;
        if all <= 0.0 {
            return (0.0, 0.0);
        }
        let r = self.canary.min(self.stable) as f64;
        (r * (self.slower + self.faster) / all, r * self.slower / all)
    }
}

/// One revision pair's latency deltas in one pod for one kind since the previous look.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLatency {
    /// Pod identity (address or name; Prometheus: `instance`).
    pub pod: String,
    /// Request kind: `hit`, `transform`, … ([`TRANSFORM`] for the absolute limit). Only the same
    /// kind is ever compared.
    pub kind: String,
    pub canary: Histogram,
    pub stable: Histogram,
}

#[derive(Debug, Clone, PartialEq)]
struct OpenBlock {
    index: u64,
    canary: Histogram,
    stable: Histogram,
}

/// Latency evidence of a rollout: the pair trials of every closed comparable block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyEvidence {
    /// Untied pair trials (fractional).
    pub trials: f64,
    /// Of which the canary was slower than `factor ×` stable.
    pub slower: f64,
    /// Closed blocks with both revisions observed.
    pub blocks: u64,
    /// Canary and stable observations in those blocks.
    pub canary_observations: u64,
    pub stable_observations: u64,
    /// The factor applied (from the bucket grid), once a block was compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Blocks left out because their buckets could not be compared (a note says why).
    pub skipped_blocks: u64,
    /// Open blocks: not persisted (a resumed rollout starts new blocks; dropping data by time,
    /// never by value, keeps the test valid).
    #[serde(skip)]
    open: BTreeMap<(String, String), OpenBlock>,
}

impl LatencyEvidence {
    /// Adds one look at `at` seconds since the rollout began: closes the blocks that ended,
    /// then files `samples` into the block of `at`. Returns notes on data left out.
    pub fn observe(
        &mut self,
        at: f64,
        block_seconds: f64,
        samples: &[PodLatency],
        increase: f64,
        floor: f64,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        let index = block_index(at, block_seconds);
        self.close_before(index, increase, floor, &mut notes);
        for s in samples {
            if s.canary.total() == 0 && s.stable.total() == 0 {
                continue;
            }
            let key = (s.pod.clone(), s.kind.clone());
            let block = self.open.entry(key).or_insert_with(|| OpenBlock {
                index,
                canary: Histogram::default(),
                stable: Histogram::default(),
            });
            let merged = block
                .canary
                .add(&s.canary)
                .and_then(|()| block.stable.add(&s.stable));
            if let Err(e) = merged {
                notes.push(format!(
                    "latency of pod {} kind {}: {e}; block dropped",
                    s.pod, s.kind
                ));
                self.skipped_blocks += 1;
                self.open.remove(&(s.pod.clone(), s.kind.clone()));
            }
        }
        notes
    }

    /// Closes every open block (end of the evidence, or a test).
    pub fn close_all(&mut self, increase: f64, floor: f64) -> Vec<String> {
        let mut notes = Vec::new();
        self.close_before(u64::MAX, increase, floor, &mut notes);
        notes
    }

    fn close_before(&mut self, index: u64, increase: f64, floor: f64, notes: &mut Vec<String>) {
        let due: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(_, b)| b.index < index)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(block) = self.open.remove(&key) else {
                continue;
            };
            if block.canary.total() == 0 || block.stable.total() == 0 {
                continue;
            }
            let compared = Scale::new(block.canary.bounds(), increase, floor).and_then(|scale| {
                Ok((scale, Pairs::compare(&block.canary, &block.stable, &scale)?))
            });
            match compared {
                Ok((scale, pairs)) => {
                    let (t, k) = pairs.trials();
                    self.trials += t;
                    self.slower += k;
                    self.blocks += 1;
                    self.canary_observations += pairs.canary;
                    self.stable_observations += pairs.stable;
                    self.factor = Some(scale.factor);
                }
                Err(e) => {
                    self.skipped_blocks += 1;
                    notes.push(format!(
                        "latency of pod {} kind {}: {e}; block left out",
                        key.0, key.1
                    ));
                }
            }
        }
    }
}

fn block_index(at: f64, block_seconds: f64) -> u64 {
    if !(at.is_finite() && at > 0.0) {
        return 0;
    }
    let b = if block_seconds.is_finite() && block_seconds > 0.0 {
        block_seconds
    } else {
        1.0
    };
    (at / b).floor().min(u64::MAX as f64 / 2.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 1 ms × 2^i, i = 0..17 (the data plane's request histogram).
    fn grid2() -> Vec<f64> {
        (0..17).map(|i| 0.001 * 2f64.powi(i)).collect()
    }

    fn hist(bounds: &[f64], at: &[(usize, u64)]) -> Histogram {
        let mut counts = vec![0; bounds.len() + 1];
        for (i, c) in at {
            counts[*i] += c;
        }
        Histogram::new(bounds.to_vec(), counts).unwrap()
    }

    #[test]
    fn cumulative_buckets_become_per_bucket_counts() {
        let h = Histogram::from_cumulative(&[
            (f64::INFINITY, 10.0),
            (0.1, 3.0),
            (0.2, 2.0), // not monotone: running maximum
            (0.4, 7.0),
        ])
        .unwrap();
        assert_eq!(h.bounds(), &[0.1, 0.2, 0.4]);
        assert_eq!(h.counts(), &[3, 0, 4, 3]);
        assert_eq!(h.total(), 10);
        assert_eq!(h.certainly_above(0.2), 7);
    }

    #[test]
    fn a_delta_across_a_restart_is_refused() {
        let b = grid2();
        let later = hist(&b, &[(3, 5)]);
        let earlier = hist(&b, &[(3, 2), (4, 1)]);
        assert_eq!(later.delta(&earlier), None);
        assert_eq!(later.delta(&hist(&b, &[(3, 2)])).unwrap().total(), 3);
    }

    #[test]
    fn the_factor_rounds_up_to_the_grid() {
        let s = Scale::new(&grid2(), 1.0, 0.25).unwrap();
        assert_eq!((s.steps, s.factor), (1, 2.0));
        let s = Scale::new(&grid2(), 0.5, 0.25).unwrap();
        assert_eq!((s.steps, s.factor), (1, 2.0));
        let fine: Vec<f64> = (0..65).map(|i| 0.001 * 2f64.powf(i as f64 / 4.0)).collect();
        let s = Scale::new(&fine, 0.5, 0.25).unwrap();
        assert_eq!(s.steps, 3);
        assert!((s.factor - 2f64.powf(0.75)).abs() < 1e-9);
        assert_eq!(
            Scale::new(&[0.1, 0.2, 0.5], 1.0, 0.0),
            Err(HistogramError::NotGeometric)
        );
    }

    #[test]
    fn a_canary_four_times_slower_is_slower_in_every_pair_and_the_floor_ties() {
        let b = grid2();
        let scale = Scale::new(&b, 1.0, 0.25).unwrap();
        // stable 256–512 ms (index 9), canary 1–2 s (index 11): 11 > 9 + 1.
        let p = Pairs::compare(&hist(&b, &[(11, 3)]), &hist(&b, &[(9, 4)]), &scale).unwrap();
        assert_eq!((p.slower, p.faster, p.ties), (12.0, 0.0, 0.0));
        assert_eq!(p.trials(), (3.0, 3.0));
        // Both under the 250 ms floor: all ties, no evidence.
        let p = Pairs::compare(&hist(&b, &[(2, 3)]), &hist(&b, &[(1, 4)]), &scale).unwrap();
        assert_eq!((p.slower, p.faster, p.ties), (0.0, 0.0, 12.0));
        assert_eq!(p.trials(), (0.0, 0.0));
    }

    #[test]
    fn blocks_close_by_time_and_only_compare_the_same_pod_and_kind() {
        let b = grid2();
        let mut ev = LatencyEvidence::default();
        let s = |pod: &str, kind: &str, c: &[(usize, u64)], st: &[(usize, u64)]| PodLatency {
            pod: pod.into(),
            kind: kind.into(),
            canary: hist(&b, c),
            stable: hist(&b, st),
        };
        // Block 0: pod a has only canary, pod b only stable: nothing comparable.
        ev.observe(
            1.0,
            5.0,
            &[
                s("a", TRANSFORM, &[(12, 1)], &[]),
                s("b", TRANSFORM, &[], &[(9, 1)]),
            ],
            1.0,
            0.25,
        );
        // Still block 0: pod a gets a stable observation.
        ev.observe(4.0, 5.0, &[s("a", TRANSFORM, &[], &[(9, 2)])], 1.0, 0.25);
        assert_eq!(ev.blocks, 0, "nothing closes before the block ends");
        ev.observe(5.5, 5.0, &[s("a", "hit", &[(0, 5)], &[(0, 50)])], 1.0, 0.25);
        assert_eq!(ev.blocks, 1);
        assert_eq!((ev.canary_observations, ev.stable_observations), (1, 2));
        assert_eq!((ev.trials, ev.slower), (1.0, 1.0));
        let notes = ev.close_all(1.0, 0.25);
        assert!(notes.is_empty());
        assert_eq!(ev.blocks, 2, "the hits block compares, with all ties");
        assert_eq!(ev.trials, 1.0);
    }

    #[test]
    fn a_block_with_mismatched_buckets_is_dropped_with_a_note() {
        let b = grid2();
        let other: Vec<f64> = (0..10).map(|i| 0.001 * 3f64.powi(i)).collect();
        let mut ev = LatencyEvidence::default();
        let one = PodLatency {
            pod: "a".into(),
            kind: "hit".into(),
            canary: hist(&b, &[(3, 1)]),
            stable: hist(&b, &[(3, 1)]),
        };
        let two = PodLatency {
            pod: "a".into(),
            kind: "hit".into(),
            canary: hist(&other, &[(3, 1)]),
            stable: hist(&other, &[(3, 1)]),
        };
        ev.observe(1.0, 5.0, &[one], 1.0, 0.0);
        let notes = ev.observe(2.0, 5.0, &[two], 1.0, 0.0);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(ev.skipped_blocks, 1);
    }

    fn random_hist(bounds: &[f64]) -> impl Strategy<Value = Histogram> {
        let n = bounds.len() + 1;
        let b = bounds.to_vec();
        proptest::collection::vec(0u64..5, n)
            .prop_map(move |c| Histogram::new(b.clone(), c).unwrap())
    }

    proptest! {
        #[test]
        fn pairs_add_up_and_swapping_sides_at_factor_one_swaps_slower_and_faster(
            c in random_hist(&grid2()), s in random_hist(&grid2()), floor in 0.0f64..2.0,
        ) {
            let scale = Scale::new(&grid2(), 0.0, floor).unwrap();
            let p = Pairs::compare(&c, &s, &scale).unwrap();
            let q = Pairs::compare(&s, &c, &scale).unwrap();
            let all = c.total() as f64 * s.total() as f64;
            prop_assert!((p.slower + p.faster + p.ties - all).abs() < 1e-6);
            prop_assert!((p.slower - q.faster).abs() < 1e-6 && (p.faster - q.slower).abs() < 1e-6);
            let (t, k) = p.trials();
            prop_assert!(0.0 <= k && k <= t && t <= c.total().min(s.total()) as f64 + 1e-9);
        }

        #[test]
        fn slowing_the_canary_never_lowers_its_slower_share(
            c in random_hist(&grid2()), s in random_hist(&grid2()), shift in 0usize..4, inc in 0.0f64..3.0,
        ) {
            let scale = Scale::new(&grid2(), inc, 0.1).unwrap();
            let mut slow = vec![0u64; c.counts().len()];
            for (i, n) in c.counts().iter().enumerate() {
                slow[(i + shift).min(c.counts().len() - 1)] += n;
            }
            let slow = Histogram::new(grid2(), slow).unwrap();
            let p = Pairs::compare(&c, &s, &scale).unwrap();
            let q = Pairs::compare(&slow, &s, &scale).unwrap();
            prop_assert!(q.slower + 1e-9 >= p.slower);
            prop_assert!(q.faster <= p.faster + 1e-9);
        }

        #[test]
        fn slowing_both_sides_alike_changes_nothing_above_the_floor(
            c in random_hist(&grid2()), s in random_hist(&grid2()), shift in 0usize..3,
        ) {
            // Shift both up (a busy pod) while nothing reaches the top or leaves the floor.
            let lift = |h: &Histogram| {
                let mut v = vec![0u64; h.counts().len()];
                for (i, n) in h.counts().iter().enumerate().take(h.counts().len() - 4) {
                    v[i + shift] += n;
                }
                Histogram::new(grid2(), v).unwrap()
            };
            let trim = |h: &Histogram| {
                let mut v = h.counts().to_vec();
                let len = v.len();
                for x in v.iter_mut().skip(len - 4) { *x = 0; }
                Histogram::new(grid2(), v).unwrap()
            };
            let (c, s) = (trim(&c), trim(&s));
            let scale = Scale::new(&grid2(), 1.0, 0.0005).unwrap();
            let p = Pairs::compare(&c, &s, &scale).unwrap();
            let q = Pairs::compare(&lift(&c), &lift(&s), &scale).unwrap();
            // The floor (index max(0, steps) = 1) merges the two lowest buckets, so compare only
            // when nothing sits there.
            if c.counts()[..2].iter().chain(&s.counts()[..2]).all(|n| *n == 0) {
                prop_assert_eq!(p, q);
            }
        }
    }
}
