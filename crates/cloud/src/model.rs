//! The `ListCenterTask` and `ShowJobInfo` wire models, decoded leniently.
//!
//! The SDKs type `task_count`, `old_capacity` and `new_capacity` as strings while the published
//! examples send numbers, and DCS tells clients to tolerate extra fields. So every field here
//! is optional, accepts either JSON type where the documents disagree, ignores unknown fields,
//! and a field with an unexpected shape becomes "absent" instead of failing the whole page.
//!
//! Decoding streams straight from the body bytes into these types: no field is first turned into
//! a `serde_json::Value` tree, so a hostile page costs about its own size in memory plus at most
//! [`MAX_TASKS_PER_PAGE`] task records (lists inside a task keep at most [`MAX_LIST_ITEMS`]). Every
//! text field is cut while it is decoded ([`MAX_DECODED_PARAMS_BYTES`] for `params`,
//! [`MAX_DECODED_TIME_BYTES`] for times, [`MAX_DECODED_TEXT_BYTES`] for the rest): only the kept
//! prefix is ever copied out of the body, so what a task retains is bounded by these caps whatever
//! the page held. A misshapen field is read past (serde's `IgnoredAny`, which keeps no data) and becomes `None`;
//! only text that is not JSON at all, or a page that is not a JSON object, fails to decode.
//! Repeated keys behave as in a JSON object: the last one wins.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{MAX_ERROR_CODE_BYTES, MAX_ERROR_MSG_BYTES};
use super::time::TaskTime;
use dcs_common::text::truncate_bytes;

/// Declares the `Deserialize` of a struct whose fields are all read by lenient readers: each
/// `field: Reader` pair names the JSON key (the field's own name) and the reader whose `.0`
/// becomes the field. Unknown keys are skipped; the struct's `Default` fills missing ones.
macro_rules! lenient_object {
    ($ty:ident { $($field:ident : $reader:ty),* $(,)? }) => {
        impl LenientObject for $ty {
            fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut out = Self::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        $(stringify!($field) => out.$field = map.next_value::<$reader>()?.0,)*
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_map(ObjectVisitor::<$ty>(PhantomData))
            }
        }
    };
}

/// The most tasks one page may hold. The API's page-size ceiling is 1000; a page far above it is
/// refused as a decode error, so that a body of blank `{}` entries cannot turn each 3 bytes on the
/// wire into a whole task in memory.
pub const MAX_TASKS_PER_PAGE: usize = 10_000;

/// The most elements kept from a list field (`details.rename_commands`); the rest are read past.
/// DCS lets nine commands be renamed (`command`, `keys`, `flushdb`, `flushall`, `hgetall`,
/// `scan`, `hscan`, `sscan`, `zscan`), so 16 loses nothing real, while each element kept costs a
/// `String` (24 bytes plus its allocation) even when the wire spent 2 bytes on it.
pub const MAX_LIST_ITEMS: usize = 16;

/// The longest `params` kept per task, in bytes, cut on a character boundary and marked while
/// decoding. `params` is a JSON document in a string, and `filter.paramsContains` (up to 16
/// substrings of up to 256 characters) must match anywhere in it, so it gets far more room than
/// a name: the request documents DCS records are a few hundred bytes to a few KiB, so 64 KiB
/// keeps every realistic one whole and matching exact; only a substring lying beyond 64 KiB of a
/// hostile `params` is not found.
pub const MAX_DECODED_PARAMS_BYTES: usize = 64 * 1024;

/// The longest other text field kept per task (ids, names, user names, statuses, error codes,
/// `details` text and each `rename_commands` element), in bytes. Real values are at most a few
/// dozen bytes. Every spec value compared exactly with one of these (`filter.userNames` and the
/// like, at most 256 characters, so at most 1 KiB of UTF-8) fits whole, so a cut value (longer
/// than 1 KiB, and ending in the truncation mark) can equal no realistic spec value; the status
/// shows at most 256 bytes of it anyway.
pub const MAX_DECODED_TEXT_BYTES: usize = 1024;

/// The longest `created_at`/`updated_at` text kept, in bytes. An RFC 3339 time with nanoseconds
/// and an offset is 35 bytes; longer text is no time, and is kept (cut) only to be shown.
pub const MAX_DECODED_TIME_BYTES: usize = 64;

/// Decodes one `ListCenterTask` page from the raw response body.
///
/// This is the client's only decoder for task pages (the fuzz target `decode_tasks` drives it
/// too). It never panics, whatever the bytes; it fails only when the body is not JSON or not a
/// JSON object.
pub fn decode_task_page(body: &[u8]) -> Result<ListCenterTaskResponse, serde_json::Error> {
    serde_json::from_slice(body)
}

/// One page of `GET /v2/{project_id}/tasks`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListCenterTaskResponse {
    /// Total tasks in the window (not the page size). String or number on the wire.
    pub task_count: Option<u64>,
    /// `null`, a missing field or a non-array all read as no tasks; an array element that is not
    /// an object still counts as a (blank) task, so the page length stays what the API sent.
    pub tasks: Vec<CenterTask>,
}

lenient_object!(ListCenterTaskResponse {
    task_count: Lenient<u64>,
    tasks: Items<CenterTask>,
});

/// A task-center task (`ListCenterTasksResp`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CenterTask {
    pub id: Option<String>,
    pub name: Option<String>,
    pub details: Option<TaskDetails>,
    pub user_name: Option<String>,
    pub user_id: Option<String>,
    /// JSON in a string.
    pub params: Option<String>,
    pub status: Option<String>,
    pub created_at: Option<TaskTime>,
    pub updated_at: Option<TaskTime>,
    pub error_code: Option<String>,
    pub enable_show: Option<bool>,
    pub job_id: Option<String>,
}

lenient_object!(CenterTask {
    id: Text,
    name: Text,
    details: Nested<TaskDetails>,
    user_name: Text,
    user_id: Text,
    params: Text<MAX_DECODED_PARAMS_BYTES>,
    status: Text,
    created_at: Lenient<TaskTime>,
    updated_at: Lenient<TaskTime>,
    error_code: Text,
    enable_show: Lenient<bool>,
    job_id: Text,
});

/// `DetailsBody`: what changed, for the task kinds that report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDetails {
    pub old_capacity: Option<String>,
    pub new_capacity: Option<String>,
    pub enable_public_ip: Option<bool>,
    pub public_ip_id: Option<String>,
    pub public_ip_address: Option<String>,
    pub enable_ssl: Option<bool>,
    pub old_cache_mode: Option<String>,
    pub new_cache_mode: Option<String>,
    pub old_resource_spec_code: Option<String>,
    pub new_resource_spec_code: Option<String>,
    pub old_replica_num: Option<i64>,
    pub new_replica_num: Option<i64>,
    pub old_cache_type: Option<String>,
    pub new_cache_type: Option<String>,
    pub replica_ip: Option<String>,
    pub replica_az: Option<String>,
    pub group_name: Option<String>,
    pub old_port: Option<i64>,
    pub new_port: Option<i64>,
    pub is_only_adjust_charging: Option<bool>,
    pub account_name: Option<String>,
    pub source_ip: Option<String>,
    pub target_ip: Option<String>,
    pub node_name: Option<String>,
    pub rename_commands: Vec<String>,
    pub updated_config_length: Option<i64>,
}

lenient_object!(TaskDetails {
    old_capacity: Text,
    new_capacity: Text,
    enable_public_ip: Lenient<bool>,
    public_ip_id: Text,
    public_ip_address: Text,
    enable_ssl: Lenient<bool>,
    old_cache_mode: Text,
    new_cache_mode: Text,
    old_resource_spec_code: Text,
    new_resource_spec_code: Text,
    old_replica_num: Lenient<i64>,
    new_replica_num: Lenient<i64>,
    old_cache_type: Text,
    new_cache_type: Text,
    replica_ip: Text,
    replica_az: Text,
    group_name: Text,
    old_port: Lenient<i64>,
    new_port: Lenient<i64>,
    is_only_adjust_charging: Lenient<bool>,
    account_name: Text,
    source_ip: Text,
    target_ip: Text,
    node_name: Text,
    rename_commands: TextList,
    updated_config_length: Lenient<i64>,
});

/// The answer of `GET /v2/{project_id}/jobs/{job_id}` (`ShowJobInfo`), field for field as sent.
///
/// Every field is capped text read by the same lenient readers as task fields (a number reads as
/// its JSON text, so ms-epoch times sent as numbers or strings arrive alike); typing happens in
/// [`super::job::JobInfo`], so that the wire and its meaning stay apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShowJobInfoResponse {
    pub job_id: Option<String>,
    pub job_type: Option<String>,
    pub status: Option<String>,
    /// Milliseconds since the epoch, as text.
    pub begin_time: Option<String>,
    pub end_time: Option<String>,
    pub fail_reason: Option<String>,
}

lenient_object!(ShowJobInfoResponse {
    job_id: Text,
    job_type: Text,
    status: Text,
    begin_time: Text<MAX_DECODED_TIME_BYTES>,
    end_time: Text<MAX_DECODED_TIME_BYTES>,
    fail_reason: Text,
});

/// Decodes one `ShowJobInfo` answer from the raw response body. Like [`decode_task_page`], it
/// never panics and fails only when the body is not a JSON object.
pub fn decode_job_info(body: &[u8]) -> Result<ShowJobInfoResponse, serde_json::Error> {
    serde_json::from_slice(body)
}

/// A DCS or APIG error body: `{error_code, error_msg}` or the older `{code, message}`.
///
/// Both fields are cut to [`MAX_ERROR_CODE_BYTES`] and [`MAX_ERROR_MSG_BYTES`] while decoding (by
/// the same reader as task fields), so an upstream that sends a 2 MiB `error_msg` costs a bounded string in every error, status
/// message and log line that carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorBody {
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

impl ErrorBody {
    /// Finds the error fields at the top level or one object down (some gateways nest them).
    pub fn from_json(body: &[u8]) -> Option<Self> {
        let scan: ErrorScan = serde_json::from_slice(body).ok()?;
        if scan.top.has_fields() {
            Some(scan.top)
        } else {
            scan.nested
        }
    }

    fn has_fields(&self) -> bool {
        self.error_code.is_some() || self.error_msg.is_some()
    }

    /// Reads the fields of one object level. With `descend`, the first object value that holds
    /// error fields is returned as well (read without descending further).
    fn read_level<'de, A: MapAccess<'de>>(
        mut map: A,
        descend: bool,
    ) -> Result<(Self, Option<Self>), A::Error> {
        let mut body = ErrorBody::default();
        let mut nested = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_str() {
                "error_code" | "code" => {
                    body.error_code = map.next_value::<Text<MAX_ERROR_CODE_BYTES>>()?.0;
                }
                "error_msg" | "message" => {
                    body.error_msg = map.next_value::<Text<MAX_ERROR_MSG_BYTES>>()?.0;
                }
                _ if descend && nested.is_none() => {
                    nested = map
                        .next_value::<Nested<NestedErrorBody>>()?
                        .0
                        .map(|found| found.0)
                        .filter(ErrorBody::has_fields);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((body, nested))
    }
}

/// The top level of an error body and the first nested object that held error fields.
#[derive(Default)]
struct ErrorScan {
    top: ErrorBody,
    nested: Option<ErrorBody>,
}

impl LenientObject for ErrorScan {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let (top, nested) = ErrorBody::read_level(map, true)?;
        Ok(ErrorScan { top, nested })
    }
}

impl<'de> Deserialize<'de> for ErrorScan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor::<ErrorScan>(PhantomData))
    }
}

/// An object one level down in an error body; its own nested objects are not searched.
#[derive(Default)]
struct NestedErrorBody(ErrorBody);

impl LenientObject for NestedErrorBody {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(NestedErrorBody(ErrorBody::read_level(map, false)?.0))
    }
}

// ---------------------------------------------------------------------------------------------
// The lenient readers. Each is a newtype whose `.0` is the field's value; none keeps any data of
// a value it does not accept.

/// A type that can be built from the fields of a JSON object, ignoring what it does not know.
trait LenientObject: Sized + Default {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Accepts only a JSON object, read through [`LenientObject::from_map`].
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: LenientObject> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// An object key, borrowed from the body when it holds no escapes.
struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// How one scalar field type accepts each JSON scalar; anything it does not accept is `None`.
trait Scalar: Sized {
    fn from_text(text: &str) -> Option<Self>;
    fn from_owned(text: String) -> Option<Self> {
        Self::from_text(&text)
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

/// A whole number, or text holding one. Fractions and out-of-range values are `None`.
impl Scalar for i64 {
    fn from_text(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n)
    }
    fn from_u64(n: u64) -> Option<Self> {
        i64::try_from(n).ok()
    }
}

/// A non-negative whole number, or text holding one.
impl Scalar for u64 {
    fn from_text(text: &str) -> Option<Self> {
        let text = text.trim();
        text.parse()
            .ok()
            .or_else(|| text.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok()))
    }
    fn from_i64(n: i64) -> Option<Self> {
        u64::try_from(n).ok()
    }
    fn from_u64(n: u64) -> Option<Self> {
        Some(n)
    }
}

/// `true`/`false`, or that text.
impl Scalar for bool {
    fn from_text(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
    fn from_bool(flag: bool) -> Option<Self> {
        Some(flag)
    }
}

/// Any scalar as capped text (as for [`Capped`], at most [`MAX_DECODED_TIME_BYTES`]), parsed as a
/// timestamp when it is one.
impl Scalar for TaskTime {
    fn from_text(text: &str) -> Option<Self> {
        time(Capped::from_text(text))
    }
    fn from_owned(text: String) -> Option<Self> {
        time(Capped::from_owned(text))
    }
    fn from_i64(n: i64) -> Option<Self> {
        time(Capped::from_i64(n))
    }
    fn from_u64(n: u64) -> Option<Self> {
        time(Capped::from_u64(n))
    }
    fn from_f64(n: f64) -> Option<Self> {
        time(Capped::from_f64(n))
    }
    fn from_bool(flag: bool) -> Option<Self> {
        time(Capped::from_bool(flag))
    }
}

fn time(raw: Option<Capped<MAX_DECODED_TIME_BYTES>>) -> Option<TaskTime> {
    raw.map(|Capped(raw)| TaskTime::new(raw))
}

/// Text, or the JSON text of a number or a boolean (`0.125` reads as `"0.125"`), cut to at most
/// `MAX` bytes (on a character boundary, marked). This is the only way text leaves a body: a
/// string borrowed from the body (no escapes) is copied only as far as the cut, so a 5 MiB
/// `params` never becomes a 5 MiB `String`.
struct Capped<const MAX: usize>(String);

impl<const MAX: usize> Scalar for Capped<MAX> {
    fn from_text(text: &str) -> Option<Self> {
        let mut kept = truncate_bytes(text, MAX).into_owned();
        // A cut text is built by `format!`, which may reserve up to twice what it keeps.
        kept.shrink_to_fit();
        Some(Capped(kept))
    }
    fn from_owned(text: String) -> Option<Self> {
        if text.len() <= MAX {
            Some(Capped(text))
        } else {
            Self::from_text(&text)
        }
    }
    fn from_i64(n: i64) -> Option<Self> {
        Self::from_owned(n.to_string())
    }
    fn from_u64(n: u64) -> Option<Self> {
        Self::from_owned(n.to_string())
    }
    fn from_f64(n: f64) -> Option<Self> {
        // serde_json's own rendering, so `1.0` stays `1.0` (Rust's `Display` would say `1`).
        serde_json::Number::from_f64(n).and_then(|number| Self::from_owned(number.to_string()))
    }
    fn from_bool(flag: bool) -> Option<Self> {
        Self::from_owned(flag.to_string())
    }
}

/// Reads and drops the rest of a sequence.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Reads and drops the rest of an object.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// What a field reader makes of each kind of JSON value. Every kind defaults to
/// [`Reader::absent`], with arrays and objects read past (keeping nothing) first.
trait Reader: Sized {
    /// The value for `null`, and for any JSON value this reader does not accept.
    fn absent() -> Self;
    fn from_bool(_: bool) -> Self {
        Self::absent()
    }
    fn from_i64(_: i64) -> Self {
        Self::absent()
    }
    fn from_u64(_: u64) -> Self {
        Self::absent()
    }
    fn from_f64(_: f64) -> Self {
        Self::absent()
    }
    fn from_text(_: &str) -> Self {
        Self::absent()
    }
    fn from_owned(text: String) -> Self {
        Self::from_text(&text)
    }
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        skip_seq(seq)?;
        Ok(Self::absent())
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        skip_map(map)?;
        Ok(Self::absent())
    }
}

/// Drives a [`Reader`] from any JSON value (`deserialize_any`).
struct ReaderVisitor<R>(PhantomData<R>);

impl<'de, R: Reader> Visitor<'de> for ReaderVisitor<R> {
    type Value = R;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<R, E> {
        Ok(R::from_bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<R, E> {
        Ok(R::from_i64(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<R, E> {
        Ok(R::from_u64(v))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<R, E> {
        Ok(match (i64::try_from(v), u64::try_from(v)) {
            (Ok(n), _) => R::from_i64(n),
            (_, Ok(n)) => R::from_u64(n),
            _ => R::absent(),
        })
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<R, E> {
        Ok(u64::try_from(v).map_or_else(|_| R::absent(), R::from_u64))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<R, E> {
        Ok(R::from_f64(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<R, E> {
        Ok(R::from_text(v))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<R, E> {
        Ok(R::from_owned(v))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<R, E> {
        Ok(std::str::from_utf8(v).map_or_else(|_| R::absent(), R::from_text))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<R, E> {
        Ok(R::absent())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<R, E> {
        Ok(R::absent())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<R, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R, A::Error> {
        R::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
        R::from_map(map)
    }
}

/// Implements `Deserialize` for reader newtypes through [`ReaderVisitor`].
macro_rules! deserialize_through_reader {
    ($($reader:ident<$t:ident: $bound:path>),* $(,)?) => {$(
        impl<'de, $t: $bound> Deserialize<'de> for $reader<$t> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(ReaderVisitor::<Self>(PhantomData))
            }
        }
    )*};
}

deserialize_through_reader!(
    Lenient<T: Scalar>,
    LenientList<T: Scalar>,
    Nested<T: LenientObject>,
    Items<T: LenientObject>,
    Item<T: LenientObject>,
);

/// A scalar field: `Some` for the JSON scalars `T` accepts, `None` for `null`, arrays, objects
/// and scalars of the wrong kind.
struct Lenient<T>(Option<T>);

impl<T: Scalar> Reader for Lenient<T> {
    fn absent() -> Self {
        Lenient(None)
    }
    fn from_bool(flag: bool) -> Self {
        Lenient(T::from_bool(flag))
    }
    fn from_i64(n: i64) -> Self {
        Lenient(T::from_i64(n))
    }
    fn from_u64(n: u64) -> Self {
        Lenient(T::from_u64(n))
    }
    fn from_f64(n: f64) -> Self {
        Lenient(T::from_f64(n))
    }
    fn from_text(text: &str) -> Self {
        Lenient(T::from_text(text))
    }
    fn from_owned(text: String) -> Self {
        Lenient(T::from_owned(text))
    }
}

/// A list of scalars: the accepted elements of an array, at most [`MAX_LIST_ITEMS`] of them;
/// anything but an array is an empty list.
struct LenientList<T>(Vec<T>);

impl<T: Scalar> Reader for LenientList<T> {
    fn absent() -> Self {
        LenientList(Vec::new())
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while items.len() < MAX_LIST_ITEMS {
            match seq.next_element::<Lenient<T>>()? {
                Some(Lenient(Some(item))) => items.push(item),
                Some(Lenient(None)) => {}
                None => return Ok(LenientList(items)),
            }
        }
        skip_seq(seq)?;
        Ok(LenientList(items))
    }
}

/// A text field: [`Lenient`] over [`Capped`] text, so `Some` for any JSON scalar (as text) and at
/// most `MAX` bytes. Every free-text field of the model, and of error bodies, reads through this.
struct Text<const MAX: usize = MAX_DECODED_TEXT_BYTES>(Option<String>);

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Lenient(text) = Lenient::<Capped<MAX>>::deserialize(deserializer)?;
        Ok(Text(text.map(|Capped(text)| text)))
    }
}

/// A list of text: [`LenientList`] over [`Capped`] text, each element at most `MAX` bytes.
struct TextList<const MAX: usize = MAX_DECODED_TEXT_BYTES>(Vec<String>);

impl<'de, const MAX: usize> Deserialize<'de> for TextList<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let LenientList(items) = LenientList::<Capped<MAX>>::deserialize(deserializer)?;
        Ok(TextList(
            items.into_iter().map(|Capped(item)| item).collect(),
        ))
    }
}

/// An object-valued field: `None` unless the value is an object.
struct Nested<T>(Option<T>);

impl<T: LenientObject> Reader for Nested<T> {
    fn absent() -> Self {
        Nested(None)
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(Nested(Some(T::from_map(map)?)))
    }
}

/// An array of objects: each element becomes one `T` (a non-object element a blank one), at most
/// [`MAX_TASKS_PER_PAGE`]; anything but an array is an empty list.
struct Items<T>(Vec<T>);

impl<T: LenientObject> Reader for Items<T> {
    fn absent() -> Self {
        Items(Vec::new())
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(Item(item)) = seq.next_element::<Item<T>>()? {
            if items.len() >= MAX_TASKS_PER_PAGE {
                return Err(A::Error::custom(format_args!(
                    "the page holds more than {MAX_TASKS_PER_PAGE} tasks, far above the API's \
                     page-size ceiling of 1000"
                )));
            }
            items.push(item);
        }
        Ok(Items(items))
    }
}

/// One array element: an object read as `T`, anything else a blank `T`.
struct Item<T>(T);

impl<T: LenientObject> Reader for Item<T> {
    fn absent() -> Self {
        Item(T::default())
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(Item(T::from_map(map)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// The documentation's own example: `task_count` and capacities as numbers, `details: null`,
    /// a name (`dcsExportJob`) the docs do not list.
    #[test]
    fn decodes_the_documented_example() {
        let body = r#"{ "task_count" : 2, "tasks" : [ { "id" : "8abf6e1e72c12e7c0172c15b508500aa", "name" : "ChangeInstanceSpec", "job_id" : "8abf6e1e87bce0740187bd32748b0530", "user_name" : "paas_dcs_a00421997_02", "user_id" : "d53977d1adfb49c5b025ba7d33a13fd7", "details" : { "old_cache_mode" : "single", "new_cache_mode" : "single", "old_capacity" : 0.125, "new_capacity" : 0.25 }, "status" : "SUCCESS", "created_at" : "2023-06-17T08:18:06.597Z", "updated_at" : "2023-06-17T08:18:10.106Z", "error_code" : "111400063", "enable_show" : true }, { "id" : "ff80808188bfde180188c36bb9ca4a30", "name" : "dcsExportJob", "job_id" : "ff80808188bfde180188c36bb9c44a2f", "user_name" : "paas_dcs_004_01", "user_id" : "bb259bd2b8b644a1b4a573a20318af51", "details" : null, "status" : "SUCCESS", "created_at" : "2023-06-17T08:18:06.597Z", "updated_at" : "2023-06-17T08:18:10.106Z", "error_code" : "111400063", "enable_show" : true } ] }"#;
        let page = decode_task_page(body.as_bytes()).unwrap();
        assert_eq!(page.task_count, Some(2));
        assert_eq!(page.tasks.len(), 2);
        let details = page.tasks[0].details.as_ref().unwrap();
        assert_eq!(details.old_capacity.as_deref(), Some("0.125"));
        assert_eq!(details.new_capacity.as_deref(), Some("0.25"));
        assert_eq!(page.tasks[1].details, None);
        assert_eq!(page.tasks[1].name.as_deref(), Some("dcsExportJob"));
        assert!(page.tasks[0].created_at.as_ref().unwrap().parsed.is_some());
    }

    #[test]
    fn accepts_strings_where_the_sdks_say_string() {
        let body = r#"{"task_count":"2500","tasks":[{"id":"a","details":{"old_capacity":"0.125","old_port":"6379","enable_ssl":"true"}}]}"#;
        let page: ListCenterTaskResponse = serde_json::from_str(body).unwrap();
        assert_eq!(page.task_count, Some(2500));
        let details = page.tasks[0].details.as_ref().unwrap();
        assert_eq!(details.old_capacity.as_deref(), Some("0.125"));
        assert_eq!(details.old_port, Some(6379));
        assert_eq!(details.enable_ssl, Some(true));
    }

    #[test]
    fn tolerates_missing_unknown_and_misshapen_fields() {
        let body = r#"{"extra":{"x":1},"tasks":[{"id":"a","status":["odd"],"created_at":"not a time","new_field":true,"details":"text"},{}]}"#;
        let page: ListCenterTaskResponse = serde_json::from_str(body).unwrap();
        assert_eq!(page.task_count, None);
        assert_eq!(page.tasks.len(), 2);
        assert_eq!(page.tasks[0].status, None);
        let created = page.tasks[0].created_at.as_ref().unwrap();
        assert_eq!((created.raw.as_str(), created.parsed), ("not a time", None));
        assert_eq!(page.tasks[0].details, None);
        assert_eq!(page.tasks[1], CenterTask::default());

        let empty: ListCenterTaskResponse =
            serde_json::from_str(r#"{"task_count":null,"tasks":null}"#).unwrap();
        assert_eq!(empty, ListCenterTaskResponse::default());
    }

    #[test]
    fn error_bodies_in_both_shapes() {
        let current =
            ErrorBody::from_json(br#"{"error_code":"APIG.0308","error_msg":"throttled"}"#).unwrap();
        assert_eq!(current.error_code.as_deref(), Some("APIG.0308"));
        let older = ErrorBody::from_json(
            br#"{"code":"111400086","message":"only master standby","ext_message":null}"#,
        )
        .unwrap();
        assert_eq!(older.error_code.as_deref(), Some("111400086"));
        assert_eq!(older.error_msg.as_deref(), Some("only master standby"));
        let nested =
            ErrorBody::from_json(br#"{"error":{"code":"APIG.0301","message":"bad"}}"#).unwrap();
        assert_eq!(nested.error_code.as_deref(), Some("APIG.0301"));
        assert_eq!(ErrorBody::from_json(b"<html>502</html>"), None);
    }

    /// A misshapen field nested far deeper than serde_json's recursion limit (128) is read past
    /// without building anything. Decoding through a `serde_json::Value` per field, as this
    /// module once did, fails the whole page here ("recursion limit exceeded").
    #[test]
    fn a_deeply_nested_misshapen_field_is_read_past() {
        let depth = 5_000;
        let body = format!(
            r#"{{"task_count":1,"tasks":[{{"id":"a","status":{open}{close},"details":{{"old_port":{open}{close},"new_port":6379}}}}]}}"#,
            open = "[".repeat(depth),
            close = "]".repeat(depth)
        );
        let page = decode_task_page(body.as_bytes()).unwrap();
        assert_eq!(page.tasks.len(), 1);
        assert_eq!(page.tasks[0].id.as_deref(), Some("a"));
        assert_eq!(page.tasks[0].status, None);
        let details = page.tasks[0].details.as_ref().unwrap();
        assert_eq!((details.old_port, details.new_port), (None, Some(6379)));
    }

    #[test]
    fn repeated_keys_keep_the_last_value_without_failing_the_page() {
        let body = br#"{"task_count":1,"task_count":"3","tasks":[{"id":"a","id":"b","details":{"old_port":1,"old_port":2}}]}"#;
        let page = decode_task_page(body).unwrap();
        assert_eq!(page.task_count, Some(3));
        assert_eq!(page.tasks[0].id.as_deref(), Some("b"));
        assert_eq!(page.tasks[0].details.as_ref().unwrap().old_port, Some(2));
    }

    #[test]
    fn numbers_keep_their_json_spelling_as_text() {
        let body = br#"{"tasks":[{"id":7,"status":true,"details":{"old_capacity":1.0,"new_capacity":-2,"rename_commands":["a",1,{"x":1},null,false]}}]}"#;
        let page = decode_task_page(body).unwrap();
        assert_eq!(page.tasks[0].id.as_deref(), Some("7"));
        assert_eq!(page.tasks[0].status.as_deref(), Some("true"));
        let details = page.tasks[0].details.as_ref().unwrap();
        assert_eq!(details.old_capacity.as_deref(), Some("1.0"));
        assert_eq!(details.new_capacity.as_deref(), Some("-2"));
        assert_eq!(details.rename_commands, vec!["a", "1", "false"]);
    }

    #[test]
    fn only_json_objects_are_pages() {
        assert!(decode_task_page(b"").is_err());
        assert!(decode_task_page(b"<html>502</html>").is_err());
        assert!(decode_task_page(b"[2, []]").is_err());
        assert!(decode_task_page(br#"{"tasks":[]} trailing"#).is_err());
        assert!(decode_task_page(br#"{"tasks":[{"id":"a"}"#).is_err());
        assert_eq!(
            decode_task_page(b" {} ").unwrap(),
            ListCenterTaskResponse::default()
        );
        // Non-object entries are kept as blank tasks, so the page length is what was sent.
        let page = decode_task_page(br#"{"tasks":[1,"x",null,[],{}]}"#).unwrap();
        assert_eq!(page.tasks, vec![CenterTask::default(); 5]);
    }

    #[test]
    fn pages_and_lists_are_bounded() {
        let at_limit = format!(
            r#"{{"tasks":[{}{{}}]}}"#,
            "{},".repeat(MAX_TASKS_PER_PAGE - 1)
        );
        assert_eq!(
            decode_task_page(at_limit.as_bytes()).unwrap().tasks.len(),
            MAX_TASKS_PER_PAGE
        );
        let over = format!(r#"{{"tasks":[{}{{}}]}}"#, "{},".repeat(MAX_TASKS_PER_PAGE));
        let error = decode_task_page(over.as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("more than 10000 tasks"),
            "{error}"
        );

        let commands = format!(
            r#"{{"tasks":[{{"details":{{"rename_commands":[{}"last"]}}}}]}}"#,
            r#""c","#.repeat(MAX_LIST_ITEMS * 4)
        );
        let page = decode_task_page(commands.as_bytes()).unwrap();
        let kept = &page.tasks[0].details.as_ref().unwrap().rename_commands;
        assert_eq!(kept.len(), MAX_LIST_ITEMS);
    }

    /// Every text field of a task is cut while decoding, whether the body's string is borrowed
    /// (plain or CJK) or unescaped (`\n`): a 5 MiB `params` keeps 64 KiB, and no kept string
    /// holds more than its cap (its capacity included, so nothing of the rest stays allocated).
    /// A value of exactly its cap is kept whole; one byte more is cut and marked.
    #[test]
    fn task_text_fields_are_capped_while_decoding() {
        use dcs_common::text::TRUNCATION_MARK;
        for filler in ["x", "任", "\\n"] {
            let huge = |bytes: usize| filler.repeat(bytes / filler.len().min(2));
            let params = huge(5 * 1024 * 1024);
            let text = huge(10 * 1024);
            let body = format!(
                r#"{{"tasks":[{{"id":"{text}","name":"{text}","user_name":"{text}","user_id":"{text}","params":"{params}","status":"{text}","error_code":"{text}","job_id":"{text}","created_at":"{text}","updated_at":"{text}","details":{{"old_capacity":"{text}","node_name":"{text}","account_name":"{text}","rename_commands":["{text}","{text}"]}}}}]}}"#
            );
            let page = decode_task_page(body.as_bytes()).unwrap();
            let task = &page.tasks[0];
            let kept = |field: &Option<String>, cap: usize| {
                let field = field.as_ref().unwrap();
                assert!(field.len() <= cap, "{filler}: {} > {cap}", field.len());
                assert!(
                    field.capacity() <= cap,
                    "{filler}: capacity {}",
                    field.capacity()
                );
                assert!(field.ends_with(TRUNCATION_MARK), "{filler}");
                assert!(field.len() > cap - TRUNCATION_MARK.len() - 4, "{filler}");
            };
            kept(&task.params, MAX_DECODED_PARAMS_BYTES);
            for field in [
                &task.id,
                &task.name,
                &task.user_name,
                &task.user_id,
                &task.status,
                &task.error_code,
                &task.job_id,
            ] {
                kept(field, MAX_DECODED_TEXT_BYTES);
            }
            for time in [&task.created_at, &task.updated_at] {
                let time = time.as_ref().unwrap();
                kept(&Some(time.raw.clone()), MAX_DECODED_TIME_BYTES);
                assert!(time.raw.capacity() <= MAX_DECODED_TIME_BYTES);
            }
            let details = task.details.as_ref().unwrap();
            for field in [
                &details.old_capacity,
                &details.node_name,
                &details.account_name,
            ] {
                kept(field, MAX_DECODED_TEXT_BYTES);
            }
            assert_eq!(details.rename_commands.len(), 2);
            for command in &details.rename_commands {
                kept(&Some(command.clone()), MAX_DECODED_TEXT_BYTES);
            }
        }

        // At the cap the value is whole; one byte over, it is cut.
        for (extra, whole) in [(0, true), (1, false)] {
            let params = format!(
                r#"{{\"k\":\"{}\"}}"#,
                "p".repeat(MAX_DECODED_PARAMS_BYTES - 8 + extra)
            );
            let id = "i".repeat(MAX_DECODED_TEXT_BYTES + extra);
            let body = format!(r#"{{"tasks":[{{"id":"{id}","params":"{params}"}}]}}"#);
            let task = &decode_task_page(body.as_bytes()).unwrap().tasks[0];
            let params = task.params.as_deref().unwrap();
            assert_eq!(params.len(), MAX_DECODED_PARAMS_BYTES, "{extra}");
            assert_eq!(params.ends_with("\"}"), whole, "{extra}");
            assert_eq!(task.id.as_deref() == Some(id.as_str()), whole, "{extra}");
            assert_eq!(task.id.as_ref().unwrap().len(), MAX_DECODED_TEXT_BYTES);
        }
    }

    /// A 2 MiB `error_msg` (escaped or not) and a long code are cut while decoding.
    #[test]
    fn error_bodies_are_bounded() {
        for filler in ["x", "任", "\\n"] {
            let huge = filler.repeat(2 * 1024 * 1024 / filler.len());
            let body = format!(r#"{{"error_code":"{huge}","error_msg":"{huge}"}}"#);
            let error = ErrorBody::from_json(body.as_bytes()).unwrap();
            let msg = error.error_msg.unwrap();
            let code = error.error_code.unwrap();
            assert!(msg.len() <= MAX_ERROR_MSG_BYTES, "{}", msg.len());
            assert!(code.len() <= MAX_ERROR_CODE_BYTES, "{}", code.len());
            assert!(msg.ends_with(dcs_common::text::TRUNCATION_MARK));
            let nested = format!(r#"{{"error":{{"code":"E","message":"{huge}"}}}}"#);
            let error = ErrorBody::from_json(nested.as_bytes()).unwrap();
            assert!(error.error_msg.unwrap().len() <= MAX_ERROR_MSG_BYTES);
        }
        let short = ErrorBody::from_json(br#"{"error_code":111400063,"error_msg":"ok"}"#).unwrap();
        assert_eq!(short.error_code.as_deref(), Some("111400063"));
        assert_eq!(short.error_msg.as_deref(), Some("ok"));
        // Only one level down is searched.
        assert_eq!(ErrorBody::from_json(br#"{"a":{"b":{"code":"X"}}}"#), None);
        assert_eq!(
            ErrorBody::from_json(br#"{"a":1,"b":{"message":"m"}}"#)
                .unwrap()
                .error_msg
                .as_deref(),
            Some("m")
        );
    }

    /// An arbitrary JSON value, objects biased towards the model's own field names so that the
    /// lenient readers see every shape in every field.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("task_count".to_string()),
            Just("tasks".to_string()),
            Just("id".to_string()),
            Just("status".to_string()),
            Just("created_at".to_string()),
            Just("enable_show".to_string()),
            Just("details".to_string()),
            Just("old_capacity".to_string()),
            Just("old_port".to_string()),
            Just("rename_commands".to_string()),
            Just("error_code".to_string()),
            Just("message".to_string()),
            "[a-z_]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[0-9 .+-]{0,24}".prop_map(Value::String),
            "2020-06-17T07:38:42.[0-9]{3}Z".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_task_page(&bytes);
            let _ = ErrorBody::from_json(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics_and_objects_always_decode(value in json_value()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            let page = decode_task_page(&bytes);
            // Anything shaped like an object is a page (misshapen fields are just absent).
            prop_assert_eq!(page.is_ok(), value.is_object());
            let _ = ErrorBody::from_json(&bytes);
            let wrapped = serde_json::to_vec(&json!({"task_count": 1, "tasks": [value.clone()]})).unwrap();
            let page = decode_task_page(&wrapped).unwrap();
            prop_assert_eq!(page.tasks.len(), 1);
        }

        #[test]
        fn task_count_round_trips_as_number_or_string(count in any::<u64>(), padding in "[ ]{0,2}") {
            let number = format!(r#"{{"task_count":{count}}}"#);
            prop_assert_eq!(decode_task_page(number.as_bytes()).unwrap().task_count, Some(count));
            let text = format!(r#"{{"task_count":"{padding}{count}{padding}"}}"#);
            prop_assert_eq!(decode_task_page(text.as_bytes()).unwrap().task_count, Some(count));
        }

        #[test]
        fn negative_or_fractional_task_counts_are_absent(count in i64::MIN..0, fraction in any::<f64>()) {
            let negative = format!(r#"{{"task_count":{count}}}"#);
            prop_assert_eq!(decode_task_page(negative.as_bytes()).unwrap().task_count, None);
            let float = serde_json::to_vec(&json!({"task_count": fraction})).unwrap();
            prop_assert_eq!(decode_task_page(&float).unwrap().task_count, None);
        }

        #[test]
        fn string_fields_round_trip(text in any::<String>()) {
            let body = serde_json::to_vec(&json!({"tasks": [{"id": text, "details": {"old_capacity": text}}]})).unwrap();
            let page = decode_task_page(&body).unwrap();
            prop_assert_eq!(page.tasks[0].id.as_deref(), Some(text.as_str()));
            prop_assert_eq!(page.tasks[0].details.as_ref().unwrap().old_capacity.as_deref(), Some(text.as_str()));
        }
    }
}
