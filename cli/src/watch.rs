//! `status --watch`: where a config's rollout stands, read as kstatus reads it, so the exit
//! code of `vrctl status --watch --timeout 10m` can gate a CI pipeline on the outcome.
//!
//! * [`Outcome::Done`] (exit 0): the operator observed the current spec, `Ready` is True and
//!   nothing is in progress (`Reconciling` is not True) — a canary was promoted and its bake
//!   ended, or nothing had to change.
//! * [`Outcome::Failed`] (exit 1): `Stalled` is True — the spec's revision was rolled back (or
//!   aborted) and is held back, or the spec is invalid. The message says why.
//! * [`Outcome::Waiting`]: anything else (not observed yet, a canary, activation, a bake,
//!   pods not ready); the watch goes on until its timeout (exit 3).

use crate::cluster::Cluster;
use crate::exit::CliError;
use std::time::{Duration, Instant};
use vr_crds::resources::VideoResizerConfig;

/// How often the config is read while following it.
const POLL: Duration = Duration::from_secs(1);

/// A `--timeout` value: `90s`, `10m`, `1m30s` or plain seconds, more than zero.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match vr_crds::media::parse_time_ms(s)? {
        0 => Err("must be longer than zero".into()),
        ms => Ok(Duration::from_millis(ms)),
    }
}

/// Reads config `name` every second until [`outcome`] is done or failed, or `timeout`
/// passes (then the last outcome is `Waiting`). `changed` sees each new outcome. Returns the
/// outcome and the config as last read.
pub async fn follow(
    c: &Cluster,
    name: &str,
    timeout: Duration,
    mut changed: impl FnMut(&Outcome),
) -> Result<(Outcome, VideoResizerConfig), CliError> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Outcome> = None;
    loop {
        let cfg = c.get(name).await?;
        let now = outcome(&cfg);
        if last.as_ref() != Some(&now) {
            changed(&now);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !matches!(now, Outcome::Waiting(_)) || left.is_zero() {
            return Ok((now, cfg));
        }
        last = Some(now);
        tokio::time::sleep(left.min(POLL)).await;
    }
}

/// Where a config's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rolled out and ready.
    Done(String),
    /// Rolled back, aborted or invalid; needs a fix or a retry.
    Failed(String),
    /// Still moving.
    Waiting(String),
}

/// Reads `cfg`'s status as kstatus does (observedGeneration, `Stalled`, `Reconciling`, `Ready`).
pub fn outcome(cfg: &VideoResizerConfig) -> Outcome {
    let Some(st) = cfg.status.as_ref() else {
        return Outcome::Waiting("the operator has not reconciled this config yet".into());
    };
    if st.observed_generation != cfg.metadata.generation {
        return Outcome::Waiting(format!(
            "the operator has not observed generation {} yet",
            cfg.metadata.generation.unwrap_or_default()
        ));
    }
    let find = |t: &str| st.conditions.iter().find(|c| c.type_ == t);
    let is_true = |t: &str| find(t).is_some_and(|c| c.status == "True");
    let said = |t: &str| {
        find(t)
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| format!("no {t} condition"))
    };
    if is_true("Stalled") {
        Outcome::Failed(said("Stalled"))
    } else if is_true("Reconciling") {
        Outcome::Waiting(said("Reconciling"))
    } else if is_true("Ready") {
        Outcome::Done(said("Ready"))
    } else {
        Outcome::Waiting(said("Ready"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use vr_crds::resources::VideoResizerConfigStatus;

    fn cfg(observed: i64, conditions: &[(&str, &str, &str)]) -> VideoResizerConfig {
        let mut c: VideoResizerConfig = serde_yaml::from_str(
            "apiVersion: videoresizer.io/v1alpha1\nkind: VideoResizerConfig\nmetadata: {name: web}\nspec:\n  origins:\n    - name: v\n      matcher: '^/(?P<f>.+)$'\n      sources: [{name: s, kind: http, http: {url: 'https://e.example/${f}'}}]\n",
        )
        .expect("config parses");
        c.metadata.generation = Some(2);
        c.status = Some(VideoResizerConfigStatus {
            observed_generation: Some(observed),
            conditions: conditions
                .iter()
                .map(|(t, s, r)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: (*r).into(),
                    message: format!("{r} said so"),
                    observed_generation: Some(observed),
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..VideoResizerConfigStatus::default()
        });
        c
    }

    #[test]
    fn timeouts_read_like_durations_and_are_never_zero() {
        assert_eq!(parse_timeout("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("45"), Ok(Duration::from_secs(45)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn ready_with_nothing_in_progress_is_done() {
        let c = cfg(
            2,
            &[
                ("Ready", "True", "Available"),
                ("Reconciling", "False", "Reconciled"),
                ("Stalled", "False", "Reconciled"),
            ],
        );
        assert_eq!(
            outcome(&c),
            Outcome::Done("Available: Available said so".into())
        );
    }

    #[test]
    fn a_held_back_or_invalid_spec_is_failed_with_the_reason() {
        let c = cfg(
            2,
            &[
                ("Ready", "False", "RolledBack"),
                ("Stalled", "True", "RolledBack"),
            ],
        );
        assert!(matches!(outcome(&c), Outcome::Failed(m) if m.starts_with("RolledBack")));
    }

    #[test]
    fn a_canary_a_bake_or_an_unobserved_spec_is_waited_for() {
        let canary = cfg(
            2,
            &[
                ("Ready", "False", "RolloutInProgress"),
                ("Reconciling", "True", "Canary"),
            ],
        );
        assert!(matches!(outcome(&canary), Outcome::Waiting(m) if m.starts_with("Canary")));
        let baking = cfg(
            2,
            &[
                ("Ready", "True", "Available"),
                ("Reconciling", "True", "Baking"),
            ],
        );
        assert!(matches!(outcome(&baking), Outcome::Waiting(m) if m.starts_with("Baking")));
        let stale = cfg(
            1,
            &[
                ("Ready", "True", "Available"),
                ("Stalled", "True", "RolledBack"),
            ],
        );
        assert!(matches!(outcome(&stale), Outcome::Waiting(m) if m.contains("generation 2")));
        let mut none = cfg(2, &[]);
        none.status = None;
        assert!(matches!(outcome(&none), Outcome::Waiting(_)));
    }
}
