//! Writing `events.k8s.io/v1` events, with series, in memory that does not grow with traffic.
//!
//! kube-runtime's `Recorder` folds a repeat of an event into a series of the first, which is what
//! `kubectl describe` and event consumers expect; to do so it keeps every event it published,
//! whole, for six minutes. When one answer resolves 5,000 waits that is 5,000 events of about
//! 1.5 KB each in a map that only grows during the burst (17.7 MB at the heap's peak in the
//! N = 10,000 benchmark). This writer folds repeats the same way but remembers, per distinct
//! event, only a hash of what identifies it, the name it was created under and its count.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};
use serde_json::json;

/// How long a published event stays open for repeats to join its series (kube-runtime's
/// `Recorder` uses the same six minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Publishes events as one reporter.
pub struct EventWriter {
    client: Client,
    reporter: Reporter,
    series: Mutex<SeriesCache>,
}

/// The open series, by a hash of what identifies an event.
#[derive(Default)]
struct SeriesCache {
    open: HashMap<u64, OpenSeries>,
    /// When entries older than [`SERIES_WINDOW`] were last dropped: pruning runs at most once a
    /// window's tenth, not on every publish (the `Recorder` walks its whole cache each time).
    pruned_at: Option<Instant>,
}

struct OpenSeries {
    /// The event object the repeats patch.
    name: String,
    /// Occurrences so far, the first included.
    count: i32,
    last_seen: Instant,
}

/// What the publish of one event will do.
enum Write {
    Create(String),
    Repeat { name: String, count: i32 },
}

impl SeriesCache {
    /// What publishing the event identified by `key` does at `now`: a new object, or the next
    /// count of an open series. Does not remember it: only a published event opens or extends a
    /// series ([`SeriesCache::published`]).
    fn plan(&mut self, key: u64, now: Instant, new_name: impl FnOnce() -> String) -> Write {
        self.prune(now);
        match self.open.get(&key) {
            Some(open) if now.duration_since(open.last_seen) < SERIES_WINDOW => Write::Repeat {
                name: open.name.clone(),
                count: open.count.saturating_add(1),
            },
            _ => Write::Create(new_name()),
        }
    }

    /// Remembers a published write.
    fn published(&mut self, key: u64, write: Write, now: Instant) {
        let (name, count) = match write {
            Write::Create(name) => (name, 1),
            Write::Repeat { name, count } => (name, count),
        };
        self.open.insert(
            key,
            OpenSeries {
                name,
                count,
                last_seen: now,
            },
        );
    }

    fn prune(&mut self, now: Instant) {
        let due = self
            .pruned_at
            .is_none_or(|at| now.duration_since(at) >= SERIES_WINDOW / 10);
        if due {
            self.open
                .retain(|_, open| now.duration_since(open.last_seen) < SERIES_WINDOW);
            self.pruned_at = Some(now);
        }
    }
}

/// What makes two events the same event (as the `Recorder` judges it): reporter, type, action,
/// reason, the object it is about and the related one. The note is not part of it.
fn identity(reporter: &Reporter, event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    reporter.controller.hash(&mut hasher);
    reporter.instance.hash(&mut hasher);
    matches!(event.type_, EventType::Warning).hash(&mut hasher);
    event.action.hash(&mut hasher);
    event.reason.hash(&mut hasher);
    hash_reference(regarding, &mut hasher);
    event.secondary.is_some().hash(&mut hasher);
    if let Some(related) = &event.secondary {
        hash_reference(related, &mut hasher);
    }
    hasher.finish()
}

fn hash_reference(reference: &ObjectReference, hasher: &mut DefaultHasher) {
    reference.api_version.hash(hasher);
    reference.kind.hash(hasher);
    reference.namespace.hash(hasher);
    reference.name.hash(hasher);
    reference.uid.hash(hasher);
}

impl EventWriter {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// Publishes `event` about `regarding`: creates it, or, when the same event was published
    /// within [`SERIES_WINDOW`], counts it in the series of the first.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = identity(&self.reporter, event, regarding);
        let now = Timestamp::now();
        let write = self.lock().plan(key, Instant::now(), || {
            let base = regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller);
            format!("{base}.{:x}", now.as_nanosecond())
        });
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        match &write {
            Write::Create(name) => {
                let created = self.new_event(event, regarding, name, now);
                events.create(&PostParams::default(), &created).await?;
            }
            Write::Repeat { name, count } => {
                let series = EventSeries {
                    count: *count,
                    last_observed_time: MicroTime(now),
                };
                let patch = json!({ "series": series, "note": event.note });
                events
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
        }
        self.lock().published(key, write, Instant::now());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_event(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        name: &str,
        now: Timestamp,
    ) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("dcs.hwcloud.dev/v1alpha1".into()),
            kind: Some("DcsTaskQuery".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn reporter(instance: &str) -> Reporter {
        Reporter {
            controller: "dcs-task-operator".into(),
            instance: Some(instance.into()),
        }
    }

    #[test]
    fn an_event_is_identified_by_reporter_reason_action_type_and_objects_not_by_its_note() {
        let (one, a) = (reporter("pod-1"), reference("a"));
        let base = identity(&one, &event("TaskSucceeded", "x"), &a);
        assert_eq!(base, identity(&one, &event("TaskSucceeded", "y"), &a));
        assert_ne!(base, identity(&one, &event("TaskFailed", "x"), &a));
        assert_ne!(
            base,
            identity(&one, &event("TaskSucceeded", "x"), &reference("b"))
        );
        assert_ne!(
            base,
            identity(&reporter("pod-2"), &event("TaskSucceeded", "x"), &a)
        );
        let mut warning = event("TaskSucceeded", "x");
        warning.type_ = EventType::Warning;
        assert_ne!(base, identity(&one, &warning, &a));
        let mut other_action = event("TaskSucceeded", "x");
        other_action.action = "Wait".into();
        assert_ne!(base, identity(&one, &other_action, &a));
        let mut related = event("TaskSucceeded", "x");
        related.secondary = Some(reference("c"));
        assert_ne!(base, identity(&one, &related, &a));
    }

    #[test]
    fn a_repeat_within_the_window_counts_in_the_series_of_the_first() {
        let mut cache = SeriesCache::default();
        let start = Instant::now();
        let first = cache.plan(1, start, || "a.1".into());
        assert!(matches!(&first, Write::Create(name) if name == "a.1"));
        cache.published(1, first, start);
        let later = start + Duration::from_secs(60);
        let second = cache.plan(1, later, || unreachable!("a repeat creates nothing"));
        assert!(matches!(&second, Write::Repeat { name, count: 2 } if name == "a.1"));
        cache.published(1, second, later);
        let third = cache.plan(1, later + Duration::from_secs(1), || unreachable!());
        assert!(matches!(third, Write::Repeat { count: 3, .. }));
        // Another event is a new object.
        assert!(matches!(
            cache.plan(2, later, || "b.1".into()),
            Write::Create(_)
        ));
    }

    #[test]
    fn an_unpublished_write_opens_no_series() {
        let mut cache = SeriesCache::default();
        let start = Instant::now();
        // The create failed: it is not remembered, so the next try creates again.
        let _failed = cache.plan(1, start, || "a.1".into());
        assert!(matches!(
            cache.plan(1, start, || "a.2".into()),
            Write::Create(name) if name == "a.2"
        ));
    }

    #[test]
    fn series_close_after_the_window_and_are_forgotten() {
        let mut cache = SeriesCache::default();
        let start = Instant::now();
        let first = cache.plan(1, start, || "a.1".into());
        cache.published(1, first, start);
        let other = cache.plan(2, start, || "b.1".into());
        cache.published(2, other, start);
        let after = start + SERIES_WINDOW;
        assert!(matches!(
            cache.plan(1, after, || "a.2".into()),
            Write::Create(_)
        ));
        assert!(cache.open.is_empty(), "entries past the window are dropped");
    }

    #[test]
    fn pruning_runs_at_most_once_a_tenth_of_the_window() {
        let mut cache = SeriesCache::default();
        let start = Instant::now();
        cache.prune(start);
        let first = cache.plan(1, start, || "a.1".into());
        cache.published(1, first, start);
        // Past the window, but the last pruning was too recent to run again.
        let expired = start + SERIES_WINDOW / 20;
        cache.open.get_mut(&1).unwrap().last_seen = start - SERIES_WINDOW;
        cache.prune(expired);
        assert_eq!(cache.open.len(), 1);
        cache.prune(start + SERIES_WINDOW / 10);
        assert!(cache.open.is_empty());
    }
}
