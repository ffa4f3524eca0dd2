//! The API's errors, `{"error":{"kind","message"}}` with a 4xx status (5xx only for a server
//! that cannot be reached or answered a fault), and the extractors that turn malformed input
//! (JSON, query, path) into a 400 naming the field instead of axum's plain-text rejections.

use std::collections::HashMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use orbitmq_core::client::{Error, ErrorKind};
use serde::de::DeserializeOwned;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"kind": self.kind, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The SDK's error kinds as the HTTP statuses docs/DASHBOARD.md lists.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match e.kind() {
            ErrorKind::BadRequest => (StatusCode::BAD_REQUEST, "BadRequest"),
            ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "Forbidden"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
            ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            ErrorKind::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ErrorKind::PreconditionFailed => (StatusCode::CONFLICT, "PreconditionFailed"),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ErrorKind::ReplicationTimeout => (StatusCode::GATEWAY_TIMEOUT, "ReplicationTimeout"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            ErrorKind::Closed => (StatusCode::SERVICE_UNAVAILABLE, "Closed"),
            ErrorKind::Unsupported => (StatusCode::NOT_IMPLEMENTED, "Unsupported"),
            // Internal, and kinds added later: the server failed, not the input.
            _ => (StatusCode::BAD_GATEWAY, "Internal"),
        };
        ApiError::new(status, kind, e.message())
    }
}

/// A JSON body; a malformed one is a 400 (413 when too large) saying what is wrong and where.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(r @ JsonRejection::BytesRejection(_))
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", r.body_text()))
            }
            Err(r) => Err(ApiError::bad_request(r.body_text())),
        }
    }
}

/// A query string as named parameters, each read (and its error worded) by name.
pub(crate) struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad_request(r.body_text()))?;
        Ok(Params(map))
    }
}

impl Params {
    /// `name`, if given and not empty.
    pub(crate) fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// `name`, which must be given.
    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.optional(name)
            .ok_or_else(|| ApiError::bad_request(format!("query parameter `{name}` is required")))
    }

    /// `name` as a number, if given.
    pub(crate) fn optional_number<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.optional(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "query parameter `{name}` must be a non-negative integer, not {v:?}"
                    ))
                })
            })
            .transpose()
    }

    /// `name` as a number, which must be given.
    pub(crate) fn number<T: FromStr>(&self, name: &str) -> Result<T, ApiError> {
        self.optional_number(name)?
            .ok_or_else(|| ApiError::bad_request(format!("query parameter `{name}` is required")))
    }

    /// `name` as `true`/`false` (absent: false).
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.optional(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "query parameter `{name}` must be true or false, not {v:?}"
            ))),
        }
    }
}

/// The one path parameter of a route (a topic, group or message id), not empty.
pub(crate) struct Name(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad_request(r.body_text()))?;
        if name.is_empty() {
            return Err(ApiError::bad_request("the name in the path is empty"));
        }
        Ok(Name(name))
    }
}
