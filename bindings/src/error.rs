//! The SDK's [`Error`] as one foreign error enum: a case per stable [`ErrorKind`]
//! (Kotlin `OrbitMqException.NotFound`, Swift `OrbitMqError.NotFound`), each with the kind's
//! stable number, the message, the failed operation, the server's status code and whether a
//! retry may help.

use orbitmq_core::client::{Error, ErrorKind};

macro_rules! error_enum {
    ($($kind:ident),* $(,)?) => {
        /// An OrbitMQ failure, one case per stable error kind.
        #[derive(Debug, thiserror::Error, uniffi::Error)]
        pub enum OrbitMqError {
            $(
                #[error("{detail}")]
                $kind {
                    /// The kind's stable number.
                    code: u16,
                    /// What happened, with the operation and endpoint.
                    detail: String,
                    /// The operation that failed, when known.
                    operation: Option<String>,
                    /// The RocketMQ status code, when a server gave one.
                    status_code: Option<i32>,
                    /// Whether retrying may help.
                    retryable: bool,
                },
            )*
        }

        impl From<Error> for OrbitMqError {
            fn from(e: Error) -> OrbitMqError {
                let code = e.kind().code();
                let detail = e.to_string();
                let operation = e.operation().map(str::to_owned);
                let status_code = e.status_code();
                let retryable = e.is_retryable();
                match e.kind() {
                    $(ErrorKind::$kind => OrbitMqError::$kind {
                        code, detail, operation, status_code, retryable,
                    },)*
                    // A kind newer than this binding (ErrorKind is non-exhaustive).
                    _ => OrbitMqError::Internal { code, detail, operation, status_code, retryable },
                }
            }
        }
    };
}

error_enum!(
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Timeout,
    Unavailable,
    Unsupported,
    Internal,
    Closed,
    PreconditionFailed,
    ReplicationTimeout,
);

/// What a listener or transaction checker implemented in Kotlin or Swift may throw; any
/// exception counts as the failure answer (`ConsumeResult.FAILURE`, `TransactionResolution.UNKNOWN`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback failed.
    #[error("{reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> CallbackError {
        CallbackError::Failed { reason: e.reason }
    }
}
