//! A real Prometheus (Debian's `/usr/bin/prometheus`) as a child process for the suites that
//! compare the operator's `prometheus` analysis provider with direct scraping: loopback only, a
//! temp dir for its config and TSDB, a 1 s scrape interval over static targets. Never the
//! system service; stopped by pid when the handle drops.

use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;
use std::time::Duration;

use crate::{free_port, wait_for, Proc};

/// The Debian package's binary.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// Scrape interval of the harness' Prometheus.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// Job name of the static targets.
pub const JOB: &str = "vr";

/// A running Prometheus.
pub struct Prometheus {
    proc: Proc,
    /// Base URL of its HTTP API (`http://127.0.0.1:<port>`).
    pub url: String,
    /// Targets it scrapes (`host:port`).
    pub targets: Vec<String>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) every second and waits
    /// until it is ready (`/-/ready`).
    pub async fn start(targets: &[String]) -> Result<Prometheus> {
        let bin = PathBuf::from(PROMETHEUS_BIN);
        if !bin.exists() {
            bail!("{PROMETHEUS_BIN} missing: install Debian's prometheus package (e2e/run prometheus does)");
        }
        let dir = tempfile::tempdir()?;
        let list = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port()?;
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=1h".to_owned(),
            "--log.level=warn".to_owned(),
        ];
        let proc = Proc::spawn(
            "prometheus",
            &bin,
            &args,
            &[],
            dir.path().join("prometheus.log"),
        )?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        let mut prom = Prometheus {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            targets: targets.to_vec(),
            client,
            _dir: dir,
        };
        let ready_url = format!("{}/-/ready", prom.url);
        let waited = wait_for("prometheus /-/ready", Duration::from_secs(30), || {
            let c = prom.client.clone();
            let u = ready_url.clone();
            async move {
                match c.get(&u).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        if let Err(e) = waited {
            let tail = prom.proc.log_tail(30);
            prom.stop();
            bail!("{e}\n--- prometheus log\n{tail}");
        }
        Ok(prom)
    }

    /// Waits until every target has been scraped successfully at least `samples` times
    /// (`up == 1`), so `increase()` over a window has data.
    pub async fn wait_scraped(&self, samples: usize, deadline: Duration) -> Result<()> {
        let q = format!("sum_over_time(up{{job=\"{JOB}\"}}[5m])");
        let want = self.targets.len();
        wait_for(
            &format!("prometheus to scrape {want} targets {samples} times"),
            deadline,
            || {
                let q = q.clone();
                async move {
                    let values = self.query(&q).await.ok()?;
                    let ready = values.iter().filter(|v| **v >= samples as f64).count();
                    (ready >= want).then_some(())
                }
            },
        )
        .await
    }

    /// Runs an instant query; the values of the resulting series.
    pub async fn query(&self, query: &str) -> Result<Vec<f64>> {
        let resp = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)
            .with_context(|| format!("query {query}: HTTP {status}"))?;
        if body["status"] != "success" {
            bail!("query {query}: {body}");
        }
        let result = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(result
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse().ok())
            .collect())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops Prometheus (by pid).
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// The last lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        self.proc.log_tail(n)
    }
}
