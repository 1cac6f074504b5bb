//! Huawei Cloud APIG request signing, algorithm `SDK-HMAC-SHA256`.
//!
//! One implementation serves both sides: the client signs outgoing requests with it and the
//! simulator verifies incoming ones by recomputing the signature over the headers the request
//! says it signed. The official SDK test vectors pin the canonical form (see the tests below), so
//! a shared bug cannot hide: both sides would fail the vectors first.
//!
//! Unlike AWS SigV4 there is no derived or scoped key: the signature is a plain HMAC of the
//! string-to-sign keyed by the secret key's UTF-8 bytes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Name of the algorithm, first token of the `Authorization` header and of the string-to-sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// Header carrying the signing time, `YYYYMMDDTHHMMSSZ` in UTC. It must always be signed.
pub const SDK_DATE_HEADER: &str = "x-sdk-date";

/// chrono format of [`SDK_DATE_HEADER`] values.
pub const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Hex SHA-256 of an empty body, the payload hash of every GET.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The parts of an HTTP request that the signature covers.
///
/// `headers` are the headers to sign (name, value) in any order and case; the canonical form
/// lower-cases and sorts them. Callers decide which headers to sign: the client signs every header
/// it sends except `Authorization`, the verifier passes exactly those named in `SignedHeaders`.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The request path, percent-encoded or not (it is decoded first, then re-encoded per segment).
    pub path: &'a str,
    /// Decoded query parameters; repeated keys are allowed.
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The three values that make up an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// Lower-case header names, sorted, as they appear in `SignedHeaders`.
    pub signed_headers: Vec<String>,
    /// Lower-case hex HMAC-SHA256.
    pub signature: String,
}

/// Why an `Authorization` header could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationParseError {
    #[error("Authorization header does not start with `{ALGORITHM} `")]
    UnsupportedAlgorithm,
    #[error("Authorization header lacks the `{0}=` part")]
    MissingPart(&'static str),
}

impl Authorization {
    /// Renders the header value: `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
    pub fn header_value(&self) -> String {
        format!(
            "{ALGORITHM} Access={}, SignedHeaders={}, Signature={}",
            self.access_key,
            self.signed_headers.join(";"),
            self.signature
        )
    }

    /// Parses a header value produced by any of the official SDKs.
    pub fn parse(value: &str) -> Result<Self, AuthorizationParseError> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(AuthorizationParseError::UnsupportedAlgorithm)?;
        let mut access_key = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let Some((key, val)) = part.trim().split_once('=') else {
                continue;
            };
            match key {
                "Access" => access_key = Some(val.to_string()),
                "SignedHeaders" => {
                    signed_headers = Some(val.split(';').map(str::to_ascii_lowercase).collect())
                }
                "Signature" => signature = Some(val.to_ascii_lowercase()),
                _ => {}
            }
        }
        Ok(Self {
            access_key: access_key.ok_or(AuthorizationParseError::MissingPart("Access"))?,
            signed_headers: signed_headers
                .ok_or(AuthorizationParseError::MissingPart("SignedHeaders"))?,
            signature: signature.ok_or(AuthorizationParseError::MissingPart("Signature"))?,
        })
    }
}

/// Signs `request` with the access key / secret key pair.
///
/// The request's headers must already include `X-Sdk-Date` (and `X-Project-Id`,
/// `X-Security-Token` when used): the date is read from there, as the SDKs do.
pub fn sign(request: &SignableRequest<'_>, access_key: &str, secret_key: &str) -> Authorization {
    let canonical = canonical_request(request);
    let sdk_date = header_value(request.headers, SDK_DATE_HEADER).unwrap_or_default();
    Authorization {
        access_key: access_key.to_string(),
        signed_headers: signed_header_names(request.headers),
        signature: signature(secret_key, &string_to_sign(&canonical, sdk_date)),
    }
}

/// Recomputes the signature for `request` and compares it in constant time with `claimed`.
pub fn verify(request: &SignableRequest<'_>, claimed: &Authorization, secret_key: &str) -> bool {
    let expected = sign(request, &claimed.access_key, secret_key);
    let mut mac = hmac_sha256(secret_key.as_bytes());
    // Compare through a MAC so that timing does not leak how many hex digits matched.
    mac.update(expected.signature.as_bytes());
    let expected_tag = mac.finalize().into_bytes();
    let mut mac = hmac_sha256(secret_key.as_bytes());
    mac.update(claimed.signature.as_bytes());
    mac.verify_slice(&expected_tag).is_ok()
}

/// The six-line canonical request.
pub fn canonical_request(request: &SignableRequest<'_>) -> String {
    let payload_hash = header_value(request.headers, "x-sdk-content-sha256")
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(Sha256::digest(request.body)));
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.to_ascii_uppercase(),
        canonical_uri(request.path),
        canonical_query_string(request.query),
        canonical_headers(request.headers),
        signed_header_names(request.headers).join(";"),
        payload_hash
    )
}

/// `SDK-HMAC-SHA256 \n date \n hex(sha256(canonical request))`.
pub fn string_to_sign(canonical_request: &str, sdk_date: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Lower-case hex HMAC-SHA256 of `string_to_sign` keyed by the secret key.
pub fn signature(secret_key: &str, string_to_sign: &str) -> String {
    let mut mac = hmac_sha256(secret_key.as_bytes());
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Each path segment decoded then re-encoded, joined by `/`, always ending in `/`.
pub fn canonical_uri(path: &str) -> String {
    let mut uri = path
        .split('/')
        .map(|segment| encode(&percent_decode(segment)))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Parameters sorted by key then value, both encoded, joined `k=v&k=v`.
pub fn canonical_query_string(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(key, value)| (encode(key), encode(value)))
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(headers: &[(String, String)]) -> String {
    let mut lines: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    lines.sort();
    lines
        .into_iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect()
}

fn signed_header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// RFC 3986 encoding keeping only the unreserved set `A-Z a-z 0-9 - _ . ~`, upper-case hex.
pub fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; malformed escapes are kept literally, as the SDKs' unquote does.
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// V1: the Huawei documentation example (also the older Java SDK test).
    #[test]
    fn v1_documentation_example() {
        let query = pairs(&[
            ("limit", "2"),
            ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
        ]);
        let headers = pairs(&[
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ]);
        let request = SignableRequest {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&request);
        assert_eq!(
            canonical,
            "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n\
             limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n\
             content-type:application/json\nhost:service.region.example.com\n\
             x-sdk-date:20191115T033655Z\n\ncontent-type;host;x-sdk-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            string_to_sign(&canonical, "20191115T033655Z"),
            "SDK-HMAC-SHA256\n20191115T033655Z\n\
             b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
        let auth = sign(
            &request,
            "QTWAOYTTINDUT2QVKYUC",
            "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
        );
        assert_eq!(
            auth.header_value(),
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, \
             SignedHeaders=content-type;host;x-sdk-date, \
             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    /// V2: the current Java SDK test, same request as V1 with other keys.
    #[test]
    fn v2_java_sdk() {
        let query = pairs(&[
            ("limit", "2"),
            ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
        ]);
        let headers = pairs(&[
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ]);
        let request = SignableRequest {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: &query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            sign(&request, "testAK", "testSK").header_value(),
            "SDK-HMAC-SHA256 Access=testAK, SignedHeaders=content-type;host;x-sdk-date, \
             Signature=1ce02ffed91dfc294aed8863aaf0fec29ccbf2f45ddcca7f120baabddba29782"
        );
    }

    /// V3 and V4: the Go SDK tests, which sign only `x-sdk-date` (underscore headers and
    /// content-type are excluded by the Go SDK, so they are not passed here).
    #[test]
    fn v3_v4_go_sdk() {
        let headers = pairs(&[("X-Sdk-Date", "20060102T150405Z")]);
        let get_query = pairs(&[("limit", "1")]);
        let get = SignableRequest {
            method: "GET",
            path: "/path",
            query: &get_query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            canonical_request(&get),
            format!(
                "GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n{EMPTY_PAYLOAD_SHA256}"
            )
        );
        assert_eq!(
            sign(&get, "AccessKey", "SecretKey").header_value(),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );

        let post_query = pairs(&[("key", "value")]);
        let post = SignableRequest {
            method: "POST",
            path: "/path",
            query: &post_query,
            headers: &headers,
            body: b"{\"Name\":\"test\",\"Id\":1}\n",
        };
        assert_eq!(
            sign(&post, "AccessKey", "SecretKey").signature,
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
    }

    /// V5 and V6: the Python SDK tests, which add `Host` and sign `host;x-sdk-date`.
    #[test]
    fn v5_v6_python_sdk() {
        let headers = pairs(&[
            ("X-Sdk-Date", "20200608T023900Z"),
            ("Host", "service.endpoint.myhuaweicloud.com"),
        ]);
        let query = pairs(&[("size", "1")]);
        let get = SignableRequest {
            method: "GET",
            path: "/resources",
            query: &query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            sign(&get, "AccessKey", "SecretKey").header_value(),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, \
             Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
        );
        let post = SignableRequest {
            method: "POST",
            body: b"{\"name\":\"test\",\"id\":1}",
            ..get
        };
        assert_eq!(
            sign(&post, "AccessKey", "SecretKey").signature,
            "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
        );
    }

    /// Q1: the canonical query vector shared by the Go and Python SDK tests.
    #[test]
    fn q1_canonical_query_string() {
        let query = pairs(&[
            ("limit", "1"),
            ("enable", "true"),
            ("test", "一 (&=?!#%.*)"),
            ("path", "/tmp/123"),
            ("multi", "3"),
            ("multi", "1"),
            ("multi", "2"),
        ]);
        assert_eq!(
            canonical_query_string(&query),
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123\
             &test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
    }

    #[test]
    fn canonical_uri_decodes_then_encodes_each_segment() {
        assert_eq!(canonical_uri("/v2/p/tasks"), "/v2/p/tasks/");
        assert_eq!(canonical_uri("/v2/p/tasks/"), "/v2/p/tasks/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a%20b/c d"), "/a%20b/c%20d/");
        assert_eq!(canonical_uri("/bad%zz"), "/bad%25zz/");
    }

    #[test]
    fn authorization_round_trips_and_rejects_other_algorithms() {
        let auth = Authorization {
            access_key: "AK".into(),
            signed_headers: vec!["host".into(), "x-sdk-date".into()],
            signature: "abcdef".into(),
        };
        assert_eq!(Authorization::parse(&auth.header_value()), Ok(auth));
        assert_eq!(
            Authorization::parse("AWS4-HMAC-SHA256 Credential=x"),
            Err(AuthorizationParseError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Authorization::parse("SDK-HMAC-SHA256 Access=AK, Signature=ab"),
            Err(AuthorizationParseError::MissingPart("SignedHeaders"))
        );
    }

    #[test]
    fn verify_accepts_the_signature_and_rejects_any_change() {
        let headers = pairs(&[("X-Sdk-Date", "20060102T150405Z"), ("Host", "h")]);
        let query = pairs(&[("limit", "1")]);
        let request = SignableRequest {
            method: "GET",
            path: "/v2/p/tasks",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let auth = sign(&request, "AK", "SK");
        assert!(verify(&request, &auth, "SK"));
        assert!(!verify(&request, &auth, "other"));
        let tampered_query = pairs(&[("limit", "2")]);
        let tampered = SignableRequest {
            query: &tampered_query,
            ..request
        };
        assert!(!verify(&tampered, &auth, "SK"));
    }

    /// Any text, weighted towards the characters that matter to the canonical form.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9%/ ._~*&=?+:;,\\-]{0,24}",
            "(%[0-9a-fA-F]{0,2}|/|[a-z]){0,12}",
        ]
    }

    fn pairs_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec((text(), text()), 0..8)
    }

    /// Flips the ASCII case of every other letter of a header name.
    fn recase(name: &str) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    proptest! {
        /// Whatever a caller (or, in the simulator, a client) sends, signing and verifying never
        /// panic and the canonical request is a pure function of the request.
        #[test]
        fn signing_never_panics_and_is_deterministic(
            method in text(),
            path in text(),
            query in pairs_strategy(),
            headers in pairs_strategy(),
            body in prop::collection::vec(any::<u8>(), 0..64),
            access_key in text(),
            secret_key in text(),
        ) {
            let request = SignableRequest {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
            };
            let canonical = canonical_request(&request);
            prop_assert_eq!(&canonical, &canonical_request(&request.clone()));
            let auth = sign(&request, &access_key, &secret_key);
            prop_assert_eq!(&auth, &sign(&request, &access_key, &secret_key));
            prop_assert!(verify(&request, &auth, &secret_key));
            prop_assert_eq!(auth.signature.len(), 64);
            let _ = Authorization::parse(&auth.header_value());
        }

        /// The query's canonical form sorts pairs, so the order they were given in is irrelevant.
        #[test]
        fn query_order_does_not_matter(
            (query, shuffled) in pairs_strategy().prop_flat_map(|query| {
                let shuffled = Just(query.clone()).prop_shuffle();
                (Just(query), shuffled)
            })
        ) {
            prop_assert_eq!(canonical_query_string(&query), canonical_query_string(&shuffled));
        }

        /// Header names are compared lower-cased and sorted, and values trimmed: name case, header
        /// order and surrounding blanks do not change the canonical request.
        #[test]
        fn header_name_case_order_and_padding_do_not_matter(
            (headers, shuffled) in prop::collection::vec(("[a-zA-Z][a-zA-Z0-9-]{0,15}", text()), 0..8)
                .prop_flat_map(|headers| {
                    let shuffled = Just(headers.clone()).prop_shuffle();
                    (Just(headers), shuffled)
                }),
            path in text(),
        ) {
            let query = Vec::new();
            let canonical = |headers: &[(String, String)]| {
                canonical_request(&SignableRequest {
                    method: "GET",
                    path: &path,
                    query: &query,
                    headers,
                    body: b"",
                })
            };
            let changed: Vec<(String, String)> = shuffled
                .iter()
                .map(|(name, value)| (recase(name), format!(" \t{value} ")))
                .collect();
            // Equal names with different values sort by value, so only names matter to order.
            prop_assert_eq!(canonical(&headers), canonical(&changed));
        }

        /// The canonical URI always ends in `/` and holds only unreserved characters, `/` and
        /// upper-case `%XX` escapes; encoding then decoding gives the text back.
        #[test]
        fn canonical_uri_and_escapes_are_well_formed(path in text(), raw in any::<String>()) {
            let uri = canonical_uri(&path);
            prop_assert!(uri.ends_with('/'));
            let bytes = uri.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let byte = bytes[i];
                if byte == b'%' {
                    prop_assert!(i + 2 < bytes.len());
                    prop_assert!(bytes[i + 1].is_ascii_hexdigit() && !bytes[i + 1].is_ascii_lowercase());
                    prop_assert!(bytes[i + 2].is_ascii_hexdigit() && !bytes[i + 2].is_ascii_lowercase());
                    i += 3;
                } else {
                    prop_assert!(byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte), "{}", uri);
                    i += 1;
                }
            }
            prop_assert_eq!(percent_decode(&encode(&raw)), raw);
        }
    }
}
