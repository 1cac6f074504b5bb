//! Credentials from the Secret a query names, read from the watch cache (never a GET per poll).
//!
//! Only the Secret in the query's own namespace can be used: a query cannot borrow another
//! tenant's credentials. Messages name the Secret and key, never a value.

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::DcsTaskQuery;
use crate::dcs::{CredentialSet, Credentials, SecretString};

/// Keys read from the Secret.
pub const ACCESS_KEY: &str = "accessKey";
pub const SECRET_KEY: &str = "secretKey";
pub const SECURITY_TOKEN: &str = "securityToken";
pub const PROJECT_ID: &str = "projectId";

/// The keys the cache keeps; everything else in a Secret is dropped on arrival.
pub const KEPT_KEYS: [&str; 4] = [ACCESS_KEY, SECRET_KEY, SECURITY_TOKEN, PROJECT_ID];

/// Why a query has no usable credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretCredentialsError {
    #[error("Secret {namespace}/{name} (spec.credentialsSecretRef.name) not found")]
    NotFound { namespace: String, name: String },
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

/// Resolves the credentials for `query`: its Secret, or the operator-wide defaults.
pub fn resolve(
    query: &DcsTaskQuery,
    secrets: &Store<Secret>,
    defaults: Option<&CredentialSet>,
) -> Result<CredentialSet, SecretCredentialsError> {
    let namespace = query.metadata.namespace.clone().unwrap_or_default();
    let Some(reference) = &query.spec.credentials_secret_ref else {
        return defaults.cloned().ok_or(SecretCredentialsError::NoSecretRef);
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
    Ok(CredentialSet {
        credentials: Credentials::AkSk {
            access_key: required(ACCESS_KEY)?,
            secret_key: SecretString::new(required(SECRET_KEY)?),
            security_token: read(SECURITY_TOKEN)?.map(SecretString::new),
        },
        project_id: read(PROJECT_ID)?,
        region: None,
    })
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
        let set = resolve(&query("team-a", Some("dcs")), &secrets, None).unwrap();
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
        let defaults = CredentialSet {
            credentials: Credentials::ak_sk("D", "S"),
            project_id: None,
            region: None,
        };
        assert_eq!(
            resolve(&query("ns", None), &secrets, Some(&defaults)).unwrap(),
            defaults
        );
    }

    #[test]
    fn the_cache_keeps_only_credential_keys() {
        let mut s = secret("ns", "x", &[("accessKey", "AK"), ("tls.key", "PRIVATE")]);
        keep_only_credential_keys(&mut s);
        let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, vec!["accessKey"]);
    }
}
