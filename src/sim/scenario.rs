//! Scenario files: what a simulated DCS account holds (credentials, tasks and their timelines).
//!
//! The YAML uses camelCase keys and refuses unknown ones, so a typo in a test scenario fails
//! loudly instead of silently simulating something else. Parsing validates everything up
//! front (durations, timelines, times), so a running simulator never meets a bad value.
//! See `examples/sim/*.yaml` for the format.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::SimError;
use super::timeline::{Step, Timeline};
use super::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};

/// The JSON type of `task_count` in list responses.
///
/// Every official SDK types it as a string, while a documented example shows a number; the
/// simulator can produce either so clients are tested against both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskCountEncoding {
    /// `"task_count": "2500"`, as the SDK models declare it.
    #[default]
    String,
    /// `"task_count": 2500`, as the documentation example shows it.
    Number,
}

/// A validated scenario: the starting state of a simulated DCS account.
///
/// Build one with [`Scenario::from_yaml`], [`Scenario::load`] or [`Scenario::default_demo`].
/// Relative times inside it are resolved when the simulator starts.
#[derive(Clone)]
pub struct Scenario {
    pub(super) task_count: TaskCountEncoding,
    pub(super) credentials: Vec<Credential>,
    pub(super) tokens: Vec<String>,
    pub(super) tasks: Vec<TaskSpec>,
    pub(super) generate: Vec<GenerateSpec>,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("task_count", &self.task_count)
            .field("credentials", &self.credentials)
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("tasks", &self.tasks.len())
            .field("generate", &self.generate)
            .finish()
    }
}

impl Scenario {
    /// Parses scenario YAML (errors name the origin `<inline>`).
    pub fn from_yaml(text: &str) -> Result<Self, SimError> {
        Self::parse(text, "<inline>")
    }

    /// Reads and parses a scenario file (errors name the file).
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ReadScenario {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The built-in demo (`examples/sim/switchover.yaml`): a master/standby switchover that
    /// finishes a few seconds after start, plus some older tasks. Used by `query --sim`.
    pub fn default_demo() -> Self {
        Self::from_yaml(include_str!("../../examples/sim/switchover.yaml"))
            .expect("examples/sim/switchover.yaml is valid (checked by a unit test)")
    }

    /// The `task_count` wire type the scenario asks for.
    pub fn task_count_encoding(&self) -> TaskCountEncoding {
        self.task_count
    }

    fn parse(text: &str, origin: &str) -> Result<Self, SimError> {
        let file: ScenarioFile =
            serde_yaml_ng::from_str(text).map_err(|source| SimError::ParseScenario {
                origin: origin.to_string(),
                source,
            })?;
        file.validate().map_err(|error| SimError::InvalidScenario {
            origin: origin.to_string(),
            field: error.field,
            problem: error.problem,
        })
    }
}

/// A value in a scenario (or an admin request body) that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.problem)
    }
}

impl FieldError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// An access key / secret key pair the simulator accepts.
#[derive(Clone)]
pub(super) struct Credential {
    pub access_key: String,
    pub secret_key: String,
    /// When set, requests must carry it in a signed `X-Security-Token` (temporary credentials).
    pub security_token: Option<String>,
    /// When set, only these projects may be listed with this key.
    pub projects: Option<Vec<String>>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("projects", &self.projects)
            .finish()
    }
}

/// When a task was created: relative to a base instant (simulator start, or "now" for tasks
/// added through the admin API) or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CreatedAt {
    Relative(TimeDelta),
    Absolute(DateTime<Utc>),
}

impl CreatedAt {
    /// Parses `-2s`, `0s`, `+30s`, `1h30m` (signed durations) or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (sign, magnitude) = match text.as_bytes().first() {
            Some(b'-') => (-1, &text[1..]),
            Some(b'+') => (1, &text[1..]),
            _ => (1, text),
        };
        if let Ok(duration) = crate::duration::parse(magnitude) {
            let delta = TimeDelta::from_std(duration)
                .map_err(|_| format!("`{text}` is too far from now"))?;
            return Ok(Self::Relative(if sign < 0 { -delta } else { delta }));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|time| Self::Absolute(time.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "`{text}` is neither a signed duration relative to the start (-2s, 0s, 30s) \
                     nor an RFC 3339 time (2024-06-17T07:38:42.503Z)"
                )
            })
    }

    /// The instant, truncated to milliseconds (the wire precision), so that what the
    /// simulator sorts and filters on is exactly what it renders.
    pub fn resolve(self, base: DateTime<Utc>) -> DateTime<Utc> {
        let time = match self {
            Self::Relative(delta) => base + delta,
            Self::Absolute(time) => time,
        };
        truncate_to_millis(time)
    }
}

/// Drops sub-millisecond precision.
pub(super) fn truncate_to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// One scenario task, validated; times are still unresolved.
#[derive(Debug, Clone)]
pub(super) struct TaskSpec {
    pub id: Option<String>,
    pub project_id: String,
    pub name: String,
    pub created_at: CreatedAt,
    pub timeline: Timeline,
    /// `None`: omitted from the wire; `Some(Value::Null)`: rendered as `null`.
    pub details: Option<Value>,
    pub job_id: Option<String>,
    pub user_name: Option<String>,
    pub user_id: Option<String>,
    pub params: Option<String>,
    pub error_code: Option<String>,
    pub enable_show: Option<bool>,
}

/// Bulk tasks: `count` tasks named `name` in status `status`, the first at `first_created_at`
/// and then one every `every`.
#[derive(Debug, Clone)]
pub(super) struct GenerateSpec {
    pub count: usize,
    pub project_id: String,
    pub name: String,
    pub status: String,
    pub first_created_at: CreatedAt,
    pub every: TimeDelta,
}

/// More generated tasks than this is almost surely a typo, and would eat the machine's memory.
const MAX_GENERATED: usize = 1_000_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    task_count: TaskCountEncoding,
    /// Absent: the demo credential. Present (even empty): exactly these.
    #[serde(default)]
    credentials: Option<Vec<CredentialFile>>,
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    tasks: Vec<TaskFile>,
    #[serde(default)]
    generate: Vec<GenerateFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CredentialFile {
    access_key: String,
    secret_key: String,
    #[serde(default)]
    security_token: Option<String>,
    #[serde(default)]
    projects: Option<Vec<String>>,
}

/// A task as written in a scenario file or posted to `POST /_sim/tasks`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TaskFile {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    name: String,
    #[serde(default)]
    job_id: Option<String>,
    /// Defaults to `0s`: created at the base instant.
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    timeline: Option<Vec<StepFile>>,
    /// Shorthand for a one-step timeline.
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    details: Option<Value>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    params: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    enable_show: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    status: String,
    #[serde(default, rename = "for")]
    lasts: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerateFile {
    count: usize,
    #[serde(default)]
    project_id: Option<String>,
    name: String,
    #[serde(default = "default_generated_status")]
    status: String,
    first_created_at: String,
    every: String,
}

fn default_generated_status() -> String {
    "SUCCESS".to_string()
}

/// Keeps an explicit `null` apart from an absent key: `details: null` renders `null`, a missing
/// `details` is omitted.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn parse_duration(field: &str, text: &str) -> Result<TimeDelta, FieldError> {
    let duration =
        crate::duration::parse(text).map_err(|error| FieldError::new(field, error.to_string()))?;
    TimeDelta::from_std(duration).map_err(|_| FieldError::new(field, "duration is too long"))
}

fn non_empty(field: &str, value: String) -> Result<String, FieldError> {
    if value.trim().is_empty() {
        Err(FieldError::new(field, "must not be empty"))
    } else {
        Ok(value)
    }
}

impl ScenarioFile {
    fn validate(self) -> Result<Scenario, FieldError> {
        let credentials = match self.credentials {
            None => vec![Credential {
                access_key: DEMO_ACCESS_KEY.to_string(),
                secret_key: DEMO_SECRET_KEY.to_string(),
                security_token: None,
                projects: None,
            }],
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(index, credential)| credential.validate(&format!("credentials[{index}]")))
                .collect::<Result<_, _>>()?,
        };
        let mut access_keys = HashSet::new();
        for (index, credential) in credentials.iter().enumerate() {
            if !access_keys.insert(credential.access_key.as_str()) {
                return Err(FieldError::new(
                    format!("credentials[{index}].accessKey"),
                    format!("access key {} is listed twice", credential.access_key),
                ));
            }
        }
        for (index, token) in self.tokens.iter().enumerate() {
            if token.trim().is_empty() {
                return Err(FieldError::new(
                    format!("tokens[{index}]"),
                    "must not be empty",
                ));
            }
        }
        let tasks: Vec<TaskSpec> = self
            .tasks
            .into_iter()
            .enumerate()
            .map(|(index, task)| task.validate(&format!("tasks[{index}]")))
            .collect::<Result<_, _>>()?;
        let mut ids = HashSet::new();
        for (index, task) in tasks.iter().enumerate() {
            if let Some(id) = &task.id
                && !ids.insert(id.as_str())
            {
                return Err(FieldError::new(
                    format!("tasks[{index}].id"),
                    format!("task id {id} is used twice"),
                ));
            }
        }
        let generate = self
            .generate
            .into_iter()
            .enumerate()
            .map(|(index, generate)| generate.validate(&format!("generate[{index}]")))
            .collect::<Result<_, _>>()?;
        Ok(Scenario {
            task_count: self.task_count,
            credentials,
            tokens: self.tokens,
            tasks,
            generate,
        })
    }
}

impl CredentialFile {
    fn validate(self, at: &str) -> Result<Credential, FieldError> {
        Ok(Credential {
            access_key: non_empty(&format!("{at}.accessKey"), self.access_key)?,
            secret_key: non_empty(&format!("{at}.secretKey"), self.secret_key)?,
            security_token: self
                .security_token
                .map(|token| non_empty(&format!("{at}.securityToken"), token))
                .transpose()?,
            projects: self.projects,
        })
    }
}

impl TaskFile {
    /// Validates one task; `at` prefixes field names in errors (`tasks[3]`, or `` for the admin
    /// API).
    pub(super) fn validate(self, at: &str) -> Result<TaskSpec, FieldError> {
        let field = |name: &str| {
            if at.is_empty() {
                name.to_string()
            } else {
                format!("{at}.{name}")
            }
        };
        let timeline = match (self.timeline, self.status) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    field("status"),
                    "give either `status` or `timeline`, not both",
                ));
            }
            (None, None) => {
                return Err(FieldError::new(
                    field("timeline"),
                    "a task needs a `timeline` (or a `status` for a task that never changes)",
                ));
            }
            (None, Some(status)) => Timeline::constant(non_empty(&field("status"), status)?),
            (Some(steps), None) => {
                let steps = steps
                    .into_iter()
                    .enumerate()
                    .map(|(index, step)| {
                        let lasts = step
                            .lasts
                            .map(|text| {
                                parse_duration(&field(&format!("timeline[{index}].for")), &text)
                            })
                            .transpose()?;
                        Ok(Step {
                            status: step.status,
                            lasts,
                        })
                    })
                    .collect::<Result<Vec<_>, FieldError>>()?;
                Timeline::new(steps)
                    .map_err(|problem| FieldError::new(field("timeline"), problem))?
            }
        };
        let created_at = match self.created_at {
            None => CreatedAt::Relative(TimeDelta::zero()),
            Some(text) => CreatedAt::parse(&text)
                .map_err(|problem| FieldError::new(field("createdAt"), problem))?,
        };
        if let Some(details) = &self.details
            && !(details.is_object() || details.is_null())
        {
            return Err(FieldError::new(
                field("details"),
                "must be a map (rendered verbatim) or null",
            ));
        }
        Ok(TaskSpec {
            id: self.id.map(|id| non_empty(&field("id"), id)).transpose()?,
            project_id: self
                .project_id
                .map(|project| non_empty(&field("projectId"), project))
                .transpose()?
                .unwrap_or_else(|| DEMO_PROJECT_ID.to_string()),
            name: non_empty(&field("name"), self.name)?,
            created_at,
            timeline,
            details: self.details,
            job_id: self.job_id,
            user_name: self.user_name,
            user_id: self.user_id,
            params: self.params,
            error_code: self.error_code,
            enable_show: self.enable_show,
        })
    }
}

impl GenerateFile {
    fn validate(self, at: &str) -> Result<GenerateSpec, FieldError> {
        if self.count > MAX_GENERATED {
            return Err(FieldError::new(
                format!("{at}.count"),
                format!("{} is more than the limit of {MAX_GENERATED}", self.count),
            ));
        }
        Ok(GenerateSpec {
            count: self.count,
            project_id: self
                .project_id
                .map(|project| non_empty(&format!("{at}.projectId"), project))
                .transpose()?
                .unwrap_or_else(|| DEMO_PROJECT_ID.to_string()),
            name: non_empty(&format!("{at}.name"), self.name)?,
            status: non_empty(&format!("{at}.status"), self.status)?,
            first_created_at: CreatedAt::parse(&self.first_created_at)
                .map_err(|problem| FieldError::new(format!("{at}.firstCreatedAt"), problem))?,
            every: parse_duration(&format!("{at}.every"), &self.every)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invalid(yaml: &str) -> (String, String) {
        match Scenario::from_yaml(yaml) {
            Err(SimError::InvalidScenario { field, problem, .. }) => (field, problem),
            other => panic!("expected InvalidScenario, got {other:?}"),
        }
    }

    #[test]
    fn the_example_scenarios_parse() {
        let demo = Scenario::default_demo();
        assert_eq!(demo.task_count, TaskCountEncoding::String);
        assert!(
            demo.tasks
                .iter()
                .any(|task| task.name == "masterStandbySwapJob")
        );
        assert!(
            demo.tasks
                .iter()
                .any(|task| task.timeline.at(TimeDelta::days(1)).status == "FAILED")
        );
        let failed =
            Scenario::from_yaml(include_str!("../../examples/sim/failed-switchover.yaml")).unwrap();
        let switchover = &failed.tasks[0];
        assert_eq!(
            switchover.timeline.at(TimeDelta::seconds(6)).status,
            "FAILED"
        );
        assert!(switchover.error_code.is_some());
        let many = Scenario::from_yaml(include_str!("../../examples/sim/many-tasks.yaml")).unwrap();
        assert_eq!(many.task_count, TaskCountEncoding::Number);
        assert_eq!(many.generate.iter().map(|g| g.count).sum::<usize>(), 2500);
    }

    #[test]
    fn a_full_task_keeps_every_field() {
        let scenario = Scenario::from_yaml(
            r#"
taskCount: number
credentials:
  - accessKey: AK1
    secretKey: SK1
    securityToken: tok
    projects: [p1]
tokens: [t1]
tasks:
  - id: abc
    projectId: p1
    name: EXTEND
    jobId: job1
    createdAt: "2024-06-17T07:38:42.503Z"
    timeline: [{status: EXECUTING, for: 1m}, {status: SUCCESS}]
    details: {old_capacity: 0.125, new_capacity: "0.25"}
    userName: alice
    userId: u1
    params: '{"a":1}'
    errorCode: "111400063"
    enableShow: true
"#,
        )
        .unwrap();
        assert_eq!(scenario.task_count, TaskCountEncoding::Number);
        assert_eq!(
            scenario.credentials[0].security_token.as_deref(),
            Some("tok")
        );
        assert_eq!(scenario.tokens, vec!["t1".to_string()]);
        let task = &scenario.tasks[0];
        assert_eq!(task.id.as_deref(), Some("abc"));
        assert_eq!(
            task.details,
            Some(json!({"old_capacity": 0.125, "new_capacity": "0.25"}))
        );
        assert_eq!(
            task.created_at,
            CreatedAt::Absolute("2024-06-17T07:38:42.503Z".parse().unwrap())
        );
        assert_eq!(task.enable_show, Some(true));
    }

    #[test]
    fn defaults_fill_the_gaps() {
        let scenario = Scenario::from_yaml("tasks: [{name: modify, status: SUCCESS}]").unwrap();
        assert_eq!(scenario.task_count, TaskCountEncoding::String);
        assert_eq!(scenario.credentials[0].access_key, DEMO_ACCESS_KEY);
        let task = &scenario.tasks[0];
        assert_eq!(task.project_id, DEMO_PROJECT_ID);
        assert_eq!(task.created_at, CreatedAt::Relative(TimeDelta::zero()));
        assert_eq!(task.details, None);
        let empty = Scenario::from_yaml("credentials: []").unwrap();
        assert!(empty.credentials.is_empty());
    }

    #[test]
    fn explicit_null_details_differ_from_absent_details() {
        let scenario = Scenario::from_yaml("tasks: [{name: x, status: S, details: null}]").unwrap();
        assert_eq!(scenario.tasks[0].details, Some(Value::Null));
    }

    #[test]
    fn created_at_accepts_signed_durations_and_rfc3339() {
        assert_eq!(
            CreatedAt::parse("-2s"),
            Ok(CreatedAt::Relative(TimeDelta::seconds(-2)))
        );
        assert_eq!(
            CreatedAt::parse("+1h30m"),
            Ok(CreatedAt::Relative(TimeDelta::minutes(90)))
        );
        assert_eq!(
            CreatedAt::parse("30s"),
            Ok(CreatedAt::Relative(TimeDelta::seconds(30)))
        );
        assert!(matches!(
            CreatedAt::parse("2020-06-17T07:38:42+02:00"),
            Ok(CreatedAt::Absolute(_))
        ));
        assert!(
            CreatedAt::parse("yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
        let base = "2024-01-01T00:00:00.123456Z".parse().unwrap();
        assert_eq!(
            CreatedAt::Relative(TimeDelta::seconds(-2)).resolve(base),
            "2023-12-31T23:59:58.123Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            invalid("tasks: [{name: x, timeline: [{status: A, for: soon}, {status: B}]}]").0,
            "tasks[0].timeline[0].for"
        );
        assert_eq!(
            invalid("tasks: [{name: x, timeline: [{status: A}, {status: B}]}]").0,
            "tasks[0].timeline"
        );
        assert_eq!(invalid("tasks: [{name: x}]").0, "tasks[0].timeline");
        assert_eq!(
            invalid("tasks: [{name: x, status: A, createdAt: later}]").0,
            "tasks[0].createdAt"
        );
        assert_eq!(
            invalid("tasks: [{name: x, status: A, details: [1]}]").0,
            "tasks[0].details"
        );
        assert_eq!(
            invalid("tasks: [{id: a, name: x, status: A}, {id: a, name: y, status: A}]").0,
            "tasks[1].id"
        );
        assert_eq!(
            invalid("generate: [{count: 2, name: x, firstCreatedAt: -1h, every: often}]").0,
            "generate[0].every"
        );
        assert_eq!(
            invalid("credentials: [{accessKey: A, secretKey: ''}]").0,
            "credentials[0].secretKey"
        );
    }

    #[test]
    fn unknown_keys_and_bad_yaml_are_refused() {
        assert!(matches!(
            Scenario::from_yaml("taskCont: number"),
            Err(SimError::ParseScenario { .. })
        ));
        assert!(matches!(
            Scenario::from_yaml("taskCount: bigint"),
            Err(SimError::ParseScenario { .. })
        ));
        assert!(matches!(
            Scenario::from_yaml("tasks: [{name: x, status: A, colour: red}]"),
            Err(SimError::ParseScenario { .. })
        ));
    }

    #[test]
    fn load_names_the_file() {
        let error = Scenario::load(Path::new("/nonexistent/scenario.yaml")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/scenario.yaml"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "tasks: [{name: x}]").unwrap();
        let error = Scenario::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("bad.yaml") && error.contains("tasks[0].timeline"),
            "{error}"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let scenario = Scenario::from_yaml(
            "credentials: [{accessKey: AK, secretKey: hush-secret, securityToken: hush-token}]\n\
             tokens: [hush-iam-token]",
        )
        .unwrap();
        let debug = format!("{scenario:?}");
        assert!(debug.contains("AK"));
        assert!(!debug.contains("hush"), "{debug}");
    }
}
