//! `dcs-task-operator query`: evaluate a `DcsTaskQuery` exactly as the controller does, without
//! Kubernetes, and print the status it would write.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{QueryArgs, input, output};
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus, WaitPhase};
use crate::dcs::FailureClass;
use crate::dcs::{
    AllowedEndpoint, CredentialSet, DcsClient, EndpointPolicy, HttpClient, HttpSettings, IamClient,
    ProjectDiscoveryError,
};
use crate::query::schedule::{PollKind, next_poll, no_later_than_deadline};
use crate::query::{self, CredentialSource, PlanContext, PollOutcome, StatusContext};
use crate::sim;

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
    if let Err(errors) = query::plan(&manifest.spec, &PlanContext::starting_at(started)) {
        let status = query::build_status(
            &status_context(&manifest, None, started, started),
            PollOutcome::InvalidSpec(&errors),
        );
        print(&with_status(&manifest, status), &args, true);
        eprintln!("error: {errors}");
        return Ok(ExitCode::from(EXIT_INVALID_INPUT));
    }
    if manifest.spec.credentials_secret_ref.is_some() {
        info!(
            "spec.credentialsSecretRef is read by the controller; the CLI uses credentials from the environment"
        );
    }
    let target = match connect(&manifest, &args).await {
        Ok(target) => target,
        Err(QueryCommandError::Dcs(crate::dcs::DcsError::Endpoint(error))) => {
            let message = error.to_string();
            let status = query::build_status(
                &status_context(&manifest, None, started, started),
                PollOutcome::EndpointNotAllowed(&message),
            );
            print(&with_status(&manifest, status), &args, true);
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_INVALID_INPUT));
        }
        Err(QueryCommandError::Discovery(error)) => {
            let message = error.to_string();
            let outcome = match error.upstream() {
                Some(upstream) => PollOutcome::FetchFailed(upstream),
                None => PollOutcome::ProjectDiscoveryFailed(&message),
            };
            let status =
                query::build_status(&status_context(&manifest, None, started, started), outcome);
            print(&with_status(&manifest, status), &args, true);
            eprintln!("error: {}", crate::text::strip_terminal_controls(&message));
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Err(error) => return Err(error),
    };
    Ok(ExitCode::from(
        poll_loop(&manifest, &args, &target, started).await,
    ))
}

/// Polls until done (one-shot), or until the wait resolves (`--watch`).
async fn poll_loop(
    manifest: &DcsTaskQuery,
    args: &QueryArgs,
    target: &Target,
    started: DateTime<Utc>,
) -> u8 {
    let mut shown: Option<DcsTaskQueryStatus> = None;
    let mut failures = 0u32;
    loop {
        let now = Utc::now();
        let context = PlanContext {
            now,
            created_at: started,
            wait_started_at: started,
        };
        let Ok(plan) = query::plan(&manifest.spec, &context) else {
            // Validated before the loop; planning again only re-reads the clock.
            return EXIT_INVALID_INPUT;
        };
        let mut status_ctx = status_context(manifest, shown.as_ref(), started, now);
        status_ctx.wait_deadline = plan.wait.as_ref().and_then(|wait| wait.deadline);
        let (status, kind) = match target.client.list_tasks(&plan.page, plan.paging).await {
            Ok(listing) => {
                failures = 0;
                let evaluation = query::evaluate(&plan, &listing, now);
                let resolved = evaluation
                    .wait
                    .as_ref()
                    .is_some_and(|w| w.phase.is_resolved());
                let kind = PollKind::Answered {
                    active: evaluation.active,
                    resolved,
                };
                (
                    query::build_status(&status_ctx, PollOutcome::Fetched(&evaluation)),
                    kind,
                )
            }
            Err(error) => {
                failures += 1;
                warn!(%error, attempt = failures, "task-center poll failed");
                let kind = PollKind::Failed {
                    consecutive: failures,
                    class: error.class(),
                };
                (
                    query::build_status(&status_ctx, PollOutcome::FetchFailed(&error)),
                    kind,
                )
            }
        };
        let mut status = status;
        status.project_id = Some(target.project.clone());
        let changed = shown
            .as_ref()
            .is_none_or(|old| without_sync_time(old) != without_sync_time(&status));
        // Errors only a person can fix end a watch: polling again would not help.
        let needs_person =
            matches!(kind, PollKind::Failed { class, .. } if class != FailureClass::Transient);
        let resolved = status
            .wait_for
            .as_ref()
            .is_some_and(|w| w.phase.is_resolved());
        let delay = no_later_than_deadline(
            next_poll(kind, Some(&plan), rand::random_range(-1.0..=1.0)),
            status_ctx.wait_deadline,
            now,
        );
        let finished = !args.watch || delay.is_none() || needs_person || resolved;
        if changed || finished {
            let object = with_status(manifest, status.clone());
            print(&object, args, finished);
        }
        shown = Some(status);
        let Some(delay) = delay.filter(|_| !finished) else {
            return exit_code(shown.as_ref(), kind);
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::signal::ctrl_c() => return EXIT_FAILED,
        }
    }
}

fn exit_code(status: Option<&DcsTaskQueryStatus>, kind: PollKind) -> u8 {
    if matches!(kind, PollKind::Failed { .. }) {
        return EXIT_FAILED;
    }
    match status.and_then(|s| s.wait_for.as_ref()).map(|w| w.phase) {
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
                CredentialSource::Simulator,
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
        client: DcsClient::new(http, endpoint, project.clone(), credentials),
        project,
        _simulator: simulator,
    })
}

fn status_context<'a>(
    manifest: &DcsTaskQuery,
    previous: Option<&'a DcsTaskQueryStatus>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StatusContext<'a> {
    StatusContext {
        previous,
        generation: manifest.metadata.generation,
        has_wait: manifest.spec.wait_for.is_some(),
        wait_started_at: started,
        wait_deadline: None,
        credentials_revision: None,
        now,
    }
}

fn with_status(manifest: &DcsTaskQuery, status: DcsTaskQueryStatus) -> DcsTaskQuery {
    let mut object = manifest.clone();
    object.status = Some(status);
    object
}

fn without_sync_time(status: &DcsTaskQueryStatus) -> DcsTaskQueryStatus {
    DcsTaskQueryStatus {
        last_sync_time: None,
        ..status.clone()
    }
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
