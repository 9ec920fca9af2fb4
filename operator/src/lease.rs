//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas can run and
//! only one acts (a duplicate actor would apply children and, later, shift canary weights twice).
//!
//! The decision is a pure function of the Lease and the clock ([`decide`]); the I/O uses
//! optimistic concurrency (`replace` with the observed `resourceVersion`), so two candidates
//! can never both believe they won. A leader that cannot renew within the renew deadline stops
//! leading (the caller exits), before its lease can have expired for anyone else.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::time::Duration;

/// Timing of the election (Argo Rollouts uses the same 15/10/2 s).
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (pod name + a random suffix).
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long gives up.
    pub renew_deadline: Duration,
    /// How often candidates retry and leaders renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        LeaseSettings {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the Lease it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Someone else holds a live lease.
    Wait { holder: String },
}

/// Decides from the observed lease spec (`None`: no Lease object yet) at `now`.
pub fn decide(identity: &str, spec: Option<&LeaseSpec>, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match renewed {
        Some(t) if t.as_second() + duration > now.as_second() => Decision::Wait { holder },
        _ => Decision::Take,
    }
}

/// Why leading ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lost the lease: could not renew it within {0:?}")]
    Lost(Duration),
}

/// One attempt to take or renew; `Ok(true)` if we hold the lease afterwards.
async fn try_hold(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(&s.name).await?;
    let decision = decide(
        &s.identity,
        current.as_ref().and_then(|l| l.spec.as_ref()),
        now,
    );
    let (holder, transitions, acquire) = match (&decision, &current) {
        (Decision::Wait { .. }, _) => return Ok(false),
        (Decision::Renew, Some(l)) => {
            let spec = l.spec.clone().unwrap_or_default();
            (
                s.identity.clone(),
                spec.lease_transitions,
                spec.acquire_time,
            )
        }
        (_, Some(l)) => {
            let t = l
                .spec
                .as_ref()
                .and_then(|x| x.lease_transitions)
                .unwrap_or(0);
            (s.identity.clone(), Some(t + 1), Some(MicroTime(now)))
        }
        (_, None) => (s.identity.clone(), Some(0), Some(MicroTime(now))),
    };
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(s.name.clone()),
            namespace: Some(s.namespace.clone()),
            resource_version: current
                .as_ref()
                .and_then(|l| l.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder),
            lease_duration_seconds: Some(s.lease_duration.as_secs() as i32),
            acquire_time: acquire,
            renew_time: Some(MicroTime(now)),
            lease_transitions: transitions,
            ..LeaseSpec::default()
        }),
    };
    let result = match current {
        Some(_) => api.replace(&s.name, &PostParams::default(), &lease).await,
        None => api.create(&PostParams::default(), &lease).await,
    };
    match result {
        Ok(_) => Ok(true),
        // Someone else wrote first (409 on replace, or "already exists" on create): not ours.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this replica leads.
pub async fn acquire(api: &Api<Lease>, s: &LeaseSettings) {
    let mut last_holder = String::new();
    loop {
        match try_hold(api, s).await {
            Ok(true) => {
                tracing::info!(identity = %s.identity, lease = %s.name, "became the leader");
                return;
            }
            Ok(false) => {
                if let Ok(Some(l)) = api.get_opt(&s.name).await {
                    let h = l.spec.and_then(|x| x.holder_identity).unwrap_or_default();
                    if h != last_holder {
                        tracing::info!(leader = %h, "waiting: another replica leads");
                        last_holder = h;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read or write the lease; retrying"),
        }
        tokio::time::sleep(s.retry_period).await;
    }
}

/// Renews the lease until a renewal fails for longer than the renew deadline; then returns
/// the error (the caller must stop acting at once).
pub async fn keep(api: &Api<Lease>, s: &LeaseSettings) -> LeaseError {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(s.retry_period).await;
        match try_hold(api, s).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => return LeaseError::Lost(s.renew_deadline),
            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
        }
        if last_ok.elapsed() > s.renew_deadline {
            return LeaseError::Lost(s.renew_deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::from_second(now.as_second() - renewed_secs_ago).expect("ts"),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_or_empty_lease_is_taken() {
        let now = Timestamp::now();
        assert_eq!(decide("a", None, now), Decision::Take);
        assert_eq!(
            decide("a", Some(&LeaseSpec::default()), now),
            Decision::Take
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let now = Timestamp::now();
        assert_eq!(
            decide("a", Some(&spec("a", 100, now)), now),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_lease_of_another_replica_is_respected_until_it_expires() {
        let now = Timestamp::now();
        assert_eq!(
            decide("a", Some(&spec("b", 5, now)), now),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(decide("a", Some(&spec("b", 16, now)), now), Decision::Take);
    }
}
