//! Prometheus metrics, registered on an explicit registry (no globals).

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{DcsTaskQuery, WaitPhase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Upstream DCS calls by outcome: `ok`, `throttled`, `auth_failed`, `client_error`,
    /// `server_error`, `transport`.
    pub upstream_calls: Family<OutcomeLabels, Counter>,
    /// Latency of upstream calls (all pages of one query), seconds.
    pub upstream_latency: Histogram,
    /// Polls answered from the shared fetcher without an upstream call, by `cached`/`joined`.
    pub shared_fetches: Family<OutcomeLabels, Counter>,
    /// Reconciles by result: `ok`, `error`.
    pub reconciles: Family<OutcomeLabels, Counter>,
    /// Status writes (only when the status changed).
    pub status_writes: Counter,
    /// Objects by wait phase (`none` for objects without waitFor).
    pub objects: Family<PhaseLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dcs_task_operator");
        let upstream_calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "upstream_calls",
            "Upstream DCS task-center calls by outcome",
            upstream_calls.clone(),
        );
        let upstream_latency = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "upstream_latency_seconds",
            "Latency of upstream DCS task-center queries",
            upstream_latency.clone(),
        );
        let shared_fetches = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "shared_fetches",
            "Polls served by a shared in-flight or cached upstream result",
            shared_fetches.clone(),
        );
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        let status_writes = Counter::default();
        registry.register(
            "status_writes",
            "Status patches sent (unchanged status is not written)",
            status_writes.clone(),
        );
        let objects = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "objects",
            "DcsTaskQuery objects by wait phase",
            objects.clone(),
        );
        Self {
            registry,
            upstream_calls,
            upstream_latency,
            shared_fetches,
            reconciles,
            status_writes,
            objects,
        }
    }
}

impl Metrics {
    /// Counts one event under `outcome` in `family`.
    pub fn count(family: &Family<OutcomeLabels, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Recomputes the objects-by-phase gauge from the cache.
    pub fn set_objects<'a>(&self, objects: impl Iterator<Item = &'a DcsTaskQuery>) {
        let mut counts = std::collections::BTreeMap::<&str, i64>::new();
        for phase in [
            "none",
            "Unknown",
            "Pending",
            "Succeeded",
            "Failed",
            "TimedOut",
        ] {
            counts.insert(phase, 0);
        }
        for object in objects {
            let phase = match (
                &object.spec.wait_for,
                object.status.as_ref().and_then(|s| s.wait_for.as_ref()),
            ) {
                (None, _) => "none",
                (Some(_), None) => "Unknown",
                (Some(_), Some(wait)) => wait.phase.as_str(),
            };
            *counts.entry(phase).or_default() += 1;
        }
        for (phase, count) in counts {
            self.objects
                .get_or_create(&PhaseLabels {
                    phase: phase.to_string(),
                })
                .set(count);
        }
    }

    /// The text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The metrics label for an upstream error.
pub fn error_outcome(error: &crate::dcs::DcsError) -> &'static str {
    if error.is_auth_failure() {
        return "auth_failed";
    }
    match error.api_error().map(|api| api.http_status) {
        Some(429) => "throttled",
        Some(400..=499) => "client_error",
        Some(_) => "server_error",
        None => "transport",
    }
}

/// Label for a wait phase.
pub fn phase_label(phase: Option<WaitPhase>) -> &'static str {
    phase.map_or("none", WaitPhase::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let metrics = Metrics::default();
        Metrics::count(&metrics.upstream_calls, "ok");
        metrics.set_objects(std::iter::empty());
        let text = metrics.render();
        assert!(
            text.contains("dcs_task_operator_upstream_calls_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dcs_task_operator_objects{phase=\"Pending\"} 0"),
            "{text}"
        );
    }
}
