//! The apiserver's own limit: how fast the run's kube-apiserver takes status writes like the
//! operator's when nothing else writes, so the run's latencies and cold start can be read as
//! ratios to what the apiserver allows rather than as absolute times.
//!
//! [`measure`] runs after the controller has stopped (step 8 of [`super::run`]). It reads the
//! waiters back from the apiserver, takes the largest status among them (the payload, its size
//! the bytes of its JSON as the operator serializes it), and writes it back over the waiters,
//! round robin, [`IN_FLIGHT`] at once, with the operator's kind of request: server-side apply
//! on the status subresource, body `{apiVersion, kind, status}`, forced, under its own field
//! manager ([`FIELD_MANAGER`]). Each write carries a `lastSyncTime` no earlier write had (whole
//! seconds, counting up), so every one changes the object; a write the apiserver answers with a
//! resourceVersion already seen (nothing written) or with an error makes the measurement void.
//!
//! Its figure, R (writes per second, first write sent until the last answered), gives the
//! limits of [`super::Bound`]: the cold start cannot beat N writes at R, and a wait cannot beat
//! one `activeInterval` (to see the end) plus its place in the queue of the W waiters' writes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dcs_task_operator::api::time::{Time, Timestamp};
use dcs_task_operator::api::{DcsTaskQuery, DcsTaskQueryStatus};
use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::WAITER_PREFIX;

/// Writes in flight at once: what the operator's `--concurrency` allows by default.
pub const IN_FLIGHT: usize = 16;

/// The field manager of the limit's writes (not the operator's: they are not its writes).
pub const FIELD_MANAGER: &str = "dcs-scale-limit";

/// At least this many writes, however few objects the run had, so a small run's R is not a
/// handful of requests.
pub const MIN_WRITES: usize = 500;

/// Objects read back per list request.
const LIST_PAGE: u32 = 500;

/// How many writes a run of `objects` objects measures: one per object (what its cold start
/// wrote), at least [`MIN_WRITES`].
pub fn writes_for(objects: usize) -> usize {
    objects.max(MIN_WRITES)
}

/// What the limit phase measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// R: status writes per second; `None` when the measurement was void (`problem` says why).
    pub writes_per_second: Option<f64>,
    /// Bytes of the payload's status JSON (0 when no waiter had a status).
    pub payload_bytes: usize,
    pub in_flight: usize,
    /// Writes made, and how long they took together.
    pub writes: usize,
    pub took: Duration,
    /// Why there is no R.
    pub problem: Option<String>,
}

impl Limit {
    fn void(payload_bytes: usize, problem: String) -> Self {
        Self {
            writes_per_second: None,
            payload_bytes,
            in_flight: IN_FLIGHT,
            writes: 0,
            took: Duration::ZERO,
            problem: Some(problem),
        }
    }
}

/// The waiters as stored: name, resourceVersion and status of each.
struct Stored {
    waiters: Vec<(String, String)>,
    largest: Option<(usize, DcsTaskQueryStatus)>,
}

async fn read_back(api: &Api<DcsTaskQuery>) -> Result<Stored, String> {
    let mut stored = Stored {
        waiters: Vec::new(),
        largest: None,
    };
    let mut params = ListParams::default().limit(LIST_PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|error| format!("listing the objects: {error}"))?;
        for object in page.items {
            let name = object.name_any();
            if !name.starts_with(WAITER_PREFIX) {
                continue;
            }
            let version = object.resource_version().unwrap_or_default();
            if let Some(status) = object.status {
                let bytes = serde_json::to_vec(&status)
                    .map_err(|error| format!("serializing the status of {name}: {error}"))?
                    .len();
                if stored
                    .largest
                    .as_ref()
                    .is_none_or(|(most, _)| bytes > *most)
                {
                    stored.largest = Some((bytes, status));
                }
            }
            stored.waiters.push((name, version));
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => {
                params = ListParams::default()
                    .limit(LIST_PAGE)
                    .continue_token(&token)
            }
            None => break,
        }
    }
    Ok(stored)
}

/// Measures R on `api`'s namespace with `writes` writes (see the module's documentation).
/// `api` should be on a client of its own, doing nothing else meanwhile.
pub async fn measure(api: &Api<DcsTaskQuery>, writes: usize) -> Limit {
    let stored = match read_back(api).await {
        Ok(stored) => stored,
        Err(problem) => return Limit::void(0, problem),
    };
    let Some((payload_bytes, payload)) = stored.largest else {
        return Limit::void(0, "no waiter has a status to write".into());
    };
    if stored.waiters.is_empty() || writes == 0 {
        return Limit::void(payload_bytes, "nothing to write".into());
    }
    // Distinct whole seconds (what `Time` keeps), all in the past, counting up: no write
    // repeats an earlier one's lastSyncTime, so none is a no-op for the apiserver.
    let first_second = Timestamp::now().as_second() - writes as i64 - 1;
    let bodies: Vec<(String, serde_json::Value)> = (0..writes)
        .map(|i| {
            let (name, _) = &stored.waiters[i % stored.waiters.len()];
            let mut status = payload.clone();
            status.last_sync_time = Timestamp::from_second(first_second + i as i64)
                .ok()
                .map(Time);
            let body = json!({
                "apiVersion": DcsTaskQuery::api_version(&()),
                "kind": DcsTaskQuery::kind(&()),
                "status": status,
            });
            (name.clone(), body)
        })
        .collect();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let started = Instant::now();
    let answers: Vec<Result<String, String>> = futures::stream::iter(bodies)
        .map(|(name, body)| {
            let params = &params;
            async move {
                api.patch_status(&name, params, &Patch::Apply(&body))
                    .await
                    .map(|object| object.resource_version().unwrap_or_default())
                    .map_err(|error| format!("writing the status of {name}: {error}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let took = started.elapsed();

    let mut versions: HashSet<String> = stored.waiters.into_iter().map(|(_, v)| v).collect();
    let (mut failed, mut unchanged, mut first_failure) = (0usize, 0usize, None);
    for answer in answers {
        match answer {
            Ok(version) => {
                if version.is_empty() || !versions.insert(version) {
                    unchanged += 1;
                }
            }
            Err(problem) => {
                failed += 1;
                first_failure.get_or_insert(problem);
            }
        }
    }
    let problem = if failed > 0 {
        Some(format!(
            "{failed} of {writes} writes failed, e.g. {}",
            first_failure.unwrap_or_default()
        ))
    } else if unchanged > 0 {
        Some(format!(
            "{unchanged} of {writes} writes left the object as it was (no new resourceVersion)"
        ))
    } else {
        None
    };
    Limit {
        writes_per_second: (problem.is_none() && !took.is_zero())
            .then(|| writes as f64 / took.as_secs_f64()),
        payload_bytes,
        in_flight: IN_FLIGHT,
        writes,
        took,
        problem,
    }
}
