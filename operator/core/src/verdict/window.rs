//! What a provider measured at one look ([`Sample`], [`Window`]). Providers (direct scraping,
//! Prometheus) live in the acting crate; they hand their numbers over in these types, and
//! [`super::sequential`] adds them to the rollout's evidence.

use vr_verdict::Look;

/// What the data planes did, as one provider read it at one look.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// The look: request counts of both revisions and per-pod latency histograms per kind.
    /// `at_seconds` is set by the core (seconds since the rollout began), not by the provider.
    pub look: Look,
    /// How `look`'s counts are meant: deltas since the previous look (scrape), or totals since
    /// the rollout began (Prometheus: `increase()` over that time), which the core turns into
    /// deltas against the evidence so far.
    pub totals: bool,
    /// Length of the interval the look covers in seconds (scrape: between the two scrapes), at
    /// least 1. Informational.
    pub window_seconds: u32,
    /// What the operator should log about how the numbers were obtained (unreadable pods, pods
    /// that restarted, pods counted from the next look). Not verdict reasons.
    pub notes: Vec<String>,
    /// Scrape only: (pods that have the canary loaded in the canary role, pods read). A canary
    /// no pod loaded was refused by the data planes (see [`refused_canary`]).
    pub canary_loaded: Option<(usize, usize)>,
}

/// What a provider measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A look at the numbers.
    Window(Window),
    /// Nothing to add yet: the scrape provider only recorded a baseline (first call for this
    /// key since the operator started, or no pod had been read before). Recorded as
    /// `Inconclusive`.
    Baseline { reason: String },
}

/// Why a window says the data planes refused the canary, if it does: every pod read reports the
/// canary revision not loaded (the data plane refuses a revision it cannot compile, e.g. a
/// Secret file missing in the pods; the stable revision then serves everything and the canary
/// would otherwise look merely idle).
pub fn refused_canary(window: &Window, canary: &str) -> Option<String> {
    match window.canary_loaded {
        Some((0, pods)) if pods > 0 => Some(format!(
            "none of the {pods} data-plane pods read has loaded canary {canary}: they refused it \
             (see vr_config_loads_total{{outcome=\"invalid\"}} and the data-plane logs)"
        )),
        _ => None,
    }
}
