//! `Producer` and `Transaction`.

use std::sync::Arc;

use std::convert::identity;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use orbitmq_core::client::{self as core, ErrorKind};

use crate::error::{check, promise};
use crate::message::{
    Callback, Credentials, Held, Message, SendReceipt, TransactionResolution, connection,
};

/// How to build a producer.
#[napi(object, object_to_js = false)]
pub struct ProducerOptions {
    /// `host:port`, or several separated by `;`.
    pub endpoints: String,
    pub namespace: Option<String>,
    pub credentials: Option<Credentials>,
    /// `true`: TLS (any server certificate); a path: TLS verified with that PEM CA file.
    pub tls: Option<Either<bool, String>>,
    /// How long one request may take, in ms (default 3000).
    pub request_timeout: Option<u32>,
    /// Topics whose routes `start` fetches (a missing one fails it).
    pub topics: Option<Vec<String>>,
    /// Answers the server's check-backs on transactions left open (needed for transactions).
    #[napi(
        ts_type = "(message: MessageView) => Promise<TransactionResolution> | TransactionResolution"
    )]
    pub transaction_checker: Option<Callback<TransactionResolution>>,
}

/// Bridges the core's checker to the JS one; a throw or a rejection is `UNKNOWN`.
struct Checker(Arc<Held<TransactionResolution>>);

#[async_trait::async_trait]
impl core::TransactionChecker for Checker {
    async fn check(&self, message: core::MessageView) -> core::TransactionResolution {
        self.0.call(message).await.map_or(core::TransactionResolution::Unknown, Into::into)
    }
}

/// Sends messages.
#[napi]
pub struct Producer {
    inner: core::Producer,
    checker: Arc<Held<TransactionResolution>>,
}

#[napi]
impl Producer {
    #[napi(constructor)]
    pub fn new(env: Env, options: ProducerOptions) -> Result<Producer> {
        let has_checker = options.transaction_checker.is_some();
        let checker = Held::new(options.transaction_checker);
        let mut b = core::Producer::builder(connection!(options).config())
            .topics(options.topics.unwrap_or_default())
            .runtime(crate::runtime::handle());
        if has_checker {
            b = b.transaction_checker(Arc::new(Checker(Arc::clone(&checker))));
        }
        Ok(Producer { inner: check(env, b.build())?, checker })
    }

    /// Connects: fetches the routes of `topics`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let p = self.inner.clone();
        promise(env, async move { p.start().await }, identity)
    }

    /// Sends one message.
    #[napi]
    pub fn send<'e>(&self, env: &'e Env, message: Message) -> Result<PromiseRaw<'e, SendReceipt>> {
        let (p, m) = (self.inner.clone(), message.into());
        promise(env, async move { p.send(m).await }, SendReceipt::from)
    }

    /// Sends messages of one topic and one type in one request: all are stored or none.
    #[napi]
    pub fn send_batch<'e>(
        &self,
        env: &'e Env,
        messages: Vec<Message>,
    ) -> Result<PromiseRaw<'e, Vec<SendReceipt>>> {
        let p = self.inner.clone();
        let list = messages.into_iter().map(Into::into).collect();
        promise(env, async move { p.send_batch(list).await }, |r| {
            r.into_iter().map(SendReceipt::from).collect()
        })
    }

    /// Recalls a delay message before its delivery time; answers its message id.
    #[napi]
    pub fn recall<'e>(
        &self,
        env: &'e Env,
        topic: String,
        recall_handle: String,
    ) -> Result<PromiseRaw<'e, String>> {
        let p = self.inner.clone();
        promise(env, async move { p.recall(&topic, &recall_handle).await }, identity)
    }

    /// Starts a transaction (needs `transactionChecker`).
    #[napi]
    pub fn begin_transaction(&self, env: Env) -> Result<Transaction> {
        let t = check(env, self.inner.begin_transaction())?;
        Ok(Transaction { inner: Arc::new(tokio::sync::Mutex::new(Some(t))) })
    }

    /// Stops the producer and releases the transaction checker, so the process can exit.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let (p, checker) = (self.inner.clone(), Arc::clone(&self.checker));
        promise(
            env,
            async move {
                p.shutdown().await;
                checker.release();
                Ok(())
            },
            identity,
        )
    }
}

/// A transaction: its messages are delivered on `commit`, dropped on `rollback`.
#[napi]
pub struct Transaction {
    inner: Arc<tokio::sync::Mutex<Option<core::Transaction>>>,
}

fn ended() -> core::Error {
    core::Error::new(ErrorKind::PreconditionFailed, "the transaction has already ended")
}

#[napi]
impl Transaction {
    /// Sends `message` as part of the transaction.
    #[napi]
    pub fn send<'e>(&self, env: &'e Env, message: Message) -> Result<PromiseRaw<'e, SendReceipt>> {
        let (t, m) = (Arc::clone(&self.inner), message.into());
        let fut = async move { t.lock().await.as_mut().ok_or_else(ended)?.send(m).await };
        promise(env, fut, SendReceipt::from)
    }

    /// Delivers the transaction's messages.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn commit<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let t = Arc::clone(&self.inner);
        promise(
            env,
            async move { t.lock().await.take().ok_or_else(ended)?.commit().await },
            identity,
        )
    }

    /// Drops the transaction's messages.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn rollback<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let t = Arc::clone(&self.inner);
        let fut = async move { t.lock().await.take().ok_or_else(ended)?.rollback().await };
        promise(env, fut, identity)
    }
}
