//! `dcs-task-operator query`: evaluate a `DcsTaskQuery` exactly as the controller does, without
//! Kubernetes, and print the status it would write.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{QueryArgs, input, output};
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus, WaitPhase};
use crate::dcs::{
    AllowedEndpoint, CredentialSet, DcsClient, EndpointPolicy, FailureClass, HttpClient,
    HttpSettings, IamClient, JobInfo, ProjectDiscoveryError,
};
use crate::query::{
    self, CredentialSource, FeedStep, Outcome, PlanContext, Previous, QueryPlan, Round, Unserved,
};
use crate::sim;
use crate::upstream::feed::{
    Answer, AnswerReceiver, FeedKey, FeedSet, FeedTarget, Interest, round_outcome,
};
use crate::upstream::fetcher::{self, FetchLimits, SharedFetcher};

/// Exit codes, documented in `--help`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID_INPUT: u8 = 2;

/// What went wrong before any poll could run.
#[derive(Debug, thiserror::Error)]
pub enum QueryCommandError {
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error("cannot start the simulator: {0}")]
    Simulator(#[from] sim::SimError),
    #[error("credentials: {0}")]
    Credentials(#[from] crate::dcs::CredentialsError),
    #[error(transparent)]
    Project(#[from] crate::query::ProjectError),
    #[error(transparent)]
    Dcs(#[from] crate::dcs::DcsError),
    #[error(transparent)]
    Discovery(#[from] ProjectDiscoveryError),
}

/// Where requests go and as whom, decided once per run.
struct Target {
    client: DcsClient,
    /// Fingerprint of the credentials, for the feed key.
    credential: String,
    /// The project queried (given or discovered), shown as `status.projectId`.
    project: String,
    /// Keeps the in-process simulator alive for the run.
    _simulator: Option<sim::RunningSimulator>,
}

/// Runs the command; the returned code is the process exit code.
pub async fn run(args: QueryArgs) -> Result<ExitCode, QueryCommandError> {
    let mut manifest = input::read_manifest(&args.file)?;
    let generation = Some(manifest.metadata.generation.unwrap_or(1));
    manifest.metadata.generation = generation;
    let started = Utc::now();
    // Validate before touching credentials: a bad spec is reported as such, whatever else.
    let plan = match query::plan(&manifest.spec, &PlanContext::starting_at(started)) {
        Ok(plan) => plan,
        Err(errors) => {
            let status = first_status(&manifest, None, started, Outcome::Invalid(&errors));
            print(&with_status(&manifest, status), &args, true);
            eprintln!("error: {errors}");
            return Ok(ExitCode::from(EXIT_INVALID_INPUT));
        }
    };
    if manifest.spec.credentials_secret_ref.is_some() {
        info!(
            "spec.credentialsSecretRef is read by the controller; the CLI uses credentials from the environment"
        );
    }
    let (unserved, code) = match connect(&manifest, &args).await {
        Ok(target) => {
            let code = poll_loop(&manifest, &args, target, started).await;
            return Ok(ExitCode::from(code));
        }
        Err(QueryCommandError::Dcs(crate::dcs::DcsError::Endpoint(error))) => {
            (Unserved::Endpoint(error.to_string()), EXIT_INVALID_INPUT)
        }
        Err(QueryCommandError::Discovery(error)) => {
            let error = Arc::new(error);
            let unserved = Unserved::ProjectDiscovery {
                error,
                consecutive: 1,
            };
            (unserved, EXIT_FAILED)
        }
        Err(error) => return Err(error),
    };
    let outcome = Outcome::Unserved(&unserved);
    let status = first_status(&manifest, Some(&plan), started, outcome);
    print(&with_status(&manifest, status), &args, true);
    let message = match &unserved {
        Unserved::ProjectDiscovery { error, .. } => error.to_string(),
        Unserved::Endpoint(message) => message.clone(),
        _ => String::new(),
    };
    eprintln!("error: {}", crate::text::strip_terminal_controls(&message));
    Ok(ExitCode::from(code))
}

/// Reads the query's upstream feeds (the same feeds and round as the controller) until done:
/// after the first answer (one-shot), or when the wait resolves (`--watch`).
async fn poll_loop(
    manifest: &DcsTaskQuery,
    args: &QueryArgs,
    target: Target,
    started: DateTime<Utc>,
) -> u8 {
    // Validated before the loop; planning again only re-reads the clock.
    let Ok(first_plan) = plan_at(manifest, started, started) else {
        return EXIT_INVALID_INPUT;
    };
    let mut watch = Watch::subscribe(first_plan, &target, args);
    let mut shown: Option<DcsTaskQueryStatus> = None;
    let mut recheck: Option<Duration> = None;
    loop {
        if !watch.next(recheck).await {
            return EXIT_FAILED;
        }
        let Some((answer, job)) = watch.latest() else {
            continue;
        };
        let now = Utc::now();
        let Ok(plan) = plan_at(manifest, started, now) else {
            return EXIT_INVALID_INPUT;
        };
        let input = Round {
            previous: Previous {
                status: shown.as_ref(),
                digest: shown.as_ref().map(query::content_digest),
                complete: true,
            },
            project: Some(&target.project),
            ..round_input(manifest, Some(&plan), started, now)
        };
        let outcome = round_outcome(Some(&answer), job.as_deref());
        // The status shown is complete, so the round never asks for stored tasks.
        let Ok(step) = query::round(&input, outcome) else {
            return EXIT_FAILED;
        };
        if watch.follow(step.feeds) == Followed::AskedJobAgain {
            // The job feed's fresh answer decides (see `FeedStep::AskJobAgain`).
            continue;
        }
        let Some(decision) = step.decision else {
            continue;
        };
        if let Some(code) = show(manifest, args, &decision, step.failure) {
            return code;
        }
        recheck = step.recheck;
        shown = Some(decision.status);
    }
}

fn plan_at(
    manifest: &DcsTaskQuery,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<QueryPlan, query::SpecErrors> {
    let context = PlanContext {
        now,
        wait_started_at: started,
    };
    query::plan(&manifest.spec, &context)
}

/// Prints what a decision shows, and returns the exit code once the run is over: after the
/// first decision without `--watch`, when the wait resolves, or on an error only a person can
/// fix (polling again would not help).
fn show(
    manifest: &DcsTaskQuery,
    args: &QueryArgs,
    decision: &query::Decision,
    failure: Option<FailureClass>,
) -> Option<u8> {
    if let (Some(class), Some(error)) = (failure, &decision.status.last_error) {
        warn!(?class, error = %error.message, "upstream poll failed");
    }
    for notice in &decision.events {
        info!(reason = %notice.reason, note = notice.note.as_deref().unwrap_or(""), "event");
    }
    let needs_person = failure.is_some_and(|class| class != FailureClass::Transient);
    let finished = !args.watch || decision.resolved || needs_person;
    if decision.write || finished {
        let object = with_status(manifest, decision.status.clone());
        print(&object, args, finished);
    }
    finished.then(|| exit_code(&decision.status, failure.is_some()))
}

/// The run's own feeds: the task list's, and the job's for a wait that reads the job API.
struct Watch {
    feeds: FeedSet<()>,
    tasks: AnswerReceiver,
    job: Option<AnswerReceiver<JobInfo>>,
    /// Whether the task feed's first answer was read: from then on only a new one wakes.
    listed: bool,
}

/// The task feed's latest answer and, for a job wait, the job feed's.
type Latest = (Arc<Answer>, Option<Arc<Answer<JobInfo>>>);

/// What following a round's [`FeedStep`] did.
#[derive(Debug, PartialEq, Eq)]
enum Followed {
    AskedJobAgain,
    Done,
}

impl Watch {
    /// Subscribes to the feeds of `plan`, polling as the controller's objects do: the job feed
    /// at `activeInterval` for a job wait, the task feed only when a task in the list is
    /// awaited or running.
    fn subscribe(plan: QueryPlan, target: &Target, args: &QueryArgs) -> Watch {
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            listing_deadline: fetcher::listing_deadline(args.request_timeout),
            ..FetchLimits::default()
        }));
        let feeds = FeedSet::new(fetcher, |(), _| {}, None);
        let key = FeedKey {
            endpoint: target.client.endpoint().to_string(),
            project_id: target.project.clone(),
            credential: target.credential.clone(),
            request: plan.list_request(),
            owner: None,
        };
        let awaited_job = plan.awaited_job();
        let list_wait = plan.concern.list_wait().is_some();
        let concern = Arc::new(plan.concern);
        let job = awaited_job.map(|job| {
            let feed = FeedTarget {
                key: key.asking(job),
                client: target.client.clone(),
            };
            let interest = Interest {
                active: true,
                concern: concern.clone(),
            };
            feeds.jobs.subscribe((), feed, interest)
        });
        let feed = FeedTarget {
            key,
            client: target.client.clone(),
        };
        let interest = Interest {
            active: list_wait,
            concern,
        };
        let tasks = feeds.tasks.subscribe((), feed, interest);
        Watch {
            feeds,
            tasks,
            job,
            listed: false,
        }
    }

    /// Waits for a new answer of either feed, or for `recheck` (a decision due without one,
    /// such as a wait deadline); `false` when the run must stop (Ctrl-C, a feed gone).
    async fn next(&mut self, recheck: Option<Duration>) -> bool {
        let sleep = async {
            match recheck {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        let listed = self.listed;
        let tasks = &mut self.tasks;
        let next_answer = async {
            if listed {
                tasks.changed().await
            } else {
                tasks.wait_for(|answer| answer.is_some()).await.map(|_| ())
            }
        };
        let next_job_answer = async {
            match self.job.as_mut() {
                Some(job) => job.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = next_answer => changed.is_ok(),
            changed = next_job_answer => changed.is_ok(),
            _ = sleep => true,
            _ = tokio::signal::ctrl_c() => false,
        }
    }

    /// The feeds' latest answers, once there is something to decide on: the task feed's first
    /// answer, and for a job wait the job feed's first too (the verdict and the first status
    /// come with it, as in the controller).
    fn latest(&mut self) -> Option<Latest> {
        let answer = self.tasks.borrow_and_update().clone()?;
        self.listed = true;
        match self.job.as_mut() {
            None => Some((answer, None)),
            Some(job) => {
                let job = job.borrow_and_update().clone()?;
                Some((answer, Some(job)))
            }
        }
    }

    /// Does what the round said of the feeds.
    fn follow(&self, step: FeedStep) -> Followed {
        match step {
            FeedStep::AskJobAgain => {
                self.feeds.jobs.refresh(&());
                return Followed::AskedJobAgain;
            }
            FeedStep::Stay | FeedStep::Leave => {}
        }
        Followed::Done
    }
}

fn exit_code(status: &DcsTaskQueryStatus, failed: bool) -> u8 {
    if failed {
        return EXIT_FAILED;
    }
    match status.wait_for.as_ref().map(|w| w.phase) {
        Some(WaitPhase::Failed | WaitPhase::TimedOut) => EXIT_FAILED,
        _ => EXIT_OK,
    }
}

/// Builds the client: simulator or real endpoint, credentials from the environment.
async fn connect(manifest: &DcsTaskQuery, args: &QueryArgs) -> Result<Target, QueryCommandError> {
    let spec = &manifest.spec;
    let (simulator, set, endpoint, iam_endpoint, source) = match &args.sim {
        Some(scenario) => {
            let running = sim::serve_on_loopback(super::scenario_from_flag(scenario)?).await?;
            info!(url = %running.base_url(), "started the built-in simulator");
            let endpoint = running.endpoint();
            (
                Some(running),
                sim::demo_credentials(),
                endpoint.clone(),
                Ok(endpoint),
                CredentialSource::Override,
            )
        }
        None => {
            let set = CredentialSet::from_env(|name| std::env::var(name).ok())?;
            let mut policy = EndpointPolicy::new(args.allow_endpoints.clone());
            // An endpoint typed on this command line is the user's own choice.
            if let Some(entry) = args
                .endpoint
                .as_deref()
                .and_then(|typed| typed.parse::<AllowedEndpoint>().ok())
            {
                policy.allow(entry);
            }
            let chosen = args.endpoint.as_deref().or(spec.endpoint.as_deref());
            let endpoint = policy
                .resolve(&spec.region, chosen)
                .map_err(crate::dcs::DcsError::from)?;
            for warning in policy.warnings() {
                warn!(%warning, "endpoint allow-list");
            }
            // Checked only when discovery needs it: a given project never touches IAM.
            let iam_endpoint = policy.resolve_iam(args.iam_endpoint.as_deref());
            (
                None,
                set,
                endpoint,
                iam_endpoint,
                CredentialSource::Environment,
            )
        }
    };
    let credentials = set.credentials;
    let chosen = query::choose_project(
        spec.project_id.as_deref(),
        set.project_id.as_deref(),
        &source,
    )?;
    let http = HttpClient::new(HttpSettings {
        max_body_bytes: args.max_body_bytes,
        timeout: args.request_timeout,
        ..HttpSettings::default()
    })?;
    let project = match chosen {
        Some(project) => project,
        None => {
            let iam_endpoint = iam_endpoint.map_err(crate::dcs::DcsError::from)?;
            let iam = IamClient::new(http.clone(), iam_endpoint, credentials.clone());
            let project = iam.discover_project(&spec.region).await?;
            info!(region = %spec.region, %project, iam = %iam.endpoint(), "discovered the project id through IAM");
            project
        }
    };
    Ok(Target {
        credential: credentials.fingerprint(),
        client: DcsClient::new(http, endpoint, project.clone(), credentials),
        project,
        _simulator: simulator,
    })
}

/// A round of `manifest` with nothing written before, as the CLI runs it: no Secret revision,
/// no Flux refresh, no jitter (one process, one query).
fn round_input<'a>(
    manifest: &'a DcsTaskQuery,
    plan: Option<&'a QueryPlan>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Round<'a> {
    Round {
        spec: &manifest.spec,
        plan,
        generation: manifest.metadata.generation,
        previous: Previous {
            complete: true,
            ..Previous::default()
        },
        wait_started_at: started,
        credentials_revision: None,
        project: None,
        requested_at: None,
        refresh_pending: false,
        now,
        jitter: 0.0,
    }
}

/// The status of a run that stopped before its first poll.
fn first_status(
    manifest: &DcsTaskQuery,
    plan: Option<&QueryPlan>,
    started: DateTime<Utc>,
    outcome: Outcome<'_>,
) -> DcsTaskQueryStatus {
    query::round(&round_input(manifest, plan, started, started), outcome)
        .ok()
        .and_then(|step| step.decision)
        .map(|decision| decision.status)
        .unwrap_or_default()
}

fn with_status(manifest: &DcsTaskQuery, status: DcsTaskQueryStatus) -> DcsTaskQuery {
    let mut object = manifest.clone();
    object.status = Some(status);
    object
}

/// Table mode prints one summary line per change while watching and the full table at the
/// end; JSON and YAML print the whole object at every change.
fn print(object: &DcsTaskQuery, args: &QueryArgs, last: bool) {
    let summary = || {
        let status = object.status.clone().unwrap_or_default();
        format!("{}\n", output::summary_line(&status))
    };
    let text = match (args.output, args.watch, last) {
        (super::OutputFormat::Table, true, false) => summary(),
        (super::OutputFormat::Table, true, true) => {
            format!("{}\n{}", summary(), output::render(object, args.output))
        }
        (format, _, _) => output::render(object, format),
    };
    // Upstream text (task fields, error messages) must not drive the user's terminal.
    let text = crate::text::strip_terminal_controls(&text);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
