//! Test data the query modules' tests share.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::dcs::{CenterTask, TaskListing};

/// A one-page listing of one switchover task (`t1`, job `job-1`) in `status`, fetched at
/// `fetched_at`.
pub fn switchover_listing(status: &str, fetched_at: DateTime<Utc>) -> Arc<TaskListing> {
    Arc::new(TaskListing {
        task_count: Some(1),
        tasks: vec![CenterTask {
            id: Some("t1".into()),
            name: Some("masterStandbySwapJob".into()),
            job_id: Some("job-1".into()),
            status: Some(status.into()),
            ..CenterTask::default()
        }],
        pages: 1,
        complete: true,
        fetched_at: Some(fetched_at),
    })
}
