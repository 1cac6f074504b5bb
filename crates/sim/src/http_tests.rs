//! End-to-end tests: a real simulator on 127.0.0.1:0, called over HTTP with reqwest and
//! requests signed by `dcs_cloud::sign`, as a client would.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::*;
use dcs_cloud::sign::{self, SDK_DATE_FORMAT, SignableRequest};

async fn start(yaml: &str) -> RunningSimulator {
    start_with(SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Scenario::from_yaml(yaml).unwrap(),
    ))
    .await
}

async fn start_with(config: SimConfig) -> RunningSimulator {
    serve(config).await.expect("simulator starts")
}

fn http() -> reqwest::Client {
    // reqwest is built without a default TLS provider; plain http still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A signed `GET /v2/{project}/tasks` with the given query, secret key and signing time.
async fn list_as(
    sim: &RunningSimulator,
    project: &str,
    query: &[(&str, &str)],
    secret_key: &str,
    signed_at: DateTime<Utc>,
) -> reqwest::Result<reqwest::Response> {
    let path = format!("/v2/{project}/tasks");
    signed_get(sim, &path, project, query, secret_key, signed_at).await
}

/// A signed `GET {path}` for `project`, as the SDKs send it.
async fn signed_get(
    sim: &RunningSimulator,
    path: &str,
    project: &str,
    query: &[(&str, &str)],
    secret_key: &str,
    signed_at: DateTime<Utc>,
) -> reqwest::Result<reqwest::Response> {
    let host = sim.local_addr().to_string();
    let date = signed_at.format(SDK_DATE_FORMAT).to_string();
    let headers = vec![
        ("host".to_string(), host),
        ("x-sdk-date".to_string(), date.clone()),
        ("x-project-id".to_string(), project.to_string()),
    ];
    let pairs: Vec<(String, String)> = query
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let authorization = sign::sign(
        &SignableRequest {
            method: "GET",
            path,
            query: &pairs,
            headers: &headers,
            body: b"",
        },
        DEMO_ACCESS_KEY,
        secret_key,
    );
    http()
        .get(format!("{}{path}", sim.base_url()))
        .query(&pairs)
        .header("X-Sdk-Date", date)
        .header("X-Project-Id", project)
        .header("Authorization", authorization.header_value())
        .send()
        .await
}

async fn list(sim: &RunningSimulator, query: &[(&str, &str)]) -> (u16, Value) {
    let response = list_as(sim, DEMO_PROJECT_ID, query, DEMO_SECRET_KEY, Utc::now())
        .await
        .expect("request succeeds");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn admin(
    sim: &RunningSimulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http().request(method, format!("{}{path}", sim.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin request succeeds");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn ids(body: &Value) -> Vec<String> {
    body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["id"].as_str().unwrap().to_string())
        .collect()
}

const FIVE_AND_TWENTY: &str =
    "generate: [{count: 25, name: EXTEND, firstCreatedAt: -1h, every: 1m}]";

#[tokio::test]
async fn pages_cover_every_task_once_newest_first() {
    let sim = start(FIVE_AND_TWENTY).await;
    let mut seen = Vec::new();
    let mut previous: Option<String> = None;
    for offset in ["0", "10", "20"] {
        let (status, body) = list(&sim, &[("offset", offset), ("limit", "10")]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["task_count"], "25");
        for task in body["tasks"].as_array().unwrap() {
            let created = task["created_at"].as_str().unwrap().to_string();
            assert!(created.ends_with('Z') && created.len() == 24, "{created}");
            if let Some(previous) = &previous {
                assert!(previous > &created, "{previous} then {created}");
            }
            previous = Some(created);
            assert_eq!(task["status"], "SUCCESS");
        }
        seen.extend(ids(&body));
    }
    assert_eq!(seen.len(), 25);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
    let (_, default_page) = list(&sim, &[]).await;
    assert_eq!(ids(&default_page).len(), 10);
    let (_, beyond) = list(&sim, &[("offset", "100")]).await;
    assert_eq!(beyond, json!({"task_count": "25", "tasks": []}));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_time_window_is_applied_before_counting() {
    let sim = start(FIVE_AND_TWENTY).await;
    let (_, all) = list(&sim, &[("limit", "1000")]).await;
    let newest: DateTime<Utc> = all["tasks"][0]["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let from = (newest - TimeDelta::minutes(4))
        .format("%Y%m%d%H%M%S")
        .to_string();
    let to = newest.format("%Y%m%d%H%M%S").to_string();
    let (status, body) = list(&sim, &[("start_time", &from), ("end_time", &to)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["task_count"], "5", "{body}");
}

#[tokio::test]
async fn invalid_parameters_get_400_naming_the_parameter() {
    let sim = start(FIVE_AND_TWENTY).await;
    for (name, value) in [
        ("limit", "0"),
        ("limit", "1001"),
        ("offset", "-1"),
        ("start_time", "2024-01-01"),
        ("end_time", "20240230000000"),
    ] {
        let (status, body) = list(&sim, &[(name, value)]).await;
        assert_eq!(status, 400, "{name}={value}");
        assert_eq!(
            body,
            json!({
                "error_code": "111400063",
                "error_msg": format!("Invalid {name} parameter in the request."),
                "error_ext_msg": null
            })
        );
    }
    let (status, _) = list(&sim, &[("limit", "1000"), ("unknown", "x")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_wrong_secret_key_gets_401_without_echoing_it() {
    let sim = start(FIVE_AND_TWENTY).await;
    let response = list_as(
        &sim,
        DEMO_PROJECT_ID,
        &[],
        "not-the-demo-secret",
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("not-the-demo-secret") && !body.contains(DEMO_SECRET_KEY),
        "{body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error_code"], "APIG.0301");
    let message = body["error_msg"].as_str().unwrap();
    assert!(
        message.starts_with("Incorrect IAM authentication information: signature mismatch"),
        "{message}"
    );
}

#[tokio::test]
async fn a_signature_16_minutes_old_has_expired() {
    let sim = start(FIVE_AND_TWENTY).await;
    let old = Utc::now() - TimeDelta::minutes(16);
    let response = list_as(&sim, DEMO_PROJECT_ID, &[], DEMO_SECRET_KEY, old)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error_msg"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn unsigned_requests_get_401_and_tokens_are_an_alternative() {
    let sim = start(&format!("tokens: [iam-token-1]\n{FIVE_AND_TWENTY}")).await;
    let url = format!("{}/v2/{DEMO_PROJECT_ID}/tasks", sim.base_url());
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http()
        .get(&url)
        .header("X-Auth-Token", "iam-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = http()
        .get(&url)
        .header("X-Auth-Token", "stolen")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http()
        .get(format!("{}/v3/whatever", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "APIG.0101");
}

#[tokio::test]
async fn three_throttled_answers_then_a_normal_one() {
    let sim = start(FIVE_AND_TWENTY).await;
    let fault = json!({
        "count": 3,
        "status": 429,
        "body": {"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute"}
    });
    let (status, queued) = admin(&sim, reqwest::Method::POST, "/_sim/faults", Some(fault)).await;
    assert_eq!((status, queued), (201, json!({"queued": 3, "pending": 3})));
    for _ in 0..3 {
        let (status, body) = list(&sim, &[]).await;
        assert_eq!(status, 429);
        assert_eq!(body["error_code"], "APIG.0308");
    }
    let (status, _) = list(&sim, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let sim = start(FIVE_AND_TWENTY).await;
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"drop": true})),
    )
    .await;
    let outcome = match list_as(&sim, DEMO_PROJECT_ID, &[], DEMO_SECRET_KEY, Utc::now()).await {
        Err(error) => Err(error),
        Ok(response) => response.bytes().await.map(|_| ()),
    };
    let error = outcome.expect_err("the client must not get a complete answer");
    assert!(!error.is_status(), "{error:?}");
    let (status, _) = list(&sim, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn latency_delays_a_normal_answer_and_faults_can_be_cleared() {
    let sim = start(FIVE_AND_TWENTY).await;
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"latency": "300ms"})),
    )
    .await;
    let started = Instant::now();
    let (status, _) = list(&sim, &[]).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let other_project = json!({"count": 5, "status": 503, "projectId": "someone-else"});
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(other_project),
    )
    .await;
    let (status, _) = list(&sim, &[]).await;
    assert_eq!(status, 200, "a fault of another project must not apply");
    let (status, cleared) = admin(&sim, reqwest::Method::DELETE, "/_sim/faults", None).await;
    assert_eq!((status, cleared), (200, json!({"cleared": 5})));
}

#[tokio::test]
async fn admin_changes_show_in_the_next_list() {
    let sim = start("tasks: [{id: swap1, name: masterStandbySwapJob, createdAt: -1s, timeline: [{status: EXECUTING, for: 1h}, {status: SUCCESS}]}]").await;
    let (_, body) = list(&sim, &[]).await;
    assert_eq!(body["tasks"][0]["status"], "EXECUTING");
    let created_at = body["tasks"][0]["created_at"].clone();
    assert_eq!(body["tasks"][0]["updated_at"], created_at);

    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/_sim/tasks/swap1/status",
        Some(json!({"status": "FAILED"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = list(&sim, &[]).await;
    assert_eq!(body["tasks"][0]["status"], "FAILED");
    assert_ne!(body["tasks"][0]["updated_at"], created_at);

    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/_sim/tasks/nope/status",
        Some(json!({"status": "FAILED"})),
    )
    .await;
    assert_eq!(status, 404);

    let new_task = json!({"name": "BindEip", "jobId": "job-9", "timeline": [{"status": "EXECUTING", "for": "30s"}, {"status": "SUCCESS"}]});
    let (status, created) = admin(&sim, reqwest::Method::POST, "/_sim/tasks", Some(new_task)).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let (_, body) = list(&sim, &[]).await;
    assert_eq!(body["task_count"], "2");
    assert_eq!(body["tasks"][0]["id"], id.as_str());
    assert_eq!(body["tasks"][0]["status"], "EXECUTING");
    assert_eq!(body["tasks"][0]["job_id"], "job-9");

    let (status, clock) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/clock/advance",
        Some(json!({"by": "31s"})),
    )
    .await;
    assert_eq!((status, &clock["offset"]), (200, &json!("31s")));
    let (_, body) = list(&sim, &[]).await;
    assert_eq!(body["tasks"][0]["status"], "SUCCESS");

    let (status, error) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/tasks",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("timeline"),
        "{error}"
    );
}

#[tokio::test]
async fn the_demo_switchover_succeeds_after_eight_seconds() {
    let sim = start_with(SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Scenario::default_demo(),
    ))
    .await;
    let switchover = |body: &Value| {
        body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|task| task["name"] == "masterStandbySwapJob")
            .cloned()
            .unwrap()
    };
    let (_, body) = list(&sim, &[]).await;
    assert_eq!(body["task_count"], "5");
    assert_eq!(switchover(&body)["status"], "EXECUTING");
    assert_eq!(switchover(&body)["details"], Value::Null);
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/clock/advance",
        Some(json!({"by": "7s"})),
    )
    .await;
    let (_, body) = list(&sim, &[]).await;
    assert_eq!(switchover(&body)["status"], "SUCCESS");
    let extend = body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["name"] == "EXTEND")
        .unwrap();
    assert_eq!(extend["details"]["old_capacity"], json!(0.125));
    assert_eq!(extend["details"]["new_capacity"], json!("0.25"));
}

#[tokio::test]
async fn the_task_count_encoding_can_be_overridden_and_switched() {
    let mut config = SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Scenario::from_yaml(FIVE_AND_TWENTY).unwrap(),
    );
    config.task_count_encoding = Some(TaskCountEncoding::Number);
    let sim = start_with(config).await;
    let (_, body) = list(&sim, &[("limit", "1")]).await;
    assert_eq!(body["task_count"], json!(25));
    let (status, config) = admin(
        &sim,
        reqwest::Method::PUT,
        "/_sim/config",
        Some(json!({"taskCount": "string"})),
    )
    .await;
    assert_eq!((status, config), (200, json!({"taskCount": "string"})));
    let (_, body) = list(&sim, &[("limit", "1")]).await;
    assert_eq!(body["task_count"], json!("25"));
}

#[tokio::test]
async fn stats_count_every_request_by_outcome() {
    let sim = start(FIVE_AND_TWENTY).await;
    list(&sim, &[]).await;
    list(&sim, &[("limit", "0")]).await;
    list_as(&sim, DEMO_PROJECT_ID, &[], "wrong", Utc::now())
        .await
        .unwrap();
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 500})),
    )
    .await;
    list(&sim, &[]).await;
    list_as(&sim, "other-project", &[], DEMO_SECRET_KEY, Utc::now())
        .await
        .unwrap();
    let (status, stats) = admin(&sim, reqwest::Method::GET, "/_sim/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        stats,
        json!({
            "projects": {
                DEMO_PROJECT_ID: {"requests": 4, "ok": 1, "clientErrors": 1, "unauthorized": 1, "faulted": 1},
                "other-project": {"requests": 1, "ok": 1, "clientErrors": 0, "unauthorized": 0, "faulted": 0}
            },
            "total": 5,
            "iam": {"requests": 0, "ok": 0, "clientErrors": 0, "unauthorized": 0}
        })
    );
    let (_, reset) = admin(&sim, reqwest::Method::POST, "/_sim/stats/reset", None).await;
    assert_eq!(reset["projects"], json!({}));
    assert_eq!(reset["total"], 0);
}

#[tokio::test]
async fn handles_report_addresses_and_stop() {
    let sim = start(FIVE_AND_TWENTY).await;
    let port = sim.local_addr().port();
    assert_ne!(port, 0);
    assert_eq!(sim.base_url(), format!("http://127.0.0.1:{port}"));
    sim.shutdown().await;
    assert!(
        http()
            .get(format!("http://127.0.0.1:{port}/_sim/stats"))
            .send()
            .await
            .is_err()
    );

    let wildcard = start_with(SimConfig::new(
        "0.0.0.0:0".parse().unwrap(),
        Scenario::from_yaml("{}").unwrap(),
    ))
    .await;
    assert_eq!(
        wildcard.base_url(),
        format!("http://127.0.0.1:{}", wildcard.local_addr().port())
    );

    let taken = wildcard.local_addr();
    let error = serve(SimConfig::new(taken, Scenario::from_yaml("{}").unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(error, SimError::Bind { .. }), "{error}");
}

#[tokio::test]
async fn the_many_tasks_scenario_needs_three_full_pages() {
    let sim = start(include_str!("../../../examples/sim/many-tasks.yaml")).await;
    let mut seen = 0;
    for offset in ["0", "1000", "2000", "3000"] {
        let (status, body) = list(&sim, &[("offset", offset), ("limit", "1000")]).await;
        assert_eq!(status, 200);
        assert_eq!(body["task_count"], json!(2500));
        seen += body["tasks"].as_array().unwrap().len();
    }
    assert_eq!(seen, 2500);
}

#[tokio::test]
async fn out_of_range_admin_requests_get_400_and_the_simulator_keeps_serving() {
    let sim = start(FIVE_AND_TWENTY).await;
    // Before the limit this moved the clock, panicked the handler, and every later list
    // request panicked too ("`DateTime + TimeDelta` overflowed").
    let (status, body) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/clock/advance",
        Some(json!({"by": "3000000000h"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("`by`: `3000000000h`") && message.contains("876600h (100 years)"),
        "{message}"
    );
    let (status, body) = list(&sim, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task_count"], "25");
    let (status, clock) = admin(&sim, reqwest::Method::GET, "/_sim/clock", None).await;
    assert_eq!((status, &clock["offset"]), (200, &json!("0s")));

    let far = json!({"name": "x", "status": "SUCCESS", "createdAt": "-3000000000h"});
    let (status, body) = admin(&sim, reqwest::Method::POST, "/_sim/tasks", Some(far)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("`createdAt`"),
        "{body}"
    );

    // The whole allowance in two steps; then not a millisecond more.
    for by in ["876000h", "600h"] {
        let (status, body) = admin(
            &sim,
            reqwest::Method::POST,
            "/_sim/clock/advance",
            Some(json!({ "by": by })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/clock/advance",
        Some(json!({"by": "1ms"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = list(&sim, &[("limit", "1")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task_count"], "25");
    sim.shutdown().await;
}

/// A signed `GET /v3/projects?name=...` with the given secret key, as IAM is called.
async fn projects_as(sim: &RunningSimulator, name: &str, secret_key: &str) -> (u16, Value) {
    let path = "/v3/projects";
    let date = Utc::now().format(SDK_DATE_FORMAT).to_string();
    let headers = vec![
        ("host".to_string(), sim.local_addr().to_string()),
        ("x-sdk-date".to_string(), date.clone()),
    ];
    let pairs = vec![("name".to_string(), name.to_string())];
    let authorization = sign::sign(
        &SignableRequest {
            method: "GET",
            path,
            query: &pairs,
            headers: &headers,
            body: b"",
        },
        DEMO_ACCESS_KEY,
        secret_key,
    );
    let response = http()
        .get(format!("{}{path}", sim.base_url()))
        .query(&pairs)
        .header("X-Sdk-Date", date)
        .header("Authorization", authorization.header_value())
        .send()
        .await
        .expect("request succeeds");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn iam_lists_the_demo_project_by_region_only_to_signed_requests() {
    let sim = serve_on_loopback(Scenario::default_demo()).await.unwrap();
    let (status, body) = projects_as(&sim, DEMO_REGION, DEMO_SECRET_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["projects"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["projects"][0]["id"], DEMO_PROJECT_ID);
    assert_eq!(body["projects"][0]["name"], DEMO_REGION);

    let (status, body) = projects_as(&sim, "ap-southeast-1", DEMO_SECRET_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["projects"], json!([]));

    let (status, body) = projects_as(&sim, DEMO_REGION, "wrong-secret").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_code"], "APIG.0301");
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .contains("signature mismatch"),
        "{body}"
    );
    let unsigned = http()
        .get(format!("{}/v3/projects?name={DEMO_REGION}", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);

    let stats: Value = http()
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["iam"],
        json!({"requests": 4, "ok": 2, "clientErrors": 0, "unauthorized": 2})
    );
    assert_eq!(stats["total"], 0, "IAM calls are not task-list calls");
}

/// The operator's own IAM client against the simulator: the demo credentials discover the
/// demo project; an unknown region and a wrong secret are typed errors.
#[tokio::test]
async fn the_iam_client_discovers_the_demo_project() {
    use dcs_cloud::{Credentials, HttpClient, HttpSettings, IamClient, ProjectDiscoveryError};
    let sim = serve_on_loopback(Scenario::default_demo()).await.unwrap();
    let http = HttpClient::new(HttpSettings::default()).unwrap();
    let client = IamClient::new(http.clone(), sim.endpoint(), demo_credentials().credentials);
    assert_eq!(
        client.discover_project(DEMO_REGION).await.unwrap(),
        DEMO_PROJECT_ID
    );
    assert!(matches!(
        client.discover_project("eu-west-101").await,
        Err(ProjectDiscoveryError::NoProject { region }) if region == "eu-west-101"
    ));
    let wrong = IamClient::new(
        http,
        sim.endpoint(),
        Credentials::ak_sk(DEMO_ACCESS_KEY, "wrong-secret"),
    );
    let error = wrong.discover_project(DEMO_REGION).await.unwrap_err();
    let upstream = error.upstream().expect("an upstream error");
    assert_eq!(upstream.api_error().map(|api| api.http_status), Some(401));
    assert!(error.to_string().contains("set spec.projectId"), "{error}");
}

/// A signed `GET /v2/{DEMO_PROJECT_ID}/jobs/{job_id}`: status and JSON body.
async fn show_job(sim: &RunningSimulator, project: &str, job_id: &str) -> (u16, Value) {
    let path = format!("/v2/{project}/jobs/{job_id}");
    let response = signed_get(sim, &path, project, &[], DEMO_SECRET_KEY, Utc::now())
        .await
        .expect("request succeeds");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

const JOBS: &str = r#"
tasks:
  - id: swap-task
    name: masterStandbySwapJob
    jobId: swapjob
    createdAt: -2s
    timeline: [{status: EXECUTING, for: 8s}, {status: SUCCESS}]
  - {id: other-task, name: EXTEND, jobId: otherjob, projectId: other, status: FAILED, errorCode: "111400063"}
jobs:
  - {id: donejob, jobType: modifyClientIpTransJob, beginTime: "2023-05-15T22:59:05.379Z", timeline: [{status: RUNNING, for: 2s869ms}, {status: SUCCESS}]}
  - {id: failjob, status: FAIL, failReason: Master standby swap failed.}
  - {id: odd, status: PAUSED}
"#;

#[tokio::test]
async fn the_job_api_answers_derived_and_declared_jobs() {
    let sim = start(JOBS).await;
    let (status, done) = show_job(&sim, DEMO_PROJECT_ID, "donejob").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done,
        json!({
            "job_id": "donejob",
            "job_type": "modifyClientIpTransJob",
            "status": "SUCCESS",
            "begin_time": "1684191545379",
            "end_time": "1684191548248",
            "fail_reason": null
        })
    );
    let (_, failed) = show_job(&sim, DEMO_PROJECT_ID, "failjob").await;
    assert_eq!(failed["status"], "FAIL");
    assert_eq!(failed["fail_reason"], "Master standby swap failed.");
    assert!(failed["end_time"].is_string());
    let (_, odd) = show_job(&sim, DEMO_PROJECT_ID, "odd").await;
    assert_eq!(
        (&odd["status"], &odd["end_time"]),
        (&json!("PAUSED"), &Value::Null)
    );

    let (_, swap) = show_job(&sim, DEMO_PROJECT_ID, "swapjob").await;
    assert_eq!(swap["status"], "RUNNING");
    assert_eq!(swap["job_type"], "masterStandbySwapJob");
    assert_eq!(swap["end_time"], Value::Null);
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/clock/advance",
        Some(json!({"by": "10s"})),
    )
    .await;
    let (_, swapped) = show_job(&sim, DEMO_PROJECT_ID, "swapjob").await;
    assert_eq!(swapped["status"], "SUCCESS");
    let begin: i64 = swapped["begin_time"].as_str().unwrap().parse().unwrap();
    let end: i64 = swapped["end_time"].as_str().unwrap().parse().unwrap();
    assert_eq!(end - begin, 8000);

    // A job belongs to its project.
    assert_eq!(show_job(&sim, "other", "swapjob").await.0, 404);
    let (_, other) = show_job(&sim, "other", "otherjob").await;
    assert_eq!(other["status"], "FAIL");
    assert_eq!(
        other["fail_reason"],
        "task other-task (EXTEND) ended FAILED (error_code 111400063)"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_jobs_get_a_dcs_404_and_every_job_request_is_counted() {
    let sim = start(JOBS).await;
    let (status, body) = show_job(&sim, DEMO_PROJECT_ID, "nosuchjob").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({
            "error_code": "111404000",
            "error_msg": "The job nosuchjob does not exist.",
            "error_ext_msg": null
        })
    );
    show_job(&sim, DEMO_PROJECT_ID, "donejob").await;
    show_job(&sim, DEMO_PROJECT_ID, "donejob").await;
    let unsigned = http()
        .get(format!(
            "{}/v2/{DEMO_PROJECT_ID}/jobs/donejob",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let path = format!("/v2/{DEMO_PROJECT_ID}/jobs/donejob");
    let wrong = signed_get(&sim, &path, DEMO_PROJECT_ID, &[], "wrong", Utc::now())
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error_code"], "APIG.0301");
    assert!(!body.to_string().contains(DEMO_SECRET_KEY));
    list(&sim, &[]).await;

    let (_, stats) = admin(&sim, reqwest::Method::GET, "/_sim/stats", None).await;
    assert_eq!(
        stats["total"], 1,
        "job requests are not task-list requests: {stats}"
    );
    assert_eq!(
        stats["jobs"],
        json!({
            "projects": {
                DEMO_PROJECT_ID: {"requests": 5, "ok": 2, "notFound": 1, "clientErrors": 0,
                    "unauthorized": 2, "faulted": 0, "byJob": {"donejob": 4, "nosuchjob": 1}}
            },
            "total": 5
        })
    );
    let (_, reset) = admin(&sim, reqwest::Method::POST, "/_sim/stats/reset", None).await;
    assert_eq!(reset.get("jobs"), None);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_can_aim_at_the_job_api_alone() {
    let sim = start(JOBS).await;
    let (status, _) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 403, "api": "jobs", "count": 2})),
    )
    .await;
    assert_eq!(status, 201);
    // The task list is not affected by a fault aimed at jobs.
    assert_eq!(list(&sim, &[]).await.0, 200);
    let (status, body) = show_job(&sim, DEMO_PROJECT_ID, "donejob").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("SIM.0001"))
    );
    assert_eq!(show_job(&sim, DEMO_PROJECT_ID, "donejob").await.0, 403);
    assert_eq!(show_job(&sim, DEMO_PROJECT_ID, "donejob").await.0, 200);
    // A fault aimed at neither API applies to the job API too.
    admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 503})),
    )
    .await;
    assert_eq!(show_job(&sim, DEMO_PROJECT_ID, "donejob").await.0, 503);
    let (_, stats) = admin(&sim, reqwest::Method::GET, "/_sim/stats", None).await;
    assert_eq!(
        stats["jobs"]["projects"][DEMO_PROJECT_ID]["faulted"], 3,
        "{stats}"
    );
    assert_eq!(stats["projects"][DEMO_PROJECT_ID]["faulted"], 0, "{stats}");
    let (status, body) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"status": 500, "api": "instances"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_declares_jobs_and_sets_their_status() {
    let sim = start(JOBS).await;
    // A derived job: the job changes, its task does not.
    let (status, body) = admin(
        &sim,
        reqwest::Method::PUT,
        "/_sim/jobs/swapjob/status",
        Some(json!({"status": "FAIL", "failReason": "Master standby swap failed."})),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"id": "swapjob", "status": "FAIL"}))
    );
    let (_, job) = show_job(&sim, DEMO_PROJECT_ID, "swapjob").await;
    assert_eq!(
        (&job["status"], &job["fail_reason"], &job["job_type"]),
        (
            &json!("FAIL"),
            &json!("Master standby swap failed."),
            &json!("masterStandbySwapJob")
        )
    );
    assert!(job["end_time"].is_string());
    let (_, tasks) = list(&sim, &[]).await;
    let task = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["id"] == "swap-task")
        .unwrap();
    assert_eq!(task["status"], "EXECUTING");

    // A declared job, then back to running; the reason is kept while not FAIL but not sent.
    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/_sim/jobs/failjob/status",
        Some(json!({"status": "RUNNING"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, running) = show_job(&sim, DEMO_PROJECT_ID, "failjob").await;
    assert_eq!(
        (&running["status"], &running["fail_reason"]),
        (&json!("RUNNING"), &Value::Null)
    );

    let (status, body) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/jobs",
        Some(json!({"id": "newjob", "jobType": "modifyBandwidth", "status": "INIT", "beginTime": "-1s"})),
    )
    .await;
    assert_eq!((status, body), (201, json!({"id": "newjob"})));
    let (_, new) = show_job(&sim, DEMO_PROJECT_ID, "newjob").await;
    assert_eq!(
        (&new["status"], &new["job_type"]),
        (&json!("INIT"), &json!("modifyBandwidth"))
    );

    for (method, path, body, expected) in [
        (
            reqwest::Method::POST,
            "/_sim/jobs",
            json!({"id": "newjob", "status": "INIT"}),
            409,
        ),
        (reqwest::Method::POST, "/_sim/jobs", json!({"id": "x"}), 400),
        (
            reqwest::Method::POST,
            "/_sim/jobs",
            json!({"id": "", "status": "INIT"}),
            400,
        ),
        (
            reqwest::Method::POST,
            "/_sim/jobs",
            json!({"id": "x", "status": "INIT", "beginTime": "later"}),
            400,
        ),
        (
            reqwest::Method::PUT,
            "/_sim/jobs/nosuchjob/status",
            json!({"status": "FAIL"}),
            404,
        ),
        (
            reqwest::Method::PUT,
            "/_sim/jobs/donejob/status",
            json!({"status": " "}),
            400,
        ),
        (
            reqwest::Method::PUT,
            "/_sim/jobs/donejob/status",
            json!({"statuz": "FAIL"}),
            400,
        ),
    ] {
        let (status, answer) = admin(&sim, method, path, Some(body.clone())).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (_, missing) = admin(
        &sim,
        reqwest::Method::POST,
        "/_sim/jobs",
        Some(json!({"id": "x", "status": "INIT", "beginTime": "later"})),
    )
    .await;
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .starts_with("`beginTime`"),
        "{missing}"
    );
    sim.shutdown().await;
}
