//! Ranges on a variant that ffmpeg is still writing, with real ffmpeg: a `Range` whose bytes
//! exist is answered before the transform ends (for the request that started it and for
//! concurrent ones), its bytes are the finished object's bytes, and the production survives
//! the gaps between a range-only player's requests.
//!
//! Prints `RANGE_DURING_PRODUCTION …` with the figure of docs/BENCHMARKS.md (range answered
//! after N s, whole transform M s).
//!
//! Run: `cargo test -p vr-dataplane --test ranges_in_production -- --include-ignored --nocapture`.

mod support;

use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{fixture, media_config, request, wait_until, Harness, Reply};
use vr_dataplane::fixtures::Fixture;

/// A 10 s 1080p source to 1280×720 at high quality: about 1.5 MB of output (enough that bytes
/// 500 000–600 000 sit mid-way) and a transform of a few seconds even on a fast machine.
const URI: &str = "/videos/clip.mp4?width=1280&height=720&quality=high";

async fn harness() -> Harness {
    let h = Harness::new(&media_config(None, ""), &[]).await;
    h.add_media(
        &fixture(Fixture::H264Aac1080p { secs: 10 }).await,
        "clip.mp4",
    );
    h
}

fn transforms_done(h: &Harness) -> f64 {
    h.metric("vr_transforms_total", &[("outcome", "ok")])
}

/// Sends `range` for [`URI`] in a task of its own; the reply, and when it was fully read.
fn fire(h: &Harness, range: &str) -> tokio::task::JoinHandle<(Reply, Instant)> {
    let app = h.app.clone();
    let range = range.to_owned();
    tokio::spawn(async move {
        let req = request(Method::GET, URI, &[("range", range.as_str())]);
        let resp = vr_dataplane::edge::service::handle(&app, req, support::local_peer()).await;
        let reply = Reply::read(resp).await;
        (reply, Instant::now())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "external: needs ffmpeg"]
async fn a_range_is_answered_as_soon_as_its_bytes_exist_and_matches_the_final_object() {
    let _serial = support::serial().await;
    let h = harness().await;
    let started = Instant::now();

    // The first viewer asks for a range (it leads the flight); two more join while it runs: a
    // later bounded range and an open-ended one.
    let first = fire(&h, "bytes=500000-600000");
    let joined = wait_until(Duration::from_secs(30), || h.app.flights.len() == 1).await;
    assert!(joined, "the first range started a production");
    let later = fire(&h, "bytes=700000-750000");
    let open = fire(&h, "bytes=300000-");

    let (first, first_at) = first.await.expect("task");
    let in_production = transforms_done(&h) == 0.0;
    let (later, _) = later.await.expect("task");
    let (open, _) = open.await.expect("task");

    let done = wait_until(Duration::from_secs(120), || transforms_done(&h) == 1.0).await;
    assert!(
        done,
        "the transform finishes although every request has ended"
    );
    let whole_at = Instant::now();
    let whole = h.get(URI).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.cache_status(), "HIT", "the production was stored");
    let len = whole.body.len();
    assert!(
        len > 800_000,
        "the output ({len} bytes) covers every range asked"
    );

    assert_eq!(
        first.status,
        StatusCode::PARTIAL_CONTENT,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.header("content-range"), Some("bytes 500000-600000/*"));
    assert_eq!(first.header("content-length"), Some("100001"));
    assert_eq!(first.header("content-type"), Some("video/mp4"));
    assert_eq!(first.header("etag"), whole.header("etag"));
    assert_eq!(first.cache_status(), "MISS");
    assert_eq!(&first.body[..], &whole.body[500_000..=600_000]);
    assert!(
        in_production,
        "the first range was answered before the transform ended"
    );

    assert_eq!(later.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(later.cache_status(), "COLLAPSED");
    assert_eq!(&later.body[..], &whole.body[700_000..=750_000]);

    // Open-ended: what existed when it was answered, marked with an unknown length (or the
    // whole rest with the length, if the transform had ended by then).
    assert_eq!(open.status, StatusCode::PARTIAL_CONTENT);
    let range = open.header("content-range").expect("Content-Range");
    let end = range
        .strip_prefix("bytes 300000-")
        .and_then(|r| r.split_once('/'))
        .map(|(end, total)| {
            assert!(total == "*" || total == len.to_string(), "{range}");
            end.parse::<usize>().expect("last byte")
        })
        .expect("bytes 300000-N/…");
    assert_eq!(&open.body[..], &whole.body[300_000..=end]);

    assert_eq!(
        h.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]),
        1.0,
        "one transform for every viewer"
    );
    println!(
        "RANGE_DURING_PRODUCTION bytes=500000-600000 of {len} answered after {:.2} s; whole transform {:.2} s",
        (first_at - started).as_secs_f64(),
        (whole_at - started).as_secs_f64()
    );
    h.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "external: needs ffmpeg"]
async fn conditionals_suffix_ranges_and_head_still_wait_for_the_finished_object() {
    let _serial = support::serial().await;
    let h = harness().await;
    let suffix = {
        let app = h.app.clone();
        tokio::spawn(async move {
            let req = request(Method::GET, URI, &[("range", "bytes=-1000")]);
            Reply::read(vr_dataplane::edge::service::handle(&app, req, support::local_peer()).await)
                .await
        })
    };
    let joined = wait_until(Duration::from_secs(30), || h.app.flights.len() == 1).await;
    assert!(joined);
    let head = h.send(request(Method::HEAD, URI, &[])).await;
    assert_eq!(transforms_done(&h), 1.0, "HEAD answered after the end");
    let len: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length on HEAD");
    let suffix = suffix.await.expect("task");
    assert_eq!(suffix.status, StatusCode::PARTIAL_CONTENT);
    let expected = format!("bytes {}-{}/{len}", len - 1000, len - 1);
    assert_eq!(suffix.header("content-range"), Some(expected.as_str()));

    // A range past the end of the finished object is refused with its length.
    let past = h
        .send(request(Method::GET, URI, &[("range", "bytes=900000000-")]))
        .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let expected = format!("bytes */{len}");
    assert_eq!(past.header("content-range"), Some(expected.as_str()));
    h.assert_nothing_left().await;
}
