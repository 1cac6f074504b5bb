//! The simulator's world: the tasks of every project and the declared jobs, resolved from a
//! scenario (or the admin API) against a start time.
//!
//! Tasks are kept sorted newest first (the order the API answers in), so a list request is one
//! linear filter pass with no sort, which keeps benchmarks against large scenarios cheap.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::limits::add_saturating;
use super::params::ListParams;
use super::scenario::{JobSpec, Scenario, TaskSpec};
use super::timeline::Timeline;

/// A task as the simulator holds it: absolute creation time plus its status timeline.
#[derive(Debug, Clone)]
pub(super) struct StoredTask {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub timeline: Timeline,
    pub details: Option<Value>,
    pub job_id: Option<String>,
    pub user_name: Option<String>,
    pub user_id: Option<String>,
    pub params: Option<String>,
    pub error_code: Option<String>,
    pub enable_show: Option<bool>,
}

impl StoredTask {
    /// Resolves a scenario task against `base` (simulator start, or "now" for admin posts).
    pub fn from_spec(spec: TaskSpec, base: DateTime<Utc>) -> Self {
        Self {
            id: spec.id.unwrap_or_else(new_task_id),
            project_id: spec.project_id,
            name: spec.name,
            created_at: spec.created_at.resolve(base),
            timeline: spec.timeline,
            details: spec.details,
            job_id: spec.job_id,
            user_name: spec.user_name,
            user_id: spec.user_id,
            params: spec.params,
            error_code: spec.error_code,
            enable_show: spec.enable_show,
        }
    }

    /// Time since creation at `now` (negative while the task is still in the future).
    ///
    /// Cannot overflow: any two instants of chrono's calendar are less than a million years
    /// apart, well inside `TimeDelta`'s range.
    pub fn elapsed(&self, now: DateTime<Utc>) -> TimeDelta {
        now.signed_duration_since(self.created_at)
    }

    /// The sort key: newest first, then id descending.
    fn key(&self) -> (DateTime<Utc>, &str) {
        (self.created_at, &self.id)
    }
}

/// A fresh 32-hex-digit id, the shape real task ids have.
pub(super) fn new_task_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A task id that already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DuplicateId(pub String);

/// One page of a list answer: the total count before paging and the tasks on the page.
#[derive(Debug)]
pub(super) struct Page<'a> {
    pub total: usize,
    pub tasks: Vec<&'a StoredTask>,
}

/// All tasks of all projects, newest first.
#[derive(Debug, Default)]
pub(super) struct TaskStore {
    tasks: Vec<StoredTask>,
    ids: HashSet<String>,
}

impl TaskStore {
    /// Resolves a scenario's tasks and generated tasks against `start`.
    pub fn from_scenario(scenario: &Scenario, start: DateTime<Utc>) -> Result<Self, DuplicateId> {
        let mut store = Self::default();
        let mut tasks: Vec<StoredTask> = scenario
            .tasks
            .iter()
            .cloned()
            .map(|spec| StoredTask::from_spec(spec, start))
            .collect();
        for generate in &scenario.generate {
            let first = generate.first_created_at.resolve(start);
            let mut created_at = first;
            for _ in 0..generate.count {
                tasks.push(StoredTask {
                    id: new_task_id(),
                    project_id: generate.project_id.clone(),
                    name: generate.name.clone(),
                    created_at,
                    timeline: Timeline::constant(generate.status.clone()),
                    details: None,
                    job_id: None,
                    user_name: None,
                    user_id: None,
                    params: None,
                    error_code: None,
                    enable_show: None,
                });
                // Validation bounds count × every; saturating keeps even a bug from panicking.
                created_at = add_saturating(created_at, generate.every);
            }
        }
        for task in &tasks {
            if !store.ids.insert(task.id.clone()) {
                return Err(DuplicateId(task.id.clone()));
            }
        }
        tasks.sort_by(|a, b| b.key().cmp(&a.key()));
        store.tasks = tasks;
        Ok(store)
    }

    /// Adds a task in its sorted place.
    pub fn insert(&mut self, task: StoredTask) -> Result<(), DuplicateId> {
        if !self.ids.insert(task.id.clone()) {
            return Err(DuplicateId(task.id));
        }
        let position = self.tasks.partition_point(|other| other.key() > task.key());
        self.tasks.insert(position, task);
        Ok(())
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut StoredTask> {
        self.tasks.iter_mut().find(|task| task.id == id)
    }

    /// The newest task of `project_id` carrying `job_id` that exists at `now`: the task a job
    /// without a declaration of its own is derived from. `None` for every project (`project_id`
    /// `None`) looks in all projects, as the admin API does.
    pub fn job_task(
        &self,
        project_id: Option<&str>,
        job_id: &str,
        now: DateTime<Utc>,
    ) -> Option<&StoredTask> {
        self.tasks.iter().find(|task| {
            task.job_id.as_deref() == Some(job_id)
                && project_id.is_none_or(|project| task.project_id == project)
                && task.created_at <= now
        })
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The tasks `project_id` can see at `now` within the window, paged.
    pub fn page(&self, project_id: &str, params: &ListParams, now: DateTime<Utc>) -> Page<'_> {
        let mut total = 0;
        let mut tasks = Vec::with_capacity(params.limit.min(self.tasks.len()));
        for task in &self.tasks {
            if task.project_id != project_id
                || task.created_at > now
                || !params.window.contains(task.created_at)
            {
                continue;
            }
            if total >= params.offset && tasks.len() < params.limit {
                tasks.push(task);
            }
            total += 1;
        }
        Page { total, tasks }
    }
}

/// A job declared in the scenario or through the admin API, resolved like a task: its status
/// follows `timeline` from `began_at`.
#[derive(Debug, Clone)]
pub(super) struct StoredJob {
    pub id: String,
    pub project_id: String,
    pub job_type: Option<String>,
    pub began_at: DateTime<Utc>,
    pub timeline: Timeline,
    pub fail_reason: Option<String>,
}

impl StoredJob {
    /// Resolves a scenario job against `base` (simulator start, or "now" for admin posts).
    pub fn from_spec(spec: JobSpec, base: DateTime<Utc>) -> Self {
        Self {
            id: spec.id,
            project_id: spec.project_id,
            job_type: spec.job_type,
            began_at: spec.begin_time.resolve(base),
            timeline: spec.timeline,
            fail_reason: spec.fail_reason,
        }
    }

    /// Time since the job began at `now` (negative while it is still in the future).
    pub fn elapsed(&self, now: DateTime<Utc>) -> TimeDelta {
        now.signed_duration_since(self.began_at)
    }
}

/// Declared jobs by id. A declared job hides a job derived from a task with the same `job_id`,
/// which is how the admin API changes a derived job without touching its task.
#[derive(Debug, Default)]
pub(super) struct JobStore {
    jobs: HashMap<String, StoredJob>,
}

impl JobStore {
    /// Resolves a scenario's jobs against `start`; their ids were checked unique when it loaded.
    pub fn from_scenario(scenario: &Scenario, start: DateTime<Utc>) -> Self {
        let jobs = scenario
            .jobs
            .iter()
            .cloned()
            .map(|spec| {
                let job = StoredJob::from_spec(spec, start);
                (job.id.clone(), job)
            })
            .collect();
        Self { jobs }
    }

    /// Adds a job; refuses an id that is declared already.
    pub fn insert(&mut self, job: StoredJob) -> Result<(), DuplicateId> {
        if self.jobs.contains_key(&job.id) {
            return Err(DuplicateId(job.id));
        }
        self.jobs.insert(job.id.clone(), job);
        Ok(())
    }

    /// Adds or replaces a job.
    pub fn put(&mut self, job: StoredJob) {
        self.jobs.insert(job.id.clone(), job);
    }

    pub fn get(&self, id: &str) -> Option<&StoredJob> {
        self.jobs.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::limits::MAX_GENERATED_SPAN;
    use super::super::params::Window;
    use super::super::scenario::truncate_to_millis;
    use super::*;

    fn params(offset: usize, limit: usize) -> ListParams {
        ListParams {
            offset,
            limit,
            window: Window::default(),
        }
    }

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn store(yaml: &str, start: DateTime<Utc>) -> TaskStore {
        TaskStore::from_scenario(&Scenario::from_yaml(yaml).unwrap(), start).unwrap()
    }

    #[test]
    fn pages_are_newest_first_with_ties_by_id_descending() {
        let start = time("2024-01-01T12:00:00Z");
        let store = store(
            r#"
tasks:
  - {id: a, name: n, status: S, createdAt: -1h}
  - {id: b, name: n, status: S, createdAt: -1h}
  - {id: c, name: n, status: S, createdAt: -2h}
  - {id: d, name: n, status: S, createdAt: -10m}
  - {id: e, name: n, status: S, createdAt: -5m, projectId: other}
  - {id: f, name: n, status: S, createdAt: 10m}
"#,
            start,
        );
        let ids = |page: Page<'_>| -> (usize, Vec<String>) {
            (
                page.total,
                page.tasks.iter().map(|task| task.id.clone()).collect(),
            )
        };
        let project = super::super::DEMO_PROJECT_ID;
        assert_eq!(
            ids(store.page(project, &params(0, 10), start)),
            (4, vec!["d".into(), "b".into(), "a".into(), "c".into()])
        );
        assert_eq!(
            ids(store.page(project, &params(1, 2), start)),
            (4, vec!["b".into(), "a".into()])
        );
        assert_eq!(ids(store.page(project, &params(4, 2), start)), (4, vec![]));
        assert_eq!(
            ids(store.page("other", &params(0, 10), start)),
            (1, vec!["e".into()])
        );
        // The future task appears once sim time reaches it.
        let later = start + TimeDelta::minutes(10);
        assert_eq!(store.page(project, &params(0, 1), later).tasks[0].id, "f");
    }

    #[test]
    fn the_window_filters_before_paging() {
        let start = time("2024-01-01T12:00:00Z");
        let store = store(
            "generate: [{count: 100, name: EXTEND, firstCreatedAt: -100m, every: 1m}]",
            start,
        );
        let window = Window {
            start: Some(time("2024-01-01T11:00:00Z")),
            end: Some(time("2024-01-01T11:09:59Z")),
        };
        let page = store.page(
            super::super::DEMO_PROJECT_ID,
            &ListParams {
                offset: 2,
                limit: 3,
                window,
            },
            start,
        );
        assert_eq!(page.total, 10);
        let times: Vec<_> = page.tasks.iter().map(|task| task.created_at).collect();
        assert_eq!(
            times,
            vec![
                time("2024-01-01T11:07:00Z"),
                time("2024-01-01T11:06:00Z"),
                time("2024-01-01T11:05:00Z")
            ]
        );
    }

    #[test]
    fn insert_keeps_the_order_and_refuses_duplicates() {
        let start = time("2024-01-01T12:00:00Z");
        let mut store = store(
            "tasks: [{id: old, name: n, status: S, createdAt: -1h}]",
            start,
        );
        let spec = |id: &str, created: &str| {
            let yaml = format!("tasks: [{{id: {id}, name: n, status: S, createdAt: {created}}}]");
            Scenario::from_yaml(&yaml).unwrap().tasks.remove(0)
        };
        store
            .insert(StoredTask::from_spec(spec("new", "0s"), start))
            .unwrap();
        store
            .insert(StoredTask::from_spec(spec("mid", "-30m"), start))
            .unwrap();
        let page = store.page(super::super::DEMO_PROJECT_ID, &params(0, 10), start);
        let ids: Vec<_> = page.tasks.iter().map(|task| task.id.as_str()).collect();
        assert_eq!(ids, ["new", "mid", "old"]);
        assert_eq!(
            store.insert(StoredTask::from_spec(spec("old", "0s"), start)),
            Err(DuplicateId("old".into()))
        );
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn generated_ids_are_32_hex_digits() {
        let id = new_task_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(id, new_task_id());
    }

    #[test]
    fn generated_runs_near_the_limits_build_without_overflow() {
        // Before the limits, `every: 3000000000h` overflowed while generating the second task.
        let start = Utc::now();
        let store = store(
            "generate:\n\
             - {count: 2, name: a, firstCreatedAt: -876600h, every: 876600h}\n\
             - {count: 2, name: b, firstCreatedAt: 876600h, every: 876600h}",
            start,
        );
        assert_eq!(store.len(), 4);
        let latest = store
            .tasks
            .iter()
            .map(|task| task.created_at)
            .max()
            .unwrap();
        assert_eq!(latest, truncate_to_millis(start + MAX_GENERATED_SPAN * 2));
    }
}
