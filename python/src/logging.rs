//! The SDK's `tracing` events, forwarded to Python's `logging` (logger `orbitmq`); nothing is
//! written anywhere else.
//!
//! An event is formatted where it happens and queued; a task of the package's runtime hands
//! the queue to Python on a blocking thread. So a runtime worker never waits for the GIL (a
//! Python thread holding it may be waiting for that worker), and the forwarding stops with the
//! runtime, before the interpreter finalises. Events below the `orbitmq` logger's effective
//! level (read again whenever a client is made) are never formatted.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The `orbitmq` logger's effective level, as Python numbers it (WARNING = 30).
static LEVEL: AtomicU8 = AtomicU8::new(30);
static QUEUE: Mutex<Option<UnboundedSender<(u8, String)>>> = Mutex::new(None);
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || {
            py.import("logging")?.call_method1("getLogger", ("orbitmq",)).map(Bound::unbind)
        })
        .map(|l| l.bind(py))
}

/// Reads the `orbitmq` logger's effective level again.
pub(crate) fn refresh_level(py: Python<'_>) {
    let level = logger(py).and_then(|l| l.call_method0("getEffectiveLevel")?.extract::<u8>());
    if let Ok(level) = level {
        LEVEL.store(level, Ordering::Relaxed);
    }
}

fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// Starts forwarding queued events to Python on `handle`'s runtime (ends with it).
pub(crate) fn start_forwarding(handle: &tokio::runtime::Handle) {
    let (tx, mut rx) = unbounded_channel::<(u8, String)>();
    *QUEUE.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
    handle.spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(next) = rx.try_recv() {
                batch.push(next);
            }
            let log = move || {
                Python::try_attach(|py| {
                    if let Ok(l) = logger(py) {
                        for (level, message) in batch {
                            let _ = l.call_method1("log", (level, message));
                        }
                    }
                });
            };
            let _ = tokio::task::spawn_blocking(log).await;
        }
    });
}

/// Stops queueing until a runtime forwards again (a child after `fork()`).
pub(crate) fn stop_forwarding() {
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner).take();
}

/// The layer queueing events of the `orbitmq_core` crate.
pub(crate) struct Forward;

fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("orbitmq")
}

impl<S: Subscriber> Layer<S> for Forward {
    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // The level can change at run time: ask each time.
        if ours(metadata) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        ours(metadata) && python_level(*metadata.level()) >= LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        let level = python_level(*event.metadata().level());
        if let Some(q) = QUEUE.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            let _ = q.send((level, text.0));
        }
    }
}

/// `message key=value …`.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Installs the layer as the process's `tracing` subscriber (unless one is set already).
pub(crate) fn install() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(Forward);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
