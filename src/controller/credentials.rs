//! Credentials for a query: the labelled Secret it names, read from the watch cache (never a
//! GET per poll), or the operator's defaults where a namespace may use them.
//!
//! Only the Secret in the query's own namespace can be used, so a query cannot borrow another
//! tenant's credentials, and only Secrets labelled [`CREDENTIALS_LABEL`]`=true` are watched, so
//! the operator never holds every Secret of the cluster in memory. Messages name the Secret and
//! key, never a value.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::DcsTaskQuery;
use crate::dcs::{CredentialSet, Credentials, SecretString};
use crate::query::CredentialSource;

/// Keys read from the Secret.
pub const ACCESS_KEY: &str = "accessKey";
pub const SECRET_KEY: &str = "secretKey";
pub const SECURITY_TOKEN: &str = "securityToken";
pub const PROJECT_ID: &str = "projectId";

/// The keys the cache keeps; everything else in a Secret is dropped on arrival.
pub const KEPT_KEYS: [&str; 4] = [ACCESS_KEY, SECRET_KEY, SECURITY_TOKEN, PROJECT_ID];

/// The label a Secret needs before the operator will see it; its value must be `"true"`.
pub const CREDENTIALS_LABEL: &str = "dcs.hwcloud.dev/credentials";

/// The label selector of the Secret watch.
pub fn credentials_selector() -> String {
    format!("{CREDENTIALS_LABEL}=true")
}

/// Why a query has no usable credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretCredentialsError {
    #[error("Secret {namespace}/{name} (spec.credentialsSecretRef.name) not found")]
    NotFound { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} (spec.credentialsSecretRef.name) lacks the label {CREDENTIALS_LABEL}=true: the operator only reads labelled Secrets; run `kubectl label secret -n {namespace} {name} {CREDENTIALS_LABEL}=true`"
    )]
    MissingLabel { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} has no key `{key}` (expected keys: accessKey, secretKey, optional securityToken and projectId)"
    )]
    MissingKey {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error("Secret {namespace}/{name} key `{key}` is not valid UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error(
        "spec.credentialsSecretRef is required: the operator runs without --default-credentials"
    )]
    NoSecretRef,
    #[error(
        "spec.credentialsSecretRef is required in namespace {namespace}: the operator's default credentials serve only the namespaces in --default-credentials-namespaces"
    )]
    DefaultsNotForNamespace { namespace: String },
    #[error(
        "the operator cannot read credentials Secrets yet: its watch of Secrets labelled {CREDENTIALS_LABEL}=true has not synced ({detail}); check the operator's RBAC (list and watch on secrets)"
    )]
    CacheNotSynced { detail: String },
}

impl SecretCredentialsError {
    /// Errors the operator's own state causes (not the tenant's Secret): retried soon.
    pub fn is_operator_side(&self) -> bool {
        matches!(self, SecretCredentialsError::CacheNotSynced { .. })
    }
}

/// Which namespaces may use the operator's default credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// Every namespace (`--default-credentials-namespaces='*'`).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl NamespaceScope {
    /// From the flag's list; `*` anywhere in it means every namespace.
    pub fn from_list(names: &[String]) -> Self {
        if names.iter().any(|name| name.trim() == "*") {
            NamespaceScope::All
        } else {
            NamespaceScope::Only(
                names
                    .iter()
                    .map(|name| name.trim().to_string())
                    .filter(|name| !name.is_empty())
                    .collect(),
            )
        }
    }

    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            NamespaceScope::All => true,
            NamespaceScope::Only(names) => names.contains(namespace),
        }
    }
}

/// The operator-wide credentials and who may use them.
#[derive(Debug, Clone)]
pub struct DefaultCredentials {
    pub set: CredentialSet,
    pub namespaces: NamespaceScope,
    /// `spec.projectId` may point the defaults at another project.
    pub any_project: bool,
}

/// The Secret cache and whether its watch is healthy, for reconciles and `/readyz`.
#[derive(Default)]
pub struct SecretCacheHealth {
    synced: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl SecretCacheHealth {
    /// The watch delivered something: it lists and watches fine.
    pub fn record_ok(&self) {
        self.synced.store(true, Ordering::SeqCst);
        if let Ok(mut error) = self.last_error.lock() {
            *error = None;
        }
    }

    /// The watch failed (e.g. 403 for missing RBAC).
    pub fn record_error(&self, error: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(crate::text::truncate_bytes(error, 512).into_owned());
        }
    }

    /// `None` when healthy; otherwise why not.
    pub fn problem(&self, store_ready: bool) -> Option<String> {
        let last_error = self.last_error.lock().ok().and_then(|e| e.clone());
        match (
            store_ready && self.synced.load(Ordering::SeqCst),
            last_error,
        ) {
            (_, Some(error)) => Some(error),
            (false, None) => Some("the first list has not completed".to_string()),
            (true, None) => None,
        }
    }
}

/// Strips a Secret to the keys the operator reads, before it enters the cache.
pub fn keep_only_credential_keys(secret: &mut Secret) {
    secret.metadata.managed_fields = None;
    secret.metadata.annotations = None;
    if let Some(data) = secret.data.as_mut() {
        data.retain(|key, _| KEPT_KEYS.contains(&key.as_str()));
    }
    secret.string_data = None;
}

/// Resolves the credentials for `query`: its Secret, or the operator-wide defaults where its
/// namespace may use them. Also says where they came from, for the project rules.
pub fn resolve(
    query: &DcsTaskQuery,
    secrets: &Store<Secret>,
    defaults: Option<&DefaultCredentials>,
) -> Result<(CredentialSet, CredentialSource), SecretCredentialsError> {
    let namespace = query.metadata.namespace.clone().unwrap_or_default();
    let Some(reference) = &query.spec.credentials_secret_ref else {
        let defaults = defaults.ok_or(SecretCredentialsError::NoSecretRef)?;
        if !defaults.namespaces.contains(&namespace) {
            return Err(SecretCredentialsError::DefaultsNotForNamespace { namespace });
        }
        return Ok((
            defaults.set.clone(),
            CredentialSource::OperatorDefaults {
                any_project: defaults.any_project,
            },
        ));
    };
    let name = reference.name.clone();
    let secret = secrets
        .get(&ObjectRef::new(&name).within(&namespace))
        .ok_or_else(|| SecretCredentialsError::NotFound {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    let read = |key: &'static str| -> Result<Option<String>, SecretCredentialsError> {
        let Some(bytes) = secret.data.as_ref().and_then(|data| data.get(key)) else {
            return Ok(None);
        };
        String::from_utf8(bytes.0.clone())
            .map(|text| Some(text.trim().to_string()).filter(|t| !t.is_empty()))
            .map_err(|_| SecretCredentialsError::NotText {
                namespace: namespace.clone(),
                name: name.clone(),
                key,
            })
    };
    let required = |key: &'static str| {
        read(key)?.ok_or_else(|| SecretCredentialsError::MissingKey {
            namespace: namespace.clone(),
            name: name.clone(),
            key,
        })
    };
    let set = CredentialSet {
        credentials: Credentials::AkSk {
            access_key: required(ACCESS_KEY)?,
            secret_key: SecretString::new(required(SECRET_KEY)?),
            security_token: read(SECURITY_TOKEN)?.map(SecretString::new),
        },
        project_id: read(PROJECT_ID)?,
        region: None,
    };
    Ok((
        set,
        CredentialSource::Secret {
            namespace: namespace.clone(),
            name: name.clone(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use std::collections::BTreeMap;

    fn secret(namespace: &str, name: &str, pairs: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(namespace.into());
        s.data = Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        );
        s
    }

    fn store(secrets: Vec<Secret>) -> Store<Secret> {
        let mut writer: Writer<Secret> = Writer::default();
        let reader = writer.as_reader();
        writer.apply_watcher_event(&Event::Init);
        for s in secrets {
            writer.apply_watcher_event(&Event::InitApply(s));
        }
        writer.apply_watcher_event(&Event::InitDone);
        reader
    }

    fn query(namespace: &str, secret: Option<&str>) -> DcsTaskQuery {
        let mut spec = serde_json::json!({"region": "cn-north-4"});
        if let Some(name) = secret {
            spec["credentialsSecretRef"] = serde_json::json!({"name": name});
        }
        let mut q = DcsTaskQuery::new("q", serde_json::from_value(spec).unwrap());
        q.metadata.namespace = Some(namespace.into());
        q
    }

    #[test]
    fn reads_the_secret_in_the_same_namespace_only() {
        let secrets = store(vec![
            secret(
                "team-a",
                "dcs",
                &[("accessKey", "AK"), ("secretKey", "SK"), ("projectId", "p")],
            ),
            secret(
                "team-b",
                "other",
                &[("accessKey", "AK2"), ("secretKey", "SK2")],
            ),
        ]);
        let (set, source) = resolve(&query("team-a", Some("dcs")), &secrets, None).unwrap();
        assert_eq!(
            source,
            CredentialSource::Secret {
                namespace: "team-a".into(),
                name: "dcs".into()
            }
        );
        assert_eq!(set.credentials, Credentials::ak_sk("AK", "SK"));
        assert_eq!(set.project_id.as_deref(), Some("p"));
        let error = resolve(&query("team-a", Some("other")), &secrets, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Secret team-a/other (spec.credentialsSecretRef.name) not found"
        );
    }

    #[test]
    fn missing_keys_and_defaults() {
        let secrets = store(vec![secret("ns", "half", &[("accessKey", "AK")])]);
        let error = resolve(&query("ns", Some("half")), &secrets, None).unwrap_err();
        assert!(
            error.to_string().contains("has no key `secretKey`"),
            "{error}"
        );
        assert_eq!(
            resolve(&query("ns", None), &secrets, None).unwrap_err(),
            SecretCredentialsError::NoSecretRef
        );
        let set = CredentialSet {
            credentials: Credentials::ak_sk("D", "S"),
            project_id: None,
            region: None,
        };
        let defaults = DefaultCredentials {
            set: set.clone(),
            namespaces: NamespaceScope::from_list(&["ns".to_string(), " ops ".to_string()]),
            any_project: false,
        };
        assert_eq!(
            resolve(&query("ns", None), &secrets, Some(&defaults)).unwrap(),
            (
                set.clone(),
                CredentialSource::OperatorDefaults { any_project: false }
            )
        );
        assert!(resolve(&query("ops", None), &secrets, Some(&defaults)).is_ok());
        let refused = resolve(&query("tenant", None), &secrets, Some(&defaults)).unwrap_err();
        assert_eq!(
            refused,
            SecretCredentialsError::DefaultsNotForNamespace {
                namespace: "tenant".into()
            }
        );
        assert!(
            refused
                .to_string()
                .contains("--default-credentials-namespaces")
        );
        let everywhere = DefaultCredentials {
            namespaces: NamespaceScope::from_list(&["*".to_string()]),
            any_project: true,
            ..defaults
        };
        assert_eq!(
            resolve(&query("tenant", None), &secrets, Some(&everywhere)).unwrap(),
            (
                set,
                CredentialSource::OperatorDefaults { any_project: true }
            )
        );
    }

    #[test]
    fn cache_health_reports_errors_until_the_watch_recovers() {
        let health = SecretCacheHealth::default();
        assert!(health.problem(false).is_some());
        health.record_error("secrets is forbidden: User cannot list resource secrets");
        assert!(health.problem(true).unwrap().contains("forbidden"));
        health.record_ok();
        assert_eq!(health.problem(true), None);
        assert!(health.problem(false).is_some());
    }

    #[test]
    fn the_cache_keeps_only_credential_keys() {
        let mut s = secret("ns", "x", &[("accessKey", "AK"), ("tls.key", "PRIVATE")]);
        keep_only_credential_keys(&mut s);
        let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, vec!["accessKey"]);
    }
}
