//! Request identity and tracing: `X-Request-ID`, W3C `traceparent`, `Server-Timing`, and the
//! JSON log subscriber.

use http::{HeaderMap, HeaderValue};
use rand::Rng;
use std::fmt::Write as _;
use std::time::Instant;
use vr_crds::contract::headers as hdr;

/// Longest accepted incoming `X-Request-ID`.
const MAX_REQUEST_ID: usize = 128;

/// The request ID: the client's `X-Request-ID` when it is sane (printable ASCII, ≤ 128
/// characters), otherwise a fresh random one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(hdr::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_REQUEST_ID
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(random_id)
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b);
    hex::encode(b)
}

/// A W3C trace context: the trace we belong to and the span we create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    /// Our span (sent downstream as the parent).
    pub span_id: String,
    /// The caller's span, if any.
    pub parent_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// Continues the caller's trace from `traceparent` when valid, otherwise starts one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut rng = rand::rng();
        let mut span = [0u8; 8];
        rng.fill(&mut span);
        let span_id = hex::encode(span);
        if let Some((trace_id, parent, flags)) = headers
            .get(hdr::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
        {
            return TraceContext {
                trace_id,
                span_id,
                parent_id: Some(parent),
                sampled: flags & 1 == 1,
            };
        }
        let mut trace = [0u8; 16];
        rng.fill(&mut trace);
        TraceContext {
            trace_id: hex::encode(trace),
            span_id,
            parent_id: None,
            sampled: false,
        }
    }

    /// The `traceparent` header naming our span.
    pub fn header(&self) -> HeaderValue {
        let v = format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| {
            HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00")
        })
    }
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`; all-zero IDs are invalid (W3C §3.2.2).
fn parse_traceparent(v: &str) -> Option<(String, String, u8)> {
    let parts: Vec<&str> = v.trim().split('-').collect();
    if parts.len() < 4 {
        return None;
    }
    let (ver, trace, parent, flags) = (parts[0], parts[1], parts[2], parts[3]);
    let hex_ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex_ok(ver, 2) || ver == "ff" || (ver == "00" && parts.len() != 4) {
        return None;
    }
    if !hex_ok(trace, 32) || !hex_ok(parent, 16) || !hex_ok(flags, 2) {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace.to_owned(), parent.to_owned(), flags))
}

/// Collects named phases for the `Server-Timing` header.
#[derive(Debug)]
pub struct Timing {
    start: Instant,
    last: Instant,
    phases: Vec<(&'static str, f64)>,
}

impl Default for Timing {
    fn default() -> Self {
        let now = Instant::now();
        Timing {
            start: now,
            last: now,
            phases: Vec::new(),
        }
    }
}

impl Timing {
    /// Records the time since the previous mark under `name`.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.phases
            .push((name, (now - self.last).as_secs_f64() * 1000.0));
        self.last = now;
    }

    /// Seconds since the request started.
    pub fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// `name;dur=1.23, …, total;dur=4.56`.
    pub fn header(&self) -> HeaderValue {
        let mut s = String::new();
        for (name, ms) in &self.phases {
            let _ = write!(s, "{name};dur={ms:.2}, ");
        }
        let _ = write!(
            s,
            "total;dur={:.2}",
            self.start.elapsed().as_secs_f64() * 1000.0
        );
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("total"))
    }
}

/// Log lines waiting for the writer thread; past this, a line is written directly (the request
/// that logs it pays for the write, as every request did before the writer thread existed).
const LOG_QUEUE_LINES: usize = 16_384;

/// Flushes every queued log line when dropped (keep it alive for the whole of `main`).
pub struct LogGuard {
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(t) = self.writer.take() {
            // An empty line (never a real one) asks the writer to stop after what is queued.
            if let Some(tx) = LOG_QUEUE.get() {
                let _ = tx.send(Vec::new());
            }
            let _ = t.join();
        }
    }
}

static LOG_QUEUE: std::sync::OnceLock<std::sync::mpsc::SyncSender<Vec<u8>>> =
    std::sync::OnceLock::new();

/// One log line being formatted; queued for the writer thread when dropped.
///
/// Why: stderr is unbuffered, so writing each request's line from the request's own task
/// cost a `write(2)` under the stderr lock per request (5 % of the data plane's CPU in
/// `perf` for 64 KiB range hits, the largest cost after sending the bytes themselves). The
/// writer thread batches the lines of a busy moment into one write and flushes as soon as
/// the queue is empty, so an idle process still logs at once.
pub struct LogLine {
    buf: Vec<u8>,
    tx: Option<&'static std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl std::io::Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.buf);
        if line.is_empty() {
            return;
        }
        let unsent = match &self.tx {
            Some(tx) => match tx.try_send(line) {
                Ok(()) => return,
                Err(std::sync::mpsc::TrySendError::Full(l))
                | Err(std::sync::mpsc::TrySendError::Disconnected(l)) => l,
            },
            None => line,
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &unsent);
    }
}

/// Makes a [`LogLine`] per event.
struct QueuedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine {
            buf: Vec::with_capacity(256),
            tx: LOG_QUEUE.get(),
        }
    }
}

/// The writer thread: drains the queue into `sink` (stderr), flushing whenever the queue is
/// empty, until the queue closes or an empty line asks it to stop.
fn log_writer(rx: std::sync::mpsc::Receiver<Vec<u8>>, sink: impl std::io::Write) {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, sink);
    'run: while let Ok(line) = rx.recv() {
        if line.is_empty() {
            break;
        }
        let _ = out.write_all(&line);
        while let Ok(line) = rx.try_recv() {
            if line.is_empty() {
                break 'run;
            }
            let _ = out.write_all(&line);
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

/// Installs the JSON log subscriber (level from `RUST_LOG`, default `info`).
pub fn init_logging(json: bool) -> LogGuard {
    let (tx, rx) = std::sync::mpsc::sync_channel(LOG_QUEUE_LINES);
    let first = LOG_QUEUE.set(tx).is_ok();
    let writer = if first {
        std::thread::Builder::new()
            .name("vr-log".into())
            .spawn(move || log_writer(rx, std::io::stderr()))
            .ok()
    } else {
        None
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // kube-client and kube-runtime log every failed request or retry; the ConfigMap watcher
        // gets the same errors back and logs once per state change (`kube::run`) instead.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                "info,kube_client=error,kube_client::client::builder=off,kube_runtime=error",
            )
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QueuedStderr);
    // A second init (tests) is harmless: keep the first subscriber.
    if json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
    LogGuard { writer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_writer_writes_every_queued_line_in_order_and_stops_on_request() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        for line in ["a\n", "b\n", "c\n"] {
            tx.send(line.as_bytes().to_vec()).expect("queued");
        }
        tx.send(Vec::new()).expect("stop queued");
        let mut out = Vec::new();
        log_writer(rx, &mut out);
        assert_eq!(out, b"a\nb\nc\n");
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let mut h = HeaderMap::new();
        h.insert(
            hdr::TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let t = TraceContext::from_headers(&h);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        assert!(t.sampled);
        let out = t.header();
        assert!(out
            .to_str()
            .expect("ascii")
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut h = HeaderMap::new();
            h.insert(hdr::TRACEPARENT, HeaderValue::from_static(bad));
            assert_eq!(TraceContext::from_headers(&h).parent_id, None, "{bad}");
        }
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(hdr::REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(hdr::REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
    }
}
