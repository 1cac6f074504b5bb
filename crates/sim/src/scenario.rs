//! Scenario files: what a simulated DCS account holds (credentials, tasks and their timelines,
//! and jobs that no task stands for).
//!
//! The YAML uses camelCase keys and refuses unknown ones, so a typo in a test scenario fails
//! loudly instead of silently simulating something else. Parsing validates everything up
//! front (durations, timelines, times, and the limits of the `limits` module on how far times
//! may reach and how many tasks may be generated), so a running simulator never meets a bad
//! value.
//! See `examples/sim/*.yaml` for the format.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::SimError;
use super::limits::{
    MAX_GENERATED_SPAN, MAX_GENERATED_TASKS, MAX_RELATIVE_CREATED_AT, MAX_TIMELINE_SPAN,
    add_saturating, describe, show,
};
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
    pub(super) jobs: Vec<JobSpec>,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("task_count", &self.task_count)
            .field("credentials", &self.credentials)
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("tasks", &self.tasks.len())
            .field("generate", &self.generate)
            .field("jobs", &self.jobs.len())
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
        Self::from_yaml(include_str!("../../../examples/sim/switchover.yaml"))
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
    /// Parses `-2s`, `0s`, `+30s`, `1h30m` (signed durations, at most
    /// [`MAX_RELATIVE_CREATED_AT`] either way) or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(magnitude) => (true, magnitude),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if let Ok(duration) = dcs_common::duration::parse(magnitude) {
            let delta = TimeDelta::from_std(duration)
                .ok()
                .filter(|delta| *delta <= MAX_RELATIVE_CREATED_AT)
                .ok_or_else(|| {
                    format!(
                        "`{text}` is further than the limit of {} from the start (from the sim \
                         clock's now for a task added through the admin API); give a task that \
                         far away an RFC 3339 time",
                        describe(MAX_RELATIVE_CREATED_AT)
                    )
                })?;
            return Ok(Self::Relative(if negative { -delta } else { delta }));
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
    /// simulator sorts and filters on is exactly what it renders. Saturates at the ends of the
    /// calendar, which a validated offset from a real base never reaches.
    pub fn resolve(self, base: DateTime<Utc>) -> DateTime<Utc> {
        let time = match self {
            Self::Relative(delta) => add_saturating(base, delta),
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

/// A job served by `GET /v2/{project_id}/jobs/{job_id}` without a task behind it (jobs of
/// tasks with a `jobId` are derived from the task instead). Its status follows `timeline` from
/// `begin_time`, in the job vocabulary (`INIT`, `RUNNING`, `SUCCESS`, `FAIL`, or any other text).
#[derive(Debug, Clone)]
pub(super) struct JobSpec {
    pub id: String,
    pub project_id: String,
    pub job_type: Option<String>,
    pub begin_time: CreatedAt,
    pub timeline: Timeline,
    /// Sent as `fail_reason` while the job is `FAIL` (`null` when unset).
    pub fail_reason: Option<String>,
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
    #[serde(default)]
    jobs: Vec<JobFile>,
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

/// A job as written in a scenario file or posted to `POST /_sim/jobs`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct JobFile {
    id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    job_type: Option<String>,
    /// Defaults to `0s`: began at the base instant. Same syntax as a task's `createdAt`.
    #[serde(default)]
    begin_time: Option<String>,
    #[serde(default)]
    timeline: Option<Vec<StepFile>>,
    /// Shorthand for a one-step timeline.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    fail_reason: Option<String>,
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
    let duration = dcs_common::duration::parse(text)
        .map_err(|error| FieldError::new(field, error.to_string()))?;
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
        let mut generated = 0_usize;
        let generate = self
            .generate
            .into_iter()
            .enumerate()
            .map(|(index, generate)| {
                let at = format!("generate[{index}]");
                generated = generated
                    .checked_add(generate.count)
                    .filter(|total| *total <= MAX_GENERATED_TASKS)
                    .ok_or_else(|| {
                        let count = generate.count;
                        let before = if generated == 0 {
                            String::new()
                        } else {
                            format!(" after the {generated} of the entries before it")
                        };
                        FieldError::new(
                            format!("{at}.count"),
                            format!(
                                "{count} tasks{before} are more than the limit of \
                                 {MAX_GENERATED_TASKS} generated tasks per scenario"
                            ),
                        )
                    })?;
                generate.validate(&at)
            })
            .collect::<Result<_, _>>()?;
        let jobs: Vec<JobSpec> = self
            .jobs
            .into_iter()
            .enumerate()
            .map(|(index, job)| job.validate(&format!("jobs[{index}]")))
            .collect::<Result<_, _>>()?;
        let mut job_ids = HashSet::new();
        for (index, job) in jobs.iter().enumerate() {
            if !job_ids.insert(job.id.as_str()) {
                return Err(FieldError::new(
                    format!("jobs[{index}].id"),
                    format!("job id {} is used twice", job.id),
                ));
            }
        }
        Ok(Scenario {
            task_count: self.task_count,
            credentials,
            tokens: self.tokens,
            tasks,
            generate,
            jobs,
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

/// The path of key `name` under the entry at `at`: `tasks[3].status`, or `status` for an admin
/// request body (`at` empty).
fn prefixed(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// The timeline of a task or job entry: its `timeline` steps, or a one-step timeline from
/// `status`; exactly one of them. `what` ("task", "job") names the entry in the advice.
fn timeline_of(
    field: &dyn Fn(&str) -> String,
    timeline: Option<Vec<StepFile>>,
    status: Option<String>,
    what: &str,
) -> Result<Timeline, FieldError> {
    Ok(match (timeline, status) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                field("status"),
                "give either `status` or `timeline`, not both",
            ));
        }
        (None, None) => {
            return Err(FieldError::new(
                field("timeline"),
                format!(
                    "a {what} needs a `timeline` (or a `status` for a {what} that never \
                         changes)"
                ),
            ));
        }
        (None, Some(status)) => Timeline::constant(non_empty(&field("status"), status)?),
        (Some(steps), None) => {
            let mut span = TimeDelta::zero();
            let steps = steps
                .into_iter()
                .enumerate()
                .map(|(index, step)| {
                    let at = field(&format!("timeline[{index}].for"));
                    let lasts = step
                        .lasts
                        .map(|text| parse_duration(&at, &text))
                        .transpose()?;
                    if let Some(lasts) = lasts {
                        span = span
                            .checked_add(&lasts)
                            .filter(|span| *span <= MAX_TIMELINE_SPAN)
                            .ok_or_else(|| {
                                FieldError::new(
                                    &at,
                                    format!(
                                        "the steps up to this one last longer than the \
                                             limit of {} for a whole timeline",
                                        describe(MAX_TIMELINE_SPAN)
                                    ),
                                )
                            })?;
                    }
                    Ok(Step {
                        status: step.status,
                        lasts,
                    })
                })
                .collect::<Result<Vec<_>, FieldError>>()?;
            Timeline::new(steps).map_err(|problem| FieldError::new(field("timeline"), problem))?
        }
    })
}

impl TaskFile {
    /// Validates one task; `at` prefixes field names in errors (`tasks[3]`, or `` for the admin
    /// API).
    pub(super) fn validate(self, at: &str) -> Result<TaskSpec, FieldError> {
        let field = |name: &str| prefixed(at, name);
        let timeline = timeline_of(&field, self.timeline, self.status, "task")?;
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

impl JobFile {
    /// Validates one job; `at` prefixes field names in errors (`jobs[3]`, or `` for the admin
    /// API).
    pub(super) fn validate(self, at: &str) -> Result<JobSpec, FieldError> {
        let field = |name: &str| prefixed(at, name);
        let timeline = timeline_of(&field, self.timeline, self.status, "job")?;
        let begin_time = match self.begin_time {
            None => CreatedAt::Relative(TimeDelta::zero()),
            Some(text) => CreatedAt::parse(&text)
                .map_err(|problem| FieldError::new(field("beginTime"), problem))?,
        };
        Ok(JobSpec {
            id: non_empty(&field("id"), self.id)?,
            project_id: self
                .project_id
                .map(|project| non_empty(&field("projectId"), project))
                .transpose()?
                .unwrap_or_else(|| DEMO_PROJECT_ID.to_string()),
            job_type: self
                .job_type
                .map(|job_type| non_empty(&field("jobType"), job_type))
                .transpose()?,
            begin_time,
            timeline,
            fail_reason: self.fail_reason,
        })
    }
}

impl GenerateFile {
    /// Validates one entry; its `count` was already checked against the scenario's total.
    fn validate(self, at: &str) -> Result<GenerateSpec, FieldError> {
        let every = parse_duration(&format!("{at}.every"), &self.every)?;
        // From the first task to the last: every × (count − 1).
        let gaps = i32::try_from(self.count.saturating_sub(1)).ok();
        if gaps
            .and_then(|gaps| every.checked_mul(gaps))
            .is_none_or(|span| span > MAX_GENERATED_SPAN)
        {
            return Err(FieldError::new(
                format!("{at}.every"),
                format!(
                    "{} tasks {} apart span more than the limit of {} from the first to the last",
                    self.count,
                    show(every),
                    describe(MAX_GENERATED_SPAN)
                ),
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
            every,
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
            Scenario::from_yaml(include_str!("../../../examples/sim/failed-switchover.yaml"))
                .unwrap();
        let switchover = &failed.tasks[0];
        assert_eq!(
            switchover.timeline.at(TimeDelta::seconds(6)).status,
            "FAILED"
        );
        assert!(switchover.error_code.is_some());
        let many =
            Scenario::from_yaml(include_str!("../../../examples/sim/many-tasks.yaml")).unwrap();
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
    fn jobs_are_validated_like_tasks_naming_the_field() {
        let scenario = Scenario::from_yaml(
            "jobs:\n\
             - {id: a, projectId: p, jobType: masterStandbySwapJob, beginTime: -1m, \
                timeline: [{status: RUNNING, for: 5s}, {status: FAIL}], failReason: why}\n\
             - {id: b, status: SUCCESS}",
        )
        .unwrap();
        let job = &scenario.jobs[0];
        assert_eq!((job.id.as_str(), job.project_id.as_str()), ("a", "p"));
        assert_eq!(job.job_type.as_deref(), Some("masterStandbySwapJob"));
        assert_eq!(job.begin_time, CreatedAt::Relative(TimeDelta::minutes(-1)));
        assert_eq!(job.timeline.at(TimeDelta::seconds(5)).status, "FAIL");
        assert_eq!(job.fail_reason.as_deref(), Some("why"));
        let defaults = &scenario.jobs[1];
        assert_eq!(defaults.project_id, DEMO_PROJECT_ID);
        assert_eq!(defaults.begin_time, CreatedAt::Relative(TimeDelta::zero()));

        assert_eq!(
            invalid("jobs: [{id: a}]"),
            (
                "jobs[0].timeline".to_string(),
                "a job needs a `timeline` (or a `status` for a job that never changes)".to_string()
            )
        );
        assert_eq!(invalid("jobs: [{id: '', status: INIT}]").0, "jobs[0].id");
        assert_eq!(
            invalid("jobs: [{id: a, status: INIT, jobType: ''}]").0,
            "jobs[0].jobType"
        );
        assert_eq!(
            invalid("jobs: [{id: a, status: INIT, beginTime: later}]").0,
            "jobs[0].beginTime"
        );
        assert_eq!(
            invalid("jobs: [{id: a, status: INIT}, {id: a, status: FAIL}]").0,
            "jobs[1].id"
        );
        assert_eq!(
            invalid("jobs: [{id: a, timeline: [{status: A, for: 1s}]}]").0,
            "jobs[0].timeline"
        );
        assert!(matches!(
            Scenario::from_yaml("jobs: [{id: a, status: INIT, createdAt: 0s}]"),
            Err(SimError::ParseScenario { .. })
        ));
    }

    /// The field and the problem of a refused scenario, checking that the problem names
    /// `limit`.
    fn beyond_limit(yaml: &str, limit: &str) -> String {
        let (field, problem) = invalid(yaml);
        assert!(problem.contains(limit), "{field}: {problem}");
        field
    }

    #[test]
    fn relative_times_beyond_the_limit_are_refused() {
        // Both loaded before the limit, and then panicked ("`DateTime + TimeDelta` overflowed")
        // when the simulator resolved them at start.
        for created in ["-3000000000h", "+3000000000h", "3000000000h", "876600h1ms"] {
            let yaml = format!("tasks: [{{name: x, status: A, createdAt: {created}}}]");
            assert_eq!(
                beyond_limit(&yaml, "876600h (100 years)"),
                "tasks[0].createdAt"
            );
        }
        let yaml = "generate: [{count: 1, name: x, firstCreatedAt: -3000000000h, every: 1m}]";
        assert_eq!(
            beyond_limit(yaml, "876600h (100 years)"),
            "generate[0].firstCreatedAt"
        );
        let at_the_limit =
            Scenario::from_yaml("tasks: [{name: x, status: A, createdAt: -876600h}]").unwrap();
        assert_eq!(
            at_the_limit.tasks[0].created_at,
            CreatedAt::Relative(-MAX_RELATIVE_CREATED_AT)
        );
        // Relative to the sim clock for the admin API: the same check, without the prefix.
        let task: TaskFile = serde_json::from_value(
            json!({"name": "x", "status": "A", "createdAt": "-3000000000h"}),
        )
        .unwrap();
        assert_eq!(task.validate("").unwrap_err().field, "createdAt");
    }

    #[test]
    fn timelines_longer_than_the_limit_are_refused() {
        assert_eq!(
            beyond_limit(
                "tasks: [{name: x, timeline: [{status: A, for: 3000000000h}, {status: B}]}]",
                "876600h (100 years)"
            ),
            "tasks[0].timeline[0].for"
        );
        // Each step within the limit, their sum not.
        assert_eq!(
            beyond_limit(
                "tasks: [{name: x, timeline: [{status: A, for: 500000h}, {status: B, for: 376601h}, {status: C}]}]",
                "876600h (100 years)"
            ),
            "tasks[0].timeline[1].for"
        );
        // A sum beyond even TimeDelta's range.
        let huge = "4000000000h".repeat(700);
        assert_eq!(
            beyond_limit(
                &format!(
                    "tasks: [{{name: x, timeline: [{{status: A, for: {huge}}}, {{status: B}}]}}]"
                ),
                "too long"
            ),
            "tasks[0].timeline[0].for"
        );
        Scenario::from_yaml(
            "tasks: [{name: x, timeline: [{status: A, for: 500000h}, {status: B, for: 376600h}, {status: C}]}]",
        )
        .unwrap();
    }

    #[test]
    fn generated_tasks_beyond_the_limits_are_refused() {
        assert_eq!(
            beyond_limit(
                "generate: [{count: 100001, name: x, firstCreatedAt: 0s, every: 1s}]",
                "limit of 100000"
            ),
            "generate[0].count"
        );
        assert_eq!(
            beyond_limit(
                "generate: [{count: 18446744073709551615, name: x, firstCreatedAt: 0s, every: 1s}]",
                "limit of 100000"
            ),
            "generate[0].count"
        );
        // The limit is per scenario: two entries within it each, over it together.
        assert_eq!(
            beyond_limit(
                "generate:\n\
                 - {count: 60000, name: x, firstCreatedAt: 0s, every: 1s}\n\
                 - {count: 40001, name: y, firstCreatedAt: 0s, every: 1s}",
                "after the 60000"
            ),
            "generate[1].count"
        );
        // count × every: panicked ("`DateTime + TimeDelta` overflowed") while the simulator
        // generated the tasks at start.
        for (count, every) in [(2, "3000000000h"), (100_000, "8767h"), (3, "438301h")] {
            let yaml = format!(
                "generate: [{{count: {count}, name: x, firstCreatedAt: 0s, every: {every}}}]"
            );
            assert_eq!(
                beyond_limit(&yaml, "876600h (100 years)"),
                "generate[0].every",
                "{count} × {every}"
            );
        }
        // One task has no span, and the limit itself is allowed.
        Scenario::from_yaml(
            "generate:\n\
             - {count: 1, name: x, firstCreatedAt: 0s, every: 3000000000h}\n\
             - {count: 3, name: y, firstCreatedAt: 0s, every: 438300h}",
        )
        .unwrap();
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

    /// Properties: no scenario, however out of range its values, panics the simulator, from
    /// loading through generating and resolving its tasks to rendering them at any sim time.
    mod properties {
        use super::*;
        use crate::limits::MAX_CLOCK_OFFSET;
        use crate::params::{ListParams, MAX_LIMIT, Window};
        use crate::state::VirtualClock;
        use crate::store::{StoredTask, TaskStore};
        use crate::wire;
        use proptest::prelude::*;

        /// A YAML double-quoted scalar (JSON strings are valid ones).
        fn quoted(text: &str) -> String {
            serde_json::to_string(text).unwrap()
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![12 => "[A-Za-z_]{1,10}", 1 => any::<String>()]
        }

        /// Duration syntax with numbers from tiny to far past every range, and some noise.
        /// Mostly valid, so that most documents load and get run.
        fn duration() -> impl Strategy<Value = String> {
            let number = prop_oneof![
                40 => 0_u64..100,
                2 => any::<u32>().prop_map(u64::from),
                1 => any::<u64>(),
            ];
            let unit = prop::sample::select(vec!["ms", "s", "m", "h"]);
            prop_oneof![
                40 => prop::collection::vec((number, unit), 1..3).prop_map(|parts| {
                    parts.iter().map(|(value, unit)| format!("{value}{unit}")).collect()
                }),
                1 => "(4000000000h){1,700}",
                1 => any::<String>(),
            ]
        }

        /// A `createdAt`: a signed duration or an RFC 3339 time, extremes included.
        fn created_at() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => (prop::sample::select(vec!["", "-", "+"]), duration())
                    .prop_map(|(sign, duration)| format!("{sign}{duration}")),
                1 => prop::sample::select(vec![
                    "0000-01-01T00:00:00Z",
                    "9999-12-31T23:59:59.999Z",
                    "+262143-12-31T23:59:59Z",
                    "2024-06-17T07:38:42.503+14:00",
                ])
                .prop_map(str::to_string),
            ]
        }

        fn count() -> impl Strategy<Value = String> {
            let limit = MAX_GENERATED_TASKS as u64;
            prop_oneof![
                16 => (0_u64..30).prop_map(|count| count.to_string()),
                2 => any::<u64>().prop_map(|count| count.to_string()),
                1 => (limit - 2..limit + 2).prop_map(|count| count.to_string()),
                1 => Just("-1".to_string()),
            ]
        }

        fn task() -> impl Strategy<Value = String> {
            let steps = prop::collection::vec((text(), duration()), 0..4);
            (text(), prop::option::of(created_at()), steps, text()).prop_map(
                |(name, created, steps, last)| {
                    let created = created
                        .map(|created| format!("createdAt: {}, ", quoted(&created)))
                        .unwrap_or_default();
                    let steps: String = steps
                        .iter()
                        .map(|(status, lasts)| {
                            format!("{{status: {}, for: {}}}, ", quoted(status), quoted(lasts))
                        })
                        .collect();
                    format!(
                        "{{name: {}, {created}timeline: [{steps}{{status: {}}}]}}",
                        quoted(&name),
                        quoted(&last)
                    )
                },
            )
        }

        fn generate() -> impl Strategy<Value = String> {
            (count(), text(), created_at(), duration()).prop_map(|(count, name, first, every)| {
                format!(
                    "{{count: {count}, name: {}, firstCreatedAt: {}, every: {}}}",
                    quoted(&name),
                    quoted(&first),
                    quoted(&every)
                )
            })
        }

        fn document() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(task(), 0..4),
                prop::collection::vec(generate(), 0..3),
            )
                .prop_map(|(tasks, generate)| {
                    format!(
                        "tasks: [{}]\ngenerate: [{}]\n",
                        tasks.join(", "),
                        generate.join(", ")
                    )
                })
        }

        /// Starts the scenario's store, then renders and changes its tasks at sim times from the
        /// start to the clock's limit and the ends of the calendar.
        fn run(scenario: &Scenario) {
            let start = Utc::now();
            let store = TaskStore::from_scenario(scenario, start).unwrap();
            let clock = VirtualClock::default();
            clock.advance(MAX_CLOCK_OFFSET.to_std().unwrap()).unwrap();
            let nows = [
                start,
                clock.now(),
                DateTime::<Utc>::MIN_UTC,
                DateTime::<Utc>::MAX_UTC,
            ];
            let params = ListParams {
                offset: 0,
                limit: MAX_LIMIT,
                window: Window::default(),
            };
            for now in nows {
                for task in store.page(DEMO_PROJECT_ID, &params, now).tasks {
                    let mut changed = task.clone();
                    changed
                        .timeline
                        .set_from(task.elapsed(now), "CHANGED".into());
                    for later in nows {
                        wire::task(task, later);
                        wire::task(&changed, later);
                    }
                }
            }
            // As `POST /_sim/tasks` adds them, relative to a sim clock at its limit.
            for spec in &scenario.tasks {
                let task = StoredTask::from_spec(spec.clone(), clock.now());
                for now in nows {
                    wire::task(&task, now);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn no_scenario_document_panics(document in document()) {
                match Scenario::from_yaml(&document) {
                    Ok(scenario) => {
                        let generated: usize = scenario.generate.iter().map(|g| g.count).sum();
                        prop_assert!(generated <= MAX_GENERATED_TASKS);
                        for task in &scenario.tasks {
                            if let CreatedAt::Relative(delta) = task.created_at {
                                prop_assert!(delta.abs() <= MAX_RELATIVE_CREATED_AT);
                            }
                        }
                        run(&scenario);
                    }
                    Err(SimError::InvalidScenario { .. } | SimError::ParseScenario { .. }) => {}
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }

            #[test]
            fn no_text_panics_the_scenario_parser(text in any::<String>()) {
                let _ = Scenario::from_yaml(&text);
            }

            #[test]
            fn no_created_at_panics_when_resolved(text in created_at()) {
                if let Ok(created) = CreatedAt::parse(&text) {
                    for base in [Utc::now(), DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                        created.resolve(base);
                    }
                }
            }
        }
    }
}
