//! Per-object exponential backoff of failed reconciles (configs, and Derivatives' status writes): the first retry comes after 1 s, each
//! further failure in a row doubles the wait, up to 2 minutes; a success resets it. A jitter of
//! up to a tenth spreads the retries of many configs that failed together (an API server
//! outage). A change to the config (a watch event) still reconciles it at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first retry's delay.
pub const BASE: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(120);

/// The delay before retry number `failures` (1 = the first failure in a row), before jitter.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1u32 << doublings).min(MAX)
}

/// Failures in a row, per object (`namespace/name`).
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a failure of `key`; returns the delay before its retry (with jitter).
    pub fn failed(&self, key: &str) -> Duration {
        let n = {
            let mut m = self.lock();
            let n = m.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let d = delay(n);
        d + d.mul_f64(rand::random::<f64>() / 10.0)
    }

    /// `key` reconciled successfully: its next failure starts from the base delay again.
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_one_second_up_to_two_minutes() {
        let secs: Vec<u64> = (1..=10).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn failures_count_per_config_and_a_success_resets_them() {
        let b = Backoff::default();
        let within = |d: Duration, base: u64| {
            d >= Duration::from_secs(base) && d <= Duration::from_secs(base).mul_f64(1.1)
        };
        assert!(within(b.failed("ns/a"), 1));
        assert!(within(b.failed("ns/a"), 2));
        assert!(
            within(b.failed("ns/b"), 1),
            "another config has its own count"
        );
        assert!(within(b.failed("ns/a"), 4));
        b.succeeded("ns/a");
        assert!(within(b.failed("ns/a"), 1));
    }
}
