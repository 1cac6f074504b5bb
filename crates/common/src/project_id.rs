//! Huawei Cloud project ids, as every layer holds them: the CRD schema (`spec.projectId`), the
//! operator's own spec checks, and IAM project discovery, which must never put anything else into
//! a request path.

/// Project ids are 32 hex digits on Huawei Cloud; any path-safe token is accepted so that
/// simulators and private clouds work, but nothing that could change the request path.
pub const PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";
