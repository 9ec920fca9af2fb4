//! Request collapsing and load shedding with real ffmpeg, made deterministic by an HTTP origin
//! that holds its GETs: while the leader's download is held, every other request has provably
//! joined (collapsing) or been refused (shedding) before any transform can finish.
//!
//! Run: `cargo test -p vr-dataplane --test flight -- --include-ignored`.

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use std::time::Duration;
use support::{
    fixture, local_peer, media_config, request, wait_until, Behavior, Harness, Origin, Reply,
};
use vr_dataplane::fixtures::Fixture;

async fn held_origin() -> Origin {
    let clip = fixture(Fixture::H264Aac360p { secs: 2 }).await;
    let origin = Origin::start(Behavior::Serve {
        body: Bytes::from(std::fs::read(clip).expect("read fixture")),
        length: true,
    })
    .await;
    origin.hold();
    origin
}

/// Starts `uris` concurrently, each as its own task calling the service.
fn fire(h: &Harness, uris: Vec<String>) -> Vec<tokio::task::JoinHandle<Reply>> {
    uris.into_iter()
        .map(|uri| {
            let app = h.app.clone();
            tokio::spawn(async move {
                let resp = vr_dataplane::edge::service::handle(
                    &app,
                    request(Method::GET, &uri, &[]),
                    local_peer(),
                )
                .await;
                Reply::read(resp).await
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "external: needs ffmpeg"]
async fn fifty_requests_for_one_missing_variant_fetch_once_and_run_ffmpeg_once() {
    let _serial = support::serial().await;
    let origin = held_origin().await;
    let h = Harness::new(&media_config(Some(&origin.base()), ""), &[]).await;
    let ffmpeg = |h: &Harness| h.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]);
    let before = ffmpeg(&h);

    let tasks = fire(&h, vec!["/remote/clip.mp4?width=320".to_owned(); 50]);
    let joined = wait_until(Duration::from_secs(20), || {
        h.metric("vr_collapsed_requests_total", &[]) == 49.0 && origin.gets() == 1
    })
    .await;
    assert!(
        joined,
        "49 requests joined the leader's flight (collapsed: {}, GETs: {})",
        h.metric("vr_collapsed_requests_total", &[]),
        origin.gets()
    );
    origin.release();

    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("task"));
    }
    let first = &replies[0].body;
    assert!(!first.is_empty());
    let mut miss = 0;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("video/mp4"));
        assert_eq!(&r.body, first, "every reader gets the same bytes");
        match r.cache_status() {
            "MISS" => miss += 1,
            "COLLAPSED" => {}
            other => panic!("unexpected X-Cache-Status {other}"),
        }
    }
    assert_eq!(miss, 1, "exactly one leader");
    assert_eq!(origin.gets(), 1, "exactly one source GET");
    assert_eq!(ffmpeg(&h) - before, 1.0, "exactly one ffmpeg run");
    assert_eq!(h.cache_objects(), 1);
    h.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "external: needs ffmpeg"]
async fn past_the_slots_and_the_queue_requests_are_shed_with_503_and_retry_after() {
    let _serial = support::serial().await;
    let origin = held_origin().await;
    let h = Harness::new(
        &media_config(
            Some(&origin.base()),
            "limits:\n  maxConcurrentTransforms: 1\n  queueDepth: 1\n",
        ),
        &[],
    )
    .await;
    let uris = (0..6)
        .map(|i| format!("/remote/clip.mp4?width={}", 200 + 10 * i))
        .collect();
    let tasks = fire(&h, uris);
    // One transform holds the slot (its download is held), one waits: the other four are shed.
    let settled = wait_until(Duration::from_secs(20), || {
        h.metric("vr_transforms_shed_total", &[]) == 4.0 && origin.gets() == 1
    })
    .await;
    assert!(
        settled,
        "shed {} with {} GETs",
        h.metric("vr_transforms_shed_total", &[]),
        origin.gets()
    );
    origin.release();

    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            StatusCode::OK => {
                assert!(!r.body.is_empty());
                assert_eq!(r.header("content-type"), Some("video/mp4"));
                ok += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.code(), "overloaded");
                assert_eq!(r.json()["error"]["retryable"], true);
                assert!(r.header("retry-after").is_some(), "Retry-After on a 503");
                assert_eq!(r.header("cache-control"), Some("no-store"));
                shed += 1;
            }
            other => panic!(
                "unexpected status {other}: {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
    }
    assert_eq!(
        (ok, shed),
        (2, 4),
        "the running and the queued transform complete"
    );
    assert_eq!(h.metric("vr_transforms_shed_total", &[]), f64::from(shed));
    assert_eq!(h.cache_objects(), 2);
    h.assert_nothing_left().await;
}
