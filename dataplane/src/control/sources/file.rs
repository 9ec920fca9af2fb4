//! Config sources: the file given with `--config` (YAML or JSON), read once at start-up and
//! then watched; a new, valid document is handed to the caller to compile and swap in, a bad
//! edit is refused with a logged reason and the last good config keeps serving.
//!
//! Watching polls the file's *content* digest rather than relying on inotify, because a
//! Kubernetes ConfigMap volume updates by swapping a symlink, which inotify on the file misses.
//! `SIGHUP` forces an immediate re-read.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vr_crds::{ConfigError, DataPlaneConfig};

// The document is the runtime's input, so it is declared there (sources depend on the
// runtime, never the other way round).
pub use crate::control::runtime::Document;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Config { path: String, source: ConfigError },
}

/// Reads, parses and validates the config file at `path`.
pub fn read(path: &Path) -> Result<Document, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes, path)
}

/// Parses and validates config bytes that came from `path`.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Document, LoadError> {
    let digest = hex::encode(Sha256::digest(bytes));
    let text = String::from_utf8_lossy(bytes);
    let config = DataPlaneConfig::from_yaml(&text).map_err(|source| LoadError::Config {
        path: path.display().to_string(),
        source,
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Document {
        config,
        digest,
        base,
    })
}

/// Watches `path` and calls `apply` with every new valid document (by content digest).
///
/// `apply` compiles and swaps the config; its `Err` (e.g. a token file that cannot be read) is
/// logged like a parse error and the same content is not retried until it changes again.
/// Runs until the task is dropped.
pub async fn watch<F>(path: PathBuf, interval: Duration, mut last_digest: String, mut apply: F)
where
    F: FnMut(Document) -> Result<(), String> + Send,
{
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error_digest = String::new();
    loop {
        match hup.as_mut() {
            Some(h) => {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = h.recv() => tracing::info!(path = %path.display(), "SIGHUP: re-reading config"),
                }
            }
            None => {
                tick.tick().await;
            }
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                let marker = format!("io:{e}");
                if marker != last_error_digest {
                    tracing::error!(path = %path.display(), error = %e, "cannot read config; keeping the last good one");
                    last_error_digest = marker;
                }
                continue;
            }
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest == last_digest || digest == last_error_digest {
            continue;
        }
        let outcome = parse(&bytes, &path)
            .map_err(|e| e.to_string())
            .and_then(&mut apply);
        match outcome {
            Ok(()) => {
                last_digest = digest;
                last_error_digest.clear();
            }
            Err(reason) => {
                tracing::error!(path = %path.display(), %reason, "config change refused; the last good config keeps serving");
                last_error_digest = digest;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const GOOD: &str = "origins:\n  - name: v\n    matcher: '^/(?P<f>.+)$'\n    sources:\n      - kind: local\n        name: d\n        root: .\n        path: '${f}'\n";

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, GOOD).expect("write");
        let d = read(&p).expect("valid");
        assert_eq!(d.base, dir.path());
        assert_eq!(d.digest.len(), 64);
    }

    #[test]
    fn a_bad_file_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, GOOD.replace("name: v", "name: V")).expect("write");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("c.yaml") && e.contains("origins[0].name"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn watch_applies_good_edits_and_refuses_bad_ones() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, GOOD).expect("write");
        let first = read(&p).expect("valid");
        let applied = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = applied.clone();
        let task = tokio::spawn(watch(
            p.clone(),
            Duration::from_millis(100),
            first.digest,
            move |d| {
                sink.lock().expect("lock").push(d.config.revision.clone());
                Ok(())
            },
        ));
        std::fs::write(&p, format!("revision: r2\n{GOOD}")).expect("write");
        wait_for(|| applied.lock().expect("lock").len() == 1).await;
        std::fs::write(&p, "origins: [ broken").expect("write");
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::fs::write(&p, format!("revision: r3\n{GOOD}")).expect("write");
        wait_for(|| applied.lock().expect("lock").len() == 2).await;
        assert_eq!(*applied.lock().expect("lock"), ["r2", "r3"]);
        task.abort();
    }

    async fn wait_for(cond: impl Fn() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("condition not met");
    }
}
