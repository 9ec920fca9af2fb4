//! The `s3` suite: S3 sources, presigned URLs and the shared S3 cache layer against a real
//! S3-compatible server (s3s-fs, which checks SigV4), with real ffmpeg and data-plane
//! processes. Run by `e2e/run s3` (which installs s3s-fs under `.cache/` and builds the binary).

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vr_e2e::s3::{CountingProxy, DataPlane, S3Server, ACCESS_KEY, SECRET_KEY};
use vr_e2e::wait_for;

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// Generates a fast-start 640×360 H.264/AAC MP4 of `secs` seconds with a keyframe each second.
fn sample(dir: &Path, secs: u32) -> PathBuf {
    let out = dir.join(format!("sample-{secs}s.mp4"));
    let video = format!("testsrc2=size=640x360:rate=25:duration={secs}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let args = [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "6M",
        "-maxrate",
        "6M",
        "-bufsize",
        "12M",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
    ];
    let st = std::process::Command::new("ffmpeg")
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg failed to generate the sample");
    out
}

/// Writes the credential files and returns `(id_file, secret_file)`.
fn credentials(dir: &Path, name: &str, secret: &str) -> (String, String) {
    let id = dir.join(format!("{name}-id"));
    let sec = dir.join(format!("{name}-secret"));
    std::fs::write(&id, format!("{ACCESS_KEY}\n")).unwrap();
    std::fs::write(&sec, format!("{secret}\n")).unwrap();
    (id.display().to_string(), sec.display().to_string())
}

struct Setup {
    dir: tempfile::TempDir,
    s3: S3Server,
    media: PathBuf,
}

async fn setup(secs: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(dir.path()).await.unwrap();
    s3.bucket("media").unwrap();
    s3.bucket("variants").unwrap();
    let media = sample(dir.path(), secs);
    s3.put_file("media", "raw/sample.mp4", &media).unwrap();
    Setup { dir, s3, media }
}

/// An `s3` source block (YAML, indented for a `sources:` list).
fn s3_source(
    name: &str,
    endpoint: &str,
    bucket: &str,
    key: &str,
    creds: &(String, String),
) -> String {
    format!(
        r#"      - kind: s3
        name: {name}
        bucket: {bucket}
        endpoint: {endpoint}
        forcePathStyle: true
        key: '{key}'
        timeoutSeconds: 5
        credentials:
          accessKeyIdFile: {}
          secretAccessKeyFile: {}
"#,
        creds.0, creds.1
    )
}

fn config(sources: &str, extra: &str, dir: &Path) -> String {
    let token = dir.join("admin-token");
    std::fs::write(&token, ADMIN_TOKEN).unwrap();
    format!(
        r#"origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
{sources}admin:
  tokens:
    - name: e2e
      tokenFile: {}
      scopes: [admin]
resilience:
  failureThreshold: 3
  windowSeconds: 30
  openSeconds: 60
  attempts: 1
{extra}"#,
        token.display()
    )
}

fn shared_cache(endpoint: &str, creds: &(String, String)) -> String {
    format!(
        r#"cache:
  shared:
    bucket: variants
    endpoint: {endpoint}
    forcePathStyle: true
    timeoutSeconds: 2
    purgePollSeconds: 1
    credentials:
      accessKeyIdFile: {}
      secretAccessKeyFile: {}
"#,
        creds.0, creds.1
    )
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
#[ignore = "external: s3s-fs, ffmpeg"]
async fn a_transform_and_a_clip_read_an_s3_source_through_presigned_urls() -> Result<()> {
    let s = setup(60).await;
    let proxy = CountingProxy::start(s.s3.port).await?;
    let creds = credentials(s.dir.path(), "good", SECRET_KEY);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let cfg = config(
        &s3_source("bucket", &endpoint, "media", "raw/${name}.mp4", &creds),
        "",
        s.dir.path(),
    );
    let dp = DataPlane::start(s.dir.path(), "dp", &cfg).await?;
    let size = std::fs::metadata(&s.media)?.len();

    // A one-second clip from the middle: ffmpeg reads the index, then seeks (a new range
    // request) and reads only around the clip, through the presigned URL.
    let before = proxy.bytes();
    let r = get(&dp.url("/videos/sample.mp4?width=320&time=30s&duration=1s")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    assert_eq!(header(&r, "x-cache-status"), "MISS");
    let clip = r.bytes().await?;
    assert!(!clip.is_empty());
    let read = proxy.bytes() - before;
    println!("CLIP source={size}B read_through_presigned_url={read}B");
    assert!(
        read < size / 2,
        "a 1 s clip read {read} of {size} bytes: not a range read"
    );

    // Another clip of the same object reuses the cached presigned URL.
    let r = get(&dp.url("/videos/sample.mp4?width=256&time=10s&duration=1s")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache-status"), "MISS");
    assert!(!r.bytes().await?.is_empty());
    let hits = dp
        .metric(r#"vr_presigned_urls_total{origin="videos",source="bucket",result="hit"}"#)
        .await;
    let misses = dp
        .metric(r#"vr_presigned_urls_total{origin="videos",source="bucket",result="miss"}"#)
        .await;
    assert_eq!((hits, misses), (1.0, 1.0));
    Ok(())
}

#[tokio::test]
#[ignore = "external: s3s-fs, ffmpeg"]
async fn wrong_credentials_give_a_502_naming_the_source_and_never_the_secret() -> Result<()> {
    let s = setup(2).await;
    let creds = credentials(s.dir.path(), "bad", "not-the-secret-xyz");
    let cfg = config(
        &s3_source(
            "private",
            &s.s3.endpoint(),
            "media",
            "raw/${name}.mp4",
            &creds,
        ),
        "",
        s.dir.path(),
    );
    let dp = DataPlane::start(s.dir.path(), "dp", &cfg).await?;
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        get(&dp.url("/videos/sample.mp4?width=320")),
    )
    .await
    .expect("answers, does not hang");
    assert_eq!(r.status(), 502);
    let body = r.text().await?;
    assert!(body.contains("source_auth"), "{body}");
    assert!(
        body.contains("\\\"private\\\"") || body.contains("private"),
        "{body}"
    );
    assert!(body.contains("videos"), "{body}");
    assert!(!body.contains("not-the-secret"), "{body}");
    assert!(!body.contains(ACCESS_KEY), "{body}");
    Ok(())
}

#[tokio::test]
#[ignore = "external: s3s-fs, ffmpeg"]
async fn a_missing_bucket_or_object_falls_through_to_the_next_source() -> Result<()> {
    let s = setup(2).await;
    let creds = credentials(s.dir.path(), "good", SECRET_KEY);
    let local = s.dir.path().join("local");
    std::fs::create_dir_all(&local)?;
    std::fs::copy(&s.media, local.join("sample.mp4"))?;
    let sources = format!(
        "{}{}      - kind: local\n        name: disk\n        root: {}\n        path: '${{name}}.mp4'\n",
        s3_source("nobucket", &s.s3.endpoint(), "no-such-bucket", "raw/${name}.mp4", &creds),
        s3_source("nokey", &s.s3.endpoint(), "media", "elsewhere/${name}.mp4", &creds),
        local.display()
    );
    let dp = DataPlane::start(s.dir.path(), "dp", &config(&sources, "", s.dir.path())).await?;
    let r = get(&dp.url("/videos/sample.mp4?width=320")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    for source in ["nobucket", "nokey"] {
        let n = dp
            .metric(&format!(
                r#"vr_origin_fetches_total{{origin="videos",source="{source}",outcome="not_found"}}"#
            ))
            .await;
        assert!(n >= 1.0, "{source}: {n}");
    }
    // Nothing anywhere: a plain 404.
    let r = get(&dp.url("/videos/absent.mp4?width=320")).await;
    assert_eq!(r.status(), 404);
    Ok(())
}

#[tokio::test]
#[ignore = "external: s3s-fs, ffmpeg"]
async fn a_stopped_s3_server_opens_the_breaker_and_cached_variants_keep_serving() -> Result<()> {
    let mut s = setup(2).await;
    let creds = credentials(s.dir.path(), "good", SECRET_KEY);
    let cfg = config(
        &s3_source(
            "bucket",
            &s.s3.endpoint(),
            "media",
            "raw/${name}.mp4",
            &creds,
        ),
        &shared_cache(&s.s3.endpoint(), &creds),
        s.dir.path(),
    );
    let dp = DataPlane::start(s.dir.path(), "dp", &cfg).await?;
    let r = get(&dp.url("/videos/sample.mp4?width=320")).await;
    assert_eq!(r.status(), 200);
    let first = r.bytes().await?;

    s.s3.stop();
    // Another variant of the same object: a cache miss, so the (dead) source is read.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            get(&dp.url("/videos/sample.mp4?width=200")),
        )
        .await
        .expect("answers, does not hang");
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 502 || *s == 503 || *s == 504),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    assert_eq!(
        dp.metric(r#"vr_breaker_state{origin="videos",source="bucket"}"#)
            .await,
        2.0
    );
    // The variant made before the outage is still served (memory layer), while the shared
    // bucket is down too; its failures are counted, not fatal.
    let r = get(&dp.url("/videos/sample.mp4?width=320")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache-status"), "HIT");
    assert_eq!(r.bytes().await?, first);
    assert!(dp.metric("vr_shared_cache_errors_total").await >= 1.0);
    assert_eq!(dp.metric("vr_shared_cache_up").await, 0.0);
    Ok(())
}

#[tokio::test]
#[ignore = "external: s3s-fs, ffmpeg"]
async fn two_processes_share_variants_and_a_purge_by_tag_reaches_both() -> Result<()> {
    let s = setup(2).await;
    let creds = credentials(s.dir.path(), "good", SECRET_KEY);
    let cfg = config(
        &s3_source(
            "bucket",
            &s.s3.endpoint(),
            "media",
            "raw/${name}.mp4",
            &creds,
        ),
        &shared_cache(&s.s3.endpoint(), &creds),
        s.dir.path(),
    );
    let one = DataPlane::start(s.dir.path(), "dp1", &cfg).await?;
    let two = DataPlane::start(s.dir.path(), "dp2", &cfg).await?;
    let url = "/videos/sample.mp4?width=320";

    let r = get(&one.url(url)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache-status"), "MISS");
    let tags = header(&r, "cache-tag");
    let made = r.bytes().await?;
    let s3 = &s.s3;
    wait_for(
        "the variant's metadata in the bucket",
        Duration::from_secs(10),
        || async { (!s3.keys("variants", "video-resizer/m/").is_empty()).then_some(()) },
    )
    .await?;

    let r = get(&two.url(url)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await?, made);
    assert_eq!(
        two.metric(r#"vr_cache_lookups_total{layer="s3",result="hit"}"#)
            .await,
        1.0
    );
    assert_eq!(
        two.metric(r#"vr_processes_spawned_total{program="ffmpeg"}"#)
            .await,
        0.0
    );
    assert_eq!(
        two.metric(r#"vr_processes_spawned_total{program="ffprobe"}"#)
            .await,
        0.0
    );
    // The hit filled the second process's memory layer.
    let r = get(&two.url(url)).await;
    assert_eq!(header(&r, "x-cache-status"), "HIT");
    assert_eq!(
        two.metric(r#"vr_cache_lookups_total{layer="memory",result="hit"}"#)
            .await,
        1.0
    );

    // Purge by tag through the second process's admin API.
    let tag = tags
        .split([',', ' '])
        .find(|t| t.contains("format"))
        .unwrap_or_default()
        .to_string();
    assert!(!tag.is_empty(), "no format tag in {tags:?}");
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/admin/purge?tag={tag}",
            two.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    assert!(s3.keys("variants", "video-resizer/m/").is_empty());
    assert!(s3.keys("variants", "video-resizer/v/").is_empty());
    assert!(s3.keys("variants", "video-resizer/t/").is_empty());
    // The first process drops it from its own memory layer (it follows the bucket's purges).
    let objects = |dp: &DataPlane| {
        let admin = dp.admin;
        async move {
            let v: serde_json::Value = reqwest::Client::new()
                .get(format!("http://127.0.0.1:{admin}/admin/cache/stats"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())?;
            v["layers"][0]["objects"].as_u64()
        }
    };
    wait_for(
        "the purge to reach the first process",
        Duration::from_secs(10),
        || async { (objects(&one).await == Some(0)).then_some(()) },
    )
    .await?;
    assert_eq!(objects(&two).await, Some(0));
    let r = get(&one.url(url)).await;
    assert_eq!(header(&r, "x-cache-status"), "MISS");
    Ok(())
}

#[tokio::test]
#[ignore = "external: s3s-fs, ffmpeg"]
async fn originals_can_be_answered_with_a_redirect_to_a_working_presigned_url() -> Result<()> {
    let s = setup(2).await;
    let creds = credentials(s.dir.path(), "good", SECRET_KEY);
    let source = s3_source("bucket", &s.s3.endpoint(), "media", "raw/${name}.mp4", &creds)
        + "        presign:\n          redirectOriginals: true\n          lifetimeSeconds: 600\n          safetyMarginSeconds: 60\n";
    let dp = DataPlane::start(s.dir.path(), "dp", &config(&source, "", s.dir.path())).await?;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = no_redirects
        .get(dp.url("/videos/sample.mp4"))
        .send()
        .await?;
    assert_eq!(r.status(), 302);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let location = header(&r, "location");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(!location.contains(SECRET_KEY));
    // The real server accepts the signature and serves the original's bytes.
    let original = no_redirects.get(&location).send().await?;
    assert_eq!(original.status(), 200);
    assert_eq!(original.bytes().await?, std::fs::read(&s.media)?);
    // A tampered signature is refused by the server: it really checks SigV4.
    let at = location.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &location[at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    let tampered = format!("{}{flipped}{}", &location[..at], &location[at + 1..]);
    assert_eq!(no_redirects.get(&tampered).send().await?.status(), 403);
    Ok(())
}
