//! Direct scraping of the data-plane pods: one [`Snapshot`] of the request counters per pod,
//! deltas between two snapshots per pod, summed across pods into [`RevisionNumbers`].
//!
//! # Method
//! - **Counters** (`vr_requests_total`): per revision label, requests, 5xx, 4xx and transformed
//!   (`cache="MISS"`; a series without a `cache` label counts as transformed, since it cannot be
//!   told apart). Series of both roles are summed: a revision's numbers do not depend on whether
//!   it is called stable or canary at the moment.
//! - **Latency** (`vr_request_duration_seconds_bucket`): per revision and request kind, the kind
//!   from the `cache` label ([`kind_of`]: `MISS` → `transform`, `HIT` → `hit`, …; `ERROR` left
//!   out: failures are the error test's business). Without the label, all requests are one kind,
//!   `transform` (they cannot be told apart). The per-pod deltas are what the sequential latency
//!   test compares ([`pod_latency`]): canary and stable requests of one pod, one kind, one time
//!   block.
//! - **Deltas per pod**: `current - previous`. If any counter or bucket of a pod went down, the
//!   pod restarted between the scrapes and its whole current page is the delta (the requests it
//!   served before restarting and after the previous scrape are lost, as in Prometheus). A pod
//!   without a previous snapshot (new, or unreadable last time) is **baseline only** in this
//!   window: counting it from zero would put its whole history into one window.
//! - **p95** from the bucket deltas summed across pods, as Prometheus' `histogram_quantile`
//!   does it: rank = 0.95 × total (the `+Inf` bucket), the first bucket whose cumulative count
//!   reaches the rank, linear interpolation between its lower bound (the previous bucket's `le`,
//!   0 for the first) and its `le`. A rank in the `+Inf` bucket gives the highest finite `le`.
//!   Buckets are made monotone (running maximum) first. No requests → `None`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use vr_crds::contract::metrics as metric;
use vr_crds::rollout::RevisionNumbers;
use vr_verdict::{Histogram, PodLatency, TRANSFORM};

use super::exposition::{self, ParseError};

/// Requests counter family name (as exposed, with `_total`).
pub const REQUESTS_TOTAL: &str = metric::REQUESTS_TOTAL;
/// Request latency histogram buckets.
pub const DURATION_BUCKET: &str = metric::REQUEST_DURATION_BUCKET;
/// The gauge saying which revisions a data plane has loaded, with their role (1 = loaded).
pub const CONFIG_ACTIVE: &str = metric::CONFIG_ACTIVE_SERIES;
/// Largest metrics page read from one pod.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Cumulative histogram buckets: `(le, count)` sorted by `le`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    /// Adds `count` to the bucket `le` (creating it).
    pub fn add(&mut self, le: f64, count: f64) {
        match self.0.binary_search_by(|(b, _)| b.total_cmp(&le)) {
            Ok(i) => self.0[i].1 += count,
            Err(i) => self.0.insert(i, (le, count)),
        }
    }

    /// The buckets, sorted by `le`.
    pub fn as_slice(&self) -> &[(f64, f64)] {
        &self.0
    }

    fn count(&self, le: f64) -> f64 {
        match self.0.binary_search_by(|(b, _)| b.total_cmp(&le)) {
            Ok(i) => self.0[i].1,
            Err(_) => 0.0,
        }
    }

    /// Per-bucket `self - previous`; `None` if any bucket went down (a reset).
    fn delta(&self, previous: &Buckets) -> Option<Buckets> {
        let mut out = Buckets::default();
        for (le, count) in &self.0 {
            let d = count - previous.count(*le);
            if d < 0.0 {
                return None;
            }
            out.0.push((*le, d));
        }
        // A bucket present before but gone now is also a reset.
        if previous
            .0
            .iter()
            .any(|(le, c)| *c > 0.0 && self.0.iter().all(|(b, _)| b != le))
        {
            return None;
        }
        Some(out)
    }

    fn merge(&mut self, other: &Buckets) {
        for (le, c) in &other.0 {
            self.add(*le, *c);
        }
    }

    /// The `q` quantile (0–1) by linear interpolation within the bucket, in the unit of `le`.
    /// `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut cum: Vec<(f64, f64)> = Vec::with_capacity(self.0.len());
        let mut max = 0.0f64;
        for (le, c) in &self.0 {
            if le.is_nan() {
                continue;
            }
            max = max.max(if c.is_finite() { *c } else { 0.0 });
            cum.push((*le, max));
        }
        let total = cum.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let i = cum.iter().position(|(_, c)| *c >= rank)?;
        let (upper, count) = cum[i];
        if upper.is_infinite() {
            // Prometheus: a rank in the +Inf bucket gives the highest finite bound.
            return Some(if i > 0 { cum[i - 1].0 } else { 0.0 });
        }
        let (lower, below) = if i > 0 { cum[i - 1] } else { (0.0, 0.0) };
        let lower = if i == 0 && upper <= 0.0 { upper } else { lower };
        let in_bucket = count - below;
        if in_bucket <= 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below) / in_bucket)
    }
}

/// Counters of one revision on one pod (or summed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RevisionCounters {
    pub requests: f64,
    pub server_errors: f64,
    pub client_errors: f64,
    pub transformed: f64,
    /// Latency buckets (seconds) per request kind ([`kind_of`]).
    pub latency: BTreeMap<String, Buckets>,
}

/// The request kind of a `cache` label value, as the latency test compares them (`None`:
/// left out). A series without the label counts as a transform.
pub fn kind_of(cache: Option<&str>) -> Option<&'static str> {
    match cache {
        None | Some(metric::CACHE_MISS) => Some(TRANSFORM),
        Some("HIT") => Some("hit"),
        Some("COLLAPSED") => Some("collapsed"),
        Some("BYPASS") => Some("bypass"),
        Some("ERROR") => None,
        Some(_) => Some("other"),
    }
}

impl RevisionCounters {
    fn delta(&self, previous: &RevisionCounters) -> Option<RevisionCounters> {
        let d = |a: f64, b: f64| if a >= b { Some(a - b) } else { None };
        Some(RevisionCounters {
            requests: d(self.requests, previous.requests)?,
            server_errors: d(self.server_errors, previous.server_errors)?,
            client_errors: d(self.client_errors, previous.client_errors)?,
            transformed: d(self.transformed, previous.transformed)?,
            latency: {
                let empty = Buckets::default();
                let mut out = BTreeMap::new();
                for (kind, b) in &self.latency {
                    out.insert(
                        kind.clone(),
                        b.delta(previous.latency.get(kind).unwrap_or(&empty))?,
                    );
                }
                // A kind present before but gone now is also a reset.
                if previous
                    .latency
                    .iter()
                    .any(|(k, b)| !self.latency.contains_key(k) && b.0.iter().any(|x| x.1 > 0.0))
                {
                    return None;
                }
                out
            },
        })
    }

    fn merge(&mut self, other: &RevisionCounters) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.client_errors += other.client_errors;
        self.transformed += other.transformed;
        for (kind, b) in &other.latency {
            self.latency.entry(kind.clone()).or_default().merge(b);
        }
    }

    /// The numbers of a window (these counters being deltas).
    pub fn numbers(&self) -> RevisionNumbers {
        let none = Buckets::default();
        let latency = self.latency.get(TRANSFORM).unwrap_or(&none);
        RevisionNumbers {
            requests: count(self.requests),
            server_errors: count(self.server_errors),
            client_errors: count(self.client_errors),
            transformed: count(self.transformed),
            p95_milliseconds: latency.quantile(0.95).map(|s| s * 1000.0),
        }
    }
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// The request counters of one pod at one moment, per revision label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub revisions: BTreeMap<String, RevisionCounters>,
    /// Revisions loaded on the pod now, as `(revision, role)` (from `vr_config_active`).
    pub active: std::collections::BTreeSet<(String, String)>,
}

impl Snapshot {
    /// Reads a metrics page. Families other than requests and latency are ignored.
    pub fn parse(text: &str) -> Result<Snapshot, ParseError> {
        let mut snap = Snapshot::default();
        for s in exposition::parse(text)? {
            if s.name == CONFIG_ACTIVE {
                if let (Some(rev), Some(role)) =
                    (s.label(metric::LABEL_REVISION), s.label(metric::LABEL_ROLE))
                {
                    if s.value == 1.0 {
                        snap.active.insert((rev.to_owned(), role.to_owned()));
                    }
                }
                continue;
            }
            if s.name != REQUESTS_TOTAL && s.name != DURATION_BUCKET {
                continue;
            }
            let Some(revision) = s.label(metric::LABEL_REVISION) else {
                continue;
            };
            if !s.value.is_finite() {
                continue;
            }
            let counters = snap.revisions.entry(revision.to_owned()).or_default();
            if s.name == REQUESTS_TOTAL {
                counters.requests += s.value;
                match s.label(metric::LABEL_STATUS_CLASS) {
                    Some("5xx") => counters.server_errors += s.value,
                    Some("4xx") => counters.client_errors += s.value,
                    _ => {}
                }
                if matches!(
                    s.label(metric::LABEL_CACHE),
                    None | Some(metric::CACHE_MISS)
                ) {
                    counters.transformed += s.value;
                }
            } else {
                let Some(le) = s.label(metric::LABEL_LE).and_then(parse_le) else {
                    continue;
                };
                if let Some(kind) = kind_of(s.label(metric::LABEL_CACHE)) {
                    counters
                        .latency
                        .entry(kind.to_owned())
                        .or_default()
                        .add(le, s.value);
                }
            }
        }
        Ok(snap)
    }

    /// What happened on this pod since `previous`, per revision. `restarted` is true when a
    /// counter went down, in which case the whole current page is the delta.
    pub fn delta(&self, previous: &Snapshot) -> (Snapshot, bool) {
        let mut out = Snapshot::default();
        let empty = RevisionCounters::default();
        for (rev, cur) in &self.revisions {
            match cur.delta(previous.revisions.get(rev).unwrap_or(&empty)) {
                Some(d) => {
                    out.revisions.insert(rev.clone(), d);
                }
                None => return (self.clone(), true),
            }
        }
        // A revision that vanished with requests also means the counters were reset.
        if previous
            .revisions
            .iter()
            .any(|(rev, c)| c.requests > 0.0 && !self.revisions.contains_key(rev))
        {
            return (self.clone(), true);
        }
        (out, false)
    }

    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &Snapshot) {
        for (rev, c) in &other.revisions {
            self.revisions.entry(rev.clone()).or_default().merge(c);
        }
    }

    /// The numbers of `revision` (these counters being deltas); zeros if it served nothing.
    pub fn numbers(&self, revision: &str) -> RevisionNumbers {
        self.revisions
            .get(revision)
            .map(RevisionCounters::numbers)
            .unwrap_or_default()
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => s.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

/// One window summed across pods, with how each pod contributed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodWindows {
    /// Summed deltas of the pods that had a previous snapshot.
    pub total: Snapshot,
    /// Pods that contributed a delta.
    pub counted: usize,
    /// Pods that were read for the first time (baseline only).
    pub baseline_only: usize,
    /// Pods whose counters went down (restarted; their whole page counted).
    pub restarted: usize,
    /// Each counted pod's deltas, by address.
    pub pods: BTreeMap<String, Snapshot>,
}

/// Sums the per-pod deltas of `current` against `previous` (keyed by pod address).
pub fn window(
    previous: &BTreeMap<String, Snapshot>,
    current: &BTreeMap<String, Snapshot>,
) -> PodWindows {
    let mut w = PodWindows::default();
    for (addr, cur) in current {
        let Some(prev) = previous.get(addr) else {
            w.baseline_only += 1;
            continue;
        };
        let (delta, restarted) = cur.delta(prev);
        w.total.merge(&delta);
        w.pods.insert(addr.clone(), delta);
        w.counted += 1;
        if restarted {
            w.restarted += 1;
        }
    }
    w
}

/// The latency deltas of one pod (`delta`, from [`Snapshot::delta`]) as the sequential test
/// takes them: per kind, the canary's and the stable revision's histograms. Kinds neither
/// revision served are left out; buckets that do not form a histogram are left out with a note.
pub fn pod_latency(
    pod: &str,
    delta: &Snapshot,
    canary: &str,
    stable: &str,
    notes: &mut Vec<String>,
) -> Vec<PodLatency> {
    let none = RevisionCounters::default();
    let c = delta.revisions.get(canary).unwrap_or(&none);
    let s = delta.revisions.get(stable).unwrap_or(&none);
    let kinds: std::collections::BTreeSet<&String> =
        c.latency.keys().chain(s.latency.keys()).collect();
    let mut out = Vec::new();
    for kind in kinds {
        let hist = |r: &RevisionCounters| {
            r.latency
                .get(kind)
                .map(|b| Histogram::from_cumulative(b.as_slice()))
        };
        let pair = match (hist(c), hist(s)) {
            (Some(a), Some(b)) => a.and_then(|a| Ok((a, b?))),
            (Some(a), None) => {
                a.and_then(|a| Ok((a.clone(), Histogram::empty(a.bounds().to_vec())?)))
            }
            (None, Some(b)) => b.and_then(|b| Ok((Histogram::empty(b.bounds().to_vec())?, b))),
            (None, None) => continue,
        };
        match pair {
            Ok((canary, stable)) if canary.total() + stable.total() > 0 => out.push(PodLatency {
                pod: pod.to_owned(),
                kind: kind.clone(),
                canary,
                stable,
            }),
            Ok(_) => {}
            Err(e) => notes.push(format!("pod {pod} latency of kind {kind}: {e}; left out")),
        }
    }
    out
}

/// Why one pod could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Connection refused, reset, timed out, …
    #[error("GET {url}: {}", error_chain(source))]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The pod answered with a non-2xx status.
    #[error("GET {url}: status {status}")]
    Status { url: String, status: u16 },
    /// The page is larger than [`MAX_PAGE_BYTES`].
    #[error("GET {url}: metrics page larger than {MAX_PAGE_BYTES} bytes")]
    TooLarge { url: String },
    /// The page is not valid exposition text.
    #[error("GET {url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: ParseError,
    },
}

/// An error and its causes, `: `-separated (reqwest's own message omits the cause, e.g.
/// "connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

/// Reads `http://<address>/metrics` of every address concurrently, each within `timeout`.
/// Every address gets a result; none is fatal here.
pub async fn fetch(
    client: &reqwest::Client,
    addresses: &[String],
    timeout: Duration,
) -> BTreeMap<String, Result<Snapshot, ScrapeError>> {
    let reads = addresses.iter().map(|addr| async move {
        let url = format!("http://{addr}/metrics");
        (addr.clone(), fetch_one(client, url, timeout).await)
    });
    join_all(reads).await.into_iter().collect()
}

async fn fetch_one(
    client: &reqwest::Client,
    url: String,
    timeout: Duration,
) -> Result<Snapshot, ScrapeError> {
    let http = |source| ScrapeError::Http {
        url: url.clone(),
        source,
    };
    let mut resp = client
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(http)?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Status {
            url,
            status: resp.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(ScrapeError::TooLarge { url });
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body);
    Snapshot::parse(&text).map_err(|source| ScrapeError::Parse { url, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rev: &str, ok: u64, e5: u64, e4: u64, hit: u64, buckets: &[(f64, u64)]) -> String {
        let mut s = String::from("# TYPE vr_requests counter\n");
        s += &format!("vr_requests_total{{status_class=\"2xx\",cache=\"MISS\",revision=\"{rev}\",role=\"canary\"}} {ok}\n");
        s += &format!("vr_requests_total{{status_class=\"2xx\",cache=\"HIT\",revision=\"{rev}\",role=\"canary\"}} {hit}\n");
        s += &format!("vr_requests_total{{status_class=\"5xx\",cache=\"ERROR\",revision=\"{rev}\",role=\"canary\"}} {e5}\n");
        s += &format!("vr_requests_total{{status_class=\"4xx\",cache=\"PASS\",revision=\"{rev}\",role=\"canary\"}} {e4}\n");
        for (le, c) in buckets {
            let le = if le.is_infinite() {
                "+Inf".to_owned()
            } else {
                le.to_string()
            };
            s += &format!("vr_request_duration_seconds_bucket{{revision=\"{rev}\",role=\"canary\",cache=\"MISS\",le=\"{le}\"}} {c}\n");
            s += &format!("vr_request_duration_seconds_bucket{{revision=\"{rev}\",role=\"canary\",cache=\"HIT\",le=\"{le}\"}} 1000\n");
        }
        s + "# EOF\n"
    }

    fn snap(text: &str) -> Snapshot {
        Snapshot::parse(text).unwrap()
    }

    #[test]
    fn counts_requests_errors_and_transformed_per_revision() {
        let s = snap(&page("r2", 10, 3, 2, 5, &[(0.1, 4), (f64::INFINITY, 10)]));
        let n = s.numbers("r2");
        assert_eq!(n.requests, 20);
        assert_eq!(n.server_errors, 3);
        assert_eq!(n.client_errors, 2);
        assert_eq!(n.transformed, 10);
        assert_eq!(s.numbers("r9"), RevisionNumbers::default());
    }

    #[test]
    fn latency_without_a_cache_label_counts_all_requests() {
        let s = snap(
            "vr_request_duration_seconds_bucket{revision=\"r1\",role=\"stable\",le=\"1\"} 10\n\
             vr_request_duration_seconds_bucket{revision=\"r1\",role=\"stable\",le=\"+Inf\"} 10\n",
        );
        assert_eq!(s.numbers("r1").p95_milliseconds, Some(950.0));
    }

    #[test]
    fn p95_interpolates_linearly_within_the_bucket() {
        let mut b = Buckets::default();
        b.add(0.1, 50.0);
        b.add(0.2, 100.0);
        b.add(f64::INFINITY, 100.0);
        // rank 95 lies 45/50 into (0.1, 0.2].
        let p = b.quantile(0.95).unwrap();
        assert!((p - 0.19).abs() < 1e-9, "{p}");
    }

    #[test]
    fn p95_in_the_inf_bucket_is_the_highest_finite_bound() {
        let mut b = Buckets::default();
        b.add(0.5, 1.0);
        b.add(1.0, 2.0);
        b.add(f64::INFINITY, 100.0);
        assert_eq!(b.quantile(0.95), Some(1.0));
        assert_eq!(Buckets::default().quantile(0.95), None);
        let mut empty = Buckets::default();
        empty.add(f64::INFINITY, 0.0);
        assert_eq!(empty.quantile(0.95), None);
    }

    #[test]
    fn window_sums_deltas_across_pods_and_skips_new_pods() {
        let b0 = [(0.1, 0), (f64::INFINITY, 0)];
        let prev = BTreeMap::from([
            ("a".to_owned(), snap(&page("r2", 10, 0, 0, 0, &b0))),
            ("b".to_owned(), snap(&page("r2", 5, 1, 0, 0, &b0))),
        ]);
        let cur = BTreeMap::from([
            (
                "a".to_owned(),
                snap(&page("r2", 30, 2, 0, 0, &[(0.1, 20), (f64::INFINITY, 20)])),
            ),
            (
                "b".to_owned(),
                snap(&page("r2", 25, 3, 1, 0, &[(0.1, 20), (f64::INFINITY, 20)])),
            ),
            ("c".to_owned(), snap(&page("r2", 1000, 500, 0, 0, &b0))),
        ]);
        let w = window(&prev, &cur);
        assert_eq!((w.counted, w.baseline_only, w.restarted), (2, 1, 0));
        let n = w.total.numbers("r2");
        assert_eq!(n.requests, 20 + 2 + 20 + 2 + 1);
        assert_eq!(n.server_errors, 4);
        assert_eq!(n.client_errors, 1);
        assert_eq!(n.transformed, 40);
        assert!((n.p95_milliseconds.unwrap() - 95.0).abs() < 1e-6);
    }

    #[test]
    fn a_counter_that_went_down_counts_the_whole_new_page() {
        let prev = BTreeMap::from([("a".to_owned(), snap(&page("r2", 100, 5, 0, 0, &[])))]);
        let cur = BTreeMap::from([("a".to_owned(), snap(&page("r2", 7, 6, 0, 0, &[])))]);
        let w = window(&prev, &cur);
        assert_eq!(w.restarted, 1);
        assert_eq!(w.total.numbers("r2").requests, 13);
        assert_eq!(w.total.numbers("r2").server_errors, 6);
    }

    #[test]
    fn a_revision_that_vanished_means_the_pod_restarted() {
        let mut text = page("r1", 10, 0, 0, 0, &[]);
        text = text.replace("# EOF\n", "");
        text += &page("r2", 10, 0, 0, 0, &[]);
        let prev = BTreeMap::from([("a".to_owned(), snap(&text))]);
        let cur = BTreeMap::from([("a".to_owned(), snap(&page("r2", 12, 0, 0, 0, &[])))]);
        let w = window(&prev, &cur);
        assert_eq!(w.restarted, 1);
        assert_eq!(w.total.numbers("r2").requests, 12);
    }

    fn pods(counts: &[(u64, u64, u64)]) -> BTreeMap<String, Snapshot> {
        counts
            .iter()
            .enumerate()
            .map(|(i, (ok, e5, b))| {
                let buckets = [(0.1, *b), (1.0, b + ok / 2), (f64::INFINITY, b + ok)];
                (
                    format!("pod{i}"),
                    snap(&page("r2", *ok, *e5, 0, 0, &buckets)),
                )
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn consecutive_windows_add_up_to_the_whole_span(
            start in proptest::collection::vec((0u64..1000, 0u64..100, 0u64..100), 1..4),
            steps in proptest::collection::vec((0u64..1000, 0u64..100, 0u64..100), 8),
        ) {
            let s0 = pods(&start);
            let grow = |base: &[(u64, u64, u64)], k: usize| -> Vec<(u64, u64, u64)> {
                base.iter()
                    .enumerate()
                    .map(|(i, (a, b, c))| {
                        let (x, y, z) = steps[(i + k) % steps.len()];
                        (a + x, b + y, c + z)
                    })
                    .collect()
            };
            let mid = grow(&start, 0);
            let end = grow(&mid, 3);
            let (s1, s2) = (pods(&mid), pods(&end));
            let a = window(&s0, &s1).total.numbers("r2");
            let b = window(&s1, &s2).total.numbers("r2");
            let whole = window(&s0, &s2).total.numbers("r2");
            proptest::prop_assert_eq!(a.requests + b.requests, whole.requests);
            proptest::prop_assert_eq!(a.server_errors + b.server_errors, whole.server_errors);
            proptest::prop_assert_eq!(a.transformed + b.transformed, whole.transformed);
        }

        #[test]
        fn p95_lies_within_the_finite_bucket_bounds(
            counts in proptest::collection::vec(0u64..1000, 1..12),
            inf_extra in 0u64..100,
        ) {
            let mut b = Buckets::default();
            let mut cum = 0;
            for (i, c) in counts.iter().enumerate() {
                cum += c;
                b.add(0.001 * 2f64.powi(i as i32), cum as f64);
            }
            b.add(f64::INFINITY, (cum + inf_extra) as f64);
            let top = 0.001 * 2f64.powi(counts.len() as i32 - 1);
            match b.quantile(0.95) {
                None => proptest::prop_assert_eq!(cum + inf_extra, 0),
                Some(p) => proptest::prop_assert!((0.0..=top).contains(&p), "{} not in [0, {}]", p, top),
            }
        }
    }

    #[tokio::test]
    async fn fetch_reports_unreachable_pods_per_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap().to_string();
        let body = page("r1", 3, 0, 0, 0, &[]);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let client = reqwest::Client::new();
        let out = fetch(
            &client,
            &[good.clone(), closed.clone()],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(out[&good].as_ref().unwrap().numbers("r1").requests, 3);
        assert!(matches!(out[&closed], Err(ScrapeError::Http { .. })));
    }
}
