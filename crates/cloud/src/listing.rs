//! What a `ListCenterTask` listing is asked for and what it holds, as plain data: a page request
//! with the API's own parameters, how far to page, and the tasks gathered. The client
//! ([`DcsClient::list_tasks`](crate::DcsClient::list_tasks)) fills a [`TaskListing`]; the layers
//! above read one without knowing of HTTP.

use chrono::{DateTime, Utc};

use super::model::CenterTask;
use super::time::QueryTime;

/// One page request: the API's own parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub offset: u32,
    /// `None` leaves the API's default (10).
    pub limit: Option<u32>,
    pub start_time: Option<QueryTime>,
    pub end_time: Option<QueryTime>,
}

impl PageRequest {
    /// The query string pairs of this page, as the client sends (and signs) them.
    pub(crate) fn query_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![("offset".to_string(), self.offset.to_string())];
        if let Some(limit) = self.limit {
            pairs.push(("limit".into(), limit.to_string()));
        }
        if let Some(start) = &self.start_time {
            pairs.push(("start_time".into(), start.to_param()));
        }
        if let Some(end) = &self.end_time {
            pairs.push(("end_time".into(), end.to_param()));
        }
        pairs
    }
}

/// One page, or the whole window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Paging {
    /// Exactly the page asked for (the API's own semantics).
    Single,
    /// Follow `task_count` from the first page on, at most `max_pages` calls.
    All { max_pages: u32 },
}

/// The tasks of one query, possibly gathered from several pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskListing {
    /// The API's `task_count` from the last page read.
    pub task_count: Option<u64>,
    pub tasks: Vec<CenterTask>,
    /// Upstream calls that succeeded (retries not counted).
    pub pages: u32,
    /// `false` when paging stopped before `task_count` was reached: at `max_pages`, or at
    /// [`MAX_LISTING_TASKS`](crate::MAX_LISTING_TASKS) or
    /// [`MAX_LISTING_BYTES`](crate::MAX_LISTING_BYTES).
    pub complete: bool,
    /// When the last page arrived: how fresh the data is, however long a cache then keeps it.
    pub fetched_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_request_parameters() {
        let page = PageRequest {
            offset: 2000,
            limit: Some(1000),
            start_time: Some(QueryTime::parse("20260101000000").unwrap()),
            end_time: None,
        };
        assert_eq!(
            page.query_pairs(),
            vec![
                ("offset".to_string(), "2000".to_string()),
                ("limit".to_string(), "1000".to_string()),
                ("start_time".to_string(), "20260101000000".to_string()),
            ]
        );
    }
}
