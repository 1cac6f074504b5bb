//! `GET /v3/projects?name={region}`: the IAM (Keystone) call the SDKs make to discover a project
//! id from a region, signed like every other call. The simulator's account holds one project,
//! [`DEMO_PROJECT_ID`](super::DEMO_PROJECT_ID), named [`DEMO_REGION`](super::DEMO_REGION); any
//! other name lists nothing. Each request is counted under `iam` in `/_sim/stats`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::gateway::{self, Rejected};
use super::state::{SimState, lock};
use super::stats::Outcome;
use super::{DEMO_PROJECT_ID, DEMO_REGION, wire};

/// The domain (account) id the demo project belongs to.
const DEMO_DOMAIN_ID: &str = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf";

pub(super) async fn list_projects(
    State(state): State<Arc<SimState>>,
    request: Request,
) -> Response {
    let (outcome, response) = answer(&state, request).await;
    tracing::debug!(?outcome, "simulated IAM project list request");
    lock(&state.stats).record_iam(outcome);
    response
}

async fn answer(state: &SimState, request: Request) -> (Outcome, Response) {
    let query = match gateway::admit(state, request, None).await {
        Ok(query) => query,
        Err(Rejected::UnreadableBody) => return bad_request("The request body could not be read."),
        Err(Rejected::BadQuery) => return bad_request("The query string is not valid."),
        Err(Rejected::Refused(outcome, response)) => return (outcome, response),
    };
    let name = query
        .iter()
        .rev()
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.as_str());
    let projects: Vec<_> = match name {
        Some(name) if name != DEMO_REGION => Vec::new(),
        _ => vec![json!({
            "id": DEMO_PROJECT_ID,
            "name": DEMO_REGION,
            "domain_id": DEMO_DOMAIN_ID,
            "parent_id": DEMO_DOMAIN_ID,
            "description": "",
            "enabled": true,
            "is_domain": false,
            "links": {"self": format!("/v3/projects/{DEMO_PROJECT_ID}")},
        })],
    };
    let body = json!({
        "projects": projects,
        "links": {"self": "/v3/projects", "previous": null, "next": null},
    });
    (Outcome::Ok, wire::json(StatusCode::OK, body))
}

fn bad_request(message: &str) -> (Outcome, Response) {
    (
        Outcome::ClientError,
        wire::json(
            StatusCode::BAD_REQUEST,
            wire::error_body("IAM.0001", message),
        ),
    )
}
