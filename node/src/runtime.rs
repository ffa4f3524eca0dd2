//! The runtime the clients run on (napi's tokio runtime) and logging.
//!
//! The core logs through `tracing`. One subscriber per process sends each record either to
//! stderr (the default: warnings and errors) or to the JS function given to `setLogger`.
//! Nothing is ever written to files.

use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::runtime::Handle;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// The handle of napi's tokio runtime, given to every client builder.
pub fn handle() -> Handle {
    within_runtime_if_available(Handle::current)
}

/// A JS logger: called with `(level, message)`, never keeping the process alive.
type JsLogger = ThreadsafeFunction<LogRecord, (), LogRecord, Status, false, true>;

/// One log record, as a JS logger gets it.
#[napi(object)]
pub struct LogRecord {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The module the record came from (`orbitmq_core::client::push_consumer`, …).
    pub target: String,
    /// The formatted message with its fields.
    pub message: String,
}

struct Logging {
    level: reload::Handle<LevelFilter, tracing_subscriber::Registry>,
    logger: Mutex<Option<JsLogger>>,
}

static LOGGING: OnceLock<Logging> = OnceLock::new();

fn logging() -> &'static Logging {
    LOGGING.get_or_init(|| {
        let (filter, level) = reload::Layer::new(LevelFilter::WARN);
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(Sink)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false);
        let _ = tracing_subscriber::registry().with(filter).with(fmt).try_init();
        Logging { level, logger: Mutex::new(None) }
    })
}

#[napi_derive::module_init]
fn init() {
    logging();
}

/// Sends the SDK's log records to `logger` (`null`: back to stderr) from `level` up
/// (`error`, `warn`, `info`, `debug`, `trace` or `off`; default `warn`).
#[napi(ts_args_type = "logger: ((record: LogRecord) => void) | null, level?: string")]
pub fn set_logger(env: Env, logger: Option<JsLogger>, level: Option<String>) -> Result<()> {
    let level: LevelFilter = level.as_deref().unwrap_or("warn").parse().map_err(|_| {
        crate::error::to_js(
            env,
            &crate::error::bad_request("level is error, warn, info, debug, trace or off"),
        )
    })?;
    let l = logging();
    l.level.modify(|f| *f = level).map_err(|e| Error::from_reason(e.to_string()))?;
    *l.logger.lock().unwrap_or_else(PoisonError::into_inner) = logger;
    Ok(())
}

/// Where the formatted records go: the JS logger if one is set, else stderr.
struct Sink;

struct Line {
    level: tracing::Level,
    target: String,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { level: tracing::Level::WARN, target: String::new(), buf: Vec::new() }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line { level: *meta.level(), target: meta.target().to_owned(), buf: Vec::new() }
    }
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf).trim_end().to_owned();
        let level = self.level.as_str().to_ascii_lowercase();
        let logger = LOGGING.get().map(|l| l.logger.lock().unwrap_or_else(PoisonError::into_inner));
        match logger.as_deref() {
            Some(Some(f)) => {
                let record =
                    LogRecord { level, target: std::mem::take(&mut self.target), message: text };
                f.call(record, ThreadsafeFunctionCallMode::NonBlocking);
            }
            _ => {
                let _ = writeln!(std::io::stderr(), "orbitmq {level} {}: {text}", self.target);
            }
        }
    }
}
