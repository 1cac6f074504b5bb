//! Prometheus metrics, registered on an explicit registry (no globals).

use std::fmt::Write;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::ObjectKey;
use super::lanes::Lanes;
use crate::api::{DcsTaskQuery, WaitPhase};
use crate::dcs::DcsError;
use crate::upstream::{FeedObserver, FetchSource, SharedFetcher};

/// A label value written as its `as_str()`, so dashboards and alerts see stable snake_case
/// names whatever the Rust variant is called.
macro_rules! label_values {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_values!(UpstreamOutcome {
    Ok => "ok",
    Throttled => "throttled",
    AuthFailed => "auth_failed",
    ClientError => "client_error",
    ServerError => "server_error",
    Transport => "transport",
});

label_values!(SharedOutcome {
    Fed => "fed",
    CoolingDown => "cooling_down",
});

label_values!(ReconcileResult {
    Ok => "ok",
    Error => "error",
});

label_values!(PhaseLabel {
    None => "none",
    Unknown => "Unknown",
    Pending => "Pending",
    Succeeded => "Succeeded",
    Failed => "Failed",
    TimedOut => "TimedOut",
});

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub outcome: UpstreamOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SharedLabels {
    pub outcome: SharedOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub outcome: ReconcileResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// What failed or was missing (`ReconcileError::category`, `query::Unserved::category`).
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: PhaseLabel,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Upstream DCS calls by outcome.
    pub upstream_calls: Family<UpstreamLabels, Counter>,
    /// Latency of upstream calls (all pages of one query), seconds.
    pub upstream_latency: Histogram,
    /// Answers served without an upstream call of their own: an object's evaluation of its
    /// feed's answer (`fed`), or a refusal remembered (`cooling_down`).
    pub shared_fetches: Family<SharedLabels, Counter>,
    /// Reconciles by result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// How long reconciles take, seconds (feed reads wait at most 2 s; the rest is the
    /// apiserver's write latency).
    pub reconcile_duration: Histogram,
    /// Failed reconciles by the category of what failed.
    pub reconcile_failures: Family<FailureLabels, Counter>,
    /// Reconciles that could make no upstream call, by why (`query::Unserved::category`).
    pub unserved: Family<FailureLabels, Counter>,
    /// Upstream feeds polling (one per distinct query).
    pub feeds: Gauge,
    /// Objects subscribed to a feed.
    pub feed_subscribers: Gauge,
    /// Status writes (only when the status changed).
    pub status_writes: Counter,
    /// Objects by wait phase (`none` for objects without waitFor).
    pub objects: Family<PhaseLabels, Gauge>,
    /// What the fetcher holds, read at each scrape: all zero when nothing is being fetched, so
    /// a leak shows as a gauge that never comes back down.
    pub listings_in_flight: Gauge,
    pub auth_probes_in_flight: Gauge,
    pub requests_queued: Gauge,
    fetcher: OnceLock<Weak<SharedFetcher>>,
    /// What the write lanes hold, read at each scrape (see [`super::lanes`]).
    pub verdicts_pending: Gauge,
    pub refreshes_deferred: Gauge,
    pub background_write_limit: Gauge,
    lanes: OnceLock<Weak<Lanes<ObjectKey>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dcs_task_operator");
        let upstream_calls = Family::<UpstreamLabels, Counter>::default();
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
        let shared_fetches = Family::<SharedLabels, Counter>::default();
        registry.register(
            "shared_fetches",
            "Answers served without an upstream call of their own (fed by a shared feed, or a remembered refusal)",
            shared_fetches.clone(),
        );
        let feeds = Gauge::default();
        registry.register(
            "upstream_feeds",
            "Upstream feeds polling, one per distinct query",
            feeds.clone(),
        );
        let feed_subscribers = Gauge::default();
        registry.register(
            "feed_subscribers",
            "DcsTaskQuery objects subscribed to an upstream feed",
            feed_subscribers.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take",
            reconcile_duration.clone(),
        );
        let reconcile_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Failed reconciles by error category",
            reconcile_failures.clone(),
        );
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
        let listings_in_flight = Gauge::default();
        registry.register(
            "upstream_listings_in_flight",
            "Task listings holding an account and endpoint slot",
            listings_in_flight.clone(),
        );
        let auth_probes_in_flight = Gauge::default();
        registry.register(
            "upstream_auth_probes_in_flight",
            "Listings trying a credential not yet known to work (each holds its account's probe lock)",
            auth_probes_in_flight.clone(),
        );
        let requests_queued = Gauge::default();
        registry.register(
            "upstream_requests_queued",
            "HTTP requests waiting for their account's turn at the global request budget",
            requests_queued.clone(),
        );
        let unserved = Family::<FailureLabels, Counter>::default();
        registry.register(
            "unserved_reconciles",
            "Reconciles that could make no upstream call, by why (credentials, endpoint, project_discovery)",
            unserved.clone(),
        );
        let verdicts_pending = Gauge::default();
        registry.register(
            "verdicts_pending",
            "Awaiting objects woken by an answer whose reconcile has not ended; no refresh is written meanwhile",
            verdicts_pending.clone(),
        );
        let refreshes_deferred = Gauge::default();
        registry.register(
            "refreshes_deferred",
            "Objects whose status refresh waits for the apiserver to have room",
            refreshes_deferred.clone(),
        );
        let background_write_limit = Gauge::default();
        registry.register(
            "background_write_limit",
            "Status writes of objects nobody waits on allowed in flight, learnt from write latency",
            background_write_limit.clone(),
        );
        Self {
            verdicts_pending,
            refreshes_deferred,
            background_write_limit,
            lanes: OnceLock::new(),
            unserved,
            listings_in_flight,
            auth_probes_in_flight,
            requests_queued,
            fetcher: OnceLock::new(),
            registry,
            upstream_calls,
            upstream_latency,
            shared_fetches,
            reconciles,
            reconcile_duration,
            reconcile_failures,
            feeds,
            feed_subscribers,
            status_writes,
            objects,
        }
    }
}

impl Metrics {
    pub fn count_upstream(&self, outcome: UpstreamOutcome) {
        self.upstream_calls
            .get_or_create(&UpstreamLabels { outcome })
            .inc();
    }

    pub fn count_shared(&self, outcome: SharedOutcome) {
        self.shared_fetches
            .get_or_create(&SharedLabels { outcome })
            .inc();
    }

    /// A reconcile could make no upstream call, for a reason of `category`.
    pub fn count_unserved(&self, category: &'static str) {
        self.unserved
            .get_or_create(&FailureLabels { category })
            .inc();
    }

    /// One reconcile ended after `took`; `failure` is its error's category when it failed.
    pub fn reconciled(&self, took: Duration, failure: Option<&'static str>) {
        let outcome = match failure {
            None => ReconcileResult::Ok,
            Some(category) => {
                self.reconcile_failures
                    .get_or_create(&FailureLabels { category })
                    .inc();
                ReconcileResult::Error
            }
        };
        self.reconciles
            .get_or_create(&ReconcileLabels { outcome })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Recomputes the objects-by-phase gauge from the cache.
    pub fn set_objects<'a>(&self, objects: impl Iterator<Item = &'a DcsTaskQuery>) {
        let mut counts = std::collections::HashMap::<PhaseLabel, i64>::new();
        for phase in [
            PhaseLabel::None,
            PhaseLabel::Unknown,
            PhaseLabel::Pending,
            PhaseLabel::Succeeded,
            PhaseLabel::Failed,
            PhaseLabel::TimedOut,
        ] {
            counts.insert(phase, 0);
        }
        for object in objects {
            let phase = match (
                &object.spec.wait_for,
                object.status.as_ref().and_then(|s| s.wait_for.as_ref()),
            ) {
                (None, _) => PhaseLabel::None,
                (Some(_), None) => PhaseLabel::Unknown,
                (Some(_), Some(wait)) => PhaseLabel::from(wait.phase),
            };
            *counts.entry(phase).or_default() += 1;
        }
        for (phase, count) in counts {
            self.objects
                .get_or_create(&PhaseLabels { phase })
                .set(count);
        }
    }

    /// The text exposition format for `/metrics`.
    /// Reads the in-flight gauges from `fetcher` at every scrape from now on.
    pub fn watch_fetcher(&self, fetcher: &Arc<SharedFetcher>) {
        let _ = self.fetcher.set(Arc::downgrade(fetcher));
    }

    /// Reads the lane gauges from `lanes` at every scrape from now on.
    pub fn watch_lanes(&self, lanes: &Arc<Lanes<ObjectKey>>) {
        let _ = self.lanes.set(Arc::downgrade(lanes));
    }

    pub fn render(&self) -> String {
        let gauge = |count: usize| i64::try_from(count).unwrap_or(i64::MAX);
        if let Some(fetcher) = self.fetcher.get().and_then(Weak::upgrade) {
            let held = fetcher.in_flight();
            self.listings_in_flight.set(gauge(held.listings));
            self.auth_probes_in_flight.set(gauge(held.probes));
            self.requests_queued.set(gauge(held.queued_requests));
        }
        if let Some(lanes) = self.lanes.get().and_then(Weak::upgrade) {
            let counts = lanes.counts();
            self.verdicts_pending.set(gauge(counts.awaiting));
            self.refreshes_deferred.set(gauge(counts.deferred));
            self.background_write_limit.set(gauge(counts.limit));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl From<WaitPhase> for PhaseLabel {
    fn from(phase: WaitPhase) -> Self {
        match phase {
            WaitPhase::Pending => PhaseLabel::Pending,
            WaitPhase::Succeeded => PhaseLabel::Succeeded,
            WaitPhase::Failed => PhaseLabel::Failed,
            WaitPhase::TimedOut => PhaseLabel::TimedOut,
        }
    }
}

impl UpstreamOutcome {
    /// The outcome of an upstream call: `failure` is `None` when it was answered.
    pub fn of(failure: Option<&DcsError>) -> Self {
        failure.map_or(UpstreamOutcome::Ok, UpstreamOutcome::of_error)
    }

    fn of_error(error: &DcsError) -> Self {
        if error.is_auth_failure() {
            return UpstreamOutcome::AuthFailed;
        }
        match error.api_error().map(|api| api.http_status) {
            Some(429) => UpstreamOutcome::Throttled,
            Some(400..=499) => UpstreamOutcome::ClientError,
            Some(_) => UpstreamOutcome::ServerError,
            None => UpstreamOutcome::Transport,
        }
    }
}

impl FeedObserver for Metrics {
    fn polled(&self, source: FetchSource, took: Duration, failure: Option<&DcsError>) {
        match source {
            FetchSource::Upstream => {
                self.upstream_latency.observe(took.as_secs_f64());
                self.count_upstream(UpstreamOutcome::of(failure));
            }
            FetchSource::CoolingDown => self.count_shared(SharedOutcome::CoolingDown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let metrics = Metrics::default();
        metrics.count_upstream(UpstreamOutcome::Ok);
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
