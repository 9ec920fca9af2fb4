//! Talking to running data planes over HTTP: prewarm (request every path × derivative on the
//! public port and read each answer to the end, so the variant is transformed and cached) and
//! purge by tag (the admin API, `POST /admin/purge?tag=T`, token scope `purge`).
//!
//! Each data-plane pod has its own cache, so purge goes to every admin address given; prewarm
//! through a Service warms whichever pod answers (and the shared layers).

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::time::{Duration, Instant};
use vr_crds::contract;

/// One prewarmed variant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Warmed {
    pub path: String,
    pub derivative: String,
    /// HTTP status, or 0 when no answer came.
    pub status: u16,
    /// `X-Cache-Status` of the answer (`MISS` means it was transformed now).
    pub cache: String,
    /// `X-Config-Revision` of the answer.
    pub revision: String,
    pub bytes: u64,
    pub milliseconds: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Warmed {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The URL of `path` with `derivative` on the public base URL.
pub fn variant_url(base: &str, path: &str, derivative: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{base}{path}{sep}derivative={derivative}")
}

/// Requests every `paths × derivatives` variant from `base`, `concurrency` at a time, calling
/// `done` after each (for progress). Results are in request order.
pub async fn prewarm(
    base: &str,
    paths: &[String],
    derivatives: &[String],
    concurrency: usize,
    timeout: Duration,
    mut done: impl FnMut(&Warmed),
) -> Vec<Warmed> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default();
    let jobs: Vec<(usize, String, String)> = paths
        .iter()
        .flat_map(|p| derivatives.iter().map(move |d| (p.clone(), d.clone())))
        .enumerate()
        .map(|(i, (p, d))| (i, p, d))
        .collect();
    let mut results: Vec<(usize, Warmed)> = Vec::with_capacity(jobs.len());
    let mut running = stream::iter(jobs)
        .map(|(i, path, derivative)| {
            let http = http.clone();
            let url = variant_url(base, &path, &derivative);
            async move { (i, fetch(&http, url, path, derivative).await) }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((i, w)) = running.next().await {
        done(&w);
        results.push((i, w));
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, w)| w).collect()
}

async fn fetch(http: &reqwest::Client, url: String, path: String, derivative: String) -> Warmed {
    let start = Instant::now();
    let mut w = Warmed {
        path,
        derivative,
        status: 0,
        cache: String::new(),
        revision: String::new(),
        bytes: 0,
        milliseconds: 0,
        error: None,
    };
    match http.get(&url).send().await {
        Ok(mut r) => {
            w.status = r.status().as_u16();
            let header = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            w.cache = header(contract::headers::CACHE_STATUS);
            w.revision = header(contract::HEADER_CONFIG_REVISION);
            // Read to the end: the variant is complete (and cached) only when its body is.
            loop {
                match r.chunk().await {
                    Ok(Some(c)) => w.bytes += c.len() as u64,
                    Ok(None) => break,
                    Err(e) => {
                        w.error = Some(format!("body cut off: {e}"));
                        break;
                    }
                }
            }
            if w.error.is_none() && !(200..300).contains(&w.status) {
                w.error = Some(format!("HTTP {}", w.status));
            }
        }
        Err(e) => w.error = Some(format!("no answer: {e}")),
    }
    w.milliseconds = start.elapsed().as_millis() as u64;
    w
}

/// What one admin address said to a purge.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Purged {
    pub admin_url: String,
    pub status: u16,
    /// Variants removed there.
    pub removed: u64,
    pub error: Option<String>,
}

/// Purges `tag` on every admin address with bearer `token`.
pub async fn purge(
    admin_urls: &[String],
    token: &str,
    tag: &str,
    timeout: Duration,
) -> Vec<Purged> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default();
    let calls = admin_urls.iter().map(|base| {
        let http = http.clone();
        let url = format!("{}/admin/purge", base.trim_end_matches('/'));
        let base = base.clone();
        async move {
            let mut p = Purged {
                admin_url: base,
                status: 0,
                removed: 0,
                error: None,
            };
            match http
                .post(&url)
                .query(&[("tag", tag)])
                .bearer_auth(token)
                .send()
                .await
            {
                Ok(r) => {
                    p.status = r.status().as_u16();
                    let body: serde_json::Value = r
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or_default();
                    if (200..300).contains(&p.status) {
                        p.removed = body["removed"].as_u64().unwrap_or(0);
                    } else {
                        p.error = Some(
                            body["error"]["message"]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| format!("HTTP {}", p.status)),
                        );
                    }
                }
                Err(e) => p.error = Some(format!("no answer: {e}")),
            }
            p
        }
    });
    futures_util::future::join_all(calls).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_urls_join_base_path_and_derivative() {
        assert_eq!(
            variant_url("http://h:8080/", "videos/a.mp4", "mobile"),
            "http://h:8080/videos/a.mp4?derivative=mobile"
        );
        assert_eq!(
            variant_url("http://h", "/v/a.mp4?time=2s", "thumb"),
            "http://h/v/a.mp4?time=2s&derivative=thumb"
        );
    }
}
