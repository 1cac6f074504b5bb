//! Polling the DCS task center on behalf of many subscribers, with no Kubernetes in sight: the
//! controller's objects and the CLI's `query --watch` both read task listings through here.
//!
//! - [`feed`]: one upstream feed per distinct question ([`FeedKey`]), polling at the shortest
//!   interval its subscribers need and waking exactly the subscribers a change concerns.
//! - [`fetcher`]: what every listing goes through: request budgets, the auth cool-down per access
//!   key, per-endpoint slots and listing deadlines.
//! - [`budget`]: the global and per-account request rate limits.

pub mod budget;
pub mod feed;
pub mod fetcher;

pub use feed::{
    Answer, FeedKey, FeedObserver, FeedSet, FeedTarget, Feeds, Interest, Question, Wake,
};
pub use fetcher::{
    FetchLimits, FetchResult, FetchSource, InFlight, RequestKey, SharedFetcher, UpstreamCall,
};
