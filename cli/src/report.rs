//! What the commands print: `-o human|json|yaml` ([`print`]), and a config's status and
//! history as JSON or as text for people.

use serde::Serialize;
use serde_json::{json, Value};
use vr_crds::resources::VideoResizerConfig;

/// Output format (`-o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML, or `human()` for people, on stdout.
pub fn print<T: Serialize>(format: Format, value: &T, human: impl FnOnce() -> String) {
    match format {
        Format::Human => print!("{}", human()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"{e}\""))
        ),
        Format::Yaml => print!(
            "{}",
            serde_yaml::to_string(value).unwrap_or_else(|e| format!("error: {e}\n"))
        ),
    }
}

pub fn status_value(cfg: &VideoResizerConfig) -> Value {
    json!({
        "name": cfg.metadata.name,
        "namespace": cfg.metadata.namespace,
        "generation": cfg.metadata.generation,
        "status": cfg.status,
    })
}

pub fn status_text(ns: &str, cfg: &VideoResizerConfig) -> String {
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let st = cfg.status.clone().unwrap_or_default();
    let phase = st
        .phase
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "Unknown".into());
    let mut s = format!(
        "{ns}/{name}: {phase}\n  revision: {} ({})\n  ready replicas: {}\n  canary weight: {}%\n",
        st.active_revision.as_deref().unwrap_or("-"),
        st.active_config_map.as_deref().unwrap_or("-"),
        st.ready_replicas,
        st.canary_weight
    );
    if st.observed_generation != cfg.metadata.generation {
        s.push_str(&format!(
            "  observed generation {:?} of {:?} (the operator has not caught up)\n",
            st.observed_generation, cfg.metadata.generation
        ));
    }
    if let Some(r) = &st.rollout {
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        s.push_str(&format!(
            "  rollout: {state} {} step {} weight {}% (looks passed {}, failed {})\n",
            r.revision, r.step, r.weight, r.passed_windows, r.failed_windows
        ));
        if let Some(a) = &r.last_analysis {
            s.push_str(&analysis_line(a));
        }
    }
    if let Some(h) = &st.held_back {
        s.push_str(&format!(
            "  held back: {} (until the spec changes or `vrctl retry`)\n",
            h.revision
        ));
    }
    s.push_str("  conditions:\n");
    for c in &st.conditions {
        s.push_str(&format!(
            "    {:<12} {:<6} {:<20} {}\n",
            c.type_,
            c.status,
            c.reason,
            c.message.lines().next().unwrap_or_default()
        ));
    }
    if let Some(m) = &st.message {
        if m.lines().count() > 1 {
            s.push_str("  message:\n");
            for l in m.lines() {
                s.push_str(&format!("    {l}\n"));
            }
        }
    }
    s
}

/// The last look of a rollout: the decision, the evidence behind it and how strong it is.
pub fn analysis_line(a: &vr_crds::rollout::AnalysisResult) -> String {
    let verdict = serde_json::to_value(a.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut s = format!(
        "  analysis: {verdict} after {} s, canary {} requests ({} 5xx, {} 4xx) vs stable {} ({} 5xx, {} 4xx)",
        a.window_seconds,
        a.canary.requests,
        a.canary.server_errors,
        a.canary.client_errors,
        a.stable.requests,
        a.stable.server_errors,
        a.stable.client_errors
    );
    if let Some(rule) = &a.rule {
        s.push_str(&format!(", rule {rule}"));
    }
    if let Some(p) = a.p_value {
        s.push_str(&format!(", anytime p {p:.2e}"));
    }
    s.push('\n');
    if let Some(reason) = a.reasons.first() {
        s.push_str(&format!("    {reason}\n"));
    }
    s
}

pub fn history_text(cfg: &VideoResizerConfig) -> String {
    let st = cfg.status.clone().unwrap_or_default();
    if st.history.is_empty() {
        return format!(
            "no history recorded (last revision {}, active {})\n",
            st.last_revision,
            st.active_revision.as_deref().unwrap_or("-")
        );
    }
    let mut s = format!(
        "{:<9} {:<12} {:<26} {:<28} {}\n",
        "REVISION", "OUTCOME", "TIME", "CONFIGMAP", "REASON"
    );
    for r in &st.history {
        let outcome = serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let active = st.active_revision.as_deref() == Some(r.revision.as_str());
        s.push_str(&format!(
            "{:<9} {:<12} {:<26} {:<28} {}\n",
            format!("{}{}", r.revision, if active { "*" } else { "" }),
            outcome,
            r.time,
            r.config_map,
            r.reason.as_deref().unwrap_or("")
        ));
    }
    s
}

#[cfg(test)]
mod analysis_tests {
    use super::*;
    use vr_crds::rollout::{AnalysisResult, RevisionNumbers, Verdict};

    #[test]
    fn the_analysis_line_says_which_evidence_decided_and_how_strongly() {
        let a = AnalysisResult {
            verdict: Verdict::Fail,
            window_seconds: 3,
            canary: RevisionNumbers {
                requests: 24,
                server_errors: 24,
                ..RevisionNumbers::default()
            },
            stable: RevisionNumbers {
                requests: 216,
                ..RevisionNumbers::default()
            },
            reasons: vec!["canary 5xx 24/24 (≥ 69.2 %) > maxErrorRate 5 %".into()],
            rule: Some("ErrorRate".into()),
            p_value: Some(4.2e-30),
            ..AnalysisResult::default()
        };
        let s = analysis_line(&a);
        assert!(
            s.starts_with(
                "  analysis: Fail after 3 s, canary 24 requests (24 5xx, 0 4xx) vs stable 216"
            ),
            "{s}"
        );
        assert!(s.contains("rule ErrorRate, anytime p 4.20e-30"), "{s}");
        assert!(s.contains("    canary 5xx 24/24"), "{s}");
    }
}
