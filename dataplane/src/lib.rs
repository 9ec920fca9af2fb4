//! video-resizer data plane: `GET /videos/a.mp4?derivative=mobile` → resolve the origin →
//! cache lookup → single-flight → fetch the source → ffmpeg → store → serve with ranges.
//!
//! Modules follow the path of a request, from the socket inwards; arrows point one way
//! (a module only uses modules listed after it):
//!
//! * [`edge`] — the socket, the request handler (canary fallback, metrics, final headers) and
//!   the admin port.
//! * [`pipeline`] — the stages of one request on one config revision: route → params →
//!   source → cache → single-flight → the leader's production; originals and the debug view.
//! * [`control`] — the process state ([`control::app::App`]), compiled config revisions
//!   ([`control::runtime::Runtime`]) and the config sources (a file, the ConfigMaps).
//! * [`serve`] — HTTP delivery of a stored object: ranges, `HEAD`, conditionals.
//! * [`origin`] — ordered origin rules and sources (local, HTTP, S3) with breakers and retries.
//! * [`cache`] — cache keys, the layers (memory, disk, shared S3 bucket), single-flight.
//! * [`transcode`] — ffprobe/ffmpeg as locked-down child processes.
//! * [`guard`] — what may run: URL signatures, admin tokens and the audit log, transform slots.
//! * [`request`] — the URL API (parameters, derivatives, client hints) and the resolved variant.
//! * [`s3`], [`metrics`], [`telemetry`] (request id, trace context, timing, logging),
//!   [`error`], [`body`], `sync` — shared foundations.

pub mod body;
pub mod cache;
pub mod control;
pub mod edge;
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod guard;
pub mod metrics;
pub mod origin;
pub mod pipeline;
pub mod request;
pub mod s3;
pub mod serve;
pub(crate) mod sync;
pub mod telemetry;
pub mod transcode;
