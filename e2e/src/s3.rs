//! Harness for the `s3` suite: a real S3-compatible server (s3s-fs, which checks SigV4
//! signatures) on a random loopback port, a byte-counting TCP proxy in front of it (to prove
//! that ffmpeg reads only byte ranges), and data-plane processes in file mode.

use crate::{binary, free_port, repo, wait_for, Proc};
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Credentials the server accepts.
pub const ACCESS_KEY: &str = "vr-e2e-access";
pub const SECRET_KEY: &str = "vr-e2e-secret-0123456789";

/// The s3s-fs binary `e2e/s3/install.sh` put under `.cache/`.
pub fn s3s_fs() -> PathBuf {
    repo().join(".cache/s3s/bin/s3s-fs")
}

/// A running s3s-fs whose data lives under `root` (one directory per bucket, one file per
/// object). Stopped (by pid) on drop or with [`S3Server::stop`].
pub struct S3Server {
    pub root: PathBuf,
    pub port: u16,
    proc: Option<Proc>,
    log: PathBuf,
}

impl S3Server {
    /// Starts the server and waits until it answers.
    pub async fn start(dir: &Path) -> Result<S3Server> {
        let root = dir.join("s3-data");
        std::fs::create_dir_all(&root)?;
        let mut s = S3Server {
            root,
            port: free_port()?,
            proc: None,
            log: dir.join("s3s-fs.log"),
        };
        s.spawn().await?;
        Ok(s)
    }

    async fn spawn(&mut self) -> Result<()> {
        let args = vec![
            "--host".to_string(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string(),
            "--access-key".into(),
            ACCESS_KEY.into(),
            "--secret-key".into(),
            SECRET_KEY.into(),
            self.root.display().to_string(),
        ];
        let p = Proc::spawn(
            "s3s-fs",
            &s3s_fs(),
            &args,
            &[("RUST_LOG", "s3s=info".to_string())],
            self.log.clone(),
        )
        .context("s3s-fs is not installed: run e2e/s3/install.sh")?;
        self.proc = Some(p);
        let port = self.port;
        wait_for("s3s-fs to listen", Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (a directory of the server's root).
    pub fn bucket(&self, name: &str) -> Result<()> {
        std::fs::create_dir_all(self.root.join(name))?;
        Ok(())
    }

    /// Puts an object by writing its file (s3s-fs serves the file system as is).
    pub fn put_file(&self, bucket: &str, key: &str, src: &Path) -> Result<()> {
        let dst = self.root.join(bucket).join(key);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(src, dst)?;
        Ok(())
    }

    /// Keys of a bucket under `prefix`, sorted (read from the server's root).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    let k = rel.to_string_lossy().into_owned();
                    // s3s-fs keeps its own bookkeeping next to objects.
                    if !k.starts_with(".") && !k.contains("/.") {
                        out.push(k);
                    }
                }
            }
        }
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        out
    }

    /// Stops the server (SIGKILL, by pid).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

/// A TCP proxy on a random loopback port that forwards to `upstream` and counts the bytes it
/// passes back to clients. Runs until the test's runtime ends.
pub struct CountingProxy {
    pub port: u16,
    pub downstream_bytes: Arc<AtomicU64>,
}

impl CountingProxy {
    pub async fn start(upstream: u16) -> Result<CountingProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut client_rd, mut client_wr) = client.into_split();
                    let (mut server_rd, mut server_wr) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_rd, &mut server_wr).await;
                        let _ = server_wr.shutdown().await;
                    });
                    // Counted chunk by chunk, so the figure is current while ffmpeg still runs.
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match server_rd.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                c.fetch_add(n as u64, Ordering::SeqCst);
                                if client_wr.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    up.abort();
                });
            }
        });
        Ok(CountingProxy {
            port,
            downstream_bytes: counter,
        })
    }

    pub fn bytes(&self) -> u64 {
        self.downstream_bytes.load(Ordering::SeqCst)
    }
}

/// A data-plane process in file mode.
pub struct DataPlane {
    pub http: u16,
    pub admin: u16,
    pub proc: Proc,
}

impl DataPlane {
    /// Writes `config` to `dir/NAME.yaml` and starts a data plane on it; waits for `/readyz`.
    pub async fn start(dir: &Path, name: &str, config: &str) -> Result<DataPlane> {
        let cfg = dir.join(format!("{name}.yaml"));
        std::fs::write(&cfg, config)?;
        let (http, admin) = (free_port()?, free_port()?);
        let args = vec![
            "--config".to_string(),
            cfg.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin}"),
            "--work-dir".into(),
            dir.join(format!("{name}-work")).display().to_string(),
            "--log-format".into(),
            "text".into(),
        ];
        let proc = Proc::spawn(
            name,
            &binary("vr-dataplane"),
            &args,
            &[("RUST_LOG", "info".to_string())],
            dir.join(format!("{name}.log")),
        )?;
        wait_for(
            "the data plane's /readyz",
            Duration::from_secs(30),
            || async move {
                let r = reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
                    .await
                    .ok()?;
                (r.status() == 200).then_some(())
            },
        )
        .await?;
        Ok(DataPlane { http, admin, proc })
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.http)
    }

    /// The value of one metric sample (`name{labels}` exactly as exposed), 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = match reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}
