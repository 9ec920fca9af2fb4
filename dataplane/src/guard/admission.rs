//! Load shedding for transforms: a fixed number of slots, a bounded queue, and a clear 503
//! with `Retry-After` past them — never unbounded processes or memory.
//!
//! Only the leader of a single-flight group asks for a slot (followers share its output), so
//! the limit counts ffmpeg processes, not requests.

use crate::error::{Classify, Fault};
use crate::metrics::Metrics;
use http::StatusCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a transform was not admitted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    /// Every slot is busy and the queue is full.
    #[error(
        "the server is at its transform limit ({slots} running, {queued} queued); retry later"
    )]
    Full { slots: usize, queued: usize },
    /// Waited in the queue for longer than the queue timeout.
    #[error("no transform slot became free within {0} s; retry later")]
    QueueTimeout(u64),
}

impl Classify for AdmissionError {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
    fn code(&self) -> &'static str {
        match self {
            AdmissionError::Full { .. } => "overloaded",
            AdmissionError::QueueTimeout(_) => "queue_timeout",
        }
    }
    fn fault(&self) -> Fault {
        Fault::Server
    }
    fn retryable(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<u32> {
        Some(2)
    }
}

/// The transform slots and their queue.
pub struct Admission {
    slots: Arc<Semaphore>,
    size: usize,
    queue_depth: usize,
    queued: AtomicUsize,
    queue_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// A held transform slot; dropping it frees the slot.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.transforms_in_flight.dec();
    }
}

impl Admission {
    /// `slots` concurrent transforms (0 → number of CPUs), `queue_depth` waiters.
    pub fn new(
        slots: usize,
        queue_depth: usize,
        queue_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let size = if slots == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            slots
        };
        Admission {
            slots: Arc::new(Semaphore::new(size)),
            size,
            queue_depth,
            queued: AtomicUsize::new(0),
            queue_timeout,
            metrics,
        }
    }

    /// Number of slots.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Transforms waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Transforms running now.
    pub fn running(&self) -> usize {
        self.size - self.slots.available_permits()
    }

    /// Takes a slot at once, or waits in the queue if there is room, or refuses.
    pub async fn acquire(&self) -> Result<Slot, AdmissionError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(self.slot(p));
        }
        // Reserve a queue place without exceeding the depth (compare-and-swap loop).
        let mut cur = self.queued.load(Ordering::Relaxed);
        loop {
            if cur >= self.queue_depth {
                self.metrics.transforms_shed.inc();
                return Err(AdmissionError::Full {
                    slots: self.size,
                    queued: cur,
                });
            }
            match self.queued.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.metrics.transform_queue_depth.inc();
        let waited =
            tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        self.metrics.transform_queue_depth.dec();
        match waited {
            Ok(Ok(p)) => Ok(self.slot(p)),
            // The semaphore is never closed; treat it like a timeout if it were.
            Ok(Err(_)) | Err(_) => {
                self.metrics.transforms_shed.inc();
                Err(AdmissionError::QueueTimeout(self.queue_timeout.as_secs()))
            }
        }
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        self.metrics.transforms_in_flight.inc();
        Slot {
            _permit: permit,
            metrics: self.metrics.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(slots: usize, depth: usize) -> Arc<Admission> {
        Arc::new(Admission::new(
            slots,
            depth,
            Duration::from_secs(5),
            Arc::new(Metrics::new()),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn requests_past_slots_and_queue_are_refused_at_once() {
        let a = admission(2, 1);
        let s1 = a.acquire().await.expect("slot 1");
        let _s2 = a.acquire().await.expect("slot 2");
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.acquire().await.map(|_| ()) })
        };
        // Let the waiter enter the queue.
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            a.acquire().await,
            Err(AdmissionError::Full {
                slots: 2,
                queued: 1
            })
        ));
        drop(s1);
        assert_eq!(waiter.await.expect("join"), Ok(()));
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gives_up_after_the_queue_timeout() {
        let a = admission(1, 4);
        let _s = a.acquire().await.expect("slot");
        let r = a.acquire().await;
        assert_eq!(r.err(), Some(AdmissionError::QueueTimeout(5)));
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test]
    async fn zero_slots_means_one_per_cpu() {
        let a = admission(0, 0);
        assert!(a.size() >= 1);
    }

    #[test]
    fn refusal_is_a_503_with_retry_after() {
        let e = AdmissionError::Full {
            slots: 1,
            queued: 0,
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after(), Some(2));
    }
}
