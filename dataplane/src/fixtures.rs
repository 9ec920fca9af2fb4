//! Small synthetic media files for tests (lavfi `testsrc2` + `sine`), good and hostile.
//!
//! Used by the transcode tests and the e2e suites; generating needs the `ffmpeg` binary, so
//! every test that calls [`generate`] is an external test.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

/// A media file to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fixture {
    /// 1920×1080 30 fps H.264 (2 s GOP) + 48 kHz AAC, fast-start MP4.
    H264Aac1080p { secs: u32 },
    /// 640×360 30 fps H.264 (2 s GOP) + 48 kHz AAC, fast-start MP4.
    H264Aac360p { secs: u32 },
    /// 640×360 H.264 without any audio stream.
    H264NoAudio360p { secs: u32 },
    /// 640×360 VP9 + Opus WebM.
    Vp9Webm { secs: u32 },
    /// AAC only, in an M4A.
    AacOnly { secs: u32 },
    /// 2 s 320×240 H.264 MP4 with its index (`moov`) after the media data.
    MoovAtEnd,
    /// [`Fixture::MoovAtEnd`] cut in half: the index never arrives, as with an interrupted upload.
    Truncated,
    /// A 2 s 320×240 fast-start MP4 cut at 60 %: the index is whole (probing succeeds) but
    /// the media data stops early.
    TruncatedMedia,
    /// A tiny MOV whose sample description claims 30000×30000 (an H.266 `vvc1` entry, which
    /// this ffmpeg cannot decode, so nothing overrides the container's size). ffmpeg refuses
    /// pictures over ~16k×16k for every codec it decodes, so a header claim is the honest way
    /// to present this size to the probe.
    HugeDimensions,
    /// An HLS playlist (named `.m3u8`) whose only segment is `segment_url`.
    HlsPlaylist { segment_url: String },
    /// Random bytes in a `.mp4` file.
    Garbage,
}

impl Fixture {
    fn file_name(&self) -> String {
        match self {
            Fixture::H264Aac1080p { secs } => format!("h264_aac_1080p_{secs}s.mp4"),
            Fixture::H264Aac360p { secs } => format!("h264_aac_360p_{secs}s.mp4"),
            Fixture::H264NoAudio360p { secs } => format!("h264_noaudio_360p_{secs}s.mp4"),
            Fixture::Vp9Webm { secs } => format!("vp9_opus_360p_{secs}s.webm"),
            Fixture::AacOnly { secs } => format!("aac_{secs}s.m4a"),
            Fixture::MoovAtEnd => "moov_at_end.mp4".into(),
            Fixture::Truncated => "truncated.mp4".into(),
            Fixture::TruncatedMedia => "truncated_media.mp4".into(),
            Fixture::HugeDimensions => "huge_dimensions.mov".into(),
            Fixture::HlsPlaylist { .. } => "playlist.m3u8".into(),
            Fixture::Garbage => "garbage.mp4".into(),
        }
    }
}

/// Writes `f` into `dir` and returns its path. Each fixture takes well under a second to make
/// except the 1080p one (about realtime/4 with `ultrafast`).
pub async fn generate(ffmpeg: &Path, dir: &Path, f: Fixture) -> io::Result<PathBuf> {
    let out = dir.join(f.file_name());
    match &f {
        Fixture::H264Aac1080p { secs } => h264(ffmpeg, &out, "1920x1080", *secs, true).await?,
        Fixture::H264Aac360p { secs } => h264(ffmpeg, &out, "640x360", *secs, true).await?,
        Fixture::H264NoAudio360p { secs } => h264(ffmpeg, &out, "640x360", *secs, false).await?,
        Fixture::Vp9Webm { secs } => {
            let t = secs;
            run(
                ffmpeg,
                &words(&format!("-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t {t} -map 0:v -map 1:a -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 60 -b:v 500k -pix_fmt yuv420p -c:a libopus -b:a 48k -f webm")),
                &out,
            )
            .await?
        }
        Fixture::AacOnly { secs } => {
            let t = secs;
            run(
                ffmpeg,
                &words(&format!("-f lavfi -i sine=frequency=440:sample_rate=48000 -t {t} -c:a aac -b:a 64k -f ipod")),
                &out,
            )
            .await?
        }
        Fixture::MoovAtEnd => moov_at_end(ffmpeg, &out).await?,
        Fixture::Truncated => {
            let full = dir.join("truncated_source.mp4");
            moov_at_end(ffmpeg, &full).await?;
            let bytes = tokio::fs::read(&full).await?;
            tokio::fs::write(&out, &bytes[..bytes.len() / 2]).await?;
            tokio::fs::remove_file(&full).await?;
        }
        Fixture::TruncatedMedia => {
            let full = dir.join("truncated_media_source.mp4");
            h264(ffmpeg, &full, "320x240", 2, true).await?;
            let bytes = tokio::fs::read(&full).await?;
            tokio::fs::write(&out, &bytes[..bytes.len() * 6 / 10]).await?;
            tokio::fs::remove_file(&full).await?;
        }
        Fixture::HugeDimensions => {
            let raw = dir.join("huge_source.mov");
            run(
                ffmpeg,
                &words("-f lavfi -i testsrc2=size=32x32:rate=5 -t 1 -c:v rawvideo -pix_fmt rgb24 -f mov"),
                &raw,
            )
            .await?;
            let mut bytes = tokio::fs::read(&raw).await?;
            tokio::fs::remove_file(&raw).await?;
            claim_dimensions(&mut bytes, 30_000, 30_000)?;
            tokio::fs::write(&out, &bytes).await?;
        }
        Fixture::HlsPlaylist { segment_url } => {
            if segment_url.contains(['\n', '\r']) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "segment_url must be one line",
                ));
            }
            let text = format!(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
                 #EXTINF:2.0,\n{segment_url}\n#EXT-X-ENDLIST\n"
            );
            tokio::fs::write(&out, text).await?;
        }
        Fixture::Garbage => {
            let bytes: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
            tokio::fs::write(&out, bytes).await?;
        }
    }
    Ok(out)
}

async fn h264(ffmpeg: &Path, out: &Path, size: &str, secs: u32, audio: bool) -> io::Result<()> {
    let (audio_in, audio_out) = if audio {
        (
            "-f lavfi -i sine=frequency=440:sample_rate=48000",
            "-map 1:a -c:a aac -b:a 64k",
        )
    } else {
        ("", "")
    };
    let spec = format!(
        "-f lavfi -i testsrc2=size={size}:rate=30 {audio_in} -t {secs} -map 0:v {audio_out} \
         -c:v libx264 -preset ultrafast -g 60 -pix_fmt yuv420p -movflags +faststart -f mp4"
    );
    run(ffmpeg, &words(&spec), out).await
}

async fn moov_at_end(ffmpeg: &Path, out: &Path) -> io::Result<()> {
    run(
                ffmpeg,
                &words("-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 2 -map 0:v -map 1:a -c:v libx264 -preset ultrafast -g 60 -pix_fmt yuv420p -c:a aac -b:a 64k -f mp4"),
        out,
    )
    .await
}

/// Rewrites the first visual sample entry of a QuickTime file to fourcc `vvc1` claiming
/// `w`×`h` (the entry's 16-bit width and height fields).
fn claim_dimensions(bytes: &mut [u8], w: u16, h: u16) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "no stsd box found");
    let stsd = bytes
        .windows(4)
        .position(|b| b == b"stsd")
        .ok_or_else(bad)?;
    // stsd: type(4) version+flags(4) entry_count(4), then the entry: size(4) format(4)
    // reserved(6) data_reference_index(2) pre_defined(2) reserved(2) pre_defined(12) width(2) height(2).
    let format = stsd + 4 + 4 + 4 + 4;
    let width = format + 4 + 6 + 2 + 2 + 2 + 12;
    if bytes.len() < width + 4 {
        return Err(bad());
    }
    bytes[format..format + 4].copy_from_slice(b"vvc1");
    bytes[width..width + 2].copy_from_slice(&w.to_be_bytes());
    bytes[width + 2..width + 4].copy_from_slice(&h.to_be_bytes());
    Ok(())
}

/// Splits a fixed argument list (fixtures take no outside text) into words.
fn words(spec: &str) -> Vec<String> {
    spec.split_whitespace().map(str::to_string).collect()
}

async fn run(ffmpeg: &Path, args: &[String], out: &Path) -> io::Result<()> {
    let output = Command::new(ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ffmpeg failed to make {}: {}",
            out.display(),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}
