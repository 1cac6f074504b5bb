//! The controller binary as a process watching one namespace, with its health/metrics address,
//! and a poll-until helper for `DcsTaskQuery` objects: shared by every test binary that runs it.

// Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use kube::Api;

use super::control_plane::ControlPlane;
use super::sim_process::CliProcess;

/// What the controller logs in tests: enough to debug a failure from the printed output.
pub const DEFAULT_LOG_LEVEL: &str = "info,dcs_task_operator=debug";

/// `dcs-task-operator controller --watch-namespace NS --listen 127.0.0.1:PORT ...`.
pub struct OperatorProcess {
    process: Option<CliProcess>,
    listen: String,
}

impl OperatorProcess {
    /// As the shared control plane's admin, loopback endpoints allowed.
    pub fn start(namespace: &str, extra: &[&str]) -> Self {
        let kubeconfig = ControlPlane::shared().kubeconfig_path().to_path_buf();
        Self::start_full(&kubeconfig, namespace, extra, &[])
    }

    /// Like [`OperatorProcess::start`], with `env` added to the process's environment.
    pub fn start_with_env(namespace: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let kubeconfig = ControlPlane::shared().kubeconfig_path().to_path_buf();
        Self::start_full(&kubeconfig, namespace, extra, env)
    }

    /// Like [`OperatorProcess::start`], authenticated by `kubeconfig`.
    pub fn start_as(kubeconfig: &Path, namespace: &str, extra: &[&str]) -> Self {
        Self::start_full(kubeconfig, namespace, extra, &[])
    }

    pub fn start_full(
        kubeconfig: &Path,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_logging(kubeconfig, namespace, DEFAULT_LOG_LEVEL, extra, env)
    }

    /// Like [`OperatorProcess::start_full`], logging at `log_level` (`--log-level`) instead of
    /// [`DEFAULT_LOG_LEVEL`]; the benchmark runs at `warn` so logging costs neither CPU nor memory.
    pub fn start_logging(
        kubeconfig: &Path,
        namespace: &str,
        log_level: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "controller",
            "--watch-namespace",
            namespace,
            "--allow-endpoint",
            "http://127.0.0.1:*",
            "--listen",
            &listen,
            "--log-level",
            log_level,
        ];
        args.extend_from_slice(extra);
        let kubeconfig = kubeconfig.to_str().expect("UTF-8 path").to_string();
        let mut all_env = vec![("KUBECONFIG", kubeconfig.as_str())];
        all_env.extend_from_slice(env);
        Self {
            process: Some(CliProcess::spawn(&args, &all_env)),
            listen,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(CliProcess::is_running)
    }

    /// The process id (for `/proc/PID/...`), `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(CliProcess::id)
    }

    /// The HTTP status of `/readyz` (0 when the server does not answer).
    pub async fn readyz(&self) -> u16 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::get(format!("{}/readyz", self.base_url()))
            .await
            .map_or(0, |response| response.status().as_u16())
    }

    /// The `/metrics` text; `None` while the server does not answer.
    pub async fn metrics_text(&self) -> Option<String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        match reqwest::get(format!("{}/metrics", self.base_url())).await {
            Ok(response) if response.status().is_success() => response.text().await.ok(),
            _ => None,
        }
    }

    /// A counter or gauge from `/metrics`: -1 when the server does not answer, 0 when absent.
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let Some(text) = self.metrics_text().await else {
            return -1.0;
        };
        text.lines()
            .find(|line| line.starts_with(line_prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }

    /// SIGTERM, SIGKILL after `grace`; what it printed and how it exited.
    pub fn terminate(mut self, grace: Duration) -> Output {
        self.terminate_in_place(grace)
            .expect("the operator process runs until stopped")
    }

    /// Waits for the process to exit on its own (at most `timeout` from its start).
    pub fn finish(mut self, timeout: Duration) -> Output {
        self.process
            .take()
            .expect("the operator process runs until stopped")
            .finish(timeout)
    }

    fn terminate_in_place(&mut self, grace: Duration) -> Option<Output> {
        self.process.take().map(|process| process.terminate(grace))
    }

    /// Stops the process and returns what it printed.
    pub fn stop(mut self) -> String {
        self.stop_in_place()
    }

    pub fn stop_in_place(&mut self) -> String {
        self.terminate_in_place(Duration::from_secs(5))
            .map(|output| printed(&output))
            .unwrap_or_default()
    }
}

/// Standard output and error of a finished process, one after the other.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// A `DcsTaskQuery` named `name` against the simulator at `endpoint` with the demo Secret
/// `dcs-credentials`, polling fast (2 s / 10 s), with `extra_spec` merged over that.
pub fn query_object(name: &str, endpoint: &str, extra_spec: serde_json::Value) -> DcsTaskQuery {
    let mut spec = serde_json::json!({
        "region": "cn-north-4",
        "endpoint": endpoint,
        "credentialsSecretRef": {"name": "dcs-credentials"},
        "activeInterval": "2s",
        "interval": "10s",
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("a valid DcsTaskQuery")
}

/// Polls `name` until `check` holds; fails with the last status after `timeout`.
pub async fn wait_until(
    api: &Api<DcsTaskQuery>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&DcsTaskQuery) -> bool,
) -> DcsTaskQuery {
    let deadline = Instant::now() + timeout;
    loop {
        let object = api.get(name).await.expect("the object can be read");
        if check(&object) {
            return object;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: timed out waiting for {what}; status: {}",
            serde_json::to_string_pretty(&object.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
