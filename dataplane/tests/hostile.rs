//! Hostile and broken inputs with real ffmpeg: each gets a clear status and JSON error code and
//! leaves nothing behind (no work file, no cache object, no ffmpeg/ffprobe child); plus the
//! serve-original fallback, which is never cached as the variant.
//!
//! Run: `cargo test -p vr-dataplane --test hostile -- --include-ignored`.

mod support;

// Every test holds `support::serial()`: `assert_nothing_left` counts every ffmpeg child of
// this process, so tests that check it must not overlap.

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::path::Path;
use std::time::Duration;
use support::{fixture, local_peer, media_config, request, wait_until, Harness, Reply};
use vr_dataplane::fixtures::{self, Fixture};

async fn harness_with(extra: &str, media: &[(Fixture, &str)]) -> Harness {
    let h = Harness::new(&media_config(None, extra), &[]).await;
    for (f, name) in media {
        h.add_media(&fixture(f.clone()).await, name);
    }
    h
}

/// GETs `uri` and checks the refusal: status, JSON code, and that nothing is left behind.
async fn refused(h: &Harness, uri: &str, status: StatusCode, code: &str) -> Reply {
    let objects = h.cache_objects();
    let r = h.get(uri).await;
    assert_eq!(
        r.status,
        status,
        "{uri}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{uri}");
    assert_eq!(r.code(), code, "{uri}");
    h.assert_nothing_left().await;
    assert_eq!(h.cache_objects(), objects, "{uri}: nothing was cached");
    r
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_truncated_mp4_is_422_source_unreadable() {
    let _serial = support::serial().await;
    let h = harness_with("", &[(Fixture::Truncated, "cut.mp4")]).await;
    refused(
        &h,
        "/videos/cut.mp4?width=320",
        StatusCode::UNPROCESSABLE_ENTITY,
        "source_unreadable",
    )
    .await;
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_header_claiming_30000x30000_is_422_too_many_pixels() {
    let _serial = support::serial().await;
    let h = harness_with("", &[(Fixture::HugeDimensions, "huge.mov")]).await;
    let r = refused(
        &h,
        "/videos/huge.mov?width=320",
        StatusCode::UNPROCESSABLE_ENTITY,
        "source_too_many_pixels",
    )
    .await;
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("maxPixels"), "{message}");
    assert_eq!(
        h.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]),
        0.0,
        "the probe refused it; ffmpeg never ran"
    );
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn an_hls_playlist_posing_as_mp4_is_refused_and_its_segment_url_is_never_fetched() {
    let _serial = support::serial().await;
    let tripwire = support::Tripwire::start().await;
    let h = harness_with("", &[]).await;
    let playlist = fixtures::generate(
        Path::new(support::FFMPEG),
        &h.media,
        Fixture::HlsPlaylist {
            segment_url: format!("http://{}/segment0.ts", tripwire.addr),
        },
    )
    .await
    .expect("playlist");
    std::fs::rename(&playlist, h.media.join("list.mp4")).expect("rename");
    let r = h.get("/videos/list.mp4?width=320").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "source_unsupported_container");
    h.assert_nothing_left().await;
    assert_eq!(h.cache_objects(), 0);
    assert_eq!(tripwire.connections(), 0, "ffmpeg never connected anywhere");
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_time_past_the_end_is_400_naming_time() {
    let _serial = support::serial().await;
    let h = harness_with("", &[(Fixture::H264Aac360p { secs: 2 }, "clip.mp4")]).await;
    for uri in [
        "/videos/clip.mp4?mode=frame&time=10s",
        // The fallback origin still answers a mistake in the request instead of hiding it.
        "/fallback/clip.mp4?mode=frame&time=10s",
    ] {
        let r = refused(&h, uri, StatusCode::BAD_REQUEST, "time_past_end").await;
        assert_eq!(r.json()["error"]["details"]["parameter"], "time", "{uri}");
    }
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_transform_over_its_time_limit_is_killed_and_answers_504() {
    let _serial = support::serial().await;
    let h = harness_with(
        "limits:\n  transformTimeoutSeconds: 1\n",
        &[(Fixture::H264Aac1080p { secs: 4 }, "big.mp4")],
    )
    .await;
    let uri = "/videos/big.mp4?width=1920&height=1080&quality=high&compression=high";

    // HEAD needs the whole object (its length), so the deadline shows as the status.
    let r = h.send(request(Method::HEAD, uri, &[])).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.header("content-type"), Some("application/json"));
    h.assert_nothing_left().await;

    // A GET: 504 if the deadline passes before the first byte, otherwise the stream is cut off
    // with an error — never a complete-looking file.
    let resp = h
        .respond(request(Method::GET, uri, &[]), local_peer())
        .await;
    let status = resp.status();
    let body = resp.into_body().collect().await;
    match status {
        StatusCode::GATEWAY_TIMEOUT => {
            let bytes = body.expect("error body").to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            assert_eq!(v["error"]["code"], "transform_timeout");
        }
        StatusCode::OK => assert!(body.is_err(), "a timed-out stream ends with an error"),
        other => panic!("unexpected status {other}"),
    }
    h.assert_nothing_left().await;
    assert_eq!(h.cache_objects(), 0);
    assert_eq!(
        h.metric("vr_transforms_total", &[("outcome", "timeout")]),
        2.0
    );
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn when_the_only_reader_disconnects_mid_stream_ffmpeg_is_killed() {
    let _serial = support::serial().await;
    let h = harness_with("", &[(Fixture::H264Aac1080p { secs: 4 }, "big.mp4")]).await;
    let resp = h
        .respond(
            request(
                Method::GET,
                "/videos/big.mp4?width=1920&height=1080&quality=high&compression=high",
                &[],
            ),
            local_peer(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body
        .frame()
        .await
        .expect("a first frame")
        .expect("no error");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        support::media_children().len(),
        1,
        "ffmpeg is still running"
    );
    drop(body);

    let abandoned = wait_until(Duration::from_secs(10), || {
        h.metric("vr_transforms_total", &[("outcome", "abandoned")]) == 1.0
    })
    .await;
    assert!(abandoned, "{}", h.metrics());
    h.assert_nothing_left().await;
    assert_eq!(h.cache_objects(), 0, "a partial variant is never cached");
}

/// Asserts an original served in place of a failed transform.
fn assert_fallback(r: &Reply, original: &[u8]) {
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(&r.body[..], original);
    assert_eq!(r.header("x-fallback-applied"), Some("transform-error"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_ne!(r.cache_status(), "HIT");
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn serve_original_fallback_serves_the_source_and_never_caches_it_as_the_variant() {
    let _serial = support::serial().await;
    let h = harness_with(
        "",
        &[
            (Fixture::Garbage, "garbage.mp4"),
            (Fixture::H264NoAudio360p { secs: 2 }, "silent.mp4"),
        ],
    )
    .await;
    for (uri, file) in [
        // Cannot be read at all.
        ("/fallback/garbage.mp4?width=320", "garbage.mp4"),
        // Probes fine but cannot be transformed as asked (no audio for mode=audio).
        ("/fallback/silent.mp4?mode=audio", "silent.mp4"),
    ] {
        let original = std::fs::read(h.media.join(file)).expect("read");
        let first = h.get(uri).await;
        assert_fallback(&first, &original);
        let second = h.get(uri).await;
        assert_fallback(&second, &original);
        assert_eq!(h.cache_objects(), 0, "{uri}: the fallback is not cached");
        h.assert_nothing_left().await;
    }
    // The same failures on the origin without the fallback are errors.
    let r = h.get("/videos/garbage.mp4?width=320").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = h.get("/videos/silent.mp4?mode=audio").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "source_no_audio");
}
