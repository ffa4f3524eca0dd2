//! `PushConsumer`, `SimpleConsumer` and `PullConsumer`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use std::convert::identity;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use orbitmq_core::client::{self as core, FilterExpression, OffsetStore};

use crate::error::{check, promise};
use crate::message::{
    Callback, ConsumeResult, ConsumerModel, Credentials, Held, MessageQueue, MessageView,
    connection, views,
};

fn ms(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

/// A tag expression (`*`, `A`, `A || B`; default `*`).
fn filter(expression: Option<String>) -> FilterExpression {
    FilterExpression::Tag(expression.unwrap_or_else(|| "*".to_owned()))
}

/// Bridges the core's listener to the JS one: anything but `SUCCESS` (a throw, a rejection,
/// another value) is a failure.
struct Listener(Arc<Held<ConsumeResult>>);

#[async_trait::async_trait]
impl core::MessageListener for Listener {
    async fn consume(&self, message: core::MessageView) -> core::ConsumeResult {
        match self.0.call(message).await {
            Ok(ConsumeResult::SUCCESS) => core::ConsumeResult::Success,
            _ => core::ConsumeResult::Failure,
        }
    }
}

/// How to build a push consumer.
#[napi(object, object_to_js = false)]
pub struct PushConsumerOptions {
    pub endpoints: String,
    pub namespace: Option<String>,
    pub credentials: Option<Credentials>,
    pub tls: Option<Either<bool, String>>,
    pub request_timeout: Option<u32>,
    pub group: String,
    /// Topic to tag expression (`*`, `A || B`).
    pub subscriptions: HashMap<String, String>,
    /// Consumes each message; a throw or a rejection counts as `FAILURE`.
    #[napi(ts_type = "(message: MessageView) => Promise<ConsumeResult> | ConsumeResult")]
    pub listener: Callback<ConsumeResult>,
    /// `CLUSTERING` (default) or `BROADCASTING`.
    pub model: Option<ConsumerModel>,
    /// Messages consumed at once (default 20).
    pub consumption_threads: Option<u32>,
    /// Messages held at most, received and not yet settled (default 1024).
    pub max_cached_messages: Option<u32>,
    /// Broadcasting: the directory this member keeps its positions in
    /// (default `~/.orbitmq/offsets/<instanceName>`).
    pub offset_store: Option<String>,
    /// Broadcasting: this member's name on its machine (default `default`).
    pub instance_name: Option<String>,
}

/// Receives a group's messages and hands each to the listener.
#[napi]
pub struct PushConsumer {
    inner: core::PushConsumer,
    listener: Arc<Held<ConsumeResult>>,
}

#[napi]
impl PushConsumer {
    #[napi(constructor)]
    pub fn new(env: Env, options: PushConsumerOptions) -> Result<PushConsumer> {
        let listener = Held::new(Some(options.listener));
        let mut b = core::PushConsumer::builder(connection!(options).config(), options.group)
            .listener(Arc::new(Listener(Arc::clone(&listener))))
            .model(options.model.map_or(core::ConsumerModel::Clustering, Into::into))
            .runtime(crate::runtime::handle());
        for (topic, expr) in options.subscriptions {
            b = b.subscribe(topic, filter(Some(expr)));
        }
        if let Some(n) = options.consumption_threads {
            b = b.consumption_threads(n as usize);
        }
        if let Some(n) = options.max_cached_messages {
            b = b.max_cached_messages(n as usize);
        }
        if let Some(dir) = options.offset_store {
            b = b.offset_store(OffsetStore::Local(dir.into()));
        }
        if let Some(name) = options.instance_name {
            b = b.instance_name(name);
        }
        Ok(PushConsumer { inner: check(env, b.build())?, listener })
    }

    /// Connects and starts consuming.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.start().await }, identity)
    }

    /// Subscribes to `topic` (or changes its filter).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn subscribe<'e>(
        &self,
        env: &'e Env,
        topic: String,
        expression: Option<String>,
    ) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.subscribe(&topic, filter(expression)).await }, identity)
    }

    /// Drops the subscription of `topic`.
    #[napi]
    pub fn unsubscribe(&self, topic: String) {
        self.inner.unsubscribe(&topic);
    }

    #[napi(getter)]
    pub fn group(&self) -> String {
        self.inner.group()
    }

    /// Messages received and not yet settled.
    #[napi(getter)]
    pub fn cached_messages(&self) -> u32 {
        self.inner.cached_messages() as u32
    }

    /// Stops consuming (listener calls in flight finish) and releases the listener, so the
    /// process can exit.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let (c, listener) = (self.inner.clone(), Arc::clone(&self.listener));
        let fut = async move {
            c.shutdown().await;
            listener.release();
            Ok(())
        };
        promise(env, fut, identity)
    }
}

/// How to build a simple consumer.
#[napi(object, object_to_js = false)]
pub struct SimpleConsumerOptions {
    pub endpoints: String,
    pub namespace: Option<String>,
    pub credentials: Option<Credentials>,
    pub tls: Option<Either<bool, String>>,
    pub request_timeout: Option<u32>,
    pub group: String,
    /// Topic to tag expression (`*`, `A || B`).
    pub subscriptions: Option<HashMap<String, String>>,
    /// How long a receive waits when there is nothing, in ms (default 20000).
    pub await_duration: Option<u32>,
}

/// Receives messages on demand and acknowledges each.
#[napi]
pub struct SimpleConsumer {
    inner: core::SimpleConsumer,
}

#[napi]
impl SimpleConsumer {
    #[napi(constructor)]
    pub fn new(env: Env, options: SimpleConsumerOptions) -> Result<SimpleConsumer> {
        let mut b = core::SimpleConsumer::builder(connection!(options).config(), options.group)
            .runtime(crate::runtime::handle());
        for (topic, expr) in options.subscriptions.unwrap_or_default() {
            b = b.subscribe(topic, filter(Some(expr)));
        }
        if let Some(d) = options.await_duration {
            b = b.await_duration(ms(d));
        }
        Ok(SimpleConsumer { inner: check(env, b.build())? })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.start().await }, identity)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn subscribe<'e>(
        &self,
        env: &'e Env,
        topic: String,
        expression: Option<String>,
    ) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.subscribe(&topic, filter(expression)).await }, identity)
    }

    #[napi]
    pub fn unsubscribe(&self, topic: String) {
        self.inner.unsubscribe(&topic);
    }

    #[napi(getter)]
    pub fn group(&self) -> String {
        self.inner.group()
    }

    /// Receives up to `max` messages (1 to 32), each invisible to the group for
    /// `invisibleDuration` ms unless acknowledged.
    #[napi]
    pub fn receive<'e>(
        &self,
        env: &'e Env,
        max: u32,
        invisible_duration: u32,
    ) -> Result<PromiseRaw<'e, Vec<MessageView>>> {
        let c = self.inner.clone();
        promise(env, async move { c.receive(max, ms(invisible_duration)).await }, views)
    }

    /// Acknowledges `message`: consumed, not to be redelivered.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn ack<'e>(&self, env: &'e Env, message: &MessageView) -> Result<PromiseRaw<'e, ()>> {
        let (c, m) = (self.inner.clone(), message.snapshot());
        promise(env, async move { c.ack(&m).await }, identity)
    }

    /// Acknowledges `messages` in as few requests as possible.
    #[napi(ts_args_type = "messages: MessageView[]", ts_return_type = "Promise<void>")]
    pub fn ack_batch<'e>(
        &self,
        env: &'e Env,
        messages: Vec<ClassInstance<'e, MessageView>>,
    ) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        let list: Vec<core::MessageView> = messages.iter().map(|m| m.snapshot()).collect();
        promise(env, async move { c.ack_batch(&list).await }, identity)
    }

    /// Makes `message` invisible for `duration` ms from now; answers its new receipt handle,
    /// which the message keeps for later acks.
    #[napi]
    pub fn change_invisible_duration<'e>(
        &self,
        env: &'e Env,
        message: &MessageView,
        duration: u32,
    ) -> Result<PromiseRaw<'e, String>> {
        let (c, view) = (self.inner.clone(), message.clone());
        let fut = async move {
            let mut m = view.snapshot();
            let handle = c.change_invisible_duration(&mut m, ms(duration)).await?;
            *view.get() = m;
            Ok(handle)
        };
        promise(env, fut, identity)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(
            env,
            async move {
                c.shutdown().await;
                Ok(())
            },
            identity,
        )
    }
}

/// How to build a pull consumer.
#[napi(object, object_to_js = false)]
pub struct PullConsumerOptions {
    pub endpoints: String,
    pub namespace: Option<String>,
    pub credentials: Option<Credentials>,
    pub tls: Option<Either<bool, String>>,
    pub request_timeout: Option<u32>,
    pub group: String,
    /// Topic to tag expression (`*`, `A || B`).
    pub subscriptions: Option<HashMap<String, String>>,
    /// A directory to keep positions in on this machine (default: on the broker, as the
    /// group's offsets).
    pub offset_store: Option<String>,
    /// How often positions are committed, in ms (default 5000; 0: only by `commit`).
    pub auto_commit_interval: Option<u32>,
    /// Messages one pull asks for at most (default 32).
    pub max_batch: Option<u32>,
}

/// Polls the queues it subscribes to or is assigned, from positions it keeps.
#[napi]
pub struct PullConsumer {
    inner: core::PullConsumer,
}

#[napi]
impl PullConsumer {
    #[napi(constructor)]
    pub fn new(env: Env, options: PullConsumerOptions) -> Result<PullConsumer> {
        let mut b = core::PullConsumer::builder(connection!(options).config(), options.group)
            .runtime(crate::runtime::handle());
        for (topic, expr) in options.subscriptions.unwrap_or_default() {
            b = b.subscribe(topic, filter(Some(expr)));
        }
        if let Some(dir) = options.offset_store {
            b = b.offset_store(OffsetStore::Local(dir.into()));
        }
        if let Some(i) = options.auto_commit_interval {
            b = b.auto_commit_interval(ms(i));
        }
        if let Some(n) = options.max_batch {
            b = b.max_batch(n);
        }
        Ok(PullConsumer { inner: check(env, b.build())? })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.start().await }, identity)
    }

    #[napi(getter)]
    pub fn group(&self) -> String {
        self.inner.group()
    }

    /// Subscribes to `topic`: the group's queues of it are shared among its members.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn subscribe<'e>(
        &self,
        env: &'e Env,
        topic: String,
        expression: Option<String>,
    ) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.subscribe(&topic, filter(expression)).await }, identity)
    }

    /// Reads exactly these queues (no sharing with other members).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn assign<'e>(
        &self,
        env: &'e Env,
        queues: Vec<MessageQueue>,
    ) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        let list = queues.into_iter().map(Into::into).collect();
        promise(env, async move { c.assign(list).await }, identity)
    }

    /// The queues this consumer reads now.
    #[napi]
    pub fn assignment(&self) -> Vec<MessageQueue> {
        self.inner.assignment().into_iter().map(Into::into).collect()
    }

    /// The queues of `topic`.
    #[napi]
    pub fn queues<'e>(
        &self,
        env: &'e Env,
        topic: String,
    ) -> Result<PromiseRaw<'e, Vec<MessageQueue>>> {
        let c = self.inner.clone();
        promise(env, async move { c.queues(&topic).await }, |q| {
            q.into_iter().map(Into::into).collect()
        })
    }

    /// The next offset read from `queue`, if it is assigned.
    #[napi]
    pub fn position(&self, queue: MessageQueue) -> Option<i64> {
        self.inner.position(&queue.into())
    }

    /// The messages available within `timeout` ms (an empty list when none came).
    #[napi]
    pub fn poll<'e>(&self, env: &'e Env, timeout: u32) -> Result<PromiseRaw<'e, Vec<MessageView>>> {
        let c = self.inner.clone();
        promise(env, async move { c.poll(ms(timeout)).await }, views)
    }

    /// Commits the positions of what `poll` returned.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn commit<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.commit().await }, identity)
    }

    /// Reads `queue` from `offset` next.
    #[napi]
    pub fn seek(&self, env: Env, queue: MessageQueue, offset: i64) -> Result<()> {
        check(env, self.inner.seek(&queue.into(), offset))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn seek_to_beginning<'e>(&self, env: &'e Env, topic: String) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.seek_to_beginning(&topic).await }, identity)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn seek_to_end<'e>(&self, env: &'e Env, topic: String) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.seek_to_end(&topic).await }, identity)
    }

    /// Reads each queue of `topic` from the first message stored at or after `timestamp` (ms).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn seek_to_timestamp<'e>(
        &self,
        env: &'e Env,
        topic: String,
        timestamp: i64,
    ) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.seek_to_timestamp(&topic, timestamp).await }, identity)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let c = self.inner.clone();
        promise(
            env,
            async move {
                c.shutdown().await;
                Ok(())
            },
            identity,
        )
    }
}
