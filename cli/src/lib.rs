//! `vrctl` (also installed as the kubectl plugin `kubectl-vr`): the command line of video-resizer.
//!
//! * [`files`] — configs read offline: parsed into the CRD types and rendered by the operator's
//!   own [`vr_crds::render::render`], so `validate` and `render` cannot disagree with the
//!   operator.
//! * [`cluster`] — status, history and the rollout requests (annotations of
//!   [`vr_crds::contract`]) on a `VideoResizerConfig`, through the Kubernetes API.
//! * [`dataplane`] — prewarm (public port) and purge (admin API) against running data planes.
//! * [`progress`] — a progress bar on stderr (only on a terminal).
//! * [`report`] — what `status` and `history` print.
//! * [`watch`] — `status --watch`: a rollout's outcome read as kstatus reads it.
//! * [`exit`] — the exit codes scripts can rely on, and the error type that carries them.

pub mod cluster;
pub mod dataplane;
pub mod exit;
pub mod files;
pub mod progress;
pub mod report;
pub mod watch;
