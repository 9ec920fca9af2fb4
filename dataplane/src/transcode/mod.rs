//! ffprobe/ffmpeg as locked-down child processes: probe a local source within limits, plan
//! the arguments from a [`Variant`](crate::request::variant::Variant), run with a process-group kill on
//! deadline or drop, and stream stdout.
//!
//! The layer sits after the origin (which hands it a local file, or for S3 sources a presigned
//! URL built from config, never a URL a client chose) and before the cache store, which consumes [`Job::next_chunk`] while the client
//! receives the same bytes.
//!
//! Security model (see `research/dataplane-anchors.md` §3):
//! - argv is a vector built from typed values only (no shell, no user text);
//! - the input is passed as `file:<absolute path>` under `-protocol_whitelist file,pipe` and
//!   `-format_whitelist` of real containers, so playlists and concat lists (which make ffmpeg
//!   fetch further resources — an SSRF) are refused before anything is read from them;
//! - only the first video and first audio stream are mapped, subtitles and data are dropped;
//! - every process runs in its own process group, killed as a whole on deadline or drop.

mod error;
mod plan;
mod probe;
mod process;

pub use error::TranscodeError;
pub use plan::{plan, OutputKind, OutputLimits, Plan};
pub use probe::{MediaInfo, ProbeLimits, AUDIO_CODECS, VIDEO_CODECS};
pub use process::Job;

use crate::metrics::{Metrics, ProcessLabels};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Containers ffmpeg/ffprobe may open. Names are demuxer names: `mov` covers mp4/m4a/3gp,
/// `matroska` covers webm. Everything else (hls, concat, image2, tty, …) is refused.
pub const FORMAT_WHITELIST: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm";
/// Protocols ffmpeg/ffprobe may use: the local input file and the output pipe.
pub const PROTOCOL_WHITELIST: &str = "file,pipe";
/// Protocols allowed when the input is a presigned URL of an S3 source (the URL is built from
/// config, never from the request): HTTP(S) and the transports under it, plus the output pipe.
/// `file` is not among them, so a URL input can never reach a local file.
pub const URL_PROTOCOL_WHITELIST: &str = "http,https,tcp,tls,pipe";

/// What ffmpeg reads: a local file the origin wrote or owns, or a presigned HTTP(S) URL of an
/// S3 source (ffmpeg then reads only the byte ranges it needs).
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    File(&'a Path),
    Url(&'a str),
}

impl Input<'_> {
    /// The `-i` argument and the protocol whitelist it needs.
    fn resolve(&self) -> Result<(String, &'static str), TranscodeError> {
        match self {
            Input::File(p) => Ok((input_url(p)?, PROTOCOL_WHITELIST)),
            Input::Url(u) => {
                let ok = (u.starts_with("http://") || u.starts_with("https://"))
                    && !u.contains(['\n', '\r', '\0', ' ']);
                if !ok {
                    return Err(TranscodeError::InvalidInputPath(
                        "input URL must be http(s) without control characters".into(),
                    ));
                }
                Ok((u.to_string(), URL_PROTOCOL_WHITELIST))
            }
        }
    }
}

/// Replaces the protocol whitelist of an argument vector built for a `file:` input.
fn with_protocols(mut args: Vec<String>, protocols: &str) -> Vec<String> {
    if let Some(i) = args.iter().position(|a| a == "-protocol_whitelist") {
        if let Some(v) = args.get_mut(i + 1) {
            *v = protocols.to_string();
        }
    }
    args
}
/// Decoders ffmpeg may open (implementation names, defence in depth behind the probe's
/// codec check). Not passed to ffprobe: there a refused decoder fails the whole probe,
/// which would hide the clearer "unsupported codec" answer.
pub const DECODER_WHITELIST: &str = "h264,hevc,vp8,libvpx,vp9,libvpx-vp9,av1,libdav1d,libaom-av1,\
mpeg4,aac,aac_fixed,mp3,mp3float,opus,libopus,vorbis,libvorbis,flac,ac3,ac3_fixed,\
pcm_s16le,pcm_s16be,pcm_s24le";

/// Address-space limit of an ffmpeg child when the caller gives none (tests, benchmarks): the
/// config default, `limits.ffmpegMemoryBytes`.
pub const DEFAULT_FFMPEG_MEMORY: u64 = 2 << 30;

/// Default bytes read to detect the input format (ffmpeg's own default).
pub const DEFAULT_PROBE_SIZE: u64 = 5_000_000;

/// Where the binaries are and how much ffmpeg may read to detect a format.
#[derive(Debug, Clone)]
pub struct TranscoderConfig {
    /// Absolute path of `ffmpeg`.
    pub ffmpeg: PathBuf,
    /// Absolute path of `ffprobe`.
    pub ffprobe: PathBuf,
    /// `-probesize` passed to ffmpeg (ffprobe takes it from [`ProbeLimits`]).
    pub probe_size_bytes: u64,
    /// util-linux `prlimit`, through which every child is started with its own limits
    /// ([`ChildLimits`]); `None` runs children without them (logged at start-up).
    pub prlimit: Option<PathBuf>,
    /// util-linux `setpriv`, through which every child gets a parent-death signal
    /// (`--pdeathsig KILL`): if the data plane dies (even by SIGKILL), its ffmpeg children die
    /// with it instead of running on. `None`: they are only killed by the supervisor.
    pub setpriv: Option<PathBuf>,
}

/// The limits every ffmpeg/ffprobe child gets of its own (set by `prlimit` before it execs the
/// program, so they hold from its first allocation; no `unsafe` `pre_exec` needed): an
/// address-space limit, a CPU-time limit (all threads together; SIGXCPU at it, SIGKILL 5 s
/// later), no core files, and a bounded number of open files. A child that reaches one fails
/// alone: [`TranscodeError::ResourceLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildLimits {
    /// `RLIMIT_AS` in bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_CPU` (soft) in seconds.
    pub cpu_seconds: u64,
}

impl ChildLimits {
    /// Open files a child may hold (input, output pipe, stderr, a few sockets for URL inputs).
    pub const NOFILE: u32 = 256;

    /// CPU time for a run bounded by `deadline` with `threads` busy threads: what those
    /// threads could use in that wall time, plus 5 s.
    pub fn for_run(memory_bytes: u64, deadline: Duration, threads: u32) -> ChildLimits {
        ChildLimits {
            memory_bytes,
            cpu_seconds: deadline
                .as_secs()
                .saturating_mul(u64::from(threads.max(1)))
                .saturating_add(5),
        }
    }

    /// The `prlimit` arguments before `--`.
    fn args(&self) -> Vec<String> {
        vec![
            format!("--as={}", self.memory_bytes),
            format!(
                "--cpu={}:{}",
                self.cpu_seconds,
                self.cpu_seconds.saturating_add(5)
            ),
            "--core=0".into(),
            format!("--nofile={}", Self::NOFILE),
        ]
    }
}

/// util-linux `prlimit` where the images and Debian put it, else on `PATH`.
pub fn find_prlimit() -> Option<PathBuf> {
    find_util("prlimit")
}

/// util-linux `setpriv`, like [`find_prlimit`].
pub fn find_setpriv() -> Option<PathBuf> {
    find_util("setpriv")
}

fn find_util(name: &str) -> Option<PathBuf> {
    let fixed = ["/usr/bin", "/bin"].map(|d| Path::new(d).join(name));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    fixed.into_iter().chain(on_path).find(|p| p.is_file())
}

impl TranscoderConfig {
    /// Binaries at the given paths, with the default probe size.
    pub fn new(ffmpeg: impl Into<PathBuf>, ffprobe: impl Into<PathBuf>) -> Self {
        TranscoderConfig {
            ffmpeg: ffmpeg.into(),
            ffprobe: ffprobe.into(),
            probe_size_bytes: DEFAULT_PROBE_SIZE,
            prlimit: find_prlimit(),
            setpriv: find_setpriv(),
        }
    }
}

/// Runs ffprobe and ffmpeg. Cheap to share (`Arc`); holds no per-job state.
pub struct Transcoder {
    cfg: TranscoderConfig,
    metrics: Arc<Metrics>,
}

impl Transcoder {
    pub fn new(cfg: TranscoderConfig, metrics: Arc<Metrics>) -> Self {
        Transcoder { cfg, metrics }
    }

    /// Probes `input` with ffprobe under the whitelists and refuses it if it breaks `limits`.
    ///
    /// Guarantees: ffprobe reads at most `limits.probe_size_bytes` to detect the format, is
    /// killed (with its process group) after `limits.timeout`, and never follows a reference
    /// to another resource. Errors: [`TranscodeError::UnsupportedContainer`] (playlists,
    /// unknown formats), [`TranscodeError::Unreadable`] (truncated or garbage files), one
    /// limit error per limit, [`TranscodeError::UnsupportedCodec`], and
    /// [`TranscodeError::ProbeTimeout`].
    pub async fn probe(
        &self,
        input: &Path,
        limits: &ProbeLimits,
    ) -> Result<MediaInfo, TranscodeError> {
        self.probe_input(Input::File(input), limits).await
    }

    /// [`Transcoder::probe`] for a file or a presigned URL, with the same guarantees; a URL
    /// input may use only [`URL_PROTOCOL_WHITELIST`].
    pub async fn probe_input(
        &self,
        input: Input<'_>,
        limits: &ProbeLimits,
    ) -> Result<MediaInfo, TranscodeError> {
        let (url, protocols) = input.resolve()?;
        let args = with_protocols(probe::probe_args(&url, limits.probe_size_bytes), protocols);
        self.count("ffprobe");
        let child = ChildLimits::for_run(limits.memory_bytes, limits.timeout, 1);
        let mut job = self.start("ffprobe", &self.cfg.ffprobe, args, limits.timeout, &child)?;
        let mut out = Vec::new();
        loop {
            match job.next_chunk().await {
                None => break,
                Some(Ok(chunk)) => {
                    if out.len() + chunk.len() > probe::MAX_PROBE_OUTPUT {
                        job.kill().await;
                        return Err(TranscodeError::ProbeOutput(
                            "ffprobe output is too large".into(),
                        ));
                    }
                    out.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(probe::classify_failure(e)),
            }
        }
        let info = probe::parse(&out)?;
        probe::check(&info, limits)?;
        Ok(info)
    }

    /// Starts ffmpeg on `input` with `plan`; its output streams from [`Job::next_chunk`].
    ///
    /// Guarantees: the process is in its own process group; when `deadline` passes, or the
    /// [`Job`] is dropped or killed, the whole group gets SIGKILL and the process is reaped.
    /// `input` must be a local file (made absolute here and passed as `file:`).
    pub fn spawn(
        &self,
        input: &Path,
        plan: &Plan,
        deadline: Duration,
    ) -> Result<Job, TranscodeError> {
        let child = ChildLimits::for_run(DEFAULT_FFMPEG_MEMORY, deadline, 16);
        self.spawn_input(Input::File(input), plan, deadline, &child)
    }

    /// [`Transcoder::spawn`] for a file or a presigned URL, with the same guarantees.
    pub fn spawn_input(
        &self,
        input: Input<'_>,
        plan: &Plan,
        deadline: Duration,
        child: &ChildLimits,
    ) -> Result<Job, TranscodeError> {
        let (url, protocols) = input.resolve()?;
        let args = with_protocols(plan.ffmpeg_args(&url, self.cfg.probe_size_bytes), protocols);
        self.count("ffmpeg");
        self.start("ffmpeg", &self.cfg.ffmpeg, args, deadline, child)
    }

    /// Whether children get their own limits (`prlimit` was found).
    pub fn limits_children(&self) -> bool {
        self.cfg.prlimit.is_some()
    }

    /// Starts `program` with `args`, through `prlimit` with `child`'s limits when available.
    fn start(
        &self,
        program: &'static str,
        path: &Path,
        args: Vec<String>,
        deadline: Duration,
        child: &ChildLimits,
    ) -> Result<Job, TranscodeError> {
        let text = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| TranscodeError::InvalidInputPath("program path is not UTF-8".into()))
        };
        // Each wrapper sets its part on itself and execs the next: same pid, same process
        // group, and the settings hold from ffmpeg's first instruction.
        let mut argv: Vec<String> = Vec::new();
        if let Some(setpriv) = &self.cfg.setpriv {
            argv.extend([
                text(setpriv)?,
                "--pdeathsig".into(),
                "KILL".into(),
                "--".into(),
            ]);
        }
        if let Some(prlimit) = &self.cfg.prlimit {
            argv.push(text(prlimit)?);
            argv.extend(child.args());
            argv.push("--".into());
        }
        if argv.is_empty() {
            return Job::spawn(program, path, &args, deadline);
        }
        // The wrappers exec the program; a missing one is a spawn error here, as without them.
        if path.is_absolute() && !path.is_file() {
            return Err(TranscodeError::Spawn {
                program,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        argv.push(text(path)?);
        argv.extend(args);
        let first = PathBuf::from(argv.remove(0));
        Job::spawn(program, &first, &argv, deadline)
    }

    /// The exact argument vector [`Transcoder::spawn`] runs for `input` and `plan` (for
    /// benchmarks that compare against ffmpeg run directly, and for debugging).
    pub fn ffmpeg_args(&self, input: &Path, plan: &Plan) -> Result<Vec<String>, TranscodeError> {
        Ok(plan.ffmpeg_args(&input_url(input)?, self.cfg.probe_size_bytes))
    }

    fn count(&self, program: &'static str) {
        self.metrics
            .processes_spawned
            .get_or_create(&ProcessLabels { program })
            .inc();
    }
}

/// `file:` + the absolute path, so a name starting with `-` is never an option and a name
/// like `x:y` is never a protocol.
fn input_url(input: &Path) -> Result<String, TranscodeError> {
    let abs = if input.is_absolute() {
        input.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(TranscodeError::Io)?
            .join(input)
    };
    let s = abs
        .to_str()
        .ok_or_else(|| TranscodeError::InvalidInputPath("path is not valid UTF-8".into()))?;
    if s.contains(['\n', '\r', '\0']) {
        return Err(TranscodeError::InvalidInputPath(
            "path contains a control character".into(),
        ));
    }
    Ok(format!("file:{s}"))
}

#[cfg(test)]
mod tests;
