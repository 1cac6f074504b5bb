//! The Huawei Cloud client (`dcs`) against this simulator, through the public API of both: the
//! client signs, the simulator verifies with the same signer; the simulator serves its own JSON,
//! the client decodes it. These tests cannot live beside the client, which is a layer below the
//! simulator and knows nothing of it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{
    DEMO_ACCESS_KEY, DEMO_PROJECT_ID, RunningSimulator, Scenario, demo_credentials,
    serve_on_loopback,
};
use dcs_cloud::{
    AccountKey, Credentials, DcsClient, DcsError, HttpClient, HttpSettings, JobId,
    JobLookupFailure, JobStatus, PageRequest, Paging, RequestGate, RetryPolicy, SecretString,
    TaskTime,
};

/// Signs with this client and verifies with the simulator: permanent AK/SK, temporary
/// AK/SK with a security token, and IAM token auth; wrong secrets are refused with 401.
#[tokio::test]
async fn the_simulator_accepts_exactly_the_right_credentials() {
    let scenario = Scenario::from_yaml(
        r#"
credentials:
  - accessKey: PERMANENTAK
    secretKey: permanent-sk
  - accessKey: TEMPORARYAK
    secretKey: temporary-sk
    securityToken: sts-token
tokens: [iam-token]
tasks:
  - name: EXTEND
    status: SUCCESS
"#,
    )
    .unwrap();
    let running = serve_on_loopback(scenario).await.unwrap();
    let endpoint = running.endpoint();
    let http = HttpClient::new(HttpSettings::default()).unwrap();
    let call = |credentials: Credentials| {
        let client = DcsClient::new(http.clone(), endpoint.clone(), DEMO_PROJECT_ID, credentials);
        async move {
            client
                .list_tasks(&PageRequest::default(), Paging::Single)
                .await
        }
    };
    let temporary = |token: Option<&str>| Credentials::AkSk {
        access_key: "TEMPORARYAK".into(),
        secret_key: SecretString::new("temporary-sk"),
        security_token: token.map(SecretString::new),
    };

    let listing = call(Credentials::ak_sk("PERMANENTAK", "permanent-sk"))
        .await
        .unwrap();
    assert_eq!((listing.task_count, listing.tasks.len()), (Some(1), 1));
    assert!(call(temporary(Some("sts-token"))).await.is_ok());
    assert!(
        call(Credentials::Token(SecretString::new("iam-token")))
            .await
            .is_ok()
    );

    for refused in [
        Credentials::ak_sk("PERMANENTAK", "wrong-sk"),
        Credentials::ak_sk("UNKNOWNAK", "permanent-sk"),
        temporary(None),
        temporary(Some("other-token")),
        Credentials::Token(SecretString::new("bad-token")),
    ] {
        let label = format!("{refused:?}");
        let error = call(refused).await.unwrap_err();
        assert!(error.is_auth_failure(), "{label}: {error}");
        assert!(!error.is_retryable());
        let text = error.to_string();
        for secret in [
            "wrong-sk",
            "permanent-sk",
            "temporary-sk",
            "other-token",
            "bad-token",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    running.shutdown().await;
}

/// Counts admissions per account, the way a budget would charge them.
#[derive(Default)]
struct CountingGate {
    admitted: std::sync::Mutex<Vec<AccountKey>>,
}

impl RequestGate for CountingGate {
    fn admit<'a>(&'a self, account: &'a AccountKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.admitted.lock().unwrap().push(account.clone());
        })
    }
}

/// The gate sees every HTTP request: five pages plus two retried 503s are seven admissions,
/// exactly the requests the simulator counted, all charged to the access key.
#[tokio::test]
async fn every_request_passes_the_gate_pages_and_retries_alike() {
    let running = serve_on_loopback(Scenario::default_demo()).await.unwrap();
    let settings = HttpSettings {
        retry: RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        ..HttpSettings::default()
    };
    let http = HttpClient::new(settings).unwrap();
    let admin = reqwest::Client::new();
    let queued = admin
        .post(format!("{}/_sim/faults", running.base_url()))
        .json(&serde_json::json!({"count": 2, "status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status().as_u16(), 201);

    let gate = Arc::new(CountingGate::default());
    let credentials = demo_credentials().credentials;
    let client = DcsClient::new(
        http,
        running.endpoint(),
        DEMO_PROJECT_ID,
        credentials.clone(),
    )
    .with_gate(gate.clone());
    let page = PageRequest {
        limit: Some(1),
        ..PageRequest::default()
    };
    let listing = client
        .list_tasks(&page, Paging::All { max_pages: 10 })
        .await
        .unwrap();
    assert_eq!((listing.pages, listing.tasks.len()), (5, 5));

    let stats: serde_json::Value = admin
        .get(format!("{}/_sim/stats", running.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total"], 7, "{stats}");
    let admitted = gate.admitted.lock().unwrap().clone();
    assert_eq!(admitted.len(), 7);
    assert!(admitted.iter().all(|account| *account == client.account()));

    // The same AK with another secret (a rotated key) is the same account; the AK itself
    // never shows in `Debug`.
    let rotated = DcsClient::new(
        HttpClient::new(HttpSettings::default()).unwrap(),
        running.endpoint(),
        DEMO_PROJECT_ID,
        Credentials::ak_sk(DEMO_ACCESS_KEY, "another-secret"),
    );
    assert_eq!(rotated.account(), client.account());
    assert!(!format!("{:?}", client.account()).contains(DEMO_ACCESS_KEY));
    assert!(!format!("{client:?}").contains(DEMO_ACCESS_KEY));
    let token = |value: &str| {
        DcsClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            running.endpoint(),
            DEMO_PROJECT_ID,
            Credentials::Token(SecretString::new(value)),
        )
        .account()
    };
    assert_eq!(token("t1"), token("t1"));
    assert_ne!(token("t1"), token("t2"));
    assert_ne!(token("t1"), client.account());
}

const SCENARIO: &str = r#"
tasks:
  - id: swap-task
    name: masterStandbySwapJob
    jobId: swapjob
    createdAt: -2s
    timeline: [{status: EXECUTING, for: 1h}, {status: SUCCESS}]
jobs:
  - {id: donejob, jobType: masterStandbySwapJob, beginTime: "2023-05-15T22:59:05.379Z", timeline: [{status: RUNNING, for: 2s869ms}, {status: SUCCESS}]}
  - {id: failjob, jobType: modifyClientIpTransJob, status: FAIL, failReason: Master standby swap failed.}
  - {id: silentfail, status: FAIL}
  - {id: odd, status: FAILED}
"#;

async fn start() -> (RunningSimulator, DcsClient) {
    let running = serve_on_loopback(Scenario::from_yaml(SCENARIO).unwrap())
        .await
        .unwrap();
    let http = HttpClient::new(HttpSettings {
        retry: RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        ..HttpSettings::default()
    })
    .unwrap();
    let client = DcsClient::new(
        http,
        running.endpoint(),
        DEMO_PROJECT_ID,
        demo_credentials().credentials,
    );
    (running, client)
}

async fn admin(
    running: &RunningSimulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", running.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn job_requests(running: &RunningSimulator, job_id: &str) -> Value {
    let stats = admin(running, reqwest::Method::GET, "/_sim/stats", None).await;
    stats["jobs"]["projects"][DEMO_PROJECT_ID]["byJob"][job_id].clone()
}

fn id(text: &str) -> JobId {
    JobId::parse(text).unwrap()
}

fn parsed(time: &Option<TaskTime>) -> Option<DateTime<Utc>> {
    time.as_ref().and_then(|time| time.parsed)
}

#[tokio::test]
async fn show_job_reads_success_fail_and_running_jobs() {
    let (running, client) = start().await;
    let done = client.show_job(&id("donejob")).await.unwrap();
    assert_eq!(done.status, JobStatus::Success);
    assert_eq!(done.job_id.as_deref(), Some("donejob"));
    assert_eq!(done.job_type.as_deref(), Some("masterStandbySwapJob"));
    assert_eq!(
        parsed(&done.begin_time),
        DateTime::from_timestamp_millis(1_684_191_545_379)
    );
    assert_eq!(
        parsed(&done.end_time),
        DateTime::from_timestamp_millis(1_684_191_548_248)
    );
    assert_eq!(done.fail_reason, None);

    let failed = client.show_job(&id("failjob")).await.unwrap();
    assert_eq!(failed.status, JobStatus::Fail);
    assert_eq!(
        failed.fail_reason.as_deref(),
        Some("Master standby swap failed.")
    );
    assert!(failed.end_time.unwrap().parsed.is_some());
    let silent = client.show_job(&id("silentfail")).await.unwrap();
    assert_eq!((silent.status, silent.fail_reason), (JobStatus::Fail, None));

    // Derived from its task: EXECUTING is RUNNING, not ended.
    let swap = client.show_job(&id("swapjob")).await.unwrap();
    assert_eq!(swap.status, JobStatus::Running);
    assert!(!swap.status.is_terminal());
    assert_eq!(swap.end_time, None);
    assert!(swap.begin_time.unwrap().parsed.is_some());

    // The task vocabulary's FAILED is no verdict.
    let odd = client.show_job(&id("odd")).await.unwrap();
    assert_eq!(odd.status, JobStatus::Other("FAILED".into()));
    assert!(!odd.status.is_terminal());

    // Then the switchover ends.
    admin(
        &running,
        reqwest::Method::PUT,
        "/_sim/jobs/swapjob/status",
        Some(json!({"status": "SUCCESS"})),
    )
    .await;
    assert_eq!(
        client.show_job(&id("swapjob")).await.unwrap().status,
        JobStatus::Success
    );
    assert_eq!(job_requests(&running, "swapjob").await, 2);
}

#[tokio::test]
async fn an_unknown_job_is_not_found_without_retries() {
    let (running, client) = start().await;
    let error = client.show_job(&id("nosuchjob")).await.unwrap_err();
    assert_eq!(
        JobLookupFailure::of(&error),
        Some(JobLookupFailure::NotFound),
        "{error:?}"
    );
    assert_eq!(error.api_error().unwrap().http_status, 404);
    assert!(!error.is_retryable());
    assert_eq!(job_requests(&running, "nosuchjob").await, 1);
}

#[tokio::test]
async fn a_403_on_the_job_api_is_a_missing_dcs_job_get() {
    let (running, client) = start().await;
    admin(
        &running,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 403, "api": "jobs",
                    "body": {"error_code": "APIG.0302", "error_msg": "not authorized"}})),
    )
    .await;
    let job = id("donejob");
    let error = client.show_job(&job).await.unwrap_err();
    let failure = JobLookupFailure::of(&error);
    assert_eq!(failure, Some(JobLookupFailure::Forbidden), "{error:?}");
    // The advice names the job API's action, not the task list's.
    let message = error.to_string();
    assert!(
        message.contains("grant the IAM action dcs:job:get"),
        "{message}"
    );
    assert!(!message.contains("dcs:task:list"), "{message}");
    assert!(!error.is_auth_failure());
    assert_eq!(job_requests(&running, "donejob").await, 1);
    assert_eq!(
        client.show_job(&job).await.unwrap().status,
        JobStatus::Success
    );
}

/// The job call is the task page's signed GET: retried on 503 (each attempt through
/// the gate) and never following a redirect.
#[tokio::test]
async fn show_job_retries_like_a_task_page_and_refuses_redirects() {
    let (running, client) = start().await;
    let gate = Arc::new(CountingGate::default());
    let client = client.with_gate(gate.clone());
    admin(
        &running,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 503, "count": 2, "api": "jobs"})),
    )
    .await;
    assert_eq!(
        client.show_job(&id("donejob")).await.unwrap().status,
        JobStatus::Success
    );
    assert_eq!(gate.admitted.lock().unwrap().len(), 3);
    assert_eq!(job_requests(&running, "donejob").await, 3);

    admin(
        &running,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 307, "api": "jobs"})),
    )
    .await;
    let error = client.show_job(&id("donejob")).await.unwrap_err();
    assert!(
        matches!(error, DcsError::Redirected { status: 307, .. }),
        "{error:?}"
    );
    assert_eq!(JobLookupFailure::of(&error), None);
}
