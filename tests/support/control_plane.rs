//! A real Kubernetes control plane (kube-apiserver + etcd on loopback) for integration tests.
//!
//! Mocks can only assert what we *send*; storage semantics (resourceVersion conflicts, watches, RBAC
//! refusals, CRD schema validation) need a real apiserver. This module starts one per test binary,
//! lazily, and shares it between that binary's tests:
//!
//! ```ignore
//! mod support;
//! use support::control_plane::ControlPlane;
//!
//! #[tokio::test]
//! async fn something() {
//!     let cp = ControlPlane::shared();
//!     let client = cp.admin_client();
//!     let ns = cp.new_namespace("something").await;
//!     // ...
//! }
//! ```
//!
//! Binaries come from `KUBEBUILDER_ASSETS` (the envtest convention) or from the cache folder that
//! `scripts/control-plane.sh` fills. The server is v1.20.2 (what Debian can build offline): it lacks CRD
//! CEL rules, `fieldValidation=Strict` and streaming lists. There is no kube-controller-manager either,
//! so nothing garbage-collects owned objects and deleted namespaces stay `Terminating`; tests isolate
//! themselves with a fresh namespace each instead of cleaning up.

// Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;

/// The Kubernetes version `scripts/control-plane.sh` builds (and the cache folder is named after).
pub const KUBERNETES_VERSION: &str = "v1.20.2";

/// The envtest convention for "folder holding `kube-apiserver` and `etcd`".
pub const ASSETS_ENV: &str = "KUBEBUILDER_ASSETS";

/// Overrides the base cache folder of `scripts/control-plane.sh`; honoured here so both agree.
pub const CACHE_ENV: &str = "DCS_CONTROL_PLANE_CACHE";

/// Set to keep the control plane's temporary folder (logs, etcd data, kubeconfig) after the tests.
pub const KEEP_ENV: &str = "DCS_CONTROL_PLANE_KEEP";

/// The project's CRD, relative to `CARGO_MANIFEST_DIR`; installed into every control plane.
pub const PROJECT_CRD_FILE: &str = "crds/dcstaskqueries.dcs.hwcloud.dev.yaml";

/// Startup normally takes ~5 s; the generous limit covers a machine busy compiling Rust.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How much of each process log a startup failure shows.
const LOG_TAIL_LINES: usize = 40;
/// Port races with other processes (another test binary started at the same moment) are retried.
const START_ATTEMPTS: usize = 3;
const TEMP_PREFIX: &str = "dcs-test-control-plane-";

/// Folder holding `kube-apiserver` and `etcd`: `KUBEBUILDER_ASSETS` if set, else the cache folder of
/// `scripts/control-plane.sh`. Panics with what to run when neither has the binaries: tests that need a
/// control plane must fail loudly rather than skip silently.
pub fn find_assets() -> PathBuf {
    if let Some(dir) = std::env::var_os(ASSETS_ENV).filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        if let Some(missing) = missing_binaries(&dir) {
            panic!(
                "{ASSETS_ENV}={} lacks {missing}. Point it at a folder with kube-apiserver and etcd, or \
                 unset it and run `scripts/control-plane.sh` (or `export {ASSETS_ENV}=$(scripts/control-plane.sh)`).",
                dir.display()
            );
        }
        return dir;
    }
    let default = default_assets_dir();
    if missing_binaries(&default).is_none() {
        return default;
    }
    panic!(
        "no Kubernetes control plane binaries found: {ASSETS_ENV} is not set and {} lacks kube-apiserver/etcd.\n\
         Run `scripts/control-plane.sh` once (builds kube-apiserver {KUBERNETES_VERSION} from Debian packages, \
         ~15 minutes the first time), or `export {ASSETS_ENV}=$(scripts/control-plane.sh)`.\n\
         Off Debian, set {ASSETS_ENV} to a folder with envtest binaries, e.g. `$(setup-envtest use -p path)`.",
        default.display()
    );
}

/// `${DCS_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dcs-task-operator/control-plane}/v1.20.2`,
/// the same folder `scripts/control-plane.sh` fills.
pub fn default_assets_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let base = match non_empty(CACHE_ENV) {
        Some(base) => PathBuf::from(base),
        None => {
            let cache = non_empty("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache.join("dcs-task-operator").join("control-plane")
        }
    };
    base.join(KUBERNETES_VERSION)
}

fn missing_binaries(dir: &Path) -> Option<String> {
    let missing: Vec<&str> = ["kube-apiserver", "etcd"]
        .into_iter()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// The project's CRD file (which may not exist yet while the CRD is being written).
pub fn project_crd_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(PROJECT_CRD_FILE)
}

/// A running kube-apiserver + etcd pair and how to talk to it.
///
/// Holds connection facts, not a `kube::Client`: every `#[tokio::test]` has its own runtime and a client
/// (with its connection pool and background tasks) must live on the runtime that uses it, so each test
/// asks for fresh clients.
pub struct ControlPlane {
    url: String,
    dir: PathBuf,
    admin_config: Config,
    kubeconfig: PathBuf,
    project_crds: Vec<String>,
    startup_time: Duration,
    processes: Mutex<Option<Processes>>,
    kubeconfig_counter: AtomicUsize,
}

/// What must be torn down: the supervising thread (which owns the child processes) and the folder.
/// Dropping `orders` stops the processes.
struct Processes {
    orders: mpsc::Sender<Order>,
    supervisor: JoinHandle<()>,
    dir: tempfile::TempDir,
}

/// What the supervising thread can be asked to do besides stopping everything. The children die
/// with the thread that spawned them, so only that thread may (re)start one.
enum Order {
    /// Stop the kube-apiserver (SIGTERM, then SIGKILL); etcd keeps running.
    StopApiserver(mpsc::Sender<Result<(), String>>),
    /// Start the kube-apiserver again with the same flags, port, certificates and etcd, and wait
    /// until `/readyz` answers ok.
    StartApiserver(mpsc::Sender<Result<(), String>>),
}

/// How to start the kube-apiserver again, as it was started the first time.
struct Relaunch {
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    kubeconfig: PathBuf,
}

/// What a successful boot reports back to [`ControlPlane::start`].
struct Booted {
    url: String,
    admin_config: Config,
    kubeconfig: PathBuf,
    project_crds: Vec<String>,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

impl ControlPlane {
    /// The control plane of this test binary, started on first use and shared by its tests.
    ///
    /// A failed start is remembered, so every test reports the same error instead of each trying again.
    /// The processes are stopped and the folder removed when the test binary exits (or killed by the
    /// kernel, see [`spawn_supervised`], if it dies).
    pub fn shared() -> &'static ControlPlane {
        let started = SHARED.get_or_init(|| {
            let started = ControlPlane::start();
            if started.is_ok() {
                // Statics are never dropped; tear down at exit so etcd data and logs don't pile up in /tmp.
                // SAFETY: registers a plain `extern "C" fn` that never unwinds.
                unsafe { libc::atexit(stop_shared_control_plane) };
            }
            started
        });
        match started {
            Ok(control_plane) => control_plane,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts a private control plane, for tests that must not share one (e.g. ones that stop it).
    /// Prefer [`ControlPlane::shared`]: each instance costs ~5 s and ~400 MB. Stopped on drop.
    pub fn start() -> Result<ControlPlane, String> {
        let assets = find_assets();
        let started = Instant::now();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&assets, started) {
                Ok(control_plane) => return Ok(control_plane),
                Err(error) if error.contains("address already in use") => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn start_once(assets: &Path, started: Instant) -> Result<ControlPlane, String> {
        remove_abandoned_temp_dirs();
        let dir = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir()
            .map_err(|error| format!("cannot create a temporary folder: {error}"))?;
        let path = dir.path().to_path_buf();
        // Lets a later run recognise this folder as abandoned if this process gets killed.
        fs::write(path.join("owner.pid"), std::process::id().to_string())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;

        let (booted_tx, booted_rx) = mpsc::channel();
        let (order_tx, order_rx) = mpsc::channel::<Order>();
        let supervisor = {
            let (assets, path) = (assets.to_path_buf(), path.clone());
            thread::Builder::new()
                .name("control-plane".into())
                .spawn(move || supervise(&assets, &path, booted_tx, order_rx))
                .map_err(|error| format!("cannot start the control plane thread: {error}"))?
        };
        let booted = match booted_rx.recv() {
            Ok(Ok(booted)) => booted,
            Ok(Err(message)) => {
                let _ = supervisor.join();
                return Err(message);
            }
            Err(_) => {
                let _ = supervisor.join();
                return Err("the control plane thread died while starting".into());
            }
        };
        let startup_time = started.elapsed();
        eprintln!(
            "control plane {KUBERNETES_VERSION} ready at {} in {:.1} s (kubeconfig: {})",
            booted.url,
            startup_time.as_secs_f64(),
            booted.kubeconfig.display()
        );
        Ok(ControlPlane {
            url: booted.url,
            dir: path,
            admin_config: booted.admin_config,
            kubeconfig: booted.kubeconfig,
            project_crds: booted.project_crds,
            startup_time,
            processes: Mutex::new(Some(Processes {
                orders: order_tx,
                supervisor,
                dir,
            })),
            kubeconfig_counter: AtomicUsize::new(0),
        })
    }

    /// `https://127.0.0.1:PORT` of the apiserver.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Temporary folder with the process logs (`etcd.log`, `kube-apiserver.log`), certificates and
    /// kubeconfigs. Removed at exit unless `DCS_CONTROL_PLANE_KEEP` is set.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long starting took (processes, readiness, CRD installation).
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Names of the CRDs installed from [`PROJECT_CRD_FILE`]; panics if that file did not exist when
    /// the control plane started, since tests calling this depend on the CRD.
    pub fn project_crds(&self) -> &[String] {
        assert!(
            !self.project_crds.is_empty(),
            "{} did not exist when the control plane started, so the project's CRD is not installed",
            project_crd_path().display()
        );
        &self.project_crds
    }

    /// Client configuration of the cluster admin (group `system:masters`), verifying the apiserver's
    /// self-signed certificate. Clone and adjust it for special clients.
    pub fn admin_config(&self) -> Config {
        self.admin_config.clone()
    }

    /// A new admin client on the calling test's tokio runtime (must be called inside one).
    pub fn admin_client(&self) -> Client {
        client_from(self.admin_config())
    }

    /// A new client authenticating with `token` as bearer token and nothing else.
    pub fn client_with_token(&self, token: &str) -> Client {
        let mut config = self.admin_config();
        config.auth_info = AuthInfo {
            token: Some(token.to_owned().into()),
            ..AuthInfo::default()
        };
        client_from(config)
    }

    /// Kubeconfig of the admin, for `kubectl --kubeconfig` or other clients.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes a kubeconfig authenticating with `token` (for example from
    /// [`ControlPlane::service_account_token`]) and returns its path.
    pub fn write_kubeconfig(&self, user: &str, token: &str) -> PathBuf {
        let number = self.kubeconfig_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("kubeconfig-{number}.yaml"));
        write_kubeconfig_file(
            &path,
            &self.url,
            &self.dir.join("certs/apiserver.crt"),
            user,
            token,
        )
        .unwrap_or_else(|error| panic!("{error}"));
        path
    }

    /// Creates a namespace named `<prefix>-<random suffix>` (the apiserver's `generateName`) and returns
    /// its name; one per test keeps tests on the shared control plane from seeing each other's objects.
    /// The prefix is lower-cased and other characters than `a-z0-9` become `-`, so a test's function
    /// name works.
    pub async fn new_namespace(&self, prefix: &str) -> String {
        let mut prefix: String = prefix
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        // generateName adds 5 characters; a namespace name has at most 63.
        prefix.truncate(56);
        let prefix = prefix.trim_matches('-');
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!(
                    "{}-",
                    if prefix.is_empty() { "test" } else { prefix }
                )),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = Api::<Namespace>::all(self.admin_client())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|error| panic!("creating a namespace with prefix {prefix:?}: {error}"));
        created
            .metadata
            .name
            .expect("the apiserver names a generated namespace")
    }

    /// Creates the ServiceAccount `namespace/name` (if missing) and returns a bearer token for it from
    /// the TokenRequest API (valid 1 hour).
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let accounts = Api::<ServiceAccount>::namespaced(self.admin_client(), namespace);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("creating ServiceAccount {namespace}/{name}: {error}"),
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let granted = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|error| {
                panic!("requesting a token for ServiceAccount {namespace}/{name}: {error}")
            });
        granted
            .status
            .map(|status| status.token)
            .filter(|token| !token.is_empty())
            .unwrap_or_else(|| panic!("the TokenRequest for {namespace}/{name} returned no token"))
    }

    /// A client authenticated as ServiceAccount `namespace/name` (created if missing). It has only the
    /// permissions RBAC grants it (by default: discovery), so tests can bind a Role and check what the
    /// operator's permissions allow and refuse.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Client {
        let token = self.service_account_token(namespace, name).await;
        self.client_with_token(&token)
    }

    /// Runs `kubectl` as admin against this control plane and returns its stdout; panics with stderr if
    /// it fails. Blocks the thread (fine for tests; don't hold a watch on the same runtime meanwhile).
    pub fn kubectl(&self, args: &[&str]) -> String {
        expect_success(args, self.try_kubectl(args, None))
    }

    /// Like [`ControlPlane::kubectl`], feeding `stdin` (e.g. `kubectl apply -f -`).
    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        expect_success(args, self.try_kubectl(args, Some(stdin)))
    }

    /// Runs `kubectl` as admin and returns its output whatever the exit status, for tests that expect
    /// kubectl to fail (e.g. a schema rejection).
    pub fn try_kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_kubectl(&self.kubeconfig, args, stdin)
    }

    /// Runs `kubectl` with another kubeconfig (e.g. from [`ControlPlane::write_kubeconfig`]).
    pub fn try_kubectl_with_kubeconfig(
        &self,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        run_kubectl(kubeconfig, args, stdin)
    }

    /// Installs (or replaces) the CRDs of a YAML file and waits until they are Established; returns
    /// their names. The project's CRD is already installed at start; this is for other CRDs.
    pub async fn install_crd_file(&self, path: &Path) -> Vec<String> {
        install_crd_file(&self.admin_client(), path)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// The last lines of the apiserver's log, to enrich a failure message.
    pub fn apiserver_log_tail(&self) -> String {
        log_tail(&self.dir.join("kube-apiserver.log"), LOG_TAIL_LINES)
    }

    /// Writes an admin kubeconfig for another server URL (e.g. a proxy in front of this apiserver)
    /// and returns its path. TLS still verifies the apiserver's certificate, which names
    /// 127.0.0.1, so a plain TCP proxy on loopback works.
    pub fn write_admin_kubeconfig_for(&self, server: &str) -> PathBuf {
        let number = self.kubeconfig_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("kubeconfig-{number}.yaml"));
        let tokens = fs::read_to_string(self.dir.join("tokens.csv"))
            .unwrap_or_else(|error| panic!("reading tokens.csv: {error}"));
        let token = tokens.split(',').next().unwrap_or_default();
        write_kubeconfig_file(
            &path,
            server,
            &self.dir.join("certs/apiserver.crt"),
            "admin",
            token,
        )
        .unwrap_or_else(|error| panic!("{error}"));
        path
    }

    /// Stops the kube-apiserver (SIGTERM, SIGKILL after 10 s) and leaves etcd running, to
    /// simulate an apiserver restart or outage. Blocks until the process is gone. Use a private
    /// control plane ([`ControlPlane::start`]) for this, not the shared one.
    pub fn stop_apiserver(&self) {
        self.order(Order::StopApiserver)
            .unwrap_or_else(|error| panic!("stopping the kube-apiserver: {error}"));
    }

    /// Starts the kube-apiserver stopped by [`ControlPlane::stop_apiserver`] again, on the same
    /// port with the same flags, certificates and etcd, and blocks until `/readyz` answers ok.
    pub fn start_apiserver(&self) {
        self.order(Order::StartApiserver)
            .unwrap_or_else(|error| panic!("restarting the kube-apiserver: {error}"));
    }

    fn order(
        &self,
        order: impl FnOnce(mpsc::Sender<Result<(), String>>) -> Order,
    ) -> Result<(), String> {
        let orders = self
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(|processes| processes.orders.clone())
            .ok_or("the control plane is stopped")?;
        let (reply_tx, reply_rx) = mpsc::channel();
        orders
            .send(order(reply_tx))
            .map_err(|_| "the control plane thread is gone")?;
        reply_rx
            .recv()
            .map_err(|_| "the control plane thread did not answer".to_string())?
    }

    /// Stops the processes and removes the folder; idempotent. Dropping does the same.
    pub fn stop(&self) {
        let processes = self
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(Processes {
            orders,
            supervisor,
            dir,
        }) = processes
        {
            drop(orders);
            let _ = supervisor.join();
            if std::env::var_os(KEEP_ENV).is_some() {
                let kept = dir.keep();
                eprintln!("control plane folder kept: {}", kept.display());
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

extern "C" fn stop_shared_control_plane() {
    if let Some(Ok(control_plane)) = SHARED.get() {
        // Unwinding out of an `extern "C"` function aborts; a failed cleanup must not.
        let _ = std::panic::catch_unwind(|| control_plane.stop());
    }
}

fn client_from(config: Config) -> Client {
    Client::try_from(config).unwrap_or_else(|error| panic!("building a kube client: {error}"))
}

fn run_kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("running kubectl (is it on PATH?): {error}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())
            .unwrap_or_else(|error| panic!("writing kubectl's stdin: {error}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("waiting for kubectl: {error}"))
}

fn expect_success(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "kubectl {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
    String::from_utf8(output.stdout).expect("kubectl prints UTF-8")
}

/// Body of the thread that owns the child processes.
///
/// The processes are spawned with `PR_SET_PDEATHSIG`, which fires when the *spawning thread* ends, not
/// the process. Test threads end after each test, so a thread of our own spawns them and lives until
/// the control plane is stopped (for the shared one: until the process exits).
fn supervise(
    assets: &Path,
    dir: &Path,
    booted: mpsc::Sender<Result<Booted, String>>,
    orders: mpsc::Receiver<Order>,
) {
    let mut children = Vec::new();
    let relaunch = match boot(assets, dir, &mut children) {
        Ok((boot, relaunch)) => {
            let _ = booted.send(Ok(boot));
            Some(relaunch)
        }
        Err(error) => {
            let _ = booted.send(Err(error));
            None
        }
    };
    if let Some(relaunch) = relaunch {
        // Ends when the sender is dropped, i.e. on stop.
        for order in orders.iter() {
            match order {
                Order::StopApiserver(reply) => {
                    let _ = reply.send(stop_apiserver(&mut children));
                }
                Order::StartApiserver(reply) => {
                    let _ = reply.send(start_apiserver(&relaunch, &mut children));
                }
            }
        }
    }
    stop_processes(&mut children);
    // The folder itself is a TempDir removed by its owner; etcd's data may live outside it.
    if std::env::var_os(KEEP_ENV).is_none() {
        remove_shm_dir(dir);
    }
}

const APISERVER: &str = "kube-apiserver";

/// Stops the kube-apiserver child the way a node stops it (SIGTERM, SIGKILL after 10 s).
fn stop_apiserver(children: &mut Vec<Supervised>) -> Result<(), String> {
    let index = children
        .iter()
        .position(|child| child.name == APISERVER)
        .ok_or("the kube-apiserver is not running")?;
    let mut apiserver = children.remove(index);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(apiserver.child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(apiserver.child.try_wait(), Ok(None)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = apiserver.child.kill();
    apiserver
        .child
        .wait()
        .map_err(|error| format!("cannot reap the kube-apiserver: {error}"))?;
    Ok(())
}

/// Starts the kube-apiserver again from `relaunch` and waits for `/readyz`.
fn start_apiserver(relaunch: &Relaunch, children: &mut Vec<Supervised>) -> Result<(), String> {
    if children.iter().any(|child| child.name == APISERVER) {
        return Err("the kube-apiserver is already running".into());
    }
    // Append to the first run's log, so one file tells the whole story.
    let log = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&relaunch.log)
        .map_err(|error| format!("cannot open {}: {error}", relaunch.log.display()))?;
    let log_copy = log
        .try_clone()
        .map_err(|error| format!("cannot duplicate {}: {error}", relaunch.log.display()))?;
    let mut command = Command::new(&relaunch.program);
    command
        .args(&relaunch.args)
        .stdin(Stdio::null())
        .stdout(log_copy)
        .stderr(log);
    super::die_with_spawning_thread(&mut command);
    let child = command
        .spawn()
        .map_err(|error| format!("cannot start the kube-apiserver: {error}"))?;
    children.push(Supervised {
        name: APISERVER.into(),
        child,
    });
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build a tokio runtime: {error}"))?;
    runtime.block_on(async {
        let client = client_from(config_from_kubeconfig(&relaunch.kubeconfig).await?);
        let mut last_answer = String::from("no answer yet");
        loop {
            if let Some(exited) = exited_process(children) {
                return Err(format!(
                    "{exited}\n{}",
                    log_tail(&relaunch.log, LOG_TAIL_LINES)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "/readyz not ok after {STARTUP_TIMEOUT:?}; last answer: {last_answer}"
                ));
            }
            match readyz(&client).await {
                Ok(()) => return Ok(()),
                Err(answer) => last_answer = answer,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}

fn boot(
    assets: &Path,
    dir: &Path,
    children: &mut Vec<Supervised>,
) -> Result<(Booted, Relaunch), String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let token = random_hex(24)?;
    fs::write(
        dir.join("tokens.csv"),
        format!("{token},admin,admin-uid,system:masters\n"),
    )
    .map_err(|error| format!("cannot write tokens.csv: {error}"))?;
    let service_account_key = dir.join("service-account.key");
    run_quietly(
        Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&service_account_key)
            .arg("2048"),
    )?;

    let [etcd_port, etcd_peer_port, apiserver_port] = free_ports()?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    // etcd fsyncs every write; on tmpfs that is free, which speeds up the apiserver's bootstrap.
    let etcd_data = shm_dir(dir).unwrap_or_else(|| dir.join("etcd"));
    let etcd = spawn_supervised(
        Command::new(assets.join("etcd"))
            .arg("--data-dir")
            .arg(&etcd_data)
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!(
                "--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"
            ))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}"
            ))
            .arg("--log-level=warn")
            .arg("--logger=zap"),
        &dir.join("etcd.log"),
    )?;
    children.push(etcd);

    let cert_dir = dir.join("certs");
    let key = service_account_key.display();
    let apiserver_args: Vec<String> = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={apiserver_port}"),
        format!("--cert-dir={}", cert_dir.display()),
        format!("--token-auth-file={}", dir.join("tokens.csv").display()),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-key-file={key}"),
        format!("--service-account-signing-key-file={key}"),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        // Its token controller lives in the (absent) controller-manager.
        "--disable-admission-plugins=ServiceAccount".into(),
        // Don't reconcile the `kubernetes` Endpoints: nothing routes to it here.
        "--endpoint-reconciler-type=none".into(),
        "--profiling=false".into(),
    ];
    let apiserver_log = dir.join("kube-apiserver.log");
    let apiserver = spawn_supervised(
        Command::new(assets.join(APISERVER)).args(&apiserver_args),
        &apiserver_log,
    )?;
    children.push(apiserver);

    let failure = |children: &mut Vec<Supervised>, what: String| {
        format!(
            "starting the test control plane ({KUBERNETES_VERSION}, binaries from {}) failed: {what}\n{}",
            assets.display(),
            process_report(children, dir)
        )
    };

    // The apiserver writes its self-signed certificate (a leaf followed by its CA) before serving.
    let certificate = cert_dir.join("apiserver.crt");
    while !certificate.is_file() {
        if let Some(exited) = exited_process(children) {
            return Err(failure(children, exited));
        }
        if Instant::now() > deadline {
            return Err(failure(
                children,
                format!("no {} after {STARTUP_TIMEOUT:?}", certificate.display()),
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
    let url = format!("https://127.0.0.1:{apiserver_port}");
    let kubeconfig = dir.join("kubeconfig.yaml");
    write_kubeconfig_file(&kubeconfig, &url, &certificate, "admin", &token)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build a tokio runtime: {error}"))?;
    runtime.block_on(async {
        let admin_config = config_from_kubeconfig(&kubeconfig).await?;
        let client = client_from(admin_config.clone());
        let mut last_answer = String::from("no answer yet");
        loop {
            if let Some(exited) = exited_process(children) {
                return Err(failure(children, exited));
            }
            if Instant::now() > deadline {
                return Err(failure(
                    children,
                    format!("/readyz not ok after {STARTUP_TIMEOUT:?}; last answer: {last_answer}"),
                ));
            }
            match readyz(&client).await {
                Ok(()) => break,
                Err(answer) => last_answer = answer,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let crd_file = project_crd_path();
        let project_crds = if crd_file.is_file() {
            install_crd_file(&client, &crd_file)
                .await
                .map_err(|error| failure(children, error))?
        } else {
            Vec::new()
        };
        let relaunch = Relaunch {
            program: assets.join(APISERVER),
            args: apiserver_args,
            log: apiserver_log,
            kubeconfig: kubeconfig.clone(),
        };
        Ok((
            Booted {
                url,
                admin_config,
                kubeconfig,
                project_crds,
            },
            relaunch,
        ))
    })
}

async fn readyz(client: &Client) -> Result<(), String> {
    // kube has no typed call for /readyz; a "list" request of that path is a plain GET /readyz.
    let request = kube::core::Request::new("/readyz")
        .list(&ListParams::default())
        .map_err(|error| error.to_string())?;
    match client.request_text(request).await {
        Ok(body) if body.trim() == "ok" => Ok(()),
        Ok(body) => Err(body),
        Err(error) => Err(error.to_string()),
    }
}

async fn config_from_kubeconfig(path: &Path) -> Result<Config, String> {
    let kubeconfig = Kubeconfig::read_from(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|error| format!("cannot load {}: {error}", path.display()))?;
    // Fail fast while polling a server that is still starting; kube's retries are for real clusters.
    config.connect_timeout = Some(Duration::from_secs(5));
    Ok(config)
}

/// One kubeconfig format for kubectl and the Rust clients, so both see the same server and trust.
fn write_kubeconfig_file(
    path: &Path,
    url: &str,
    certificate: &Path,
    user: &str,
    token: &str,
) -> Result<(), String> {
    // JSON strings are valid YAML scalars and escape whatever a path or token may hold.
    let quote = |text: &str| serde_json::Value::from(text).to_string();
    let content = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test-control-plane
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {user}
  context:
    cluster: test-control-plane
    user: {user}
    namespace: default
current-context: {user}
",
        server = quote(url),
        ca = quote(&certificate.display().to_string()),
        user = quote(user),
        token = quote(token),
    );
    fs::write(path, content).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Creates (or replaces) every CRD of a YAML file, then waits until each is Established.
async fn install_crd_file(client: &Client, path: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(path)
        .map_err(|error| format!("cannot read CRD file {}: {error}", path.display()))?;
    let mut crds = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(document)
            .map_err(|error| format!("{} is not YAML: {error}", path.display()))?;
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml_ng::from_value(value)
            .map_err(|error| format!("{} holds a non-CRD document: {error}", path.display()))?;
        crds.push(crd);
    }
    if crds.is_empty() {
        return Err(format!("{} holds no CRD", path.display()));
    }

    // Plain create/replace rather than server-side apply: v1.20's apply rejects fields newer than its
    // schema (e.g. `selectableFields`), whereas create drops them like the old server would.
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    for mut crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let current = api
                    .get(&name)
                    .await
                    .map_err(|error| format!("reading CRD {name}: {error}"))?;
                crd.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &crd)
                    .await
                    .map_err(|error| format!("replacing CRD {name}: {error}"))?;
            }
            Err(error) => {
                return Err(format!(
                    "creating CRD {name} from {}: {error}",
                    path.display()
                ));
            }
        }
        names.push(name);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    for name in &names {
        loop {
            let crd = api
                .get(name)
                .await
                .map_err(|error| format!("reading CRD {name}: {error}"))?;
            let established = crd
                .status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Established" && condition.status == "True");
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("CRD {name} not Established after 30 s"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    Ok(names)
}

/// A child process and the name to report it by.
struct Supervised {
    name: String,
    child: Child,
}

/// Spawns a child that the kernel kills when the spawning thread (see [`supervise`]) ends, so the
/// processes never outlive the test process, even on abort or SIGKILL. Output goes to `log`.
fn spawn_supervised(command: &mut Command, log: &Path) -> Result<Supervised, String> {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let log_file = fs::File::create(log)
        .map_err(|error| format!("cannot create {}: {error}", log.display()))?;
    let log_copy = log_file
        .try_clone()
        .map_err(|error| format!("cannot duplicate {}: {error}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(log_copy)
        .stderr(log_file);
    super::die_with_spawning_thread(command);
    let child = command
        .spawn()
        .map_err(|error| format!("cannot start {program}: {error}"))?;
    Ok(Supervised {
        name: program,
        child,
    })
}

fn exited_process(children: &mut [Supervised]) -> Option<String> {
    children
        .iter_mut()
        .find_map(|Supervised { name, child }| match child.try_wait() {
            Ok(Some(status)) => Some(format!("{name} exited early ({status})")),
            Ok(None) => None,
            Err(error) => Some(format!("cannot check {name}: {error}")),
        })
}

/// Kills and reaps the children, newest first: the apiserver before etcd, so its log ends with the
/// failure rather than with complaints about the vanished etcd.
fn stop_processes(children: &mut [Supervised]) {
    for Supervised { child, .. } in children.iter_mut().rev() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Stops what started and returns the tails of both logs, for a startup failure message.
fn process_report(children: &mut [Supervised], dir: &Path) -> String {
    stop_processes(children);
    ["etcd.log", "kube-apiserver.log"]
        .iter()
        .map(|name| {
            format!(
                "--- last lines of {name} ---\n{}",
                log_tail(&dir.join(name), LOG_TAIL_LINES)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// Distinct free loopback ports: all bound at once (so they differ), then released for the servers.
fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("cannot find a free port: {error}"))?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(|error| format!("cannot read a bound port: {error}"))?
            .port();
    }
    Ok(ports)
}

const SHM: &str = "/dev/shm";

/// A folder for etcd's data on /dev/shm (tmpfs) named after `dir`, when that is available; linked
/// from `dir` as `etcd` so it is easy to find when debugging.
fn shm_dir(dir: &Path) -> Option<PathBuf> {
    let data = Path::new(SHM).join(dir.file_name()?);
    // etcd wants its data private (and warns otherwise).
    fs::DirBuilder::new().mode(0o700).create(&data).ok()?;
    let _ = std::os::unix::fs::symlink(&data, dir.join("etcd"));
    Some(data)
}

fn remove_shm_dir(dir: &Path) {
    if let Some(name) = dir.file_name() {
        let _ = fs::remove_dir_all(Path::new(SHM).join(name));
    }
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buffer = vec![0; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut buffer))
        .map_err(|error| format!("cannot read /dev/urandom: {error}"))?;
    Ok(hex::encode(buffer))
}

fn run_quietly(command: &mut Command) -> Result<(), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Removes folders (and their /dev/shm etcd data) left by test processes that were killed before
/// they could clean up. Only folders with our prefix whose `owner.pid` process is gone are touched.
fn remove_abandoned_temp_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let Ok(owner) = fs::read_to_string(entry.path().join("owner.pid")) else {
            continue;
        };
        let Ok(pid) = owner.trim().parse::<u32>() else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        remove_shm_dir(&entry.path());
        let _ = fs::remove_dir_all(entry.path());
    }
}
