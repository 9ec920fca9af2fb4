//! Transforms through the whole service with real ffmpeg: every mode and the main size and
//! format parameters, checked with ffprobe; then cache hits, ranges, conditionals and HEAD.
//!
//! Run: `cargo test -p vr-dataplane --test transforms -- --include-ignored`.

mod support;

// Every test holds `support::serial()`: `assert_nothing_left` counts every ffmpeg child of
// this process, so tests that check it must not overlap.

use http::{Method, StatusCode};
use support::{ffprobe_bytes, fixture, media_config, request, stream, Harness, Reply};
use vr_dataplane::fixtures::Fixture;

async fn clip_harness() -> Harness {
    let h = Harness::new(&media_config(None, ""), &[]).await;
    h.add_media(&fixture(Fixture::H264Aac360p { secs: 2 }).await, "clip.mp4");
    h
}

/// GETs `uri` (a miss), checks status and type, and returns the reply.
async fn transformed(h: &Harness, uri: &str, content_type: &str) -> Reply {
    let r = h.get(uri).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some(content_type), "{uri}");
    assert!(!r.body.is_empty(), "{uri}");
    assert_eq!(r.cache_status(), "MISS", "{uri}");
    r
}

fn dims(probe: &serde_json::Value) -> (u64, u64) {
    let v = stream(probe, "video").expect("a video stream");
    (
        v["width"].as_u64().expect("width"),
        v["height"].as_u64().expect("height"),
    )
}

fn codec<'a>(probe: &'a serde_json::Value, kind: &str) -> Option<&'a str> {
    stream(probe, kind).and_then(|s| s["codec_name"].as_str())
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_derivative_is_transformed_then_served_from_cache_with_ranges_and_conditionals() {
    let _serial = support::serial().await;
    let h = clip_harness().await;
    let uri = "/videos/clip.mp4?derivative=mobile";
    let first = transformed(&h, uri, "video/mp4").await;
    assert_eq!(first.header("x-derivative"), Some("mobile"));
    let probe = ffprobe_bytes(&first.body).await;
    assert_eq!(dims(&probe), (320, 180));
    assert_eq!(codec(&probe, "video"), Some("h264"));
    assert_eq!(codec(&probe, "audio"), Some("aac"));
    let etag = first.header("etag").expect("ETag on a miss").to_owned();

    let second = h.get(uri).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.cache_status(), "HIT");
    assert_eq!(second.body, first.body, "a hit serves the same bytes");
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert_eq!(h.cache_objects(), 1);

    let len = first.body.len();
    let r = h
        .send(request(Method::GET, uri, &[("range", "bytes=100-299")]))
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &first.body[100..300]);
    let expected = format!("bytes 100-299/{len}");
    assert_eq!(r.header("content-range"), Some(expected.as_str()));

    let r = h
        .send(request(
            Method::GET,
            uri,
            &[("if-none-match", etag.as_str())],
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());

    let r = h.send(request(Method::HEAD, uri, &[])).await;
    assert_eq!(r.status, StatusCode::OK);
    let expected = len.to_string();
    assert_eq!(r.header("content-length"), Some(expected.as_str()));
    assert!(r.body.is_empty());

    assert_eq!(
        h.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]),
        1.0,
        "only the first request ran ffmpeg"
    );
    h.assert_nothing_left().await;
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn an_akamai_url_is_transformed_and_a_derivative_wins_url_shares_its_variant() {
    let _serial = support::serial().await;
    let extra = "responsive:\n  breakpoints:\n    - { maxWidth: 854, derivative: mobile }\n\
                 params:\n  onDisallowedOverride: derivativeWins\n";
    let h = Harness::new(&media_config(None, extra), &[]).await;
    h.add_media(&fixture(Fixture::H264Aac360p { secs: 2 }).await, "clip.mp4");

    let first = transformed(
        &h,
        "/videos/clip.mp4?imwidth=800&imformat=h264",
        "video/mp4",
    )
    .await;
    assert_eq!(first.header("x-derivative"), Some("mobile"));
    assert_eq!(
        first.header("x-param-warnings"),
        None,
        "h264 is what mobile makes"
    );
    let probe = ffprobe_bytes(&first.body).await;
    assert_eq!(dims(&probe), (320, 180));
    assert_eq!(codec(&probe, "video"), Some("h264"));

    // The derivative wins over imformat=webm: the same variant, served from the cache.
    let r = h.get("/videos/clip.mp4?imwidth=640&imformat=webm").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.cache_status(), "HIT");
    assert_eq!(r.body, first.body);
    let warnings = r.header("x-param-warnings").unwrap_or("");
    assert!(warnings.starts_with("imformat: ignored"), "{warnings}");
    h.assert_nothing_left().await;
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn width_height_and_fit_give_the_asked_dimensions() {
    let _serial = support::serial().await;
    let h = clip_harness().await;
    for (query, want) in [
        ("width=320", (320, 180)),
        ("height=90", (160, 90)),
        ("width=320&height=320&fit=contain", (320, 180)),
        ("width=320&height=320&fit=cover", (320, 320)),
        ("width=320&height=320&fit=pad", (320, 320)),
    ] {
        let r = transformed(&h, &format!("/videos/clip.mp4?{query}"), "video/mp4").await;
        assert_eq!(dims(&ffprobe_bytes(&r.body).await), want, "{query}");
    }
    h.assert_nothing_left().await;
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn frame_spritesheet_audio_and_webm_have_the_right_type_and_streams() {
    let _serial = support::serial().await;
    let h = clip_harness().await;

    let r = transformed(
        &h,
        "/videos/clip.mp4?mode=frame&time=1s&width=320",
        "image/jpeg",
    )
    .await;
    let p = ffprobe_bytes(&r.body).await;
    assert_eq!(codec(&p, "video"), Some("mjpeg"));
    assert_eq!(dims(&p), (320, 180));

    let r = transformed(
        &h,
        "/videos/clip.mp4?mode=frame&time=1s&width=160&format=png",
        "image/png",
    )
    .await;
    assert!(r.body.starts_with(b"\x89PNG"));
    assert_eq!(dims(&ffprobe_bytes(&r.body).await), (160, 90));

    // Four 160×90 tiles on a 2×2 grid.
    let r = transformed(
        &h,
        "/videos/clip.mp4?mode=spritesheet&width=160&height=90&imageCount=4",
        "image/jpeg",
    )
    .await;
    assert_eq!(dims(&ffprobe_bytes(&r.body).await), (320, 180));

    let r = transformed(&h, "/videos/clip.mp4?mode=audio", "audio/mp4").await;
    let p = ffprobe_bytes(&r.body).await;
    assert_eq!(codec(&p, "audio"), Some("aac"));
    assert!(stream(&p, "video").is_none(), "audio mode drops the video");

    let r = transformed(&h, "/videos/clip.mp4?width=320&format=webm", "video/webm").await;
    let p = ffprobe_bytes(&r.body).await;
    assert_eq!(codec(&p, "video"), Some("vp9"));
    assert_eq!(codec(&p, "audio"), Some("opus"));
    assert_eq!(dims(&p), (320, 180));

    assert_eq!(h.cache_objects(), 5);
    h.assert_nothing_left().await;
}
