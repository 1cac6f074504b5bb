//! `dcs-task-operator controller`: flags -> [`ControllerConfig`].

use super::ControllerArgs;
use crate::controller::credentials::{DefaultCredentials, NamespaceScope};
use crate::controller::leader::LeaseSettings;
use crate::controller::{self, ControllerConfig, ControllerError, TargetOverride};
use crate::dcs::{CredentialSet, CredentialsError, EndpointError, EndpointPolicy};
use crate::sim::{self, SimError};
use tracing::info;

/// Invalid controller flags or environment.
#[derive(Debug, thiserror::Error)]
pub enum ControllerCommandError {
    #[error("--default-credentials: {0}")]
    DefaultCredentials(#[from] CredentialsError),
    #[error(
        "--default-credentials needs --default-credentials-namespaces: list the namespaces whose queries may use them (or `*` for all)"
    )]
    DefaultCredentialsUnscoped,
    #[error(
        "--default-credentials-namespaces and --default-credentials-any-project need --default-credentials"
    )]
    DefaultCredentialsScopeWithout,
    #[error("--iam-endpoint / HUAWEICLOUD_SDK_IAM_ENDPOINT: {0}")]
    IamEndpoint(EndpointError),
    #[error("--sim: {0}")]
    Scenario(#[from] SimError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

pub async fn run(args: ControllerArgs) -> Result<(), ControllerCommandError> {
    let scenario = args
        .sim
        .as_deref()
        .map(super::scenario_from_flag)
        .transpose()?;
    let mut config = config(args)?;
    // `--sim`: the simulator runs in this process for as long as the controller does, and
    // every query is sent to it with its demo credentials.
    let _simulator = match scenario {
        Some(scenario) => {
            let running = sim::serve_on_loopback(scenario).await?;
            info!(url = %running.base_url(), "simulator mode: every query goes to the built-in simulator");
            config.target_override = Some(TargetOverride {
                endpoint: running.endpoint(),
                credentials: sim::demo_credentials(),
            });
            Some(running)
        }
        None => None,
    };
    controller::run(config).await?;
    Ok(())
}

/// Turns flags into configuration; environment credentials are read only when asked for.
pub fn config(args: ControllerArgs) -> Result<ControllerConfig, ControllerCommandError> {
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("dcs-task-operator-{}", std::process::id()));
    let default_credentials = match (
        args.default_credentials,
        args.default_credentials_namespaces.is_empty(),
    ) {
        (true, true) => return Err(ControllerCommandError::DefaultCredentialsUnscoped),
        (true, false) => Some(DefaultCredentials {
            set: CredentialSet::from_env(|name| std::env::var(name).ok())?,
            namespaces: NamespaceScope::from_list(&args.default_credentials_namespaces),
            any_project: args.default_credentials_any_project,
        }),
        (false, empty) => {
            if !empty || args.default_credentials_any_project {
                return Err(ControllerCommandError::DefaultCredentialsScopeWithout);
            }
            None
        }
    };
    let endpoints = EndpointPolicy::new(args.allow_endpoints);
    let iam_endpoint = endpoints
        .resolve_iam(args.iam_endpoint.as_deref())
        .map_err(ControllerCommandError::IamEndpoint)?;
    Ok(ControllerConfig {
        watch_namespace: Some(args.watch_namespace).filter(|ns| !ns.is_empty()),
        selector: args.selector.filter(|selector| !selector.trim().is_empty()),
        endpoints,
        iam_endpoint,
        rate_limit: args.rate_limit,
        account_rate_limit: args.account_rate_limit,
        concurrency: args.concurrency,
        upstream_sharing: args.upstream_sharing,
        max_body_bytes: args.max_body_bytes,
        request_timeout: args.request_timeout,
        default_credentials,
        leader_election: args.leader_elect.then(|| LeaseSettings {
            name: args.lease_name,
            namespace: args.lease_namespace,
            identity: identity.clone(),
            duration_seconds: 15,
            grace_seconds: 5,
        }),
        listen: args.listen,
        target_override: None,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn controller_args(flags: &[&str]) -> ControllerArgs {
        let mut argv = vec!["dcs-task-operator", "controller"];
        argv.extend_from_slice(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Controller(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_iam_endpoint_defaults_to_the_global_one_and_overrides_must_be_allowed() {
        let default = config(controller_args(&[])).unwrap();
        assert_eq!(
            default.iam_endpoint.as_str(),
            "https://iam.myhuaweicloud.com"
        );
        let refused = config(controller_args(&["--iam-endpoint=http://127.0.0.1:9"])).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("--allow-endpoint http://127.0.0.1:9"),
            "{refused}"
        );
        let allowed = config(controller_args(&[
            "--iam-endpoint=http://127.0.0.1:9",
            "--allow-endpoint=http://127.0.0.1:*",
        ]))
        .unwrap();
        assert_eq!(allowed.iam_endpoint.as_str(), "http://127.0.0.1:9");
    }

    #[test]
    fn default_credentials_must_name_the_namespaces_that_may_use_them() {
        let error = config(controller_args(&["--default-credentials"])).unwrap_err();
        assert!(matches!(
            error,
            ControllerCommandError::DefaultCredentialsUnscoped
        ));
        assert!(
            error
                .to_string()
                .contains("--default-credentials-namespaces")
        );
        for flags in [
            &["--default-credentials-namespaces=a,b"][..],
            &["--default-credentials-any-project"][..],
        ] {
            assert!(matches!(
                config(controller_args(flags)),
                Err(ControllerCommandError::DefaultCredentialsScopeWithout)
            ));
        }
        let parsed = controller_args(&[
            "--default-credentials",
            "--default-credentials-namespaces=team-a, team-b",
            "--default-credentials-namespaces=ops",
        ]);
        assert_eq!(
            NamespaceScope::from_list(&parsed.default_credentials_namespaces),
            NamespaceScope::Only(
                ["team-a", "team-b", "ops"]
                    .map(String::from)
                    .into_iter()
                    .collect()
            )
        );
    }
}
