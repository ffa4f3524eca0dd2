//! With server credentials, every `/api/…` call but `/api/info` carries the signed headers the
//! gRPC clients send (`authorization`, `x-mq-date-time`), checked by the same
//! [`ServerCredentials::verify`] the gRPC services use.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orbitmq_core::protocol::auth::ServerCredentials;
use tonic::metadata::MetadataMap;

use super::Ctx;
use super::error::ApiError;

/// Lets a request through when it is signed with the server's credentials (or the server has
/// none); a 401 saying why otherwise.
pub(crate) async fn require(State(ctx): State<Arc<Ctx>>, req: Request, next: Next) -> Response {
    if let Some(creds) = &ctx.credentials
        && let Err(e) = verify(creds, req.headers())
    {
        return ApiError::unauthorized(format!(
            "{e}: sign the request with the server's access key (see docs/DASHBOARD.md)"
        ))
        .into_response();
    }
    next.run(req).await
}

fn verify(
    creds: &ServerCredentials,
    headers: &axum::http::HeaderMap,
) -> Result<(), orbitmq_core::protocol::auth::AuthError> {
    creds.verify(&MetadataMap::from_headers(headers.clone()))
}
