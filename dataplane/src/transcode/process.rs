//! A child process in its own process group: stdout streamed in chunks, stderr kept bounded
//! for logs, and the whole group killed and reaped on deadline, on `kill`, or on drop.

use super::TranscodeError;
use bytes::{Bytes, BytesMut};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes read from stdout per chunk at most.
pub const CHUNK: usize = 64 * 1024;
/// Bytes of stderr kept (the tail) for logs.
pub const STDERR_TAIL: usize = 4 * 1024;

/// How the supervisor saw the process end.
#[derive(Debug)]
enum Exit {
    Status(ExitStatus),
    TimedOut,
    Killed,
    WaitFailed(std::io::Error),
}

/// A running ffmpeg/ffprobe.
///
/// Guarantees: a supervisor task owns the child; it SIGKILLs the whole process group and
/// reaps the child when the deadline passes, when [`Job::kill`] is called, or when the `Job`
/// is dropped (the dropped kill channel is the signal), so no process or zombie outlives it.
/// The group is only signalled before the child is reaped, so a recycled pid is never hit.
pub struct Job {
    program: &'static str,
    pid: u32,
    stdout: Option<ChildStdout>,
    produced: u64,
    /// Dropping this (with the Job) asks the supervisor to kill the group.
    kill: Option<oneshot::Sender<()>>,
    exit: Option<oneshot::Receiver<Exit>>,
    stderr: Option<JoinHandle<String>>,
}

impl Job {
    /// Spawns `program_path args…` in a new process group with a wall-clock `deadline`.
    pub(super) fn spawn(
        program: &'static str,
        program_path: &Path,
        args: &[String],
        deadline: Duration,
    ) -> Result<Job, TranscodeError> {
        let mut cmd = Command::new(program_path);
        cmd.args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Last resort if the runtime shuts down under the supervisor.
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|source| TranscodeError::Spawn { program, source })?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(|e| tokio::spawn(tail(e)));
        let (kill_tx, mut kill_rx) = oneshot::channel::<()>();
        let (exit_tx, exit_rx) = oneshot::channel::<Exit>();
        let until = Instant::now() + deadline;
        tokio::spawn(async move {
            let exit = tokio::select! {
                status = child.wait() => match status {
                    Ok(s) => Exit::Status(s),
                    Err(e) => Exit::WaitFailed(e),
                },
                _ = tokio::time::sleep_until(until) => {
                    kill_group(pid);
                    let _ = child.wait().await;
                    Exit::TimedOut
                }
                _ = &mut kill_rx => {
                    kill_group(pid);
                    let _ = child.wait().await;
                    Exit::Killed
                }
            };
            let _ = exit_tx.send(exit);
        });
        tracing::debug!(program, pid, "spawned");
        Ok(Job {
            program,
            pid,
            stdout,
            produced: 0,
            kill: Some(kill_tx),
            exit: Some(exit_rx),
            stderr,
        })
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Bytes produced so far.
    pub fn bytes_produced(&self) -> u64 {
        self.produced
    }

    /// The next chunk of stdout.
    ///
    /// `None` means finished successfully: stdout ended, the process exited 0 and wrote at
    /// least one byte. Errors: [`TranscodeError::Timeout`], [`TranscodeError::Failed`] (non-zero
    /// exit, with stderr's tail for logs), [`TranscodeError::EmptyOutput`],
    /// [`TranscodeError::Killed`], [`TranscodeError::Io`]. After `None` or an error, every
    /// further call returns `None`.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, TranscodeError>> {
        let stdout = self.stdout.as_mut()?;
        let mut buf = BytesMut::with_capacity(CHUNK);
        match stdout.read_buf(&mut buf).await {
            Ok(0) => {
                self.stdout = None;
                self.finish().await.err().map(Err)
            }
            Ok(n) => {
                self.produced += n as u64;
                Some(Ok(buf.freeze()))
            }
            Err(e) => {
                self.stdout = None;
                self.kill().await;
                Some(Err(TranscodeError::Io(e)))
            }
        }
    }

    /// Kills the process group and waits until the process is reaped. Idempotent.
    pub async fn kill(&mut self) {
        self.stdout = None;
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(rx) = self.exit.take() {
            let _ = rx.await;
        }
        if let Some(h) = self.stderr.take() {
            h.abort();
        }
    }

    /// Waits for the exit (bounded by the deadline: the supervisor kills at it) and turns it
    /// into the job's result.
    async fn finish(&mut self) -> Result<(), TranscodeError> {
        let exit = match self.exit.take() {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        self.kill = None;
        let stderr = match self.stderr.take() {
            Some(h) => h.await.unwrap_or_default(),
            None => String::new(),
        };
        let (program, pid) = (self.program, self.pid);
        match exit {
            Some(Exit::Status(s)) if s.success() => {
                if self.produced == 0 {
                    tracing::warn!(program, pid, stderr = %stderr, "exited 0 without output");
                    Err(TranscodeError::EmptyOutput)
                } else {
                    Ok(())
                }
            }
            Some(Exit::Status(s)) => {
                if let Some(limit) = hit_limit(&s, &stderr) {
                    tracing::warn!(program, pid, limit, stderr = %stderr, "stopped by its resource limit");
                    return Err(TranscodeError::ResourceLimit { limit });
                }
                let status = s
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "signal".into());
                tracing::warn!(program, pid, %status, stderr = %stderr, "exited with an error");
                Err(TranscodeError::Failed { status, stderr })
            }
            Some(Exit::TimedOut) => {
                tracing::warn!(program, pid, "killed at its deadline");
                Err(TranscodeError::Timeout)
            }
            Some(Exit::Killed) => Err(TranscodeError::Killed),
            Some(Exit::WaitFailed(e)) => Err(TranscodeError::Io(e)),
            None => Err(TranscodeError::Io(std::io::Error::other(
                "process supervisor ended without a result",
            ))),
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("program", &self.program)
            .field("pid", &self.pid)
            .field("produced", &self.produced)
            .finish()
    }
}

/// Which of the child's own limits ended it, if any: `RLIMIT_CPU` signals (SIGXCPU at the
/// soft limit, SIGKILL at the hard one; the supervisor's own kills are reported as
/// `TimedOut`/`Killed` before this is asked), or an allocation refused under `RLIMIT_AS`
/// (ffmpeg then exits non-zero saying so on stderr).
pub(super) fn hit_limit(status: &ExitStatus, stderr: &str) -> Option<&'static str> {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) if sig == Signal::SIGXCPU as i32 || sig == Signal::SIGKILL as i32 => {
            return Some("cpu")
        }
        _ => {}
    }
    let oom = ["Cannot allocate memory", "malloc of size", "Out of memory"];
    oom.iter().any(|m| stderr.contains(m)).then_some("memory")
}

fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        return;
    }
    // ESRCH (already gone) is fine.
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
}

/// Drains `r`, keeping only the last [`STDERR_TAIL`] bytes.
async fn tail<R: AsyncRead + Unpin>(mut r: R) -> String {
    let mut keep: VecDeque<u8> = VecDeque::with_capacity(STDERR_TAIL);
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                keep.extend(&buf[..n]);
                let excess = keep.len().saturating_sub(STDERR_TAIL);
                keep.drain(..excess);
            }
        }
    }
    String::from_utf8_lossy(&Vec::from(keep)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn limit_signals_and_allocation_failures_are_told_apart_from_other_failures() {
        // Wait statuses: a signal in the low bits, an exit code in the next byte.
        let sigxcpu = ExitStatus::from_raw(Signal::SIGXCPU as i32);
        let sigkill = ExitStatus::from_raw(Signal::SIGKILL as i32);
        let exit1 = ExitStatus::from_raw(1 << 8);
        assert_eq!(hit_limit(&sigxcpu, ""), Some("cpu"));
        assert_eq!(hit_limit(&sigkill, ""), Some("cpu"));
        assert_eq!(
            hit_limit(&exit1, "x264 [error]: malloc of size 26999616 failed"),
            Some("memory")
        );
        assert_eq!(hit_limit(&exit1, "Cannot allocate memory"), Some("memory"));
        assert_eq!(
            hit_limit(&exit1, "Invalid data found when processing input"),
            None
        );
        assert_eq!(
            hit_limit(&ExitStatus::from_raw(Signal::SIGSEGV as i32), ""),
            None
        );
    }
}
