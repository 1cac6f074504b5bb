//! `/healthz`, `/readyz` and `/metrics` on one small HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::ControllerError;
use super::metrics::Metrics;

/// A running server.
pub struct HealthServer {
    pub local_addr: SocketAddr,
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
}

/// Binds `addr` and serves in the background. `/readyz` turns 200 once `ready` is true (the
/// object cache has synced); `/healthz` is 200 while the process serves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
) -> Result<HealthServer, ControllerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::Server { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ControllerError::Server { addr, source })?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ServerState { metrics, ready });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(HealthServer { local_addr })
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "cache not synced")
    }
}

async fn metrics_text(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
