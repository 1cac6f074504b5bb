//! Leader election with a `coordination.k8s.io` Lease, so that two replicas never both write.
//!
//! The controller starts only once this replica holds the lease, and exits when it loses it:
//! a fresh process (restarted by its Deployment) is simpler and safer than stopping and
//! restarting watches and in-flight reconciles in place.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, Result as LeaseResult};
use tokio::sync::watch;
use tracing::info;

/// Where the lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// Seconds a leader holds the lease without renewing.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the leader renews.
    pub grace_seconds: u64,
}

/// A held lease; [`Leadership::lost`] resolves when it is gone.
pub struct Leadership {
    channel: watch::Receiver<bool>,
    _task: tokio::task::JoinHandle<LeaseResult<kube_lease_manager::LeaseManager>>,
}

impl Leadership {
    /// Resolves when this replica no longer holds the lease.
    pub async fn lost(&mut self) {
        loop {
            if !*self.channel.borrow_and_update() {
                return;
            }
            if self.channel.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: Client, settings: &LeaseSettings) -> LeaseResult<Leadership> {
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration_seconds)
        .with_grace(settings.grace_seconds)
        .build()
        .await?;
    let (mut channel, task) = manager.watch().await;
    info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "waiting for leadership");
    while !*channel.borrow_and_update() {
        if channel.changed().await.is_err() {
            break;
        }
    }
    info!(identity = %settings.identity, "acquired leadership");
    Ok(Leadership {
        channel,
        _task: task,
    })
}
