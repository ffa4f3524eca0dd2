//! `BrokerError`: a RocketMQ status code plus a message saying why. Every broker operation
//! fails with one; the gRPC edge puts it in the response's `Status` (RocketMQ carries errors
//! in-body, the gRPC status stays OK), the admin edge turns it into a gRPC status.

use crate::protocol::v2::Code;
use crate::storage::StorageError;

/// Result alias for broker operations.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

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
