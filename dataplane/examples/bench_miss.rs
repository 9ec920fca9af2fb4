//! Benchmark 2: a cache miss through the data plane vs the same ffmpeg command run directly.
//!
//! Serves a 10 s 1080p source on a loopback port in this process, then alternates N runs of
//! (a) `GET …?width=640&height=360&nocache=1` over HTTP (probe + ffmpeg + spool + stream; the
//! bypass parameter forces a fresh transform each time) and (b) ffmpeg run directly with the
//! exact argument vector the data plane uses, reading its stdout to the end. Prints medians,
//! the wall-time ratio, and time to first byte as a share of the whole transform.
//!
//! Usage: cargo run --release -p vr-dataplane --example bench_miss -- [runs] [media-dir]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use vr_dataplane::control::app::{App, Settings};
use vr_dataplane::control::{runtime::Runtime, sources::file as config};
use vr_dataplane::edge::{server, service};
use vr_dataplane::request::variant::Variant;
use vr_dataplane::transcode::{self, ProbeLimits};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let media = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "examples/media".into()),
    );
    let media = std::fs::canonicalize(&media)?;
    let source = media.join("sample.mp4");
    anyhow::ensure!(
        source.is_file(),
        "{} missing: run scripts/demo.sh once or gen_media",
        source.display()
    );

    let work = tempfile::tempdir()?;
    let cfg_path = work.path().join("c.yaml");
    std::fs::write(
        &cfg_path,
        format!(
            "origins:\n  - name: videos\n    matcher: '^/videos/(?P<n>[a-z0-9_-]+)\\.mp4$'\n    sources:\n      - {{kind: local, name: media, root: {}, path: '${{n}}.mp4'}}\ncache:\n  memory: {{maxBytes: 0, maxObjectBytes: 0}}\n",
            media.display()
        ),
    )?;
    let doc = config::read(&cfg_path)?;
    let settings = Settings {
        ffmpeg: "/usr/bin/ffmpeg".into(),
        ffprobe: "/usr/bin/ffprobe".into(),
        work_dir: work.path().join("spool"),
        audit_log: None,
    };
    let app = App::new(settings, &doc.config, &doc.base).await?;
    let threads = doc.config.limits.ffmpeg_threads;
    let rt = Runtime::compile(doc, app.origin_state.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    app.install(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server::serve(
        listener,
        Arc::new(service::DataPlane(app.clone())),
        std::future::pending(),
    ));

    // The exact command the data plane runs for this variant.
    let mut variant = Variant::new(vr_crds::media::Mode::Video);
    variant.width = Some(640);
    variant.height = Some(360);
    let variant = variant.normalized();
    let limits = ProbeLimits {
        max_pixels: u64::MAX,
        max_duration_ms: u64::MAX,
        max_streams: 64,
        probe_size_bytes: 5 << 20,
        timeout: Duration::from_secs(30),
        memory_bytes: 512 << 20,
    };
    let info = app.transcoder.probe(&source, &limits).await?;
    let plan = transcode::plan(&variant, &info, threads)?;
    let ffargs = app.transcoder.ffmpeg_args(&source, &plan)?;
    eprintln!("ffmpeg {}", ffargs.join(" "));

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/videos/sample.mp4?width=640&height=360&nocache=1");
    let (mut dp_total, mut dp_ttfb, mut ff_total, mut ff_ttfb) = (vec![], vec![], vec![], vec![]);
    let mut sizes = (0usize, 0usize);
    for i in 0..runs + 1 {
        // (a) through the data plane
        let t0 = Instant::now();
        let mut resp = client.get(&url).send().await?;
        anyhow::ensure!(
            resp.status() == 200,
            "data plane answered {}",
            resp.status()
        );
        let mut first = None;
        let mut n = 0;
        while let Some(c) = resp.chunk().await? {
            first.get_or_insert_with(|| t0.elapsed());
            n += c.len();
        }
        let total = t0.elapsed();
        // (b) ffmpeg directly
        let t1 = Instant::now();
        let mut child = tokio::process::Command::new("/usr/bin/ffmpeg")
            .args(&ffargs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut ffirst = None;
        let mut m = 0;
        loop {
            let k = out.read(&mut buf).await?;
            if k == 0 {
                break;
            }
            ffirst.get_or_insert_with(|| t1.elapsed());
            m += k;
        }
        child.wait().await?;
        let ftotal = t1.elapsed();
        if i == 0 {
            continue; // warm-up (page cache, binary load)
        }
        sizes = (n, m);
        dp_total.push(total.as_secs_f64());
        dp_ttfb.push(first.unwrap_or(total).as_secs_f64());
        ff_total.push(ftotal.as_secs_f64());
        ff_ttfb.push(ffirst.unwrap_or(ftotal).as_secs_f64());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (a, b, c, d) = (
        med(&mut dp_total),
        med(&mut ff_total),
        med(&mut dp_ttfb),
        med(&mut ff_ttfb),
    );
    println!("runs={runs} (interleaved, after one warm-up each); output bytes: data plane {} / ffmpeg {}", sizes.0, sizes.1);
    println!("| path | wall median s | first byte median s | first byte / wall |");
    println!("|---|---|---|---|");
    println!(
        "| data plane miss (HTTP, probe + ffmpeg + spool + stream) | {a:.3} | {c:.3} | {:.1}% |",
        100.0 * c / a
    );
    println!(
        "| ffmpeg alone (same argv) | {b:.3} | {d:.3} | {:.1}% |",
        100.0 * d / b
    );
    println!("wall-time ratio data plane / ffmpeg = {:.3}", a / b);
    Ok(())
}
