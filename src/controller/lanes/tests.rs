//! The lanes' order and their cancel-safety, on a paused clock.

use std::sync::Mutex;

use super::*;

/// Lanes over names, and every wake they gave, in order.
struct Bench {
    lanes: Arc<Lanes<String>>,
    woken: Arc<Mutex<Vec<String>>>,
}

impl Bench {
    fn new() -> Bench {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let record = woken.clone();
        let lanes = Lanes::new(move |object: String| record.lock().unwrap().push(object));
        Bench { lanes, woken }
    }

    /// The wakes since the last call.
    fn take_woken(&self) -> Vec<String> {
        std::mem::take(&mut *self.woken.lock().unwrap())
    }

    fn refreshes(&self, names: &[&str]) {
        for name in names {
            self.lanes.woken(name.to_string(), Wake::Refresh);
        }
    }
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Runs `future` until it is pending or done; `Some` when done.
async fn now_or_pending<F: Future>(future: F) -> Option<F::Output> {
    tokio::time::timeout(Duration::from_millis(1), future)
        .await
        .ok()
}

#[tokio::test(start_paused = true)]
async fn refreshes_wait_until_every_awaiting_reconcile_has_ended() {
    let bench = Bench::new();
    bench.lanes.woken("wait-1".into(), Wake::Awaiting);
    bench.lanes.woken("wait-2".into(), Wake::Awaiting);
    bench.refreshes(&["list-1", "list-2", "list-3", "list-4", "list-5"]);
    assert_eq!(bench.take_woken(), names(&["wait-1", "wait-2"]));
    let counts = bench.lanes.counts();
    assert_eq!((counts.awaiting, counts.deferred), (2, 5));

    // A background write started some other way gives its turn up.
    let turn = bench.lanes.background_write(&"other".to_string());
    assert!(turn.is_none());

    drop(bench.lanes.reconciling("wait-1".into()));
    assert!(bench.take_woken().is_empty(), "wait-2 is still pending");
    drop(bench.lanes.reconciling("wait-2".into()));
    // Room for the initial limit (4), oldest first.
    assert_eq!(
        bench.take_woken(),
        names(&["list-1", "list-2", "list-3", "list-4"])
    );
    let counts = bench.lanes.counts();
    assert_eq!(
        (counts.awaiting, counts.admitted, counts.deferred),
        (0, 4, 1)
    );

    // An admitted refresh that writes moves from admitted to writing; its end makes room.
    let permit = bench
        .lanes
        .background_write(&"list-1".to_string())
        .expect("room: list-1's admission is its place");
    let guard = bench.lanes.reconciling("list-1".into());
    assert!(bench.take_woken().is_empty());
    permit.finish(false);
    drop(guard);
    assert_eq!(bench.take_woken(), names(&["list-5"]));
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_that_began_before_the_wake_does_not_release_it() {
    let bench = Bench::new();
    let running = bench.lanes.reconciling("wait-1".into());
    tokio::time::advance(Duration::from_millis(10)).await;
    bench.lanes.woken("wait-1".into(), Wake::Awaiting);
    bench.refreshes(&["list-1"]);
    drop(running);
    assert_eq!(bench.lanes.counts().awaiting, 1, "it read an older answer");
    assert_eq!(bench.take_woken(), names(&["wait-1"]));
    // The reconcile the wake brings releases it.
    drop(bench.lanes.reconciling("wait-1".into()));
    assert_eq!(bench.take_woken(), names(&["list-1"]));
}

#[tokio::test(start_paused = true)]
async fn a_background_write_without_room_joins_the_backlog_at_once() {
    let bench = Bench::new();
    let mut permits = Vec::new();
    for n in 0..4 {
        let permit = bench.lanes.background_write(&format!("list-{n}"));
        permits.push(permit.expect("room for the initial limit"));
    }
    // No room: the reconcile does not wait holding its slot, it gives its turn up.
    assert!(bench.lanes.background_write(&"list-9".into()).is_none());
    bench.lanes.defer("list-9".into());
    assert!(bench.take_woken().is_empty());
    // One write ends: the deferred one is woken into the place it left.
    permits.pop().unwrap().finish(false);
    assert_eq!(bench.take_woken(), names(&["list-9"]));
    let turn = bench.lanes.background_write(&"list-9".into());
    assert!(turn.is_some(), "its admission is its place");
    assert_eq!(bench.lanes.counts().writing, 4);
}

/// The stall the first lanes had at 1,000 objects: every reconcile slot held by a write that
/// waited for room, while the room was held by refreshes admitted from the backlog whose
/// reconciles could not start. Nothing ever waits for room now, so whatever the slots hold,
/// the admitted refreshes get theirs and write.
#[tokio::test(start_paused = true)]
async fn admitted_refreshes_are_never_stuck_behind_writes_waiting_for_room() {
    let bench = Bench::new();
    bench.refreshes(&["list-1", "list-2", "list-3", "list-4", "list-5"]);
    assert_eq!(
        bench.take_woken(),
        names(&["list-1", "list-2", "list-3", "list-4"])
    );
    // Sixteen reconciles started by the watch (a cold start) all want to write.
    for n in 0..16 {
        let object = format!("new-{n}");
        assert!(
            now_or_pending(async { bench.lanes.background_write(&object) })
                .await
                .expect("answers at once")
                .is_none(),
            "the admitted refreshes hold the room"
        );
        bench.lanes.defer(object);
    }
    for n in 1..=4 {
        let object = format!("list-{n}");
        let _guard = bench.lanes.reconciling(object.clone());
        let permit = bench.lanes.background_write(&object).expect("its place");
        permit.finish(false);
    }
    // Each write that ended woke the next in line, oldest first.
    assert_eq!(
        bench.take_woken(),
        names(&["list-5", "new-0", "new-1", "new-2"])
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_writes_and_reconciles_release_everything_they_held() {
    let bench = Bench::new();
    bench.lanes.woken("wait-1".into(), Wake::Awaiting);
    bench.refreshes(&["list-1"]);
    // A reconcile of the awaiting object, cancelled mid-way (its object deleted).
    let lanes = bench.lanes.clone();
    let reconcile = tokio::spawn(async move {
        let _guard = lanes.reconciling("wait-1".into());
        let _permit = lanes.awaiting_write();
        std::future::pending::<()>().await;
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    reconcile.abort();
    let _ = reconcile.await;
    assert_eq!(bench.lanes.counts().awaiting, 0);
    bench.take_woken();

    // Background writes cancelled while writing, and while waiting for room.
    let mut held = Vec::new();
    for n in 0..3 {
        let lanes = bench.lanes.clone();
        held.push(tokio::spawn(async move {
            let _permit = lanes.background_write(&format!("list-{n}"));
            std::future::pending::<()>().await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    // list-1 wrote in its admitted place: three writers, room for a fourth, then none.
    let fourth = bench.lanes.background_write(&"list-7".into());
    assert!(fourth.is_some());
    let full = bench.lanes.background_write(&"list-8".into());
    assert!(
        full.is_none(),
        "four writers fill the initial limit: {full:?}"
    );
    drop(fourth);
    for task in held {
        task.abort();
        let _ = task.await;
    }
    let counts = bench.lanes.counts();
    assert_eq!((counts.writing, counts.awaiting), (0, 0), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn events_wait_for_the_verdicts_unless_their_queue_fills_up() {
    let bench = Bench::new();
    bench.lanes.woken("wait-1".into(), Wake::Awaiting);
    let lanes = bench.lanes.clone();
    let event = tokio::spawn(async move { lanes.event_write(|| false).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!event.is_finished(), "the verdict is not written yet");
    drop(bench.lanes.reconciling("wait-1".into()));
    let permit = event.await.unwrap();
    assert_eq!(bench.lanes.counts().writing, 1);
    drop(permit);

    // A queue that fills up cannot wait: the reconciles feeding it would stall.
    bench.lanes.woken("wait-2".into(), Wake::Awaiting);
    let permit = bench.lanes.event_write(|| true).await;
    assert_eq!(bench.lanes.counts().writing, 1);
    drop(permit);
    assert_eq!(bench.lanes.counts().writing, 0);
}

#[tokio::test(start_paused = true)]
async fn forgotten_and_expired_entries_stop_holding_the_lane_back() {
    let bench = Bench::new();
    bench.lanes.woken("deleted".into(), Wake::Awaiting);
    bench.refreshes(&["list-1", "gone"]);
    bench.lanes.forget(&"gone".to_string());
    bench.lanes.forget(&"deleted".to_string());
    assert_eq!(
        bench.take_woken(),
        names(&["deleted", "list-1"]),
        "a forgotten refresh is not woken"
    );

    // An awaiting object whose reconcile never comes: held back until it expires.
    bench.lanes.woken("lost".into(), Wake::Awaiting);
    bench.refreshes(&["list-2"]);
    tokio::time::advance(AWAITING_EXPIRY - Duration::from_secs(1)).await;
    bench.lanes.dispatch();
    assert_eq!(bench.take_woken(), names(&["lost"]));
    tokio::time::advance(Duration::from_secs(2)).await;
    bench.lanes.dispatch();
    assert_eq!(bench.take_woken(), names(&["list-2"]));

    // Admissions whose reconcile never came give their place back: list-1's (five minutes
    // old) already has; list-2's does after ADMITTED_EXPIRY.
    bench.refreshes(&["a", "b", "c", "d", "e"]);
    assert_eq!(bench.take_woken(), names(&["a", "b", "c"]));
    tokio::time::advance(ADMITTED_EXPIRY - EXPIRY_SWEEP).await;
    bench.lanes.dispatch();
    assert!(bench.take_woken().is_empty(), "not expired yet");
    tokio::time::advance(EXPIRY_SWEEP * 2).await;
    bench.lanes.dispatch();
    assert_eq!(bench.take_woken(), names(&["d", "e"]));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_deferred_twice_waits_once() {
    let bench = Bench::new();
    bench.lanes.woken("wait-1".into(), Wake::Awaiting);
    bench.refreshes(&["list-1", "list-1"]);
    bench.lanes.defer("list-1".into());
    assert_eq!(bench.lanes.counts().deferred, 1);
    drop(bench.lanes.reconciling("wait-1".into()));
    assert_eq!(bench.take_woken(), names(&["wait-1", "list-1"]));
}
