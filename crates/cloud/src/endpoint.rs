//! Which base URL a query may be sent to.
//!
//! A `DcsTaskQuery` can name any endpoint, and the operator signs requests with real
//! credentials; an unchecked override would let anyone who can create the object make the
//! operator send signed requests to a host of their choosing. So an override is used only when
//! the [`EndpointPolicy`] allows it: `https://dcs.<region>.myhuaweicloud.com`-style hosts by
//! default, anything else only when the operator was started with it allowed.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

/// The cloud domain of the public Huawei Cloud endpoints.
pub const CLOUD_DOMAIN: &str = "myhuaweicloud.com";

/// The regional endpoint, `https://dcs.{region}.myhuaweicloud.com`.
pub fn regional_endpoint(region: &str) -> String {
    format!("https://dcs.{region}.{CLOUD_DOMAIN}")
}

/// The IAM endpoint the SDKs use when none is configured: `https://iam.myhuaweicloud.com`.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";

/// A validated base URL (scheme, host, port) for the DCS API.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint(Url);

impl Endpoint {
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// `host[:port]` as sent in the `Host` header (and signed).
    pub fn authority(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// `https://dcs.cn-north-4.myhuaweicloud.com` form, without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint `{input}` is not a URL of the form https://host[:port]")]
    Malformed { input: String },
    #[error(
        "endpoint `{input}` is not allowed: the operator accepts https://dcs.<region>.{CLOUD_DOMAIN} hosts (and https://iam[.<region>].{CLOUD_DOMAIN} for IAM); start it with --allow-endpoint {suggestion} to permit this one"
    )]
    NotAllowed { input: String, suggestion: String },
    #[error(
        "allow-list entry `{input}` is not of the form scheme://host[:port] (host may start with `*.`, port may be `*`)"
    )]
    BadAllowEntry { input: String },
}

/// One allow-list entry: `http://127.0.0.1:*`, `https://*.example.com`, `https://dcs.internal:8443`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedEndpoint {
    scheme: String,
    /// Exact host, or a suffix (`.example.com`) when the entry started with `*.`.
    host: HostPattern,
    /// `None` means any port.
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Suffix(String),
}

impl FromStr for AllowedEndpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || EndpointError::BadAllowEntry {
            input: input.to_string(),
        };
        let (scheme, rest) = input.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "http" | "https") {
            return Err(bad());
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
                let port = match port {
                    "*" => None,
                    digits => Some(digits.parse::<u16>().map_err(|_| bad())?),
                };
                (host, port)
            }
            _ => (rest, Some(default_port(scheme))),
        };
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() => HostPattern::Suffix(format!(".{suffix}")),
            _ if host.is_empty() || host.contains('*') => return Err(bad()),
            _ => HostPattern::Exact(host),
        };
        Ok(AllowedEndpoint {
            scheme: scheme.to_string(),
            host,
            port,
        })
    }
}

impl AllowedEndpoint {
    fn permits(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Exact(exact) => host == *exact,
            HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
        };
        let port_ok = self
            .port
            .is_none_or(|port| url.port_or_known_default() == Some(port));
        url.scheme() == self.scheme && host_ok && port_ok
    }
}

impl fmt::Display for AllowedEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Exact(exact) => exact.clone(),
            HostPattern::Suffix(suffix) => format!("*{suffix}"),
        };
        match self.port {
            Some(port) => write!(f, "{}://{host}:{port}", self.scheme),
            None => write!(f, "{}://{host}:*", self.scheme),
        }
    }
}

impl AllowedEndpoint {
    /// Why this entry deserves a second look, if it does: plain http sends signed requests
    /// and tokens unencrypted; a wildcard host or port trusts hosts nobody listed one by one.
    pub fn risks(&self) -> Vec<&'static str> {
        let mut risks = Vec::new();
        if self.scheme == "http" {
            risks.push("plain http: signed requests and security tokens travel unencrypted");
        }
        if matches!(self.host, HostPattern::Suffix(_)) {
            risks.push("wildcard host: any host under this domain receives signed requests");
        }
        if self.port.is_none() {
            risks.push("wildcard port: any service on this host receives signed requests");
        }
        risks
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The set of endpoints requests may go to.
#[derive(Clone, Debug, Default)]
pub struct EndpointPolicy {
    extra: Vec<AllowedEndpoint>,
}

impl EndpointPolicy {
    /// The default policy plus `extra` entries (from `--allow-endpoint`).
    pub fn new(extra: Vec<AllowedEndpoint>) -> Self {
        Self { extra }
    }

    /// One line per risky `--allow-endpoint` entry, for the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        self.extra
            .iter()
            .flat_map(|entry| {
                entry
                    .risks()
                    .into_iter()
                    .map(move |risk| format!("--allow-endpoint {entry}: {risk}"))
            })
            .collect()
    }

    /// Adds one more allowed origin (the in-process simulator, for instance).
    pub fn allow(&mut self, entry: AllowedEndpoint) {
        self.extra.push(entry);
    }

    /// The endpoint for `region`, or the override when the policy allows it.
    pub fn resolve(&self, region: &str, endpoint: Option<&str>) -> Result<Endpoint, EndpointError> {
        let input = endpoint
            .map(str::to_string)
            .unwrap_or_else(|| regional_endpoint(region));
        self.check(input, is_huawei_dcs_host)
    }

    /// The IAM endpoint project ids are discovered at: [`DEFAULT_IAM_ENDPOINT`], or the
    /// override (`HUAWEICLOUD_SDK_IAM_ENDPOINT`, `--iam-endpoint`) when it is Huawei Cloud's own
    /// `https://iam[.<region>].myhuaweicloud.com` or the policy allows it, like a DCS endpoint.
    pub fn resolve_iam(&self, endpoint: Option<&str>) -> Result<Endpoint, EndpointError> {
        let input = endpoint.unwrap_or(DEFAULT_IAM_ENDPOINT).to_string();
        self.check(input, is_huawei_iam_host)
    }

    fn check(&self, input: String, built_in: fn(&Url) -> bool) -> Result<Endpoint, EndpointError> {
        let malformed = || EndpointError::Malformed {
            input: input.clone(),
        };
        let url = Url::parse(&input).map_err(|_| malformed())?;
        let origin_only = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none()
            && url.host_str().is_some();
        if !origin_only || !matches!(url.scheme(), "http" | "https") {
            return Err(malformed());
        }
        if built_in(&url) || self.extra.iter().any(|entry| entry.permits(&url)) {
            Ok(Endpoint(url))
        } else {
            Err(EndpointError::NotAllowed {
                suggestion: format!("{}://{}", url.scheme(), Endpoint(url.clone()).authority()),
                input,
            })
        }
    }
}

/// `https://dcs.<region>.myhuaweicloud.com` on the default port.
fn is_huawei_dcs_host(url: &Url) -> bool {
    service_region(url, "dcs").is_some_and(|region| !region.is_empty())
}

/// `https://iam.myhuaweicloud.com` or `https://iam.<region>.myhuaweicloud.com` on the default
/// port.
fn is_huawei_iam_host(url: &Url) -> bool {
    service_region(url, "iam").is_some()
}

/// For `https://{service}[.{region}].myhuaweicloud.com` on the default port, the region part
/// (empty when there is none); `None` for any other URL.
fn service_region<'u>(url: &'u Url, service: &str) -> Option<&'u str> {
    if url.scheme() != "https" || url.port().is_some() {
        return None;
    }
    let rest = url.host_str()?.strip_prefix(service)?;
    let rest = rest.strip_suffix(CLOUD_DOMAIN)?.strip_suffix('.')?;
    if rest.is_empty() {
        return Some(rest);
    }
    let region = rest.strip_prefix('.')?;
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risky_allow_list_entries_are_named() {
        let policy = EndpointPolicy::new(
            [
                "https://dcs.private.example:8443",
                "http://127.0.0.1:*",
                "https://*.corp.example",
            ]
            .iter()
            .map(|entry| entry.parse().unwrap())
            .collect(),
        );
        assert_eq!(
            policy.warnings(),
            vec![
                "--allow-endpoint http://127.0.0.1:*: plain http: signed requests and security tokens travel unencrypted",
                "--allow-endpoint http://127.0.0.1:*: wildcard port: any service on this host receives signed requests",
                "--allow-endpoint https://*.corp.example:443: wildcard host: any host under this domain receives signed requests",
            ]
        );
        assert!(EndpointPolicy::default().warnings().is_empty());
    }

    #[test]
    fn region_gives_the_public_endpoint() {
        let policy = EndpointPolicy::default();
        let endpoint = policy.resolve("cn-north-4", None).unwrap();
        assert_eq!(
            endpoint.as_str(),
            "https://dcs.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(endpoint.authority(), "dcs.cn-north-4.myhuaweicloud.com");
    }

    #[test]
    fn overrides_are_refused_unless_allowed() {
        let policy = EndpointPolicy::default();
        assert!(
            policy
                .resolve(
                    "cn-north-4",
                    Some("https://dcs.ap-southeast-1.myhuaweicloud.com")
                )
                .is_ok()
        );
        for refused in [
            "http://dcs.cn-north-4.myhuaweicloud.com",
            "https://dcs.cn-north-4.myhuaweicloud.com:8443",
            "https://evil.example.com",
            "https://dcs.cn-north-4.myhuaweicloud.com.evil.example.com",
            "http://127.0.0.1:8080",
        ] {
            let err = policy.resolve("cn-north-4", Some(refused)).unwrap_err();
            assert!(
                matches!(err, EndpointError::NotAllowed { .. }),
                "{refused}: {err}"
            );
        }
        let message = policy
            .resolve("cn-north-4", Some("http://127.0.0.1:8080"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--allow-endpoint http://127.0.0.1:8080"),
            "{message}"
        );
    }

    #[test]
    fn allow_entries_match_scheme_host_and_port() {
        let policy = EndpointPolicy::new(vec![
            "http://127.0.0.1:*".parse().unwrap(),
            "https://*.corp.example".parse().unwrap(),
            "https://dcs.internal:8443".parse().unwrap(),
        ]);
        assert!(policy.resolve("r", Some("http://127.0.0.1:39000")).is_ok());
        assert!(
            policy
                .resolve("r", Some("https://127.0.0.1:39000"))
                .is_err()
        );
        assert!(
            policy
                .resolve("r", Some("https://dcs.corp.example"))
                .is_ok()
        );
        assert!(policy.resolve("r", Some("https://corp.example")).is_err());
        assert!(
            policy
                .resolve("r", Some("https://dcs.internal:8443/"))
                .is_ok()
        );
        assert!(policy.resolve("r", Some("https://dcs.internal")).is_err());
    }

    #[test]
    fn iam_defaults_to_the_global_endpoint_and_overrides_pass_the_allow_list() {
        let policy = EndpointPolicy::default();
        assert_eq!(
            policy.resolve_iam(None).unwrap().as_str(),
            "https://iam.myhuaweicloud.com"
        );
        for own in [
            "https://iam.myhuaweicloud.com",
            "https://iam.cn-north-4.myhuaweicloud.com/",
        ] {
            assert!(policy.resolve_iam(Some(own)).is_ok(), "{own}");
        }
        for refused in [
            "http://iam.myhuaweicloud.com",
            "https://iam.myhuaweicloud.com:8443",
            "https://iam.myhuaweicloud.com.evil.example",
            "https://dcs.cn-north-4.myhuaweicloud.com",
            "http://127.0.0.1:8080",
        ] {
            assert!(
                matches!(
                    policy.resolve_iam(Some(refused)),
                    Err(EndpointError::NotAllowed { .. })
                ),
                "{refused}"
            );
        }
        // An IAM host is no DCS endpoint either.
        assert!(
            policy
                .resolve("r", Some("https://iam.myhuaweicloud.com"))
                .is_err()
        );
        assert!(
            policy
                .resolve("r", Some("https://dcs.myhuaweicloud.com"))
                .is_err()
        );
        let private = EndpointPolicy::new(vec!["http://127.0.0.1:*".parse().unwrap()]);
        assert!(private.resolve_iam(Some("http://127.0.0.1:9")).is_ok());
        assert!(matches!(
            private.resolve_iam(Some("http://127.0.0.1:9/v3")),
            Err(EndpointError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_overrides_and_entries() {
        let policy = EndpointPolicy::new(vec!["http://127.0.0.1:*".parse().unwrap()]);
        for bad in [
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/v2",
            "http://u:p@127.0.0.1:1",
            "ftp://x",
        ] {
            assert!(
                matches!(
                    policy.resolve("r", Some(bad)),
                    Err(EndpointError::Malformed { .. })
                ),
                "{bad}"
            );
        }
        for bad in [
            "127.0.0.1",
            "ftp://x",
            "http://",
            "http://*",
            "http://h/path",
            "http://h:99999",
        ] {
            assert!(bad.parse::<AllowedEndpoint>().is_err(), "{bad}");
        }
    }
}
