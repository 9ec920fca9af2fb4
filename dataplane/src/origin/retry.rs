//! Bounded retries: exponential backoff with full jitter between attempts on one source.

use super::breaker::Admission;
use super::compile::{CompiledSource, Key, Rule};
use super::error::{OriginError, SourceError};
use super::fetch::{Done, Op};
use super::Origins;
use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Retry policy of one source (from `resilience`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per source for a retryable failure (1 = no retry).
    pub attempts: u32,
    /// Base delay in milliseconds.
    pub base_delay_ms: u64,
    /// Largest delay in milliseconds.
    pub max_delay_ms: u64,
}

impl From<&vr_crds::dataplane::Resilience> for RetryPolicy {
    fn from(r: &vr_crds::dataplane::Resilience) -> Self {
        RetryPolicy {
            attempts: r.attempts.max(1),
            base_delay_ms: r.base_delay_ms.into(),
            max_delay_ms: r.max_delay_ms.into(),
        }
    }
}

impl RetryPolicy {
    /// Upper bound of the delay after failed attempt `n` (0-based): `base·2^n`, capped at
    /// `max_delay_ms`. Never overflows.
    pub fn cap_ms(&self, n: u32) -> u64 {
        let factor = 1u64.checked_shl(n.min(63)).unwrap_or(u64::MAX);
        self.base_delay_ms
            .saturating_mul(factor)
            .min(self.max_delay_ms)
    }

    /// The delay before the next attempt after failed attempt `n`: uniform in
    /// `[0, cap_ms(n)]` ("full jitter"), so clients that failed together spread out.
    pub fn delay(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let cap = self.cap_ms(n);
        Duration::from_millis(rng.random_range(0..=cap))
    }
}

impl Origins {
    /// Up to `attempts` attempts on one source, each admitted by its breaker, with full-jitter
    /// backoff between them. `Ok(None)`: the source does not have the object.
    pub(super) async fn try_source(
        &self,
        rule: &Rule,
        src: &CompiledSource,
        key: &Key,
        op: Op,
    ) -> Result<Option<Done>, OriginError> {
        let mut last: Option<OriginError> = None;
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                let delay = self.retry.delay(attempt - 1, &mut rand::rng());
                tokio::time::sleep(delay).await;
            }
            let permit = match src.breaker.acquire(Instant::now()) {
                Admission::Allowed(p) => p,
                Admission::Refused { retry_after } => {
                    self.state.count(&rule.name, &src.name, "breaker_open");
                    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                    return Err(last.unwrap_or(OriginError::BreakerOpen {
                        origin: rule.name.clone(),
                        source: src.name.clone(),
                        retry_after: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
                    }));
                }
            };
            let result = self.attempt(rule, src, key, op).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            self.state.count(&rule.name, &src.name, outcome);
            match result {
                Ok(done) => {
                    permit.success();
                    return Ok(Some(done));
                }
                Err(SourceError::NotFound) => {
                    permit.success();
                    return Ok(None);
                }
                Err(e) if e.retryable() => {
                    permit.failure(Instant::now(), &self.breaker_policy);
                    last = Some(e.named(&rule.name, &src.name, self.max_input));
                }
                Err(e) => {
                    permit.success();
                    return Err(e.named(&rule.name, &src.name, self.max_input));
                }
            }
        }
        Err(last.unwrap_or(OriginError::NotFound {
            origin: rule.name.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    proptest! {
        #[test]
        fn backoff_delay_never_exceeds_the_cap(
            base in 0u64..10_000,
            extra in 0u64..100_000,
            n in 0u32..100,
            seed in any::<u64>(),
        ) {
            let p = RetryPolicy { attempts: 3, base_delay_ms: base, max_delay_ms: base + extra };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let d = p.delay(n, &mut rng);
            prop_assert!(d <= Duration::from_millis(p.cap_ms(n)));
            prop_assert!(p.cap_ms(n) <= p.max_delay_ms);
        }

        #[test]
        fn backoff_cap_grows_with_the_attempt_until_the_maximum(
            base in 1u64..10_000,
            extra in 0u64..100_000,
            n in 0u32..100,
        ) {
            let p = RetryPolicy { attempts: 3, base_delay_ms: base, max_delay_ms: base + extra };
            let (a, b) = (p.cap_ms(n), p.cap_ms(n + 1));
            prop_assert!(b >= a);
            prop_assert!(b == p.max_delay_ms || b == 2 * a);
        }
    }

    #[test]
    fn backoff_cap_doubles_from_the_base() {
        let p = RetryPolicy {
            attempts: 3,
            base_delay_ms: 100,
            max_delay_ms: 2_000,
        };
        let caps: Vec<u64> = (0..7).map(|n| p.cap_ms(n)).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1_600, 2_000, 2_000]);
    }
}
