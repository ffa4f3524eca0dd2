//! Core errors as JS `Error`s: `err.code` is the stable [`ErrorKind`] name, `err.status` the
//! RocketMQ status number when a server (or a check mirroring one) gave one, `err.operation`
//! the operation that failed.

use std::future::Future;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use orbitmq_core::client::{self as core, ErrorKind};

/// The stable codes of `err.code` (the core's `ErrorKind` names).
#[napi(string_enum)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ErrorCode {
    BAD_REQUEST,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    TOO_MANY_REQUESTS,
    TIMEOUT,
    UNAVAILABLE,
    UNSUPPORTED,
    INTERNAL,
    CLOSED,
    PRECONDITION_FAILED,
    REPLICATION_TIMEOUT,
}

/// The JS error for a core error.
pub fn to_js(env: Env, e: &core::Error) -> Error {
    let base = Error::new(Status::GenericFailure, e.message().to_owned());
    let built = (|| -> Result<Error> {
        let mut obj = env.create_error(base)?;
        obj.set("code", e.kind().as_str())?;
        obj.set("kind", u32::from(e.kind().code()))?;
        if let Some(s) = e.status_code() {
            obj.set("status", s)?;
        }
        if let Some(op) = e.operation() {
            obj.set("operation", op)?;
        }
        if let Some(ep) = e.endpoint() {
            obj.set("endpoint", ep)?;
        }
        obj.set("retryable", e.is_retryable())?;
        Ok(Error::from(obj.to_unknown()))
    })();
    built.unwrap_or_else(|x| x)
}

/// A `BAD_REQUEST` for an argument the binding itself refuses while converting it.
pub fn bad_request(message: impl Into<String>) -> core::Error {
    core::Error::new(ErrorKind::BadRequest, message)
}

/// A promise of what `fut` gives, rejected with the JS form of a core error.
pub fn promise<T, V, F>(
    env: &Env,
    fut: F,
    to_js_value: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'_, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = core::Result<T>> + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, move |env, r| match r {
        Ok(v) => Ok(to_js_value(v)),
        Err(e) => Err(to_js(*env, &e)),
    })
}

/// A core result, thrown as its JS error when it failed (synchronous methods).
pub fn check<T>(env: Env, r: core::Result<T>) -> Result<T> {
    r.map_err(|e| to_js(env, &e))
}
