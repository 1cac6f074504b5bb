//! Leader election with a `coordination.k8s.io` Lease, so that two replicas never both write.
//!
//! kube-lease-manager takes and renews the Lease. Around it, this module keeps the promise that
//! matters: **a leader that cannot renew stops acting before the Lease can pass to another
//! replica.** The library alone cannot promise that: while the apiserver is unreachable its
//! calls just hang or fail, and it never reports the Lease as lost. So the elector reads the
//! Lease itself every second and remembers the last `renewTime` that names this replica. Other
//! replicas consider the Lease free `duration` after that time (by the same `renewTime`); this
//! replica stops acting `grace` earlier ([`LeaseTiming::act_for`]), and the controller then
//! drops every reconcile in flight and exits with `LostLeadership`: a fresh process (restarted
//! by its Deployment) is simpler and safer than stopping and restarting watches in place.
//!
//! The other half is a fast hand-over: on SIGTERM the leader stops reconciling, then clears the
//! Lease ([`Leadership::release`]), and a standby, which reads the Lease every second rather than
//! sleeping until it expires, takes it within about a second.

use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How often the elector reads the Lease (a standby to see it free, a leader to see its renewals).
const READ_EVERY: Duration = Duration::from_secs(1);
/// Bound on one read or release of the Lease; a partitioned apiserver makes calls hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one attempt to take a Lease that looked free.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before renewing again after a failed renewal.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Where the lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// Seconds a Lease stays with its holder after its last renewal; then others may take it.
    pub duration_seconds: u64,
    /// Safety margin: a leader that has not renewed for `duration - grace` seconds stops
    /// acting, `grace` seconds before anybody else may take the Lease (clock skew, requests
    /// still in flight).
    pub grace_seconds: u64,
}

/// The timing a [`LeaseSettings`] stands for, with out-of-range settings clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long the Lease holds without renewal (at least 3 s).
    pub duration: Duration,
    /// How long after its last renewal a leader may act: `duration - grace`, at least 1 s and
    /// always less than `duration`.
    pub act_for: Duration,
    /// How often the leader renews: three tries before it must stop acting.
    pub renew_every: Duration,
}

impl LeaseSettings {
    pub fn timing(&self) -> LeaseTiming {
        let duration = self.duration_seconds.max(3);
        let grace = self.grace_seconds.clamp(1, duration - 1);
        let act_for = duration - grace;
        let renew_every = (act_for / 3).max(1);
        LeaseTiming {
            duration: Duration::from_secs(duration),
            act_for: Duration::from_secs(act_for),
            renew_every: Duration::from_secs(renew_every),
        }
    }
}

impl LeaseTiming {
    /// kube-lease-manager renews `grace` seconds before expiry: this many for one renewal every
    /// [`LeaseTiming::renew_every`]. Always in `1..duration`, as the library requires.
    fn manager_grace_seconds(&self) -> u64 {
        self.duration
            .as_secs()
            .saturating_sub(self.renew_every.as_secs())
            .max(1)
    }
}

/// What one read of the Lease said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Observed {
    holder: Option<String>,
    renewed: Option<SystemTime>,
    duration: Option<Duration>,
}

impl Observed {
    fn from_lease(lease: Option<&Lease>) -> Self {
        let Some(spec) = lease.and_then(|lease| lease.spec.as_ref()) else {
            return Self::default();
        };
        Self {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renewed: spec.renew_time.as_ref().map(|time| time.0.into()),
            duration: spec
                .lease_duration_seconds
                .and_then(|seconds| u64::try_from(seconds).ok())
                .map(Duration::from_secs),
        }
    }

    fn held_by(&self, identity: &str) -> bool {
        self.holder.as_deref() == Some(identity)
    }

    /// Whether `identity` may try to take the Lease at `now`: nobody holds it, we do, or the
    /// holder's renewal has expired (judged by its `renewTime`, as kube-lease-manager does).
    fn free_for(&self, identity: &str, now: SystemTime) -> bool {
        if self.holder.is_none() || self.held_by(identity) {
            return true;
        }
        match (self.renewed, self.duration) {
            (Some(renewed), Some(duration)) => renewed
                .checked_add(duration)
                .is_none_or(|expiry| now > expiry),
            _ => true,
        }
    }
}

/// Whether a leader whose last known renewal is `last_renewal` may act at `now`.
fn may_act(last_renewal: SystemTime, now: SystemTime, timing: &LeaseTiming) -> bool {
    last_renewal
        .checked_add(timing.act_for)
        .is_some_and(|deadline| now < deadline)
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// No renewal seen for `duration - grace`: the Lease may soon pass to another replica.
    NotRenewed,
    /// The Lease names another replica.
    TakenOver,
    /// The elector itself ended (a bug); acting on is unsafe.
    ElectorGone,
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotRenewed => "the lease was not renewed in time",
            Self::TakenOver => "another replica holds the lease",
            Self::ElectorGone => "the leader elector stopped",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Standby,
    Leader,
    Lost(LossReason),
}

/// A held Lease. [`Leadership::lost`] resolves when this replica must stop acting;
/// [`Leadership::release`] hands the Lease over on shutdown.
pub struct Leadership {
    role: watch::Receiver<Role>,
    elector: AbortOnDrop,
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl Leadership {
    /// Resolves when this replica must stop acting, and says why.
    pub async fn lost(&mut self) -> LossReason {
        match self
            .role
            .wait_for(|role| matches!(role, Role::Lost(_)))
            .await
        {
            Ok(role) => match *role {
                Role::Lost(reason) => reason,
                Role::Standby | Role::Leader => LossReason::ElectorGone,
            },
            Err(_) => LossReason::ElectorGone,
        }
    }

    /// Stops renewing and clears the Lease if it still names this replica, so that a standby
    /// takes over at once instead of after the Lease expires. Call it only once nothing acts
    /// any more.
    pub async fn release(self) {
        let Leadership {
            mut elector,
            api,
            settings,
            ..
        } = self;
        // Stop renewing first, or a renewal could follow the release.
        elector.0.abort();
        let _ = (&mut elector.0).await;
        release(&api, &settings).await;
    }
}

/// Aborts the elector when the [`Leadership`] (or the [`acquire`] waiting for it) is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until this replica holds the lease and may act. Reading and taking the Lease is
/// retried forever (the apiserver may be away for a while); drop the future to give up, then
/// call [`release`] in case an attempt in flight took the Lease.
pub async fn acquire(
    client: Client,
    settings: &LeaseSettings,
) -> Result<Leadership, super::ControllerError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let (role_tx, mut role) = watch::channel(Role::Standby);
    info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "waiting for leadership");
    let elector = AbortOnDrop(tokio::spawn(elect(
        client,
        api.clone(),
        settings.clone(),
        role_tx,
    )));
    match role.wait_for(|role| *role != Role::Standby).await {
        Ok(role) if *role == Role::Leader => {}
        _ => return Err(super::ControllerError::LostLeadership),
    }
    Ok(Leadership {
        role,
        elector,
        api,
        settings: settings.clone(),
    })
}

/// Clears the Lease if, and only if, it still names this replica: the patch carries the
/// `resourceVersion` of the read that saw our name, so the server refuses it (409) if anything
/// changed in between. Logs the outcome; never fails.
pub async fn release(api: &Api<Lease>, settings: &LeaseSettings) {
    let released = tokio::time::timeout(CALL_TIMEOUT * 2, try_release(api, settings)).await;
    match released {
        Ok(Ok(true)) => {
            info!(lease = %settings.name, identity = %settings.identity, "released the lease")
        }
        Ok(Ok(false)) => debug!(lease = %settings.name, "not releasing the lease: not ours"),
        Ok(Err(error)) => {
            warn!(lease = %settings.name, %error, "could not release the lease; it expires on its own")
        }
        Err(_) => {
            warn!(lease = %settings.name, "releasing the lease timed out; it expires on its own")
        }
    }
}

async fn try_release(api: &Api<Lease>, settings: &LeaseSettings) -> Result<bool, kube::Error> {
    let params = PatchParams {
        field_manager: Some(super::FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    // A renewal that was in flight when the elector stopped may land first: read again.
    for _ in 0..3 {
        let Some(lease) = api.get_opt(&settings.name).await? else {
            return Ok(false);
        };
        if !Observed::from_lease(Some(&lease)).held_by(&settings.identity) {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {
                "holderIdentity": null,
                "acquireTime": null,
                "renewTime": null,
                "leaseDurationSeconds": null,
            },
        });
        match api
            .patch(&settings.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

/// The elector: standby until the Lease can be taken, then leader until it must stop.
async fn elect(
    client: Client,
    api: Api<Lease>,
    settings: LeaseSettings,
    role: watch::Sender<Role>,
) {
    let timing = settings.timing();
    loop {
        let (manager, renewed) = standby(&client, &api, &settings, &timing).await;
        match lead(&api, &manager, &settings, &timing, renewed, &role).await {
            Some(reason) => {
                let _ = role.send(Role::Lost(reason));
                return;
            }
            None => {
                debug!(identity = %settings.identity, "took the lease but never confirmed it; waiting again")
            }
        }
    }
}

async fn read(api: &Api<Lease>, name: &str) -> Option<Observed> {
    match tokio::time::timeout(CALL_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(lease)) => Some(Observed::from_lease(lease.as_ref())),
        Ok(Err(error)) => {
            debug!(%error, "cannot read the lease");
            None
        }
        Err(_) => {
            debug!(timeout = ?CALL_TIMEOUT, "reading the lease timed out");
            None
        }
    }
}

/// Reads the Lease every [`READ_EVERY`] until it looks free, then tries to take it. Returns the
/// manager that holds it and the latest `renewTime` known to be ours.
async fn standby(
    client: &Client,
    api: &Api<Lease>,
    settings: &LeaseSettings,
    timing: &LeaseTiming,
) -> (LeaseManager, SystemTime) {
    loop {
        let before = SystemTime::now();
        if let Some(observed) = read(api, &settings.name).await
            && observed.free_for(&settings.identity, SystemTime::now())
        {
            // Our own lock request writes a renewTime no earlier than `before`; a Lease that
            // already names us (a quick restart) keeps its own until the next renewal.
            let renewed = match observed.renewed {
                Some(renewed) if observed.held_by(&settings.identity) => renewed,
                _ => before,
            };
            match tokio::time::timeout(ATTEMPT_TIMEOUT, take(client, settings, timing)).await {
                Ok(Ok(Some(manager))) => return (manager, renewed),
                Ok(Ok(None)) => debug!("another replica took the lease first"),
                Ok(Err(error)) => warn!(%error, "cannot take the lease"),
                Err(_) => debug!(timeout = ?ATTEMPT_TIMEOUT, "taking the lease timed out"),
            }
        }
        tokio::time::sleep(READ_EVERY).await;
    }
}

/// One attempt with a fresh manager (its state is read from the server, so it acts on what we
/// just saw rather than sleeping until a stale expiry).
async fn take(
    client: &Client,
    settings: &LeaseSettings,
    timing: &LeaseTiming,
) -> kube_lease_manager::Result<Option<LeaseManager>> {
    let manager = LeaseManagerBuilder::new(client.clone(), &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(timing.duration.as_secs())
        .with_grace(timing.manager_grace_seconds())
        .build()
        .await?;
    Ok(manager.changed().await?.then_some(manager))
}

/// Renews through `manager` and watches the Lease. Returns why leadership ended, or `None` if
/// this replica took the Lease but never saw a fresh renewal naming it (back to standby).
async fn lead(
    api: &Api<Lease>,
    manager: &LeaseManager,
    settings: &LeaseSettings,
    timing: &LeaseTiming,
    mut last_renewal: SystemTime,
    role: &watch::Sender<Role>,
) -> Option<LossReason> {
    let identity = settings.identity.as_str();
    let took_at = Instant::now();
    let mut acting = false;
    let mut renewing: BoxFuture<'_, kube_lease_manager::Result<bool>> = manager.changed().boxed();
    // A read is one of the futures raced below, never awaited in a branch: a read that hangs
    // (partition) must not hold back the deadline.
    let read_later = || {
        async {
            tokio::time::sleep(READ_EVERY).await;
            read(api, &settings.name).await
        }
        .boxed()
    };
    let mut reading: BoxFuture<'_, Option<Observed>> = read(api, &settings.name).boxed();
    loop {
        let now = SystemTime::now();
        if may_act(last_renewal, now, timing) {
            if !acting {
                acting = true;
                let _ = role.send(Role::Leader);
                info!(%identity, "acquired leadership");
            }
        } else if acting {
            warn!(%identity, act_for = ?timing.act_for, "no lease renewal confirmed in time; stopping before the lease can pass to another replica");
            return Some(LossReason::NotRenewed);
        } else if took_at.elapsed() > timing.duration {
            return None;
        }
        let act_until = last_renewal
            .checked_add(timing.act_for)
            .and_then(|deadline| deadline.duration_since(now).ok())
            .unwrap_or_default();
        tokio::select! {
            renewed = &mut renewing => {
                renewing = match renewed {
                    Ok(true) => manager.changed().boxed(),
                    Ok(false) => {
                        warn!(%identity, "the lease passed to another replica");
                        return acting.then_some(LossReason::TakenOver);
                    }
                    Err(error) => {
                        warn!(%identity, %error, "renewing the lease failed; retrying");
                        async move {
                            tokio::time::sleep(RETRY_AFTER).await;
                            manager.changed().await
                        }
                        .boxed()
                    }
                };
            }
            observed = &mut reading => {
                reading = read_later();
                if let Some(observed) = observed {
                    if !observed.held_by(identity) {
                        warn!(%identity, holder = ?observed.holder, "the lease names another replica");
                        return acting.then_some(LossReason::TakenOver);
                    }
                    if let Some(renewed) = observed.renewed {
                        last_renewal = last_renewal.max(renewed);
                    }
                }
            }
            _ = tokio::time::sleep(act_until), if acting => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(duration_seconds: u64, grace_seconds: u64) -> LeaseSettings {
        LeaseSettings {
            name: "lease".into(),
            namespace: "ns".into(),
            identity: "me".into(),
            duration_seconds,
            grace_seconds,
        }
    }

    #[test]
    fn the_default_lease_acts_for_ten_seconds_and_renews_every_three() {
        let timing = settings(15, 5).timing();
        assert_eq!(timing.duration, Duration::from_secs(15));
        assert_eq!(timing.act_for, Duration::from_secs(10));
        assert_eq!(timing.renew_every, Duration::from_secs(3));
        assert_eq!(timing.manager_grace_seconds(), 12);
    }

    #[test]
    fn any_settings_stop_acting_before_the_lease_expires_and_renew_before_that() {
        for duration in 0..40 {
            for grace in 0..45 {
                let timing = settings(duration, grace).timing();
                assert!(
                    timing.act_for >= Duration::from_secs(1),
                    "{duration}/{grace}"
                );
                assert!(timing.act_for < timing.duration, "{duration}/{grace}");
                assert!(timing.renew_every < timing.act_for || timing.act_for.as_secs() == 1);
                let grace = timing.manager_grace_seconds();
                assert!(
                    grace >= 1 && grace < timing.duration.as_secs(),
                    "{duration}/{grace}"
                );
            }
        }
    }

    #[test]
    fn a_leader_may_act_until_duration_minus_grace_after_its_last_renewal() {
        let timing = settings(15, 5).timing();
        let renewed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |seconds: f64| renewed + Duration::from_secs_f64(seconds);
        assert!(may_act(renewed, at(0.0), &timing));
        assert!(may_act(renewed, at(9.9), &timing));
        assert!(!may_act(renewed, at(10.0), &timing));
        assert!(!may_act(renewed, at(15.0), &timing));
        // A clock that went back keeps it acting only up to the same deadline.
        assert!(may_act(renewed, renewed - Duration::from_secs(5), &timing));
    }

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let held = |holder: &str, age: u64| Observed {
            holder: Some(holder.into()),
            renewed: Some(now - Duration::from_secs(age)),
            duration: Some(Duration::from_secs(15)),
        };
        assert!(Observed::default().free_for("me", now));
        assert!(held("me", 1).free_for("me", now));
        assert!(!held("other", 1).free_for("me", now));
        assert!(!held("other", 15).free_for("me", now));
        assert!(held("other", 16).free_for("me", now));
        let without_renewal = Observed {
            renewed: None,
            ..held("other", 0)
        };
        assert!(without_renewal.free_for("me", now));
    }

    #[test]
    fn an_empty_holder_reads_as_none() {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "lease"},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 15}
        }))
        .unwrap();
        let observed = Observed::from_lease(Some(&lease));
        assert_eq!(observed.holder, None);
        assert_eq!(observed.duration, Some(Duration::from_secs(15)));
        assert!(observed.free_for("me", SystemTime::now()));
    }
}
