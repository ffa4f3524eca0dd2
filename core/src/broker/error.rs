//! `BrokerError`: a RocketMQ status code plus a message saying why. Every broker operation
//! fails with one; the gRPC edge puts it in the response's `Status` (RocketMQ carries errors
//! in-body, the gRPC status stays OK), the admin edge turns it into a gRPC status.

use crate::protocol::v2::Code;
use crate::storage::StorageError;

/// Result alias for broker operations.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

impl From<crate::protocol::validate::Invalid> for BrokerError {
    fn from(e: crate::protocol::validate::Invalid) -> Self {
        BrokerError { code: e.code, message: e.message }
    }
}

/// A refused or failed broker operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {message}", code.as_str_name(), *code as i32)]
pub struct BrokerError {
    /// The RocketMQ status code clients act on.
    pub code: Code,
    /// What was wrong, for people.
    pub message: String,
}

impl BrokerError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        BrokerError { code, message: message.into() }
    }

    /// `limit` refused the operation: the code clients see for it and a message naming the
    /// limit, its value `max` and its config key. `what` says what was over it.
    pub fn limit(limit: Limit, max: usize, what: impl std::fmt::Display) -> Self {
        BrokerError::new(
            limit.code(),
            format!(
                "{what}: {} is limited to {max} (raise [broker] {} in the server config)",
                limit.describe(),
                limit.key()
            ),
        )
    }

    /// The gRPC status an admin call answers with.
    pub fn to_grpc(&self) -> tonic::Status {
        let grpc = match self.code {
            Code::TopicNotFound
            | Code::ConsumerGroupNotFound
            | Code::NotFound
            | Code::MessageNotFound
            | Code::OffsetNotFound => tonic::Code::NotFound,
            Code::InternalError | Code::InternalServerError => tonic::Code::Internal,
            Code::Unsupported | Code::NotImplemented => tonic::Code::Unimplemented,
            Code::TooManyRequests => tonic::Code::ResourceExhausted,
            Code::PreconditionFailed => tonic::Code::FailedPrecondition,
            Code::MultipleResults => tonic::Code::AlreadyExists,
            _ => tonic::Code::InvalidArgument,
        };
        tonic::Status::new(grpc, self.message.clone())
    }
}

/// A resource limit of [`crate::broker::BrokerConfig`]: past it the broker refuses instead of
/// growing its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_topics`: topics (created by admin or on first use).
    Topics,
    /// `max_groups`: consumer groups.
    Groups,
    /// `max_clients`: distinct client ids registered at once.
    Clients,
    /// `max_client_id_len`: bytes of `x-mq-client-id`.
    ClientIdLength,
    /// `max_inflight_per_group`: messages handed out and not yet acked, per consumer group.
    InflightPerGroup,
    /// `max_long_polls`: receives and pulls waiting for messages at once.
    LongPolls,
    /// `max_pending_sends`: sends waiting for the store's append thread.
    PendingSends,
}

impl Limit {
    /// Its key under `[broker]` in the server's TOML config.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Topics => "max_topics",
            Limit::Groups => "max_groups",
            Limit::Clients => "max_clients",
            Limit::ClientIdLength => "max_client_id_len",
            Limit::InflightPerGroup => "max_inflight_per_group",
            Limit::LongPolls => "max_long_polls",
            Limit::PendingSends => "max_pending_sends",
        }
    }

    /// What it limits, for people.
    fn describe(self) -> &'static str {
        match self {
            Limit::Topics => "the number of topics",
            Limit::Groups => "the number of consumer groups",
            Limit::Clients => "the number of clients",
            Limit::ClientIdLength => "a client id's length in bytes",
            Limit::InflightPerGroup => "the messages in flight (received, not acked) per group",
            Limit::LongPolls => "the number of waiting long polls",
            Limit::PendingSends => "the number of sends waiting to be stored",
        }
    }

    /// The RocketMQ code a client sees: a header too long is the request's fault
    /// (`REQUEST_HEADER_FIELDS_TOO_LARGE`, not retried); every other limit is a quota or
    /// overload, `TOO_MANY_REQUESTS` (the proxy's flow-control code, retried with back-off).
    pub fn code(self) -> Code {
        match self {
            Limit::ClientIdLength => Code::RequestHeaderFieldsTooLarge,
            Limit::Topics
            | Limit::Groups
            | Limit::Clients
            | Limit::InflightPerGroup
            | Limit::LongPolls
            | Limit::PendingSends => Code::TooManyRequests,
        }
    }
}

impl From<StorageError> for BrokerError {
    fn from(e: StorageError) -> Self {
        let code = match &e {
            StorageError::MessageTooLarge { .. } => Code::MessageBodyTooLarge,
            StorageError::InvalidMessage(_) => Code::BadRequest,
            StorageError::OffsetOutOfRange { .. } => Code::IllegalOffset,
            StorageError::InvalidId { .. } => Code::IllegalMessageId,
            StorageError::Corrupted { .. } => Code::MessageCorrupted,
            _ => Code::InternalServerError,
        };
        BrokerError::new(code, e.to_string())
    }
}
