//! The Huawei Cloud side: wire model, request signing, credentials, endpoints and the
//! `ListCenterTask` client. Usable as a plain client library; it never imports `kube`.

pub mod sign;
