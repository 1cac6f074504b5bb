//! The DCS task-center simulator and the CLI as separate processes, for tests that drive the real
//! binary end to end.
//!
//! ```ignore
//! mod support;
//! use support::sim_process::{SimProcess, demo_env, run_cli};
//!
//! #[test]
//! fn something() {
//!     let sim = SimProcess::start(Some(Path::new("examples/sim/many-tasks.yaml")), &[]);
//!     sim.inject_fault(json!({"count": 1, "status": 503}));
//!     let output = run_cli(&["query", "-f", manifest, "--endpoint", sim.base_url()], &demo_env());
//!     assert_eq!(sim.counts(DEMO_PROJECT_ID).requests, 2);
//! }
//! ```
//!
//! Both kinds of child run with the package root as working directory (so `examples/...` paths
//! work) and without the credential variables of the developer's shell (`HUAWEICLOUD_SDK_*`,
//! `HW_*`) or the log settings (`DCS_LOG_*`): only what a test passes explicitly reaches them.
//!
//! Children are killed and reaped on drop; they are also spawned with `PR_SET_PDEATHSIG`, so a
//! test binary that is killed outright does not leave them running. That signal fires when the
//! *spawning thread* ends, so a [`SimProcess`] belongs to the test (thread) that started it.
//!
//! The admin helpers are synchronous (they run reqwest on a small runtime of their own), so they
//! can be called from plain `#[test]` functions and, from a scratch thread, inside async tests.

// Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_dcs-task-operator");

/// How long a CLI run may take before [`run_cli`] kills it and fails the test.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The simulator prints its address at once; the margin covers a machine busy compiling.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Per admin call; the admin API answers from memory.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The first stdout line of `sim`, followed by the base URL.
const LISTENING_PREFIX: &str = "dcs simulator listening on ";

/// Variables removed from every child's environment: credentials (so a developer's real keys
/// never reach a test run) and log settings (so output is what the test expects).
const SCRUBBED_ENV_PREFIXES: [&str; 3] = ["HUAWEICLOUD_SDK_", "HW_", "DCS_LOG_"];

/// How much of the simulator's log a failure message shows.
const LOG_TAIL_CHARS: usize = 4000;

/// The package root, where `examples/` and `crds/` live.
pub fn package_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The environment with which the CLI signs requests as the simulator's demo user.
pub fn demo_env() -> [(&'static str, &'static str); 3] {
    [
        ("HUAWEICLOUD_SDK_AK", DEMO_ACCESS_KEY),
        ("HUAWEICLOUD_SDK_SK", DEMO_SECRET_KEY),
        ("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID),
    ]
}

/// A `Command` for the binary: package root as working directory, scrubbed environment plus
/// `env`, no stdin, killed by the kernel when the spawning thread ends.
pub fn binary_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(package_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        let scrub = name.to_str().is_some_and(|name| {
            SCRUBBED_ENV_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        });
        if scrub {
            command.env_remove(&name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    super::die_with_spawning_thread(&mut command);
    command
}

/// Reads a child's pipe to the end on a thread of its own, so the child never blocks on a full
/// pipe.
fn collect<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tail(text: &str, max: usize) -> &str {
    match text.char_indices().rev().nth(max) {
        Some((index, _)) => &text[index..],
        None => text,
    }
}

/// Runs the binary with `args` and `env` (on top of a scrubbed environment) and returns what it
/// did; fails the test if it takes longer than [`CLI_TIMEOUT`].
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    CliProcess::spawn(args, env).finish(CLI_TIMEOUT)
}

/// Stdout and stderr of a run, labelled, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// A CLI run in progress, for tests that act on the simulator while the command watches.
pub struct CliProcess {
    child: Child,
    args: Vec<String>,
    started: Instant,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl CliProcess {
    /// Starts the binary with `args` and `env` (on top of a scrubbed environment).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = binary_command(args, env)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {BINARY} {args:?}: {error}"));
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        Self {
            child,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            started: Instant::now(),
            stdout,
            stderr,
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for the exit (at most `timeout` from the start) and returns the output. On timeout
    /// the process is killed and the test fails, showing what it printed so far.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let deadline = self.started + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => break None,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(error) => panic!("cannot wait for {:?}: {error}", self.args),
            }
        };
        let timed_out = status.is_none();
        let status = match status {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                self.child
                    .wait()
                    .unwrap_or_else(|error| panic!("cannot reap {:?}: {error}", self.args))
            }
        };
        let join = |handle: Option<JoinHandle<Vec<u8>>>| {
            handle
                .map(|handle| handle.join().unwrap_or_default())
                .unwrap_or_default()
        };
        let output = Output {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        };
        assert!(
            !timed_out,
            "`dcs-task-operator {}` did not finish within {timeout:?} and was killed\n{}",
            self.args.join(" "),
            describe(&output)
        );
        output
    }

    /// Stops a long-running command (the controller) the way Kubernetes stops a pod: SIGTERM,
    /// then SIGKILL after `grace`. Returns what it printed; a clean exit is not required.
    pub fn terminate(mut self, grace: Duration) -> Output {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|error| panic!("cannot reap {:?}: {error}", self.args));
        let join = |handle: Option<JoinHandle<Vec<u8>>>| {
            handle
                .map(|handle| handle.join().unwrap_or_default())
                .unwrap_or_default()
        };
        Output {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A failing test shows what the process said: the last of it, which is what explains
        // the failure.
        if thread::panicking() {
            let mut printed = Vec::new();
            for reader in [self.stdout.take(), self.stderr.take()]
                .into_iter()
                .flatten()
            {
                printed.extend(reader.join().unwrap_or_default());
            }
            let printed = String::from_utf8_lossy(&printed);
            let tail: Vec<&str> = printed.lines().rev().take(60).collect();
            eprintln!("--- last lines of {:?} ---", self.args.first());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The counters `GET /_sim/stats` keeps for one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCounts {
    pub requests: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub unauthorized: u64,
    pub faulted: u64,
}

/// `dcs-task-operator sim` running as a child process on a free loopback port.
pub struct SimProcess {
    child: Child,
    base_url: String,
    /// Everything the simulator printed after its first line, stdout and stderr interleaved.
    log: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    http: reqwest::Client,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl SimProcess {
    /// Starts `dcs-task-operator sim --listen 127.0.0.1:0 [--scenario FILE] EXTRA_ARGS...` and
    /// waits for it to print its address. A relative `scenario` is taken from the package root.
    pub fn start(scenario: Option<&Path>, extra_args: &[&str]) -> SimProcess {
        let scenario: Option<PathBuf> = scenario.map(|path| package_root().join(path));
        let mut args = vec!["sim", "--listen", "127.0.0.1:0"];
        if let Some(path) = &scenario {
            args.push("--scenario");
            args.push(path.to_str().expect("scenario paths are UTF-8"));
        }
        args.extend_from_slice(extra_args);
        let mut child = binary_command(&args, &[])
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {BINARY} {args:?}: {error}"));

        let log = Arc::new(Mutex::new(Vec::new()));
        let (first_line, first_line_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdout_log = Arc::clone(&log);
        let stdout_reader = thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_line.send(line);
            }
            drop(first_line);
            for line in lines.map_while(Result::ok) {
                let mut log = stdout_log.lock().unwrap_or_else(|e| e.into_inner());
                log.extend_from_slice(line.as_bytes());
                log.push(b'\n');
            }
        });
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_log = Arc::clone(&log);
        let stderr_reader = thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                stderr_log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buffer[..read]);
            }
        });
        let readers = vec![stdout_reader, stderr_reader];

        let first = first_line_rx.recv_timeout(STARTUP_TIMEOUT);
        let base_url = first
            .as_deref()
            .ok()
            .and_then(|line| line.strip_prefix(LISTENING_PREFIX))
            .filter(|url| {
                url.strip_prefix("http://127.0.0.1:")
                    .and_then(|port| port.parse::<u16>().ok())
                    .is_some_and(|port| port != 0)
            })
            .map(str::to_string);
        let Some(base_url) = base_url else {
            let _ = child.kill();
            let status = child.wait();
            for reader in readers {
                let _ = reader.join();
            }
            let log = text(&log.lock().unwrap_or_else(|e| e.into_inner()));
            panic!(
                "`dcs-task-operator {}` did not announce `{LISTENING_PREFIX}http://127.0.0.1:PORT` \
                 within {STARTUP_TIMEOUT:?} (first line: {first:?}, exit: {status:?})\n{}",
                args.join(" "),
                tail(&log, LOG_TAIL_CHARS)
            );
        };

        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(ADMIN_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client for the admin API");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the admin API");
        SimProcess {
            child,
            base_url,
            log,
            readers,
            http,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give the CLI.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The port the simulator listens on.
    pub fn port(&self) -> u16 {
        self.base_url
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("the base URL ends with a port")
    }

    /// What the simulator logged so far (after its first stdout line).
    pub fn log(&self) -> String {
        text(&self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `GET /_sim/stats`: `{"projects": {id: {requests, ok, clientErrors, unauthorized,
    /// faulted}}, "total"}`.
    pub fn stats(&self) -> Value {
        self.admin(Method::GET, "/_sim/stats", None, StatusCode::OK)
    }

    /// The counters of one project (all zero when it saw no request).
    pub fn counts(&self, project_id: &str) -> ProjectCounts {
        let stats = self.stats();
        match stats.pointer(&format!("/projects/{project_id}")) {
            None => ProjectCounts::default(),
            Some(counts) => serde_json::from_value(counts.clone())
                .unwrap_or_else(|error| panic!("unexpected stats shape {stats}: {error}")),
        }
    }

    /// Task-list requests of all projects together.
    pub fn total_requests(&self) -> u64 {
        let stats = self.stats();
        stats["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("stats without a total: {stats}"))
    }

    /// `POST /_sim/stats/reset`.
    pub fn reset_stats(&self) {
        self.admin(Method::POST, "/_sim/stats/reset", None, StatusCode::OK);
    }

    /// `POST /_sim/faults` with `fault` (`{"count", "status", "body", "latency", "drop",
    /// "projectId"}`); returns `{"queued", "pending"}`.
    pub fn inject_fault(&self, fault: Value) -> Value {
        self.admin(
            Method::POST,
            "/_sim/faults",
            Some(fault),
            StatusCode::CREATED,
        )
    }

    /// `DELETE /_sim/faults`; returns how many faulted requests were still pending.
    pub fn clear_faults(&self) -> u64 {
        let answer = self.admin(Method::DELETE, "/_sim/faults", None, StatusCode::OK);
        answer["cleared"].as_u64().unwrap_or_default()
    }

    /// `PUT /_sim/tasks/{id}/status`: the task holds `status` from now on.
    pub fn set_status(&self, id: &str, status: &str) {
        self.admin(
            Method::PUT,
            &format!("/_sim/tasks/{id}/status"),
            Some(json!({ "status": status })),
            StatusCode::OK,
        );
    }

    /// `POST /_sim/tasks` with one scenario task (camelCase); returns its id.
    pub fn add_task(&self, task: Value) -> String {
        let answer = self.admin(Method::POST, "/_sim/tasks", Some(task), StatusCode::CREATED);
        answer["id"]
            .as_str()
            .unwrap_or_else(|| panic!("POST /_sim/tasks answered without an id: {answer}"))
            .to_string()
    }

    /// `POST /_sim/jobs` with one scenario job (camelCase); returns its id.
    pub fn add_job(&self, job: Value) -> String {
        let answer = self.admin(Method::POST, "/_sim/jobs", Some(job), StatusCode::CREATED);
        answer["id"]
            .as_str()
            .unwrap_or_else(|| panic!("POST /_sim/jobs answered without an id: {answer}"))
            .to_string()
    }

    /// `PUT /_sim/jobs/{id}/status`: the job (declared, or derived from a task) holds
    /// `status` from now on.
    pub fn set_job_status(&self, id: &str, status: &str) {
        self.change_job(id, json!({ "status": status }));
    }

    /// `PUT /_sim/jobs/{id}/status` with a whole change (`status`, optional `failReason`).
    pub fn change_job(&self, id: &str, change: Value) {
        self.admin(
            Method::PUT,
            &format!("/_sim/jobs/{id}/status"),
            Some(change),
            StatusCode::OK,
        );
    }

    /// `GET /_sim/config`: `{"taskCount": "string" | "number"}`.
    pub fn config(&self) -> Value {
        self.admin(Method::GET, "/_sim/config", None, StatusCode::OK)
    }

    /// `POST /_sim/clock/advance` by a duration such as `10s`.
    pub fn advance_clock(&self, by: &str) -> Value {
        self.admin(
            Method::POST,
            "/_sim/clock/advance",
            Some(json!({ "by": by })),
            StatusCode::OK,
        )
    }

    /// One admin call; fails the test unless it answers `expected` with JSON.
    fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let result = self.block_on(async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        });
        let (status, text) = result.unwrap_or_else(|error| {
            panic!(
                "{method} {url} failed: {error}\nsimulator log:\n{}",
                tail(&self.log(), LOG_TAIL_CHARS)
            )
        });
        assert_eq!(
            status, expected,
            "{method} {url} with {body:?} answered {status}: {text}"
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{method} {url} answered non-JSON {text:?}: {error}"))
    }

    /// Runs `future` on the admin runtime; from a scratch thread when the caller is itself
    /// inside a runtime (an async test), where blocking on another runtime is refused.
    fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        if tokio::runtime::Handle::try_current().is_ok() {
            thread::scope(|scope| {
                scope
                    .spawn(|| runtime.block_on(future))
                    .join()
                    .expect("the admin call does not panic")
            })
        } else {
            runtime.block_on(future)
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        // Dropping a runtime blocks, which an async caller's thread must not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
