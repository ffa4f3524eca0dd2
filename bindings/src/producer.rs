//! `Producer`, its transactions, and the transaction checker a Kotlin or Swift app implements.

use std::sync::Arc;

use orbitmq_core::client::{self as core, Error, ErrorKind};
use tokio::sync::Mutex;

use crate::config::ClientConfig;
use crate::error::{CallbackError, OrbitMqError};
use crate::message::{Message, MessageView, SendReceipt, TransactionResolution};
use crate::runtime::{Guarded, handle, run};

/// Answers the server's check-back for a transaction whose producer neither committed nor
/// rolled back. Throwing counts as `UNKNOWN` (asked again later).
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait TransactionChecker: Send + Sync {
    async fn check(&self, message: MessageView) -> Result<TransactionResolution, CallbackError>;
}

struct Checker(Arc<dyn TransactionChecker>);

#[async_trait::async_trait]
impl core::TransactionChecker for Checker {
    async fn check(&self, message: core::MessageView) -> core::TransactionResolution {
        self.0.check(message.into()).await.map_or(core::TransactionResolution::Unknown, Into::into)
    }
}

/// Sends messages: normal, FIFO (a message group), delay and transactional.
#[derive(uniffi::Object)]
pub struct Producer(Guarded<core::Producer>);

#[uniffi::export]
impl Producer {
    /// A producer for `topics` (their routes are fetched on `start`), not started yet; the
    /// checker answers check-backs of transactions.
    #[uniffi::constructor(default(topics = [], checker = None))]
    pub fn new(
        config: ClientConfig,
        topics: Vec<String>,
        checker: Option<Arc<dyn TransactionChecker>>,
    ) -> Result<Arc<Producer>, OrbitMqError> {
        let mut b = core::Producer::builder(config.into()).topics(topics).runtime(handle().clone());
        if let Some(c) = checker {
            b = b.transaction_checker(Arc::new(Checker(c)));
        }
        Ok(Arc::new(Producer(Guarded::new(b.build()?))))
    }

    /// Connects; a wrong endpoint or topic fails here.
    pub async fn start(&self) -> Result<(), OrbitMqError> {
        let p = self.0.clone();
        run(async move { p.start().await }).await
    }

    /// The client id the servers know this producer by.
    pub fn client_id(&self) -> String {
        self.0.client_id()
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<SendReceipt, OrbitMqError> {
        let p = self.0.clone();
        run(async move { p.send(message.into()).await.map(Into::into) }).await
    }

    /// Sends messages of one topic in one request.
    pub async fn send_batch(
        &self,
        messages: Vec<Message>,
    ) -> Result<Vec<SendReceipt>, OrbitMqError> {
        let p = self.0.clone();
        let messages = messages.into_iter().map(Into::into).collect();
        run(async move { Ok(p.send_batch(messages).await?.into_iter().map(Into::into).collect()) })
            .await
    }

    /// Cancels a delay message not delivered yet; returns its message id.
    pub async fn recall(
        &self,
        topic: String,
        recall_handle: String,
    ) -> Result<String, OrbitMqError> {
        let p = self.0.clone();
        run(async move { p.recall(&topic, &recall_handle).await }).await
    }

    /// Starts a transaction: its messages are delivered on `commit`.
    pub fn begin_transaction(&self) -> Result<Arc<Transaction>, OrbitMqError> {
        let t = self.0.begin_transaction()?;
        Ok(Arc::new(Transaction(Guarded::new(Arc::new(Mutex::new(Some(t)))))))
    }

    /// Stops the producer: later calls fail with `Closed`.
    pub async fn shutdown(&self) {
        let p = self.0.clone();
        let _ = run(async move {
            p.shutdown().await;
            Ok(())
        })
        .await;
    }
}

/// Messages sent as one transaction: delivered together on `commit`, dropped on `rollback`.
#[derive(uniffi::Object)]
pub struct Transaction(Guarded<Arc<Mutex<Option<core::Transaction>>>>);

fn ended() -> Error {
    Error::new(
        ErrorKind::PreconditionFailed,
        "the transaction was already committed or rolled back",
    )
}

#[uniffi::export]
impl Transaction {
    /// Sends a half message, delivered on commit.
    pub async fn send(&self, message: Message) -> Result<SendReceipt, OrbitMqError> {
        let t = Arc::clone(&self.0);
        run(async move {
            let mut t = t.lock().await;
            t.as_mut().ok_or_else(ended)?.send(message.into()).await.map(Into::into)
        })
        .await
    }

    /// Delivers the transaction's messages.
    pub async fn commit(&self) -> Result<(), OrbitMqError> {
        let t = Arc::clone(&self.0);
        run(async move { t.lock().await.take().ok_or_else(ended)?.commit().await }).await
    }

    /// Drops the transaction's messages.
    pub async fn rollback(&self) -> Result<(), OrbitMqError> {
        let t = Arc::clone(&self.0);
        run(async move { t.lock().await.take().ok_or_else(ended)?.rollback().await }).await
    }
}
