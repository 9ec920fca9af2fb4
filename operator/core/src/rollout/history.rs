//! The revision history (`status.history`): one record per revision, newest first, and the
//! revisions a rollout names in its status.

use crate::model::{number_of, ObservedRevision, Rev};
use k8s_openapi::jiff::Timestamp;
use vr_crds::rollout::{AnalysisResult, Outcome, RevisionRecord, RolloutStatus};

/// Most revisions kept in `status.history`.
pub const HISTORY_LIMIT: usize = 20;

pub(super) fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

/// Records `outcome` for `rev` at the front of `history` (one entry per revision, newest first).
pub(super) fn record(
    history: &mut Vec<RevisionRecord>,
    rev: &Rev,
    outcome: Outcome,
    reason: Option<String>,
    analysis: Option<AnalysisResult>,
    now: Timestamp,
) {
    let label = rev.label();
    history.retain(|h| h.revision != label);
    history.insert(
        0,
        RevisionRecord {
            revision: label,
            number: rev.number,
            config_map: rev.configmap.clone(),
            hash: rev.hash.clone(),
            outcome,
            time: rfc3339(now),
            reason,
            analysis,
        },
    );
    history.truncate(HISTORY_LIMIT);
}

/// Marks `rev` superseded if the history says it is stable.
pub(super) fn supersede(history: &mut Vec<RevisionRecord>, rev: &Rev, now: Timestamp) {
    let label = rev.label();
    if let Some(h) = history.iter_mut().find(|h| h.revision == label) {
        if h.outcome == Outcome::Stable {
            h.outcome = Outcome::Superseded;
            h.time = rfc3339(now);
        }
    } else {
        record(history, rev, Outcome::Superseded, None, None, now);
    }
}

/// Marks `rev` stable again in the history (after a rollback to it).
pub(super) fn restore_stable(history: &mut [RevisionRecord], rev: &Rev, now: Timestamp) {
    if let Some(h) = history.iter_mut().find(|h| h.revision == rev.label()) {
        h.outcome = Outcome::Stable;
        h.time = rfc3339(now);
    }
}

/// The revision a rollout rolls out, from its status.
pub(super) fn rev_of(ro: &RolloutStatus) -> Rev {
    Rev {
        number: number_of(&ro.revision),
        configmap: ro.config_map.clone(),
        hash: ro.hash.clone(),
    }
}

/// The revision that was stable when a rollout began (its content hash is not recorded).
pub(super) fn previous_of(ro: &RolloutStatus) -> Rev {
    Rev {
        number: number_of(&ro.previous_revision),
        configmap: ro.previous_config_map.clone(),
        hash: String::new(),
    }
}

/// The revisions kept, for messages (`r1, r2, r5`).
pub(super) fn kept(revisions: &[ObservedRevision]) -> String {
    let mut n: Vec<u64> = revisions.iter().map(|r| r.revision).collect();
    n.sort_unstable();
    n.iter()
        .map(|n| format!("r{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
