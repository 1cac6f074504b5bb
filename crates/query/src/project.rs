//! Which project a query runs in, and whether it may: one rule for the controller and the CLI.
//!
//! The project id becomes part of the request path (`/v2/{project_id}/tasks`) and of the signed
//! request, so every source is held to the same pattern as `spec.projectId`: a value such as
//! `../x` from a Secret or the environment must never reach the wire (and burn one of the five
//! attempts before an access key locks). Operator-wide credentials serve the project they were
//! configured for; a tenant's `spec.projectId` may point them elsewhere only when the operator
//! allows it.

use std::sync::LazyLock;

use regex::Regex;

use crate::api::patterns;

/// Where the credentials (and the project id that came with them) were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// The query's own Secret.
    Secret { namespace: String, name: String },
    /// The CLI's environment (`HUAWEICLOUD_SDK_PROJECT_ID`, `HW_PROJECT_ID`).
    Environment,
    /// The operator's `--default-credentials`.
    OperatorDefaults {
        /// `--default-credentials-any-project`: `spec.projectId` may choose another project.
        any_project: bool,
    },
    /// Credentials the command line fixed for every query (`--sim`: the simulator's demo
    /// credentials).
    Override,
}

impl CredentialSource {
    /// Where a project id from this source was read, for messages.
    fn project_field(&self) -> String {
        match self {
            CredentialSource::Secret { namespace, name } => {
                format!("Secret {namespace}/{name} key `projectId`")
            }
            CredentialSource::Environment => {
                "HUAWEICLOUD_SDK_PROJECT_ID / HW_PROJECT_ID".to_string()
            }
            CredentialSource::OperatorDefaults { .. } => {
                "the operator's default credentials (projectId)".to_string()
            }
            CredentialSource::Override => "the credentials the command line set".to_string(),
        }
    }
}

/// Why no project could be chosen. Each message names the field or source and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "spec.projectId is not set and {} carries none: set spec.projectId{}",
        .origin.project_field(),
        match .origin {
            CredentialSource::Secret { namespace, name } =>
                format!(" or the `projectId` key of Secret {namespace}/{name}"),
            CredentialSource::Environment => " or HUAWEICLOUD_SDK_PROJECT_ID".to_string(),
            _ => String::new(),
        }
    )]
    Missing { origin: CredentialSource },
    #[error(
        "{}: must be 1-64 letters, digits, '-' or '_' (got {} characters that are not a project id); fix the value where it is stored",
        .origin.project_field(),
        .length
    )]
    Invalid {
        origin: CredentialSource,
        /// The length only: the value may be garbage that should not be echoed.
        length: usize,
    },
    #[error(
        "spec.projectId {requested:?} is not allowed with the operator's default credentials, which serve {}: remove spec.projectId, or reference a Secret of your own in spec.credentialsSecretRef",
        .configured.as_deref().map_or_else(|| "no project of their own".to_string(), |p| format!("project {p:?}"))
    )]
    OtherProjectRefused {
        requested: String,
        configured: Option<String>,
    },
}

static PROJECT_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(patterns::PROJECT_ID).expect("the project id pattern is a valid regex")
});

/// The project to query: `spec.projectId` when set (validated by the spec rules), else the one
/// that came with the credentials, held to the same pattern. With operator defaults,
/// `spec.projectId` must equal their project unless `any_project` is on.
///
/// `Ok(None)` when no source names one: the caller then discovers it through IAM from the
/// region, as the SDKs do (and reports [`ProjectError::Missing`] only when it cannot).
pub fn choose_project(
    spec_project: Option<&str>,
    credentials_project: Option<&str>,
    source: &CredentialSource,
) -> Result<Option<String>, ProjectError> {
    if let Some(project) = credentials_project
        && !PROJECT_ID.is_match(project)
    {
        return Err(ProjectError::Invalid {
            origin: source.clone(),
            length: project.chars().count(),
        });
    }
    if let (Some(requested), CredentialSource::OperatorDefaults { any_project: false }) =
        (spec_project, source)
        && Some(requested) != credentials_project
    {
        return Err(ProjectError::OtherProjectRefused {
            requested: requested.to_string(),
            configured: credentials_project.map(str::to_string),
        });
    }
    Ok(spec_project.or(credentials_project).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> CredentialSource {
        CredentialSource::Secret {
            namespace: "team-a".into(),
            name: "dcs".into(),
        }
    }

    #[test]
    fn spec_wins_over_the_credentials_project() {
        assert_eq!(
            choose_project(Some("p1"), Some("p2"), &secret()),
            Ok(Some("p1".into()))
        );
        assert_eq!(
            choose_project(None, Some("p2"), &secret()),
            Ok(Some("p2".into()))
        );
        assert_eq!(
            choose_project(None, Some("p2"), &CredentialSource::Environment),
            Ok(Some("p2".into()))
        );
    }

    #[test]
    fn a_project_from_a_secret_or_the_environment_is_held_to_the_spec_pattern() {
        for bad in ["../x", "a/b", "p?x=1", "", "p#", &"a".repeat(65)] {
            let error = choose_project(None, Some(bad), &secret()).unwrap_err();
            assert_eq!(
                error,
                ProjectError::Invalid {
                    origin: secret(),
                    length: bad.chars().count()
                }
            );
            let message = error.to_string();
            assert!(
                message.starts_with("Secret team-a/dcs key `projectId`: must be"),
                "{message}"
            );
            assert!(bad.is_empty() || !message.contains(bad), "{message}");
            assert!(matches!(
                choose_project(None, Some(bad), &CredentialSource::Environment),
                Err(ProjectError::Invalid { .. })
            ));
        }
        // A bad stored value is refused even when spec.projectId would win: it is garbage.
        assert!(choose_project(Some("p1"), Some("../x"), &secret()).is_err());
    }

    #[test]
    fn operator_defaults_serve_their_own_project_only_unless_allowed() {
        let strict = CredentialSource::OperatorDefaults { any_project: false };
        let open = CredentialSource::OperatorDefaults { any_project: true };
        assert_eq!(
            choose_project(None, Some("home"), &strict),
            Ok(Some("home".into()))
        );
        assert_eq!(
            choose_project(Some("home"), Some("home"), &strict),
            Ok(Some("home".into()))
        );
        let refused = choose_project(Some("victim"), Some("home"), &strict).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("spec.projectId \"victim\" is not allowed"),
            "{refused}"
        );
        assert!(choose_project(Some("victim"), None, &strict).is_err());
        assert_eq!(
            choose_project(Some("other"), Some("home"), &open),
            Ok(Some("other".into()))
        );
        assert_eq!(
            choose_project(Some("other"), None, &open),
            Ok(Some("other".into()))
        );
    }

    #[test]
    fn no_source_means_discovery_and_a_missing_project_says_where_to_set_it() {
        assert_eq!(choose_project(None, None, &secret()), Ok(None));
        assert_eq!(
            choose_project(None, None, &CredentialSource::Environment),
            Ok(None)
        );
        let strict = CredentialSource::OperatorDefaults { any_project: false };
        assert_eq!(choose_project(None, None, &strict), Ok(None));
        let message = ProjectError::Missing { origin: secret() }.to_string();
        assert_eq!(
            message,
            "spec.projectId is not set and Secret team-a/dcs key `projectId` carries none: set spec.projectId or the `projectId` key of Secret team-a/dcs"
        );
    }
}
