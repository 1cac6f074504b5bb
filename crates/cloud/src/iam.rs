//! Project-id discovery, as the Huawei Cloud SDKs and Terraform do it: a signed
//! `GET {iam}/v3/projects?name={region}` (Keystone `ListProjects`), which must name exactly one
//! project.
//!
//! The call goes through the same [`HttpClient`] and the same signing code as DCS calls (no
//! redirects, a capped body, timeouts, retries of transient failures, the request gate), but
//! carries no `X-Project-Id`: finding the project is the point. The answer is decoded leniently
//! and in bounded memory: unknown fields are read past, a field of an unexpected type counts as
//! absent, and at most [`MAX_PROJECTS`] entries are kept.

use std::fmt;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::client::{Gate, HttpClient, RequestGate, SignedGet};
use super::credentials::Credentials;
use super::endpoint::Endpoint;
use super::error::DcsError;

/// The most project entries read from one answer; a longer list fails to decode. An account
/// holds far fewer projects, and the answer is filtered by name anyway.
pub const MAX_PROJECTS: usize = 1000;

/// Longest `id` or `name` kept; a longer one counts as absent (no real id or region is close).
const MAX_FIELD_BYTES: usize = 256;

/// The Keystone path the SDKs call.
const PROJECTS_PATH: &str = "/v3/projects";

/// Why no project id could be discovered. Each message says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ProjectDiscoveryError {
    #[error(
        "project discovery: IAM lists no project named {region:?} for these credentials; set spec.projectId (or the credentials' projectId) to the project id of region {region}, or check spec.region"
    )]
    NoProject { region: String },
    #[error(
        "project discovery: IAM lists {count} projects named {region:?} for these credentials, so which one to use is not clear; set spec.projectId (or the credentials' projectId) to the one to use"
    )]
    SeveralProjects { region: String, count: usize },
    #[error(
        "project discovery: IAM named a project {region:?} whose id is missing or not a project id (1-64 letters, digits, '-' or '_'); set spec.projectId"
    )]
    InvalidId { region: String },
    #[error(
        "project discovery: IAM at {endpoint} sent a response that is not a project list: {detail}; check the IAM endpoint, or set spec.projectId"
    )]
    Decode { endpoint: String, detail: String },
    #[error("project discovery: {0}; or set spec.projectId to skip discovery")]
    Upstream(#[from] DcsError),
}

impl ProjectDiscoveryError {
    /// The upstream failure, when the call itself failed (rather than its answer).
    pub fn upstream(&self) -> Option<&DcsError> {
        match self {
            ProjectDiscoveryError::Upstream(error) => Some(error),
            _ => None,
        }
    }
}

/// A client for one IAM endpoint and credential.
#[derive(Clone, Debug)]
pub struct IamClient {
    http: HttpClient,
    endpoint: Endpoint,
    credentials: Credentials,
    gate: Option<Gate>,
}

impl IamClient {
    pub fn new(http: HttpClient, endpoint: Endpoint, credentials: Credentials) -> Self {
        Self {
            http,
            endpoint,
            credentials,
            gate: None,
        }
    }

    /// This client, waiting on `gate` before each HTTP request it sends (retries included).
    pub fn with_gate(mut self, gate: Arc<dyn RequestGate>) -> Self {
        self.gate = Some(Gate(gate));
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The id of the one project named `region`.
    pub async fn discover_project(&self, region: &str) -> Result<String, ProjectDiscoveryError> {
        let call = SignedGet {
            http: &self.http,
            endpoint: &self.endpoint,
            credentials: &self.credentials,
            gate: self.gate.as_ref(),
            project_id: None,
            operation: "IAM KeystoneListProjects",
            iam_action: super::error::IamAction::ListProjects,
        };
        let query = [("name".to_string(), region.to_string())];
        let body = call.get(PROJECTS_PATH, &query).await?;
        let page = decode_projects(&body).map_err(|detail| ProjectDiscoveryError::Decode {
            endpoint: self.endpoint.to_string(),
            detail,
        })?;
        choose(&page, region)
    }
}

static PROJECT_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(dcs_common::project_id::PATTERN).expect("the project id pattern is a valid regex")
});

/// The one project named `region` (IAM filters by name; an IAM that ignored the filter is
/// filtered here), held to the `spec.projectId` pattern since it becomes part of request paths.
fn choose(page: &ProjectPage, region: &str) -> Result<String, ProjectDiscoveryError> {
    let mut named = page
        .projects
        .iter()
        .filter(|project| project.name.as_deref() == Some(region));
    let (Some(project), None) = (named.next(), named.clone().next()) else {
        let count = page
            .projects
            .iter()
            .filter(|project| project.name.as_deref() == Some(region))
            .count();
        return Err(if count == 0 {
            ProjectDiscoveryError::NoProject {
                region: region.to_string(),
            }
        } else {
            ProjectDiscoveryError::SeveralProjects {
                region: region.to_string(),
                count,
            }
        });
    };
    match &project.id {
        Some(id) if PROJECT_ID.is_match(id) => Ok(id.clone()),
        _ => Err(ProjectDiscoveryError::InvalidId {
            region: region.to_string(),
        }),
    }
}

/// The part of a `ListProjects` answer discovery needs.
#[derive(Debug, Default, PartialEq)]
struct ProjectPage {
    projects: Vec<Project>,
}

#[derive(Debug, Default, PartialEq)]
struct Project {
    id: Option<String>,
    name: Option<String>,
}

/// Decodes an answer; the error is a short description, never the body.
fn decode_projects(body: &[u8]) -> Result<ProjectPage, String> {
    serde_json::from_slice::<ProjectPage>(body).map_err(|error| {
        let text = error.to_string();
        dcs_common::text::truncate_bytes(&text, 200).into_owned()
    })
}

impl<'de> Deserialize<'de> for ProjectPage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PageVisitor;
        impl<'de> Visitor<'de> for PageVisitor {
            type Value = ProjectPage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with a `projects` list")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ProjectPage, A::Error> {
                let mut projects = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "projects" {
                        projects = Some(map.next_value::<ProjectList>()?.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                let projects = projects
                    .ok_or_else(|| serde::de::Error::custom("the `projects` list is missing"))?;
                Ok(ProjectPage { projects })
            }
        }
        deserializer.deserialize_map(PageVisitor)
    }
}

/// The `projects` array, at most [`MAX_PROJECTS`] entries; entries that are not objects count
/// as projects without fields.
struct ProjectList(Vec<Project>);

impl<'de> Deserialize<'de> for ProjectList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ProjectList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of projects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ProjectList, A::Error> {
                let mut projects = Vec::new();
                while let Some(MaybeProject(project)) = seq.next_element::<MaybeProject>()? {
                    if projects.len() >= MAX_PROJECTS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_PROJECTS} projects listed"
                        )));
                    }
                    projects.push(project.unwrap_or_default());
                }
                Ok(ProjectList(projects))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

/// A project entry, or `None` when the entry is not an object (read past, never kept).
struct MaybeProject(Option<Project>);

impl<'de> Deserialize<'de> for MaybeProject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProjectVisitor;
        impl<'de> Visitor<'de> for ProjectVisitor {
            type Value = MaybeProject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a project object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeProject, A::Error> {
                let mut project = Project::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "id" => project.id = map.next_value::<ShortString>()?.0,
                        "name" => project.name = map.next_value::<ShortString>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(MaybeProject(Some(project)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeProject, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeProject(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<MaybeProject, E> {
                Ok(MaybeProject(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MaybeProject, E> {
                Ok(MaybeProject(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeProject, E> {
                Ok(MaybeProject(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeProject, E> {
                Ok(MaybeProject(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MaybeProject, E> {
                Ok(MaybeProject(None))
            }
            fn visit_unit<E>(self) -> Result<MaybeProject, E> {
                Ok(MaybeProject(None))
            }
        }
        deserializer.deserialize_any(ProjectVisitor)
    }
}

/// A string of at most [`MAX_FIELD_BYTES`], or `None` for a longer one or any other JSON value
/// (read past, never kept).
struct ShortString(Option<String>);

impl<'de> Deserialize<'de> for ShortString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl<'de> Visitor<'de> for StringVisitor {
            type Value = ShortString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, text: &str) -> Result<ShortString, E> {
                Ok(ShortString(
                    (text.len() <= MAX_FIELD_BYTES).then(|| text.to_string()),
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ShortString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ShortString(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ShortString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ShortString(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_unit<E>(self) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
        }
        deserializer.deserialize_any(StringVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: &str = "cn-north-4";

    fn page(json: &str) -> ProjectPage {
        decode_projects(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_documented_answer_names_one_project() {
        let body = r#"{"projects": [{"id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "name": "cn-north-4",
            "domain_id": "d1", "enabled": true, "is_domain": false, "parent_id": "d1",
            "description": "", "links": {"self": "https://iam.myhuaweicloud.com/v3/projects/x"}}],
            "links": {"self": "https://iam.myhuaweicloud.com/v3/projects?name=cn-north-4",
            "previous": null, "next": null}}"#;
        assert_eq!(
            choose(&page(body), REGION).unwrap(),
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        );
    }

    #[test]
    fn zero_or_several_projects_are_typed_errors_with_advice() {
        let none = choose(&page(r#"{"projects": []}"#), REGION).unwrap_err();
        assert!(matches!(&none, ProjectDiscoveryError::NoProject { region } if region == REGION));
        assert!(none.to_string().contains("set spec.projectId"), "{none}");
        // Another region's project (an IAM that ignored the filter) does not count.
        let other = r#"{"projects": [{"id": "p1", "name": "cn-east-3"}]}"#;
        assert!(matches!(
            choose(&page(other), REGION),
            Err(ProjectDiscoveryError::NoProject { .. })
        ));
        let two = r#"{"projects": [{"id": "p1", "name": "cn-north-4"}, {"id": "p2", "name": "cn-north-4"},
            {"id": "p3", "name": "cn-north-4_sub"}]}"#;
        let several = choose(&page(two), REGION).unwrap_err();
        assert!(
            matches!(
                &several,
                ProjectDiscoveryError::SeveralProjects { count: 2, .. }
            ),
            "{several:?}"
        );
        assert!(
            several
                .to_string()
                .contains("2 projects named \"cn-north-4\"")
        );
        assert!(several.to_string().contains("set spec.projectId"));
    }

    #[test]
    fn decoding_is_lenient_about_shapes_but_strict_about_the_id() {
        let odd = r#"{"extra": [1, {"a": null}], "projects": [7, "x", null,
            {"id": 5, "name": "cn-east-3"}, {"name": "cn-north-4", "id": "p-1_ok", "enabled": "yes"}]}"#;
        let decoded = page(odd);
        assert_eq!(decoded.projects.len(), 5);
        assert_eq!(choose(&decoded, REGION).unwrap(), "p-1_ok");
        for bad_id in [r#""../x""#, "5", r#""""#, "null"] {
            let body = format!(r#"{{"projects": [{{"id": {bad_id}, "name": "cn-north-4"}}]}}"#);
            assert!(
                matches!(
                    choose(&page(&body), REGION),
                    Err(ProjectDiscoveryError::InvalidId { .. })
                ),
                "{bad_id}"
            );
        }
        let long = format!(
            r#"{{"projects": [{{"id": "{}", "name": "cn-north-4"}}]}}"#,
            "a".repeat(10_000)
        );
        assert_eq!(page(&long).projects[0].id, None);
        // Escaped text is decoded, not compared raw.
        let escaped = r#"{"projects": [{"id": "p\u0031", "name": "cn-north-\u0034"}]}"#;
        assert_eq!(choose(&page(escaped), REGION).unwrap(), "p1");
    }

    #[test]
    fn answers_that_are_not_project_lists_fail_to_decode() {
        for body in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"projects": {}}"#,
            r#"{"projects": [{"id": "p1", "name": "cn-north-4"}"#,
        ] {
            assert!(decode_projects(body.as_bytes()).is_err(), "{body:?}");
        }
        let many = format!(
            r#"{{"projects": [{}]}}"#,
            vec!["{}"; MAX_PROJECTS + 1].join(",")
        );
        let error = decode_projects(many.as_bytes()).unwrap_err();
        assert!(error.contains("more than 1000 projects"), "{error}");
        let at_cap = format!(
            r#"{{"projects": [{}]}}"#,
            vec!["{}"; MAX_PROJECTS].join(",")
        );
        assert_eq!(page(&at_cap).projects.len(), MAX_PROJECTS);
    }
}
