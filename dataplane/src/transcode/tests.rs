//! External tests: real ffmpeg/ffprobe on generated fixtures (`#[ignore]`d; run with
//! `cargo test -p vr-dataplane --lib transcode -- --include-ignored`), plus one plain test
//! that starts no process.

use super::*;
use crate::error::Classify;
use crate::fixtures::{self, Fixture};
use crate::request::variant::Variant;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;
use std::time::Instant;
use vr_crds::media::{Compression, Fit, Format, Mode};

const FFMPEG: &str = "/usr/bin/ffmpeg";
const FFPROBE: &str = "/usr/bin/ffprobe";

fn transcoder() -> (Transcoder, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (
        Transcoder::new(TranscoderConfig::new(FFMPEG, FFPROBE), metrics.clone()),
        metrics,
    )
}

fn limits() -> ProbeLimits {
    ProbeLimits {
        max_pixels: 8192 * 4320,
        max_duration_ms: 600_000,
        max_streams: 8,
        probe_size_bytes: 5_000_000,
        timeout: Duration::from_secs(20),
        memory_bytes: 512 << 20,
    }
}

async fn fixture(dir: &tempfile::TempDir, f: Fixture) -> PathBuf {
    fixtures::generate(Path::new(FFMPEG), dir.path(), f)
        .await
        .expect("fixture")
}

/// Runs `plan` on `input` to completion and writes the output next to it.
async fn transform(t: &Transcoder, input: &Path, plan: &Plan) -> Result<PathBuf, TranscodeError> {
    let mut job = t.spawn(input, plan, Duration::from_secs(60))?;
    let mut out = Vec::new();
    while let Some(chunk) = job.next_chunk().await {
        out.extend_from_slice(&chunk?);
    }
    let path = input.with_extension(format!("out.{}", plan.format().extension()));
    tokio::fs::write(&path, out)
        .await
        .map_err(TranscodeError::Io)?;
    Ok(path)
}

async fn probe_then_transform(
    t: &Transcoder,
    input: &Path,
    v: &Variant,
) -> Result<(Plan, PathBuf), TranscodeError> {
    let info = t.probe(input, &limits()).await?;
    let plan = plan(v, &info, 2)?;
    let out = transform(t, input, &plan).await?;
    Ok((plan, out))
}

/// What an independent, unrestricted ffprobe says about a file.
async fn ffprobe(path: &Path) -> serde_json::Value {
    let out = tokio::process::Command::new(FFPROBE)
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs");
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn stream<'a>(j: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    j["streams"]
        .as_array()?
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn size_of(j: &serde_json::Value) -> (u64, u64) {
    let v = stream(j, "video").expect("video stream");
    (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
}

fn duration_s(j: &serde_json::Value) -> f64 {
    j["format"]["duration"].as_str().unwrap().parse().unwrap()
}

/// Waits (up to 10 s) until `pid` no longer exists — killed *and* reaped, since a zombie
/// still answers signal 0 — and its process group is empty.
async fn assert_gone(pid: u32) {
    let p = Pid::from_raw(pid as i32);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let proc_gone = kill(p, None) == Err(Errno::ESRCH);
        let group_gone = killpg(p, None) == Err(Errno::ESRCH);
        if proc_gone && group_gone {
            return;
        }
        assert!(
            Instant::now() < until,
            "process {pid} or its group is still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// No process mentions `dir` on its command line (nothing was left running on its files).
fn assert_no_process_uses(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(&needle), "left behind: {cmd}");
        }
    }
}

fn variant(mode: Mode) -> Variant {
    Variant::new(mode)
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn probe_describes_a_good_source_and_counts_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 2 }).await;
    let (t, metrics) = transcoder();
    let info = t.probe(&src, &limits()).await.unwrap();
    assert_eq!((info.width, info.height), (Some(640), Some(360)));
    assert_eq!(info.video_codec.as_deref(), Some("h264"));
    assert_eq!(info.audio_codec.as_deref(), Some("aac"));
    assert_eq!(info.streams, 2);
    assert!((1_900..=2_100).contains(&info.duration_ms.unwrap()));
    assert_eq!(info.fps_milli, Some(30_000));
    assert!(metrics
        .encode()
        .contains("vr_processes_spawned_total{program=\"ffprobe\"} 1"));
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn each_fit_produces_the_planned_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 1 }).await;
    let (t, _) = transcoder();
    let cases = [
        (Fit::Contain, Some(300), Some(300), (300, 170)),
        (Fit::Cover, Some(300), Some(300), (300, 300)),
        (Fit::Pad, Some(300), Some(300), (300, 300)),
        (Fit::ScaleDown, Some(1000), Some(1000), (640, 360)),
        (Fit::Contain, Some(1000), None, (1000, 564)),
        (Fit::Contain, None, Some(101), (178, 100)),
    ];
    for (fit, w, h, expected) in cases {
        let mut v = variant(Mode::Video);
        v.width = w;
        v.height = h;
        v.fit = fit;
        v.audio = false;
        v.compression = Compression::Low;
        let (plan, out) = probe_then_transform(&t, &src, &v.normalized())
            .await
            .unwrap();
        let got = size_of(&ffprobe(&out).await);
        assert_eq!(got, expected, "{fit} {w:?}x{h:?}");
        let planned = plan.output_size().unwrap();
        assert_eq!((u64::from(planned.0), u64::from(planned.1)), got);
    }
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn each_video_format_uses_its_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 1 }).await;
    let (t, _) = transcoder();
    for (format, vc, ac) in [(Format::Mp4, "h264", "aac"), (Format::Webm, "vp9", "opus")] {
        let mut v = variant(Mode::Video);
        v.format = format;
        v.width = Some(320);
        let (plan, out) = probe_then_transform(&t, &src, &v.normalized())
            .await
            .unwrap();
        assert!(plan.streamable());
        let j = ffprobe(&out).await;
        assert_eq!(stream(&j, "video").unwrap()["codec_name"], vc);
        assert_eq!(stream(&j, "audio").unwrap()["codec_name"], ac);
    }
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_vp9_webm_source_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::Vp9Webm { secs: 1 }).await;
    let (t, _) = transcoder();
    let mut v = variant(Mode::Video);
    v.width = Some(320);
    let (_, out) = probe_then_transform(&t, &src, &v.normalized())
        .await
        .unwrap();
    assert_eq!(size_of(&ffprobe(&out).await), (320, 180));
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_clip_lasts_its_duration_within_one_gop() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 6 }).await;
    let (t, _) = transcoder();
    let mut v = variant(Mode::Video);
    v.time_ms = Some(1_500);
    v.duration_ms = Some(3_000);
    v.width = Some(320);
    let (_, out) = probe_then_transform(&t, &src, &v.normalized())
        .await
        .unwrap();
    let d = duration_s(&ffprobe(&out).await);
    assert!(
        (d - 3.0).abs() <= f64::from(plan::GOP_SECONDS),
        "clip lasts {d} s"
    );
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_frame_decodes_as_an_image_of_the_asked_size() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 2 }).await;
    let (t, _) = transcoder();
    for (format, codec) in [
        (Format::Jpg, "mjpeg"),
        (Format::Png, "png"),
        (Format::Webp, "webp"),
    ] {
        let mut v = variant(Mode::Frame);
        v.format = format;
        v.time_ms = Some(1_000);
        v.width = Some(320);
        v.height = Some(200);
        v.fit = Fit::Cover;
        let (plan, out) = probe_then_transform(&t, &src, &v.normalized())
            .await
            .unwrap();
        assert!(!plan.streamable());
        let j = ffprobe(&out).await;
        assert_eq!(stream(&j, "video").unwrap()["codec_name"], codec);
        assert_eq!(size_of(&j), (320, 200), "{format}");
    }
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_spritesheet_is_the_grid_of_its_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 4 }).await;
    let (t, _) = transcoder();
    let mut v = variant(Mode::Spritesheet);
    v.image_count = Some(6);
    v.width = Some(100);
    let (plan, out) = probe_then_transform(&t, &src, &v.normalized())
        .await
        .unwrap();
    // 6 tiles → 3 columns × 2 rows of 100×56.
    assert_eq!(plan.output_size(), Some((300, 112)));
    assert_eq!(size_of(&ffprobe(&out).await), (300, 112));
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn audio_mode_output_has_no_video_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 2 }).await;
    let (t, _) = transcoder();
    let (plan, out) = probe_then_transform(&t, &src, &variant(Mode::Audio).normalized())
        .await
        .unwrap();
    assert_eq!(plan.content_type(), "audio/mp4");
    let j = ffprobe(&out).await;
    assert!(stream(&j, "video").is_none());
    assert_eq!(stream(&j, "audio").unwrap()["codec_name"], "aac");
    assert!((duration_s(&j) - 2.0).abs() < 0.2);
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn modes_needing_a_missing_stream_are_refused_after_probing() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = transcoder();
    let audio_only = fixture(&dir, Fixture::AacOnly { secs: 1 }).await;
    let info = t.probe(&audio_only, &limits()).await.unwrap();
    let err = plan(&variant(Mode::Video).normalized(), &info, 2).unwrap_err();
    assert!(matches!(err, TranscodeError::NoVideoStream { .. }));
    let silent = fixture(&dir, Fixture::H264NoAudio360p { secs: 1 }).await;
    let info = t.probe(&silent, &limits()).await.unwrap();
    let err = plan(&variant(Mode::Audio).normalized(), &info, 2).unwrap_err();
    assert!(matches!(err, TranscodeError::NoAudioStream));
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn a_source_with_the_index_at_the_end_is_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::MoovAtEnd).await;
    let (t, _) = transcoder();
    let mut v = variant(Mode::Video);
    v.width = Some(160);
    let (_, out) = probe_then_transform(&t, &src, &v.normalized())
        .await
        .unwrap();
    assert_eq!(size_of(&ffprobe(&out).await), (160, 120));
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn truncated_and_garbage_sources_are_unreadable_and_leave_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = transcoder();
    for f in [Fixture::Truncated, Fixture::Garbage] {
        let src = fixture(&dir, f.clone()).await;
        let err = t.probe(&src, &limits()).await.unwrap_err();
        assert!(
            matches!(
                err,
                TranscodeError::Unreadable | TranscodeError::UnsupportedContainer
            ),
            "{f:?}: {err:?}"
        );
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!err.to_string().contains(dir.path().to_str().unwrap()));
    }
    // ffmpeg itself (no probe first) fails with a typed error and exits.
    let src = dir.path().join("truncated.mp4");
    let plan = plan(
        &variant(Mode::Video).normalized(),
        &MediaInfo {
            width: Some(320),
            height: Some(240),
            video_codec: Some("h264".into()),
            ..MediaInfo::default()
        },
        2,
    )
    .unwrap();
    let err = transform(&t, &src, &plan).await.unwrap_err();
    assert!(matches!(err, TranscodeError::Failed { .. }), "{err:?}");
    assert!(!err.to_string().contains("truncated"), "{err}");
    assert_no_process_uses(dir.path());
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn media_data_cut_short_fails_the_transform_instead_of_ending_it_early() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::TruncatedMedia).await;
    let (t, _) = transcoder();
    // The index is intact, so probing succeeds…
    let info = t.probe(&src, &limits()).await.unwrap();
    let plan = plan(&variant(Mode::Video).normalized(), &info, 2).unwrap();
    // …but the job must not end with `None` (success) after a partial output.
    let err = transform(&t, &src, &plan).await.unwrap_err();
    assert!(matches!(err, TranscodeError::Failed { .. }), "{err:?}");
    assert_no_process_uses(dir.path());
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn huge_claimed_dimensions_are_refused_by_the_pixel_limit() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::HugeDimensions).await;
    // An unrestricted ffprobe believes the header.
    assert_eq!(size_of(&ffprobe(&src).await), (30_000, 30_000));
    assert!(tokio::fs::metadata(&src).await.unwrap().len() < 64 * 1024);
    let (t, _) = transcoder();
    let err = t.probe(&src, &limits()).await.unwrap_err();
    assert!(
        matches!(
            err,
            TranscodeError::TooManyPixels {
                pixels: 900_000_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("maxPixels"));
    assert_no_process_uses(dir.path());
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn an_hls_playlist_is_refused_without_fetching_its_segments() {
    // A listener standing in for an internal service; any connection would be the SSRF.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(
        &dir,
        Fixture::HlsPlaylist {
            segment_url: format!("http://127.0.0.1:{port}/internal-admin.ts"),
        },
    )
    .await;
    let (t, _) = transcoder();
    let err = t.probe(&src, &limits()).await.unwrap_err();
    assert!(
        matches!(err, TranscodeError::UnsupportedContainer),
        "{err:?}"
    );
    // Even when handed straight to ffmpeg without a probe, the whitelists refuse it.
    let plan = plan(
        &variant(Mode::Video).normalized(),
        &MediaInfo {
            width: Some(640),
            height: Some(360),
            video_codec: Some("h264".into()),
            ..MediaInfo::default()
        },
        2,
    )
    .unwrap();
    let err = transform(&t, &src, &plan).await.unwrap_err();
    assert!(matches!(err, TranscodeError::Failed { .. }), "{err:?}");
    // Both processes have exited and been reaped, so any connect() they made is queued.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("ffmpeg connected to the segment URL: {other:?}"),
    }
    assert_no_process_uses(dir.path());
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn the_deadline_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 10 }).await;
    let (t, _) = transcoder();
    let info = t.probe(&src, &limits()).await.unwrap();
    let mut v = variant(Mode::Video);
    v.format = Format::Webm;
    v.compression = Compression::High;
    let plan = plan(&v.normalized(), &info, 1).unwrap();
    let mut job = t.spawn(&src, &plan, Duration::from_millis(300)).unwrap();
    let pid = job.pid();
    let result = loop {
        match job.next_chunk().await {
            Some(Ok(_)) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(result, Some(Err(TranscodeError::Timeout))),
        "{result:?}"
    );
    assert!(job.next_chunk().await.is_none());
    assert_gone(pid).await;
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn dropping_a_job_mid_stream_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 10 }).await;
    let (t, _) = transcoder();
    let info = t.probe(&src, &limits()).await.unwrap();
    let plan = plan(&variant(Mode::Video).normalized(), &info, 1).unwrap();
    let mut job = t.spawn(&src, &plan, Duration::from_secs(60)).unwrap();
    let pid = job.pid();
    let first = job.next_chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(job);
    assert_gone(pid).await;
}

#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn kill_stops_the_job_and_reports_cancellation_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 10 }).await;
    let (t, _) = transcoder();
    let info = t.probe(&src, &limits()).await.unwrap();
    let plan = plan(&variant(Mode::Video).normalized(), &info, 1).unwrap();
    let mut job = t.spawn(&src, &plan, Duration::from_secs(60)).unwrap();
    let pid = job.pid();
    job.kill().await;
    assert_eq!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH));
    assert!(job.next_chunk().await.is_none());
}

/// Not an assertion on time: prints the wall time of a 10 s 1080p → 360p mp4 transform and
/// the time to its first stdout chunk (run with `--nocapture`).
#[tokio::test]
#[ignore = "external: needs ffmpeg"]
async fn measure_1080p_to_360p() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac1080p { secs: 10 }).await;
    let (t, _) = transcoder();
    let info = t.probe(&src, &limits()).await.unwrap();
    let mut v = variant(Mode::Video);
    v.height = Some(360);
    let plan = plan(&v.normalized(), &info, 2).unwrap();
    let start = Instant::now();
    let mut job = t.spawn(&src, &plan, Duration::from_secs(120)).unwrap();
    let (mut first, mut first_moof) = (None, None);
    let mut bytes = 0;
    while let Some(chunk) = job.next_chunk().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        first.get_or_insert_with(|| start.elapsed());
        if first_moof.is_none() && chunk.windows(4).any(|w| w == b"moof") {
            first_moof = Some(start.elapsed());
        }
    }
    eprintln!(
        "1080p→360p mp4, 10 s source: wall {:?}, first chunk {:?}, first moof {:?}, {bytes} bytes",
        start.elapsed(),
        first.unwrap(),
        first_moof.unwrap()
    );
}

#[tokio::test]
async fn a_missing_binary_is_a_spawn_error_without_its_path() {
    let t = Transcoder::new(
        TranscoderConfig::new("/nonexistent/ffmpeg", "/nonexistent/ffprobe"),
        std::sync::Arc::new(crate::metrics::Metrics::new()),
    );
    let p = plan(
        &variant(Mode::Video).normalized(),
        &MediaInfo {
            width: Some(640),
            height: Some(360),
            video_codec: Some("h264".into()),
            ..MediaInfo::default()
        },
        2,
    )
    .unwrap();
    let err = t
        .spawn(
            std::path::Path::new("/tmp/x.mp4"),
            &p,
            std::time::Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        TranscodeError::Spawn {
            program: "ffmpeg",
            ..
        }
    ));
    assert!(!err.to_string().contains("nonexistent"));
}

#[tokio::test]
#[ignore = "external: needs ffmpeg and util-linux prlimit"]
async fn every_child_has_its_own_limits_and_one_that_needs_more_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(&dir, Fixture::H264Aac360p { secs: 4 }).await;
    let (t, _) = transcoder();
    assert!(t.limits_children(), "prlimit must be installed");
    let info = t.probe(&src, &limits()).await.unwrap();
    let mut v = variant(Mode::Video);
    v.width = Some(3840);
    v.height = Some(2160);
    let plan = plan(&v.normalized(), &info, 2).unwrap();
    // The limits are the child's own, visible in /proc while it runs.
    let deadline = Duration::from_secs(60);
    let child = ChildLimits::for_run(1 << 30, deadline, 2);
    assert_eq!(child.cpu_seconds, 125);
    let mut job = t
        .spawn_input(Input::File(&src), &plan, deadline, &child)
        .unwrap();
    // Once the process is ffmpeg, prlimit has set the limits and exec'd it.
    let t0 = Instant::now();
    while std::fs::read_to_string(format!("/proc/{}/comm", job.pid())).unwrap_or_default()
        != "ffmpeg\n"
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "ffmpeg did not start"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", job.pid())).unwrap();
    let row = |key: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| {
                l[key.len()..]
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap()
    };
    assert_eq!(row("Max address space"), format!("{0} {0}", 1u64 << 30));
    assert_eq!(row("Max cpu time"), "125 130");
    assert_eq!(row("Max core file size"), "0 0");
    job.kill().await;

    // 448 MiB of address space loads ffmpeg (Debian's needs ~300 MiB) but cannot hold a 4K
    // x264 encoder (~830 MB RSS): this job fails with a
    // resource-limit error (422), not a crash of anything else.
    let small = ChildLimits::for_run(448 << 20, deadline, 2);
    let mut job = t
        .spawn_input(Input::File(&src), &plan, deadline, &small)
        .unwrap();
    let result = loop {
        match job.next_chunk().await {
            Some(Ok(_)) => continue,
            other => break other,
        }
    };
    match result {
        Some(Err(e @ TranscodeError::ResourceLimit { limit: "memory" })) => {
            assert_eq!(e.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        }
        other => panic!("expected a memory limit failure, got {other:?}"),
    }
}
