//! Credentials for the DCS API: permanent or temporary AK/SK, or an IAM token.
//!
//! Secret material lives in [`SecretString`], whose `Debug` and `Display` never show the value,
//! so a credential can be logged, put in an error or panic without leaking.

use std::fmt;
use std::sync::LazyLock;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The key of [`Credentials::fingerprint`]: random, drawn once per process, never stored or shown.
/// 64 bytes, the block size of SHA-256, so HMAC uses it as it is.
static FINGERPRINT_KEY: LazyLock<[u8; 64]> = LazyLock::new(|| {
    let mut key = [0u8; 64];
    rand::fill(&mut key[..]);
    key
});

/// A secret value. Only [`SecretString::expose`] reveals it, at the point of use.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing or a header value. Never for logs or messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// SDK-HMAC-SHA256 signing; `security_token` is set for temporary (STS) keys.
    AkSk {
        access_key: String,
        secret_key: SecretString,
        security_token: Option<SecretString>,
    },
    /// `X-Auth-Token` from IAM (`POST /v3/auth/tokens`, project-scoped, valid 24 h).
    Token(SecretString),
}

impl Credentials {
    pub fn ak_sk(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials::AkSk {
            access_key: access_key.into(),
            secret_key: SecretString::new(secret_key),
            security_token: None,
        }
    }

    /// A one-way identifier of the credential, for request keys (which objects may share one
    /// upstream feed) and in-memory maps: 64 hex characters, the full HMAC-SHA256 of every part
    /// of the credential, keyed with a random key drawn once per process.
    ///
    /// Two credentials have equal fingerprints exactly when they are the same credential: the
    /// variant, access key, secret key and security token are each length-prefixed before they are
    /// hashed, so no two credentials collide by splitting the same characters differently (AK
    /// `ab` + SK `c` against AK `a` + SK `bc`), and a temporary key never matches its permanent
    /// pair. The value is meaningful only inside this process: it keys in-memory sharing and must
    /// never be a stable, unsalted hash of the SK, which anyone who sees it (a log line, a metrics
    /// label, a dump) could test guessed or leaked secret keys against offline. Do not persist
    /// it or compare it across processes.
    pub fn fingerprint(&self) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*FINGERPRINT_KEY).into());
        let mut field = |bytes: &[u8]| {
            // usize always fits in u64 on the platforms Rust supports; saturate regardless.
            let length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            mac.update(&length.to_be_bytes());
            mac.update(bytes);
        };
        match self {
            Credentials::AkSk {
                access_key,
                secret_key,
                security_token,
            } => {
                field(b"aksk");
                field(access_key.as_bytes());
                field(secret_key.expose().as_bytes());
                match security_token {
                    Some(token) => {
                        field(b"temporary");
                        field(token.expose().as_bytes());
                    }
                    None => field(b"permanent"),
                }
            }
            Credentials::Token(token) => {
                field(b"token");
                field(token.expose().as_bytes());
            }
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A label safe to show to users: the access key's first four characters, or `token`.
    pub fn public_label(&self) -> String {
        match self {
            Credentials::AkSk { access_key, .. } => {
                let prefix: String = access_key.chars().take(4).collect();
                format!("AK {prefix}…")
            }
            Credentials::Token(_) => "IAM token".to_string(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::AkSk { security_token, .. } => f
                .debug_struct("Credentials::AkSk")
                .field("access_key", &self.public_label())
                .field("secret_key", &"<redacted>")
                .field("temporary", &security_token.is_some())
                .finish(),
            Credentials::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
        }
    }
}

/// Credentials plus the project and region that came with them (env, Secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSet {
    pub credentials: Credentials,
    pub project_id: Option<String>,
    pub region: Option<String>,
}

/// Why credentials could not be assembled. Names the variable or key, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("{present} is set but {missing} is not: set both (or neither)")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    #[error(
        "no credentials found: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or HW_ACCESS_KEY and HW_SECRET_KEY, or HW_AUTH_TOKEN)"
    )]
    NotFound,
}

/// The environment variable names of one convention.
struct EnvNames {
    access_key: &'static str,
    secret_key: &'static str,
    security_token: &'static str,
    project_id: &'static str,
}

/// The official SDKs' variables first, then Terraform's.
const CONVENTIONS: [EnvNames; 2] = [
    EnvNames {
        access_key: "HUAWEICLOUD_SDK_AK",
        secret_key: "HUAWEICLOUD_SDK_SK",
        security_token: "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        project_id: "HUAWEICLOUD_SDK_PROJECT_ID",
    },
    EnvNames {
        access_key: "HW_ACCESS_KEY",
        secret_key: "HW_SECRET_KEY",
        security_token: "HW_SECURITY_TOKEN",
        project_id: "HW_PROJECT_ID",
    },
];

impl CredentialSet {
    /// Reads credentials from environment variables through `lookup` (usually
    /// `|name| std::env::var(name).ok()`), the SDK's names taking precedence over Terraform's.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let region = get("HW_REGION_NAME");
        for names in &CONVENTIONS {
            match (get(names.access_key), get(names.secret_key)) {
                (Some(access_key), Some(secret_key)) => {
                    return Ok(CredentialSet {
                        credentials: Credentials::AkSk {
                            access_key,
                            secret_key: SecretString::new(secret_key),
                            security_token: get(names.security_token).map(SecretString::new),
                        },
                        project_id: get(names.project_id),
                        region,
                    });
                }
                (Some(_), None) => {
                    return Err(CredentialsError::Incomplete {
                        present: names.access_key,
                        missing: names.secret_key,
                    });
                }
                (None, Some(_)) => {
                    return Err(CredentialsError::Incomplete {
                        present: names.secret_key,
                        missing: names.access_key,
                    });
                }
                (None, None) => {}
            }
        }
        if let Some(token) = get("HW_AUTH_TOKEN") {
            return Ok(CredentialSet {
                credentials: Credentials::Token(SecretString::new(token)),
                project_id: get("HW_PROJECT_ID").or_else(|| get("HUAWEICLOUD_SDK_PROJECT_ID")),
                region,
            });
        }
        Err(CredentialsError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = Credentials::AkSk {
            access_key: "AKIDEXAMPLE123".into(),
            secret_key: SecretString::new("very-secret-sk"),
            security_token: Some(SecretString::new("sts-token-value")),
        };
        let shown = format!(
            "{creds:?} {:?}",
            CredentialSet {
                credentials: creds.clone(),
                project_id: None,
                region: None
            }
        );
        assert!(!shown.contains("very-secret-sk"));
        assert!(!shown.contains("sts-token-value"));
        assert!(!shown.contains("AKIDEXAMPLE123"));
        assert!(shown.contains("AKID"));
        let token = Credentials::Token(SecretString::new("tok-123"));
        assert!(!format!("{token:?}").contains("tok-123"));
    }

    #[test]
    fn sdk_variables_win_over_terraform_ones() {
        let set = CredentialSet::from_env(env(&[
            ("HUAWEICLOUD_SDK_AK", "sdk-ak"),
            ("HUAWEICLOUD_SDK_SK", "sdk-sk"),
            ("HUAWEICLOUD_SDK_PROJECT_ID", "p1"),
            ("HW_ACCESS_KEY", "tf-ak"),
            ("HW_SECRET_KEY", "tf-sk"),
            ("HW_REGION_NAME", "cn-north-4"),
        ]))
        .unwrap();
        assert_eq!(set.credentials, Credentials::ak_sk("sdk-ak", "sdk-sk"));
        assert_eq!(set.project_id.as_deref(), Some("p1"));
        assert_eq!(set.region.as_deref(), Some("cn-north-4"));
    }

    #[test]
    fn terraform_variables_with_security_token() {
        let set = CredentialSet::from_env(env(&[
            ("HW_ACCESS_KEY", "tf-ak"),
            ("HW_SECRET_KEY", "tf-sk"),
            ("HW_SECURITY_TOKEN", "sts"),
            ("HW_PROJECT_ID", "p2"),
        ]))
        .unwrap();
        match set.credentials {
            Credentials::AkSk { security_token, .. } => {
                assert_eq!(security_token, Some(SecretString::new("sts")))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(set.project_id.as_deref(), Some("p2"));
    }

    #[test]
    fn half_a_pair_is_an_error_naming_the_missing_variable() {
        let err = CredentialSet::from_env(env(&[("HW_ACCESS_KEY", "ak")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "HW_ACCESS_KEY is set but HW_SECRET_KEY is not: set both (or neither)"
        );
        assert_eq!(
            CredentialSet::from_env(env(&[])).unwrap_err(),
            CredentialsError::NotFound
        );
        let token = CredentialSet::from_env(env(&[("HW_AUTH_TOKEN", "t")])).unwrap();
        assert!(matches!(token.credentials, Credentials::Token(_)));
    }

    #[test]
    fn fingerprints_differ_by_secret_and_hide_it() {
        let a = Credentials::ak_sk("AK", "one");
        let b = Credentials::ak_sk("AK", "two");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            a.fingerprint(),
            Credentials::ak_sk("AK", "one").fingerprint()
        );
        assert_eq!(a.fingerprint().len(), 64);
        assert!(a.fingerprint().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!a.fingerprint().contains("one"));
    }

    /// Fields are length-prefixed: the same characters split differently are another credential.
    #[test]
    fn fingerprints_do_not_depend_on_how_fields_concatenate() {
        assert_ne!(
            Credentials::ak_sk("ab", "c").fingerprint(),
            Credentials::ak_sk("a", "bc").fingerprint()
        );
        let temporary = |ak: &str, sk: &str, token: &str| Credentials::AkSk {
            access_key: ak.into(),
            secret_key: SecretString::new(sk),
            security_token: Some(SecretString::new(token)),
        };
        assert_ne!(
            temporary("a", "b", "c").fingerprint(),
            temporary("a", "bc", "").fingerprint()
        );
        assert_ne!(
            temporary("a", "b", "").fingerprint(),
            Credentials::ak_sk("a", "b").fingerprint()
        );
        // Secret material that spells out another variant's framing still differs.
        assert_ne!(
            Credentials::Token(SecretString::new("t")).fingerprint(),
            Credentials::ak_sk("", "t").fingerprint()
        );
        let all = [
            Credentials::ak_sk("ab", "c"),
            Credentials::ak_sk("a", "bc"),
            temporary("a", "b", "c"),
            temporary("a", "bc", ""),
            temporary("a", "b", ""),
            Credentials::ak_sk("a", "b"),
            Credentials::Token(SecretString::new("abc")),
        ];
        let distinct: std::collections::HashSet<String> =
            all.iter().map(Credentials::fingerprint).collect();
        assert_eq!(distinct.len(), all.len());
    }

    /// Keyed, not a plain digest: the unsalted SHA-256 of the secret (or of the old framing)
    /// appears nowhere in the fingerprint.
    #[test]
    fn fingerprints_are_keyed_not_a_plain_hash_of_the_secret() {
        use sha2::{Digest, Sha256};
        let credentials = Credentials::ak_sk("AK", "one");
        let fingerprint = credentials.fingerprint();
        for unkeyed in [Sha256::digest(b"one"), Sha256::digest(b"aksk\0AK\0one\0")] {
            let unkeyed = hex::encode(unkeyed);
            assert_ne!(fingerprint, unkeyed);
            assert!(!unkeyed.starts_with(&fingerprint[..16]));
        }
    }
}
