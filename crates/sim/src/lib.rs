//! DCS task-center simulator: a real HTTP server answering `GET /v2/{project_id}/tasks` and
//! `GET /v2/{project_id}/jobs/{job_id}` the way the documented APIs do, for integration tests,
//! the `query --sim` demo and benchmarks.
//!
//! What it simulates, and why each part exists:
//! - the list endpoint with the documented parameters, limits, ordering and error bodies, so the
//!   client's paging and validation are tested against the contract rather than against itself;
//! - SDK-HMAC-SHA256 and `X-Auth-Token` authentication (see the `auth` module), so signing bugs
//!   surface before a real account is involved;
//! - tasks whose status follows a timeline on a virtual clock, so "wait for the switchover"
//!   flows can be demonstrated and tested in seconds;
//! - `ShowJobInfo` for the jobs of those tasks (by their `job_id`) and for jobs a scenario
//!   declares without a task (see the `jobs` module), with the same checks, faults and counts as
//!   the task list, so job waits are tested against the job API's own vocabulary;
//! - IAM's `GET /v3/projects?name={region}` (see the `iam` module), so project-id discovery is
//!   exercised with the same signature checks;
//! - injected faults and request counters through the loopback-only admin API under `/_sim/`
//!   (documented in the `admin` module), so retries, back-off and call sharing are measurable.
//!
//! The JSON is built from the simulator's own representation, never from `dcs_cloud::model`.
//!
//! What it may know, and what not: it uses `dcs_cloud` on purpose for the signer (`sign`, so a
//! signature is verified by the very code that makes it) and for the endpoint and credential
//! types a caller connects with, and `dcs_common` for durations. It must not know the operator:
//! nothing of Kubernetes, of the `DcsTaskQuery` spec (`api`), of what a query means (`query`), of
//! who polls when (`upstream`) or of the controller; its manifest lists none of them
//! (`tests/layers.rs` at the repository root checks it).
//!
//! The modules import one another in one direction only, each from those listed before it (no
//! cycles):
//!
//! 1. `limits`, `error`, `timeline`, `params`, `stats`: bounds, load errors, status timelines,
//!    list parameters, request counters;
//! 2. `scenario`: a scenario file, checked against the limits;
//! 3. `store`: the tasks and jobs a scenario (or the admin API) resolves to;
//! 4. `wire`: the JSON the APIs answer with, and the HTTP answer that carries it;
//! 5. `faults` (queued injected answers) and `auth` (signature checks, with `dcs_cloud::sign`);
//! 6. `state`: what the handlers share (the store, the clock, faults, auth, counters);
//! 7. `gateway`: reading a request and checking its signature;
//! 8. `list`: the task list, and the fault and admission steps every DCS API takes;
//! 9. `jobs` (`ShowJobInfo`) and `iam` (`ListProjects`);
//! 10. `admin`: the `/_sim/` API;
//!
//! and this module, which routes them and runs the server. (`client_tests` runs the `dcs_cloud`
//! client against it.)
//!
//! ```no_run
//! # async fn demo() -> Result<(), dcs_sim::SimError> {
//! use dcs_sim::{Scenario, SimConfig, serve};
//! let sim = serve(SimConfig::new("127.0.0.1:0".parse().unwrap(), Scenario::default_demo())).await?;
//! println!("DCS endpoint: {}", sim.base_url());
//! sim.wait().await; // until Ctrl-C
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod error;
mod faults;
mod gateway;
mod iam;
mod jobs;
mod limits;
mod list;
mod params;
mod scenario;
mod state;
mod stats;
mod store;
mod timeline;
mod wire;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod http_tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tokio::sync::oneshot;

use dcs_cloud::{AllowedEndpoint, CredentialSet, Credentials, Endpoint, EndpointPolicy};
use tokio::task::JoinHandle;

pub use error::SimError;
pub use scenario::{Scenario, TaskCountEncoding};

use auth::AuthPolicy;
use state::SimState;
use store::DuplicateId;

/// Access key of the demo credential, accepted by every scenario that lists no credentials.
/// Public on purpose: it only ever opens the local simulator.
pub const DEMO_ACCESS_KEY: &str = "SIMDEMOACCESSKEY0001";
/// Secret key of the demo credential. Not a secret: it only opens the local simulator.
pub const DEMO_SECRET_KEY: &str = "sim-demo-secret-key-not-a-real-secret";
/// Project of scenario tasks that name none.
pub const DEMO_PROJECT_ID: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// The region [`DEMO_PROJECT_ID`] is named after: IAM's `GET /v3/projects?name=cn-north-4`
/// finds it; any other region lists no project.
pub const DEMO_REGION: &str = "cn-north-4";

/// How long in-flight requests (an injected latency, say) may delay a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything [`serve`] needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port (read it back with
    /// [`RunningSimulator::local_addr`]).
    pub listen: SocketAddr,
    pub scenario: Scenario,
    /// Overrides the scenario's `taskCount`, e.g. from a CLI flag.
    pub task_count_encoding: Option<TaskCountEncoding>,
    /// How far `X-Sdk-Date` may be from the real clock before a signature counts as expired;
    /// 15 minutes, as the API gateway allows.
    pub max_clock_skew: Duration,
}

impl SimConfig {
    /// A config with the scenario's own encoding and the gateway's 15-minute skew.
    pub fn new(listen: SocketAddr, scenario: Scenario) -> Self {
        Self {
            listen,
            scenario,
            task_count_encoding: None,
            max_clock_skew: Duration::from_secs(15 * 60),
        }
    }
}

/// A simulator serving in the background. Dropping it stops the server, like
/// [`RunningSimulator::shutdown`] without waiting.
#[derive(Debug)]
pub struct RunningSimulator {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningSimulator {
    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint to give a DCS client, e.g. `http://127.0.0.1:41234`. A wildcard listen
    /// address is replaced by loopback, since that is where a local client connects.
    pub fn base_url(&self) -> String {
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.local_addr.port()))
    }

    /// This simulator as a DCS endpoint for a client. It is the caller's own server, so it is
    /// allowed explicitly rather than through the operator's allow-list.
    pub fn endpoint(&self) -> Endpoint {
        let url = self.base_url();
        let own: AllowedEndpoint = url
            .parse()
            .expect("the simulator's base URL is a valid allow-list entry");
        EndpointPolicy::new(vec![own])
            .resolve("sim", Some(&url))
            .expect("the simulator's base URL is a valid endpoint")
    }

    /// Stops accepting, lets in-flight requests finish (at most a few seconds), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "simulator server failed"),
            Ok(Err(error)) => tracing::warn!(%error, "simulator server task failed"),
            Err(_) => {
                tracing::warn!("simulator requests still running after the grace period; aborting");
                self.server.abort();
            }
        }
        tracing::info!(addr = %self.local_addr, "simulator stopped");
    }

    /// Serves until Ctrl-C (or SIGTERM on Unix) or until the server stops by itself, then shuts
    /// down. This is what the `sim` command runs in the foreground.
    pub async fn wait(mut self) {
        tokio::select! {
            () = stop_signal() => {}
            result = &mut self.server => {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::error!(%error, "simulator server failed"),
                    Err(error) => tracing::error!(%error, "simulator server task failed"),
                }
                return;
            }
        }
        self.shutdown().await;
    }
}

/// Ctrl-C, or SIGTERM where there is such a thing (containers stop with it).
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Binds `config.listen`, starts serving in a background task and returns at once.
///
/// Relative times in the scenario are resolved against the moment of this call.
/// Starts the simulator on a free loopback port, for in-process use: `query --sim`,
/// `controller --sim` and tests.
pub async fn serve_on_loopback(scenario: Scenario) -> Result<RunningSimulator, SimError> {
    serve(SimConfig::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        scenario,
    ))
    .await
}

/// The credentials and project the default scenarios accept.
pub fn demo_credentials() -> CredentialSet {
    CredentialSet {
        credentials: Credentials::ak_sk(DEMO_ACCESS_KEY, DEMO_SECRET_KEY),
        project_id: Some(DEMO_PROJECT_ID.to_string()),
        region: None,
    }
}

pub async fn serve(config: SimConfig) -> Result<RunningSimulator, SimError> {
    let scenario = &config.scenario;
    let encoding = config
        .task_count_encoding
        .unwrap_or(scenario.task_count_encoding());
    let auth = AuthPolicy::new(
        &scenario.credentials,
        &scenario.tokens,
        config.max_clock_skew,
    );
    let state = SimState::new(scenario, encoding, auth, chrono::Utc::now()).map_err(
        |DuplicateId(id)| SimError::InvalidScenario {
            origin: "<scenario>".into(),
            field: "tasks".into(),
            problem: format!("task id {id} is used twice"),
        },
    )?;
    let task_count = lock_len(&state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;
    let app = router(Arc::new(state)).into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // A dropped sender (the handle was dropped) stops the server too.
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(addr = %local_addr, tasks = task_count, ?encoding, "DCS task-center simulator listening");
    Ok(RunningSimulator {
        local_addr,
        stop: Some(stop),
        server,
    })
}

fn lock_len(state: &SimState) -> usize {
    state::lock(&state.store).len()
}

/// The whole HTTP surface: the task-center and job routes, the admin routes, and a gateway-style
/// 404.
fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v2/{project_id}/tasks", get(list::list_tasks))
        .route("/v2/{project_id}/jobs/{job_id}", get(jobs::show_job))
        .route("/v3/projects", get(iam::list_projects))
        .merge(admin::routes())
        .fallback(not_found)
        .layer(axum::middleware::map_response(add_request_id))
        .with_state(state)
}

async fn not_found() -> Response {
    wire::json(
        StatusCode::NOT_FOUND,
        wire::error_body(
            "APIG.0101",
            "The API does not exist or has not been published in the environment.",
        ),
    )
}

/// Every real answer carries an `X-Request-Id`; clients log it, so the simulator sends one.
async fn add_request_id(mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&store::new_task_id()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
