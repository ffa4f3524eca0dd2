//! The binding's own Tokio runtime, and the wrapper that lets a foreign garbage collector drop
//! an SDK handle on any thread.
//!
//! `UniFFI`'s foreign executors (Kotlin coroutines, Swift tasks) poll the futures of async
//! methods; [`run`] spawns the SDK's future onto this runtime and awaits its `JoinHandle`,
//! which any executor may poll (uniffi-rs `docs/manual/src/futures.md`). The runtime lives
//! for the whole process: the JVM and Swift never unload the library.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use orbitmq_core::client::{Error, ErrorKind};
use tokio::runtime::{Handle, Runtime};

use crate::error::OrbitMqError;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// SDK handles alive (objects not yet dropped): see [`live_handles`].
static LIVE: AtomicU64 = AtomicU64::new(0);

/// The runtime, started on first use.
pub(crate) fn handle() -> &'static Handle {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("orbitmq")
                .enable_all()
                .build()
                .expect("the orbitmq runtime starts (threads and an I/O driver)")
        })
        .handle()
}

/// Runs `future` on the runtime; the caller's executor awaits its end.
pub(crate) async fn run<T, F>(future: F) -> Result<T, OrbitMqError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    match handle().spawn(future).await {
        Ok(result) => result.map_err(OrbitMqError::from),
        Err(e) => Err(Error::new(ErrorKind::Internal, format!("the call panicked: {e}")).into()),
    }
}

/// An SDK handle that is dropped inside the runtime, whichever thread drops it: a JVM cleaner
/// thread or a Swift `deinit` has no runtime, and dropping a connection or a cancellation
/// guard there must not panic (matrix-rust-sdk's `AsyncRuntimeDropped`).
pub(crate) struct Guarded<T>(Option<T>);

impl<T> Guarded<T> {
    pub(crate) fn new(inner: T) -> Guarded<T> {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Guarded(Some(inner))
    }
}

impl<T> std::ops::Deref for Guarded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("only Drop takes the handle")
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let _entered = handle().enter();
        drop(self.0.take());
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many OrbitMQ objects (producers, consumers, admins, transactions) are alive in native
/// memory: for leak checks. An object counts until `close()` (Kotlin) or the garbage collector
/// releases it.
#[uniffi::export]
pub fn live_handles() -> u64 {
    LIVE.load(Ordering::Relaxed)
}
