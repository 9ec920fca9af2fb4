//! A bounded open-loop load generator for the suites: a fixed request rate spread round-robin
//! over data-plane processes (as a Service would), every answer recorded with the revision that
//! served it. It stops by itself at its time limit and never has more than a fixed number of
//! requests in flight; targets are the suite's own addresses (loopback or the suite's network
//! namespace).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answered (or failed) request.
#[derive(Debug, Clone)]
pub struct Hit {
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// How long the answer took (headers and body).
    pub took: Duration,
    /// HTTP status, 0 when the connection failed.
    pub status: u16,
    /// `X-Config-Revision` of the answer.
    pub revision: String,
    /// `X-Canary-Fallback`: the canary revision whose failure stable answered for.
    pub fallback: Option<String>,
    /// Index of the URL in the load's URL list.
    pub url: usize,
}

/// A running load; stopped on drop.
pub struct Load {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Hit>>>,
    started: Instant,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URLs of the processes (`http://10.244.0.10:8080`), used round-robin.
    pub targets: Vec<String>,
    /// Paths with queries (`/videos/a.mp4?derivative=mobile`), used in a shuffled cycle.
    pub urls: Vec<String>,
    /// Requests per second.
    pub rate: u32,
    /// Most requests in flight; beyond it a tick is skipped (not sent).
    pub max_in_flight: usize,
    /// Hard limit: the load stops by itself after this long.
    pub limit: Duration,
}

impl Load {
    /// Starts sending.
    pub fn start(plan: Plan) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let task = tokio::spawn(run(plan, stop.clone(), hits.clone(), started));
        Load {
            stop,
            hits,
            started,
            task: Some(task),
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The answers so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Answers sent at or after `from` (time since the load started).
    pub fn hits_since(&self, from: Duration) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.sent >= from).collect()
    }

    /// Stops sending and waits for requests in flight.
    pub async fn stop(mut self) -> Vec<Hit> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.hits()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn run(plan: Plan, stop: Arc<AtomicBool>, hits: Arc<Mutex<Vec<Hit>>>, started: Instant) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(plan.max_in_flight)
        .build()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(plan.max_in_flight.max(1)));
    let mut order: Vec<usize> = (0..plan.urls.len()).collect();
    shuffle(&mut order);
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(plan.rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: usize = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < plan.limit {
        tick.tick().await;
        if plan.urls.is_empty() || plan.targets.is_empty() {
            break;
        }
        let url_idx = order[n % order.len()];
        let target = &plan.targets[n % plan.targets.len()];
        n += 1;
        let url = format!("{target}{}", plan.urls[url_idx]);
        let sent = started.elapsed();
        // At the in-flight limit the tick is dropped: the load stays bounded (open loop
        // with a cap), and the suites look at answered requests.
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            continue;
        };
        let client = client.clone();
        let hits = hits.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let hit = match client.get(&url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let header = |name: &str| {
                        r.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let revision = header("x-config-revision").unwrap_or_default();
                    let fallback = header("x-canary-fallback");
                    let ok = r.bytes().await.is_ok();
                    Hit {
                        sent,
                        took: t0.elapsed(),
                        status: if ok { status } else { 0 },
                        revision,
                        fallback,
                        url: url_idx,
                    }
                }
                Err(_) => Hit {
                    sent,
                    took: t0.elapsed(),
                    status: 0,
                    revision: String::new(),
                    fallback: None,
                    url: url_idx,
                },
            };
            push(&hits, hit);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

fn push(hits: &Mutex<Vec<Hit>>, hit: Hit) {
    if let Ok(mut h) = hits.lock() {
        h.push(hit);
    }
}

fn shuffle(v: &mut [usize]) {
    use rand::seq::SliceRandom;
    v.shuffle(&mut rand::rng());
}

/// Share (0–1) of `hits` answered by `revision`, among answered ones.
pub fn share(hits: &[Hit], revision: &str) -> f64 {
    let answered = hits.iter().filter(|h| h.status != 0).count();
    if answered == 0 {
        return 0.0;
    }
    hits.iter().filter(|h| h.revision == revision).count() as f64 / answered as f64
}

/// Requests that failed for the client (connection failure or status ≥ 500, or 4xx when
/// `client_errors`).
pub fn failed(hits: &[Hit], client_errors: bool) -> Vec<&Hit> {
    hits.iter()
        .filter(|h| h.status == 0 || h.status >= 500 || (client_errors && h.status >= 400))
        .collect()
}
