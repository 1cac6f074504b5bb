//! Publishing events off the reconcile path.
//!
//! A transition's event costs the apiserver a write as large as the status write before it.
//! When one answer resolves thousands of waits, publishing inline would halve the rate at which
//! waiters' statuses (what `kubectl wait` reads) reach the apiserver. So reconciles queue their
//! events here, and a small pool publishes them in order of arrival, each in the background
//! lane ([`super::lanes`]): after the verdict writes still pending, unless the queue is filling
//! up. Every event is still published, after its status, and a graceful shutdown drains the
//! queue for a bounded time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Event;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::ObjectKey;
use super::lanes::Lanes;

mod writer;

pub use writer::EventWriter;

/// Events queued before a reconcile waits for room (backpressure, not loss).
pub const EVENT_QUEUE: usize = 10_000;

/// Events published at once.
pub const PUBLISHERS: usize = 2;

/// Queued events beyond which they are published even while verdicts are pending: the queue
/// must never fill up, or the reconciles writing verdicts would wait on it.
pub const MUST_PUBLISH_AT: usize = EVENT_QUEUE * 3 / 4;

/// One event for one object.
pub struct QueuedEvent {
    pub event: Event,
    pub object: ObjectReference,
}

/// The sending side, held by the reconciles.
#[derive(Clone)]
pub struct EventQueue {
    sender: mpsc::Sender<QueuedEvent>,
    /// Events sent and not yet taken by a publisher.
    queued: Arc<AtomicUsize>,
    /// For the rare event that must be published before what it announces (a deletion).
    writer: Arc<EventWriter>,
}

/// The publishing side, held by the controller until shutdown.
pub struct EventPublisher {
    worker: JoinHandle<()>,
    closing: Arc<Notify>,
}

impl EventQueue {
    /// A queue and the task that publishes what enters it through `writer`, each event in
    /// the background lane of `lanes`.
    pub fn start(
        writer: Arc<EventWriter>,
        lanes: Arc<Lanes<ObjectKey>>,
    ) -> (EventQueue, EventPublisher) {
        let (sender, receiver) = mpsc::channel::<QueuedEvent>(EVENT_QUEUE);
        let queued_count = Arc::new(AtomicUsize::new(0));
        let closing = Arc::new(Notify::new());
        let queued = futures::stream::unfold(
            (receiver, closing.clone(), false),
            |(mut receiver, closing, mut closed)| async move {
                loop {
                    if closed {
                        let queued = receiver.recv().await?;
                        return Some((queued, (receiver, closing, closed)));
                    }
                    tokio::select! {
                        queued = receiver.recv() => {
                            return queued.map(|queued| (queued, (receiver, closing, closed)));
                        }
                        _ = closing.notified() => {
                            // No new events; what is queued is still published.
                            receiver.close();
                            closed = true;
                        }
                    }
                }
            },
        );
        let publisher = writer.clone();
        let backlog = queued_count.clone();
        let worker = tokio::spawn(queued.for_each_concurrent(PUBLISHERS, move |queued| {
            let writer = publisher.clone();
            let lanes = lanes.clone();
            let backlog = backlog.clone();
            async move {
                let turn = lanes
                    .event_write(|| backlog.load(Ordering::Relaxed) > MUST_PUBLISH_AT)
                    .await;
                backlog.fetch_sub(1, Ordering::Relaxed);
                let overloaded = publish(&writer, queued).await.is_err_and(|error| error);
                turn.finish(overloaded);
            }
        }));
        (
            EventQueue {
                sender,
                queued: queued_count,
                writer,
            },
            EventPublisher { worker, closing },
        )
    }

    /// Publishes `event` about `object` now, bypassing the queue, and says whether it was
    /// published: for an event that must reach the apiserver before what it announces happens
    /// (the object's deletion), and is rare enough not to compete with status writes.
    pub async fn publish_now(&self, event: Event, object: ObjectReference) -> bool {
        let queued = QueuedEvent { event, object };
        publish(&self.writer, queued).await.is_ok()
    }

    /// Queues `event` about `object`, waiting for room when the queue is full.
    pub async fn send(&self, event: Event, object: ObjectReference) {
        let queued = QueuedEvent { event, object };
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(queued).await.is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            warn!("the event publisher has stopped; an event was not published");
        }
    }
}

impl EventPublisher {
    /// Takes no more events and publishes those still queued, for at most `grace`.
    pub async fn drain(self, grace: Duration) {
        self.closing.notify_one();
        let abort = self.worker.abort_handle();
        if tokio::time::timeout(grace, self.worker).await.is_err() {
            abort.abort();
            warn!(?grace, "events still queued at shutdown were dropped");
        }
    }
}

/// Publishes one event; a failure says whether the apiserver was overloaded (see
/// [`overloaded`]).
async fn publish(writer: &EventWriter, queued: QueuedEvent) -> Result<(), bool> {
    let name = queued.object.name.clone().unwrap_or_default();
    match writer.publish(&queued.event, &queued.object).await {
        Ok(()) => {
            info!(%name, reason = %queued.event.reason, "published event");
            Ok(())
        }
        Err(error) => {
            warn!(%name, %error, "could not publish event");
            Err(overloaded(&error))
        }
    }
}

/// Whether a failed write says the apiserver has too much to do (throttled, timed out, failed
/// on its side, unreachable), rather than refusing this one write (403, 404, 409, 422).
pub fn overloaded(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::Service(_) | kube::Error::HyperError(_) => true,
        _ => false,
    }
}
