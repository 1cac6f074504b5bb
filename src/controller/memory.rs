//! What the controller remembers per object, kept small so that memory does not grow with
//! status size: the object cache holds each status without `tasks` and `latest` (what decisions
//! need: conditions, the wait's phase and clock, generation, errors), plus a digest of the full
//! status content to tell whether a new status differs from the one written.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kube::runtime::reflector::ObjectRef;

use super::{ObjectKey, object_key};
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus};
use crate::query::content_digest;

/// Per-object memory that does not belong in status.
#[derive(Default)]
struct ObjectMemory {
    /// The digest of the full status of the cached version of the object: (resourceVersion,
    /// digest), taken before the cache dropped `tasks` and `latest`.
    cached: Option<(String, u64)>,
    /// The status last written, slimmed, and the resourceVersion of the object it was written
    /// over: while the cache still shows that version, the cache is behind our own write.
    /// Boxed: it lives only until the watch delivers the write, and inline it would make every
    /// entry of the map (one per object) as large as a status.
    written: Option<Box<Written>>,
    /// Consecutive failures of what the object retries by itself (project discovery).
    failures: u32,
    /// Consecutive failed reconciles (a refused status write...), for their backoff: counted
    /// apart from `failures`, which every resolved target resets.
    reconcile_failures: u32,
    /// A refresh (Flux's `requestedAt`) asked of the feed and not yet answered: the value to
    /// echo, and the feed's answer sequence it must come after.
    refresh: Option<(String, u64)>,
}

struct Written {
    over: String,
    status: DcsTaskQueryStatus,
    digest: u64,
}

/// The previous status as the decision sees it.
pub struct Previous {
    /// Without `tasks` and `latest`.
    pub status: Option<DcsTaskQueryStatus>,
    /// The digest of the full status, when known.
    pub digest: Option<u64>,
}

/// Every object's memory, keyed by object. Its keys are the objects' shared keys: see
/// [`Memory::key`].
#[derive(Default)]
pub struct Memory {
    objects: Mutex<HashMap<ObjectKey, ObjectMemory>>,
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectKey, ObjectMemory>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The object's key, the one copy that the feeds and the lanes point to as well: its
    /// memory's own key (the object gets a memory entry if it had none). An object forgotten
    /// and seen again gets a new copy, equal to the old one, so that maps still holding the old
    /// one find it all the same.
    pub fn key(&self, query: &DcsTaskQuery) -> ObjectKey {
        let probe = object_key(query);
        let mut memory = self.lock();
        if let Some((key, _)) = memory.get_key_value(&probe) {
            return key.clone();
        }
        let key = ObjectKey::new(probe);
        memory.insert(key.clone(), ObjectMemory::default());
        key
    }

    /// Applied to every object the watch delivers, before it enters the cache: remembers the
    /// digest of its status and drops what decisions do not need (`tasks`, `latest`, managed
    /// fields). The cache then costs about the same per object whatever `maxTasks` is.
    pub fn slim_for_cache(&self, query: &mut DcsTaskQuery) {
        query.metadata.managed_fields = None;
        let Some(status) = query.status.as_mut() else {
            return;
        };
        let digest = content_digest(status);
        slim(status);
        if let Some(version) = query.metadata.resource_version.clone() {
            let mut memory = self.lock();
            // An existing entry keeps its key; the new copy is dropped.
            let entry = memory.entry(Arc::new(object_key(query))).or_default();
            // A newer version than the one our last write went over: the cache has caught up
            // with that write, so its copy is no longer needed.
            if entry.written.as_ref().is_some_and(|w| w.over != version) {
                entry.written = None;
            }
            entry.cached = Some((version, digest));
        }
    }

    /// The status the next decision starts from: our own last write while the cache has not
    /// caught up with it, else the cached status with the digest taken when it was cached.
    pub fn previous(&self, query: &DcsTaskQuery) -> Previous {
        let memory = self.lock();
        let entry = memory.get(&object_key(query));
        let version = query.metadata.resource_version.as_ref();
        if let Some(written) = entry
            .and_then(|e| e.written.as_ref())
            .filter(|w| Some(&w.over) == version)
        {
            return Previous {
                status: Some(written.status.clone()),
                digest: Some(written.digest),
            };
        }
        let mut status = query.status.clone();
        if let Some(status) = status.as_mut() {
            // Objects built without the cache (tests, a direct read) are slimmed here too.
            slim(status);
        }
        let digest = entry
            .and_then(|e| e.cached.as_ref())
            .filter(|(cached_version, _)| Some(cached_version) == version)
            .map(|(_, digest)| *digest);
        Previous { status, digest }
    }

    /// Remembers a status written over `version` of the object.
    pub fn wrote(
        &self,
        object: &ObjectKey,
        over: Option<String>,
        status: &DcsTaskQueryStatus,
        digest: u64,
    ) {
        let Some(over) = over else {
            return;
        };
        let mut status = status.clone();
        slim(&mut status);
        self.lock().entry(object.clone()).or_default().written = Some(Box::new(Written {
            over,
            status,
            digest,
        }));
    }

    /// One more consecutive failure of `object`'s own retries; returns the count.
    pub fn failed(&self, object: &ObjectKey) -> u32 {
        self.bump(object, |entry| &mut entry.failures)
    }

    /// The object's own retries succeeded (or no longer apply).
    pub fn recovered(&self, object: &ObjectRef<DcsTaskQuery>) {
        self.reset(object, |entry| &mut entry.failures);
    }

    /// One more failed reconcile of `object` in a row; returns the count.
    pub fn reconcile_failed(&self, object: &ObjectKey) -> u32 {
        self.bump(object, |entry| &mut entry.reconcile_failures)
    }

    /// A reconcile of `object` succeeded: its next failure backs off from the start again.
    pub fn reconciled(&self, object: &ObjectRef<DcsTaskQuery>) {
        self.reset(object, |entry| &mut entry.reconcile_failures);
    }

    fn bump(&self, object: &ObjectKey, count: fn(&mut ObjectMemory) -> &mut u32) -> u32 {
        let mut memory = self.lock();
        let count = count(memory.entry(object.clone()).or_default());
        *count = count.saturating_add(1);
        *count
    }

    fn reset(&self, object: &ObjectRef<DcsTaskQuery>, count: fn(&mut ObjectMemory) -> &mut u32) {
        if let Some(entry) = self.lock().get_mut(object) {
            *count(entry) = 0;
        }
    }

    /// The answer sequence a refresh requested as `requested_at` waits to see exceeded, when that
    /// refresh was already asked of the feed.
    pub fn pending_refresh(
        &self,
        object: &ObjectRef<DcsTaskQuery>,
        requested_at: &str,
    ) -> Option<u64> {
        self.lock()
            .get(object)
            .and_then(|entry| entry.refresh.as_ref())
            .filter(|(asked, _)| asked == requested_at)
            .map(|(_, after)| *after)
    }

    /// Remembers a refresh asked of the feed when its latest answer was `after` (`None`: the
    /// refresh was served, or no longer applies).
    pub fn refresh_asked(&self, object: &ObjectKey, asked: Option<(String, u64)>) {
        let mut memory = self.lock();
        match asked {
            Some(asked) => memory.entry(object.clone()).or_default().refresh = Some(asked),
            None => {
                if let Some(entry) = memory.get_mut(object) {
                    entry.refresh = None;
                }
            }
        }
    }

    /// Forgets objects that are gone.
    pub fn retain(&self, live: &HashSet<ObjectRef<DcsTaskQuery>>) {
        self.lock()
            .retain(|object, _| live.contains(object.as_ref()));
    }

    pub fn forget(&self, object: &ObjectRef<DcsTaskQuery>) {
        self.lock().remove(object);
    }
}

/// Drops the parts of a status no decision reads.
fn slim(status: &mut DcsTaskQueryStatus) {
    status.tasks = Vec::new();
    status.latest = Vec::new();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LatestTask, TaskStatus};

    #[test]
    fn an_entry_costs_a_few_words_not_a_status() {
        // One entry per object: a status held inline would make each as large as a status.
        assert!(
            std::mem::size_of::<ObjectMemory>() <= 128,
            "{} bytes",
            std::mem::size_of::<ObjectMemory>()
        );
    }

    fn object(version: &str, status: Option<DcsTaskQueryStatus>) -> DcsTaskQuery {
        let mut query: DcsTaskQuery = serde_json::from_value(serde_json::json!({
            "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
            "metadata": {"name": "q", "namespace": "ns", "resourceVersion": version},
            "spec": {"region": "cn-north-4"}
        }))
        .unwrap();
        query.status = status;
        query
    }

    fn full_status() -> DcsTaskQueryStatus {
        DcsTaskQueryStatus {
            observed_generation: Some(1),
            tasks: vec![TaskStatus {
                id: Some("t".into()),
                ..TaskStatus::default()
            }],
            latest: vec![LatestTask {
                name: "n".into(),
                ..LatestTask::default()
            }],
            ..DcsTaskQueryStatus::default()
        }
    }

    #[test]
    fn the_cache_keeps_no_tasks_but_remembers_their_digest() {
        let memory = Memory::default();
        let mut cached = object("7", Some(full_status()));
        memory.slim_for_cache(&mut cached);
        let status = cached.status.as_ref().unwrap();
        assert!(status.tasks.is_empty() && status.latest.is_empty());
        assert_eq!(status.observed_generation, Some(1));
        let previous = memory.previous(&cached);
        assert_eq!(previous.digest, Some(content_digest(&full_status())));
        // A newer version whose digest was not taken is not matched with the old digest.
        let newer = object("8", Some(DcsTaskQueryStatus::default()));
        assert_eq!(memory.previous(&newer).digest, None);
    }

    #[test]
    fn our_own_write_is_the_truth_until_the_cache_catches_up() {
        let memory = Memory::default();
        let mut cached = object("7", Some(DcsTaskQueryStatus::default()));
        memory.slim_for_cache(&mut cached);
        let written = full_status();
        let digest = content_digest(&written);
        memory.wrote(&memory.key(&cached), Some("7".into()), &written, digest);
        let previous = memory.previous(&cached);
        assert_eq!(previous.digest, Some(digest));
        let status = previous.status.unwrap();
        assert_eq!(status.observed_generation, Some(1));
        assert!(status.tasks.is_empty(), "kept slim");
        // The watch delivering the version written over again changes nothing...
        let mut again = object("7", Some(DcsTaskQueryStatus::default()));
        memory.slim_for_cache(&mut again);
        assert_eq!(memory.previous(&again).digest, Some(digest));
        // ... but once the cache shows a newer version, that version is the truth, and the
        // copy of the write is dropped.
        let mut caught_up = object("9", Some(written.clone()));
        memory.slim_for_cache(&mut caught_up);
        assert_eq!(memory.previous(&caught_up).digest, Some(digest));
        let key = ObjectRef::from_obj(&caught_up);
        assert!(memory.lock().get(&key).unwrap().written.is_none());
    }

    #[test]
    fn every_map_shares_one_copy_of_an_objects_key() {
        let memory = Memory::default();
        let mut cached = object("7", Some(full_status()));
        memory.slim_for_cache(&mut cached);
        let key = memory.key(&cached);
        // The cache's entry made the key; a newer version of the object still finds it.
        assert!(Arc::ptr_eq(&key, &memory.key(&object("8", None))));
        assert_eq!(Arc::strong_count(&key), 2, "the memory's and this one");
        memory.forget(&key);
        let again = memory.key(&cached);
        assert!(
            !Arc::ptr_eq(&key, &again),
            "a forgotten object gets a new copy"
        );
        assert_eq!(
            key, again,
            "equal to the old one, which maps still holding it find"
        );
    }

    #[test]
    fn reconcile_failures_count_apart_from_the_objects_own_retries() {
        let memory = Memory::default();
        let q = memory.key(&object("1", None));
        assert_eq!(memory.reconcile_failed(&q), 1);
        // A target resolved in between (which resets discovery failures) does not reset them.
        memory.recovered(&q);
        assert_eq!(memory.reconcile_failed(&q), 2);
        assert_eq!(memory.failed(&q), 1, "discovery failures are their own");
        memory.reconciled(&q);
        assert_eq!(memory.reconcile_failed(&q), 1);
    }
}
