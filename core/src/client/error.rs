//! The SDK's one error type: an [`ErrorKind`] with a stable name and number, what happened, the
//! operation that failed, the RocketMQ status code when a server gave one, and the cause.
//!
//! Every language binding maps [`ErrorKind`] once: Python to one exception class per kind, Node
//! to `err.code` (the kind's name), Kotlin/Swift to an enum case. The names and numbers below
//! are part of the public API: a kind is never renumbered, and a retired number is never reused.

use std::fmt;
use std::sync::Arc;

use crate::protocol::v2::{self, Code};
use crate::protocol::validate::Invalid;

/// What kind of failure an [`Error`] is. Stable: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u16)]
pub enum ErrorKind {
    /// The request or a value in it is invalid (a name, a tag, a property, an offset, a
    /// configuration value): fix the input, retrying will not help.
    BadRequest = 1,
    /// Credentials are missing or wrong.
    Unauthorized = 2,
    /// The credentials may not do this.
    Forbidden = 3,
    /// A topic, group, message or offset that does not exist.
    NotFound = 4,
    /// A body or properties over the server's limit.
    PayloadTooLarge = 5,
    /// The server is throttling: retry later (the SDK already retried with back-off).
    TooManyRequests = 6,
    /// No answer within the request timeout, or the server timed out inside.
    Timeout = 7,
    /// The server could not be reached, or the connection broke.
    Unavailable = 8,
    /// The server does not support this (an Apache proxy asked for pull, say).
    Unsupported = 9,
    /// The server failed internally.
    Internal = 10,
    /// The client was shut down.
    Closed = 11,
    /// The request is valid but the state does not allow it (an expired receipt handle, an
    /// out-of-order FIFO ack, a transaction already ended).
    PreconditionFailed = 12,
    /// A sync master could not get the message onto a slave in time: the message is on the
    /// master, but not replicated as asked.
    ReplicationTimeout = 13,
}

impl ErrorKind {
    /// Every kind, in number order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::PayloadTooLarge,
        ErrorKind::TooManyRequests,
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::Unsupported,
        ErrorKind::Internal,
        ErrorKind::Closed,
        ErrorKind::PreconditionFailed,
        ErrorKind::ReplicationTimeout,
    ];

    /// The stable name: `SCREAMING_SNAKE_CASE`, as Node's `err.code` shows it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "BAD_REQUEST",
            ErrorKind::Unauthorized => "UNAUTHORIZED",
            ErrorKind::Forbidden => "FORBIDDEN",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorKind::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::Unsupported => "UNSUPPORTED",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::Closed => "CLOSED",
            ErrorKind::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorKind::ReplicationTimeout => "REPLICATION_TIMEOUT",
        }
    }

    /// The stable number.
    #[must_use]
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Whether the same request may succeed later (another endpoint, after a back-off).
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::TooManyRequests | ErrorKind::Timeout | ErrorKind::Unavailable)
    }

    /// The kind of a RocketMQ status code.
    #[must_use]
    pub fn of_code(code: Code) -> ErrorKind {
        match code as i32 {
            40100 => ErrorKind::Unauthorized,
            40300 => ErrorKind::Forbidden,
            40400..=40499 => ErrorKind::NotFound,
            41300..=41399 | 43100..=43199 => ErrorKind::PayloadTooLarge,
            42900..=42999 => ErrorKind::TooManyRequests,
            50002 | 50402 => ErrorKind::ReplicationTimeout,
            50100 | 50500..=50599 => ErrorKind::Unsupported,
            40800 | 50400 | 50401 => ErrorKind::Timeout,
            50000..=50099 => ErrorKind::Internal,
            // Expired or unknown receipt handles: the state moved on.
            40013 | 42800 => ErrorKind::PreconditionFailed,
            _ if code == Code::FailedToConsumeMessage => ErrorKind::Internal,
            _ => ErrorKind::BadRequest,
        }
    }

    fn of_grpc(code: tonic::Code) -> ErrorKind {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::AlreadyExists => {
                ErrorKind::BadRequest
            }
            tonic::Code::Unauthenticated => ErrorKind::Unauthorized,
            tonic::Code::PermissionDenied => ErrorKind::Forbidden,
            tonic::Code::NotFound => ErrorKind::NotFound,
            tonic::Code::ResourceExhausted => ErrorKind::TooManyRequests,
            tonic::Code::DeadlineExceeded => ErrorKind::Timeout,
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Aborted => {
                ErrorKind::Unavailable
            }
            tonic::Code::Unimplemented => ErrorKind::Unsupported,
            tonic::Code::FailedPrecondition => ErrorKind::PreconditionFailed,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed SDK operation.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    operation: &'static str,
    status: Option<i32>,
    endpoint: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A `kind` error saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            operation: "",
            status: None,
            endpoint: None,
            source: None,
        }
    }

    /// The error a server's in-body status stands for (`None` when it says OK).
    #[must_use]
    pub fn from_status(status: &v2::Status) -> Option<Error> {
        let code = Code::try_from(status.code).unwrap_or(Code::Unspecified);
        if code == Code::Ok || code == Code::MultipleResults {
            return None;
        }
        let message = if status.message.is_empty() {
            code.as_str_name().to_owned()
        } else {
            status.message.clone()
        };
        let mut e = Error::new(ErrorKind::of_code(code), message);
        e.status = Some(status.code);
        Some(e)
    }

    /// Sets the operation that failed (`"send"`, `"receive"`, …).
    #[must_use]
    pub fn with_operation(mut self, operation: &'static str) -> Error {
        if self.operation.is_empty() {
            self.operation = operation;
        }
        self
    }

    /// Sets the endpoint the failed request went to.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Error {
        if self.endpoint.is_none() {
            self.endpoint = Some(endpoint.into());
        }
        self
    }

    /// Sets the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What happened, for people.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operation that failed (`"send"`, `"receive"`, …), if known.
    #[must_use]
    pub fn operation(&self) -> Option<&'static str> {
        (!self.operation.is_empty()).then_some(self.operation)
    }

    /// The RocketMQ status code the server answered, if the failure came from one
    /// (`40402` for `TOPIC_NOT_FOUND`, …).
    #[must_use]
    pub fn status_code(&self) -> Option<i32> {
        self.status
    }

    /// The endpoint the failed request went to, if one did.
    #[must_use]
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Whether retrying the same request later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    pub(crate) fn closed(what: &str) -> Error {
        Error::new(ErrorKind::Closed, format!("the {what} was shut down"))
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadRequest, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.operation.is_empty() {
            write!(f, "{} failed: ", self.operation)?;
        }
        write!(f, "{} [{}", self.message, self.kind)?;
        if let Some(code) = self.status {
            let name = Code::try_from(code).map_or("UNKNOWN", |c| c.as_str_name());
            write!(f, ", RocketMQ {name} {code}")?;
        }
        if let Some(endpoint) = &self.endpoint {
            write!(f, ", {endpoint}")?;
        }
        f.write_str("]")?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Error {
        let mut err = Error::new(ErrorKind::of_code(e.code), e.message);
        err.status = Some(e.code as i32);
        err
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let message = if s.message().is_empty() {
            format!("gRPC status {:?}", s.code())
        } else {
            s.message().to_owned()
        };
        // tonic makes an UNKNOWN status carrying the error as its source when the connection
        // breaks mid-call (a TLS server closing a plaintext one, say): the transport failed,
        // the server answered nothing.
        let kind = if s.code() == tonic::Code::Unknown && std::error::Error::source(&s).is_some() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::of_grpc(s.code())
        };
        Error::new(kind, message)
    }
}

impl From<crate::tls::TlsError> for Error {
    fn from(e: crate::tls::TlsError) -> Error {
        Error::new(ErrorKind::BadRequest, format!("TLS setup: {e}")).with_source(e)
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_distinct_names_and_numbers() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        let numbers: Vec<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(numbers, (1..=13).collect::<Vec<u16>>(), "renumbered or a gap");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert_eq!(ErrorKind::NotFound.as_str(), "NOT_FOUND");
        assert_eq!(ErrorKind::Closed.code(), 11);
    }

    #[test]
    fn rocketmq_codes_map_to_the_kind_a_user_acts_on() {
        let kind = |c| ErrorKind::of_code(c);
        assert_eq!(kind(Code::TopicNotFound), ErrorKind::NotFound);
        assert_eq!(kind(Code::ConsumerGroupNotFound), ErrorKind::NotFound);
        assert_eq!(kind(Code::IllegalTopic), ErrorKind::BadRequest);
        assert_eq!(kind(Code::MessageBodyTooLarge), ErrorKind::PayloadTooLarge);
        assert_eq!(kind(Code::MessagePropertiesTooLarge), ErrorKind::PayloadTooLarge);
        assert_eq!(kind(Code::TooManyRequests), ErrorKind::TooManyRequests);
        assert_eq!(kind(Code::Unauthorized), ErrorKind::Unauthorized);
        assert_eq!(kind(Code::Forbidden), ErrorKind::Forbidden);
        assert_eq!(kind(Code::InvalidReceiptHandle), ErrorKind::PreconditionFailed);
        assert_eq!(kind(Code::SlavePersistenceTimeout), ErrorKind::ReplicationTimeout);
        assert_eq!(kind(Code::HaNotAvailable), ErrorKind::ReplicationTimeout);
        assert_eq!(kind(Code::MasterPersistenceTimeout), ErrorKind::Timeout);
        assert_eq!(kind(Code::Unsupported), ErrorKind::Unsupported);
        assert_eq!(kind(Code::NotImplemented), ErrorKind::Unsupported);
        assert_eq!(kind(Code::InternalServerError), ErrorKind::Internal);
        assert!(kind(Code::TooManyRequests).is_retryable());
        assert!(!kind(Code::IllegalTopic).is_retryable());
    }

    #[test]
    fn a_broken_connection_is_unavailable_and_a_server_status_keeps_its_kind() {
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("closed")));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        assert_eq!(Error::from(broken).kind(), ErrorKind::Unavailable);
        assert_eq!(Error::from(tonic::Status::unknown("odd")).kind(), ErrorKind::Internal);
        assert_eq!(Error::from(tonic::Status::not_found("t")).kind(), ErrorKind::NotFound);
        let exists = tonic::Status::already_exists("t");
        assert_eq!(Error::from(exists).kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn status_ok_is_no_error_and_a_failure_says_what_and_where() {
        let ok = v2::Status { code: Code::Ok as i32, message: "OK".into() };
        assert!(Error::from_status(&ok).is_none());
        let st = v2::Status { code: Code::TopicNotFound as i32, message: "no topic T".into() };
        let e = Error::from_status(&st).unwrap().with_operation("send").with_endpoint("h:1");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.status_code(), Some(40402));
        assert_eq!(
            e.to_string(),
            "send failed: no topic T [NOT_FOUND, RocketMQ TOPIC_NOT_FOUND 40402, h:1]"
        );
    }
}
