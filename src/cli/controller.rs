//! `dcs-task-operator controller`: flags -> [`ControllerConfig`].

use super::ControllerArgs;
use crate::controller::leader::LeaseSettings;
use crate::controller::{self, ControllerConfig, ControllerError};
use crate::dcs::{CredentialSet, CredentialsError, EndpointPolicy};
use crate::sim::SimError;

/// Invalid controller flags or environment.
#[derive(Debug, thiserror::Error)]
pub enum ControllerCommandError {
    #[error("--default-credentials: {0}")]
    DefaultCredentials(#[from] CredentialsError),
    #[error("--sim: {0}")]
    Scenario(#[from] SimError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

pub async fn run(args: ControllerArgs) -> Result<(), ControllerCommandError> {
    controller::run(config(args)?).await?;
    Ok(())
}

/// Turns flags into configuration; environment credentials are read only when asked for.
pub fn config(args: ControllerArgs) -> Result<ControllerConfig, ControllerCommandError> {
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("dcs-task-operator-{}", std::process::id()));
    let default_credentials = if args.default_credentials {
        Some(CredentialSet::from_env(|name| std::env::var(name).ok())?)
    } else {
        None
    };
    let simulator = args
        .sim
        .as_deref()
        .map(super::scenario_from_flag)
        .transpose()?;
    Ok(ControllerConfig {
        watch_namespace: Some(args.watch_namespace).filter(|ns| !ns.is_empty()),
        endpoints: EndpointPolicy::new(args.allow_endpoints),
        rate_limit: args.rate_limit,
        concurrency: args.concurrency,
        default_credentials,
        leader_election: args.leader_elect.then(|| LeaseSettings {
            name: args.lease_name,
            namespace: args.lease_namespace,
            identity: identity.clone(),
            duration_seconds: 15,
            grace_seconds: 5,
        }),
        listen: args.listen,
        simulator,
        identity,
    })
}
