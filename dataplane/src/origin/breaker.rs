//! Circuit breaker per (origin, source): closed → open after N failures in a window → one
//! half-open probe → closed or open again.
//!
//! The breaker is long-lived (it survives config reloads) while its policy comes with every
//! call, so a stable and a canary revision may each apply their own thresholds to the same
//! source. Time is `tokio::time::Instant`, so tests drive it with paused time.

use prometheus_client::metrics::gauge::Gauge;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Thresholds of a breaker (from `resilience`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures within `window` that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// Window in which failures are counted.
    pub window: Duration,
    /// How long an open breaker refuses calls before one half-open probe.
    pub open_for: Duration,
}

impl From<&vr_crds::dataplane::Resilience> for BreakerPolicy {
    fn from(r: &vr_crds::dataplane::Resilience) -> Self {
        BreakerPolicy {
            failure_threshold: r.failure_threshold.max(1),
            window: Duration::from_secs(r.window_seconds.into()),
            open_for: Duration::from_secs(r.open_seconds.into()),
        }
    }
}

/// The observable state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Name used in the health report.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }

    /// Value of the `breaker_state` gauge (0 closed, 1 half-open, 2 open).
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
enum Inner {
    /// Instants of recent failures (only those inside the window are kept).
    Closed {
        failures: VecDeque<Instant>,
    },
    Open {
        until: Instant,
    },
    /// `probing`: a probe call is in flight; everyone else is refused until it reports.
    HalfOpen {
        probing: bool,
    },
}

/// A circuit breaker. Cheap to share (`Arc`); every method takes the lock briefly and never
/// across an await.
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
    gauge: Gauge,
}

/// Answer of [`Breaker::acquire`].
#[derive(Debug)]
pub enum Admission {
    /// The call may proceed; report its result on the permit.
    Allowed(Permit),
    /// The breaker is open: skip this source. `retry_after` is how long until a probe may run.
    Refused { retry_after: Duration },
}

/// Permission to make one call. Dropping it without a report (e.g. the request was
/// abandoned) releases a half-open probe slot without changing the state.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    reported: bool,
}

impl Breaker {
    /// A closed breaker whose state is mirrored into `gauge`.
    pub fn new(gauge: Gauge) -> Arc<Self> {
        gauge.set(BreakerState::Closed.gauge_value());
        Arc::new(Breaker {
            inner: Mutex::new(Inner::Closed {
                failures: VecDeque::new(),
            }),
            gauge,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave `Inner` half-updated in a way that
        // matters (every transition is one assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, inner: &mut Inner, next: Inner) {
        *inner = next;
        self.gauge.set(state_of(inner).gauge_value());
    }

    /// The current state (an open breaker whose time is up reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match &*self.lock() {
            Inner::Open { until } if now >= *until => BreakerState::HalfOpen,
            other => state_of(other),
        }
    }

    /// Asks to make one call now.
    pub fn acquire(self: &Arc<Self>, now: Instant) -> Admission {
        let mut inner = self.lock();
        let probe = match &*inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } if now < *until => {
                return Admission::Refused {
                    retry_after: *until - now,
                }
            }
            Inner::Open { .. } | Inner::HalfOpen { probing: false } => {
                self.set(&mut inner, Inner::HalfOpen { probing: true });
                true
            }
            Inner::HalfOpen { probing: true } => {
                // Another request is probing; it reports within its own timeout.
                return Admission::Refused {
                    retry_after: Duration::from_secs(1),
                };
            }
        };
        Admission::Allowed(Permit {
            breaker: Arc::clone(self),
            probe,
            reported: false,
        })
    }

    fn on_success(&self) {
        let mut inner = self.lock();
        match &mut *inner {
            Inner::Closed { failures } => failures.clear(),
            // A success closes a half-open breaker. A late success from a call admitted
            // before the breaker opened does not close an open one.
            Inner::HalfOpen { .. } => self.set(
                &mut inner,
                Inner::Closed {
                    failures: VecDeque::new(),
                },
            ),
            Inner::Open { .. } => {}
        }
    }

    fn on_failure(&self, now: Instant, policy: &BreakerPolicy) {
        let mut inner = self.lock();
        match &mut *inner {
            Inner::Closed { failures } => {
                while failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= policy.window)
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                if failures.len() >= policy.failure_threshold as usize {
                    self.set(
                        &mut inner,
                        Inner::Open {
                            until: now + policy.open_for,
                        },
                    );
                }
            }
            Inner::HalfOpen { .. } => self.set(
                &mut inner,
                Inner::Open {
                    until: now + policy.open_for,
                },
            ),
            Inner::Open { .. } => {}
        }
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if let Inner::HalfOpen { probing: true } = &*inner {
            self.set(&mut inner, Inner::HalfOpen { probing: false });
        }
    }
}

fn state_of(inner: &Inner) -> BreakerState {
    match inner {
        Inner::Closed { .. } => BreakerState::Closed,
        Inner::Open { .. } => BreakerState::Open,
        Inner::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

impl Permit {
    /// The call succeeded, or failed in a way that says nothing about the source's health
    /// (not found, refused credentials, too large).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.on_success();
    }

    /// The call failed in a way that may clear up (timeout, connection error, 5xx, 429).
    pub fn failure(mut self, now: Instant, policy: &BreakerPolicy) {
        self.reported = true;
        self.breaker.on_failure(now, policy);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failure_threshold: 3,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }

    fn allowed(b: &Arc<Breaker>) -> Permit {
        match b.acquire(Instant::now()) {
            Admission::Allowed(p) => p,
            Admission::Refused { .. } => panic!("expected the call to be allowed"),
        }
    }

    fn fail(b: &Arc<Breaker>) {
        allowed(b).failure(Instant::now(), &policy());
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_after_threshold_failures_and_refuses_at_once() {
        let gauge = Gauge::default();
        let b = Breaker::new(gauge.clone());
        fail(&b);
        fail(&b);
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(Instant::now()), BreakerState::Open);
        assert_eq!(gauge.get(), 2);
        match b.acquire(Instant::now()) {
            Admission::Refused { retry_after } => assert_eq!(retry_after, Duration::from_secs(5)),
            Admission::Allowed(_) => panic!("open breaker must refuse"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_count() {
        let b = Breaker::new(Gauge::default());
        fail(&b);
        fail(&b);
        tokio::time::advance(Duration::from_secs(11)).await;
        fail(&b);
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        let b = Breaker::new(Gauge::default());
        fail(&b);
        fail(&b);
        allowed(&b).success();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_success_closes() {
        let gauge = Gauge::default();
        let b = Breaker::new(gauge.clone());
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.state(Instant::now()), BreakerState::HalfOpen);
        let probe = allowed(&b);
        assert_eq!(gauge.get(), 1);
        assert!(matches!(
            b.acquire(Instant::now()),
            Admission::Refused { .. }
        ));
        probe.success();
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
        assert_eq!(gauge.get(), 0);
        allowed(&b).success();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_the_full_open_time() {
        let b = Breaker::new(Gauge::default());
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        allowed(&b).failure(Instant::now(), &policy());
        assert_eq!(b.state(Instant::now()), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(matches!(
            b.acquire(Instant::now()),
            Admission::Refused { .. }
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        allowed(&b).success();
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_the_probe_slot() {
        let b = Breaker::new(Gauge::default());
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(allowed(&b));
        assert_eq!(b.state(Instant::now()), BreakerState::HalfOpen);
        allowed(&b).success();
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
    }
}
