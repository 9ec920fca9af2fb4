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
            "  rollout: {state} {} step {} weight {}% (windows passed {}, failed {})\n",
            r.revision, r.step, r.weight, r.passed_windows, r.failed_windows
        ));
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
