//! Completing asyncio futures from the runtime without taking the GIL there.
//!
//! A runtime worker that finishes an awaitable's work does not attach to Python (it would wait
//! for the GIL while the event loop's thread runs Python, and with two workers the runtime
//! would stall). It queues the result in its loop's [`Completer`] and, when the queue was
//! empty, writes a byte to a socket the loop watches (`loop.add_reader`). The loop's thread,
//! holding the GIL anyway, then converts every queued result and resolves the futures, many per
//! wake-up. Loops without `add_reader` (Windows' proactor) get each result through
//! `call_soon_threadsafe` instead.

use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;

/// Turns a finished awaitable's result into Python, on the loop's thread.
pub(crate) type Conversion = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// The results of one event loop's awaitables, waiting for the loop to take them.
#[pyclass(frozen, module = "orbitmq._orbitmq")]
pub(crate) struct Completer {
    done: Mutex<Vec<(Py<PyAny>, Conversion)>>,
    watched: UnixStream,
    wake: UnixStream,
}

#[pymethods]
impl Completer {
    #[new]
    fn new() -> PyResult<Completer> {
        let (watched, wake) = UnixStream::pair()?;
        watched.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        Ok(Completer { done: Mutex::new(Vec::new()), watched, wake })
    }

    /// The descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.watched.as_raw_fd()
    }

    /// Resolves every future whose result is queued (the loop calls it when woken).
    fn drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 64];
        while matches!((&self.watched).read(&mut buf), Ok(n) if n == buf.len()) {}
        let done = std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        for (fut, convert) in done {
            let fut = fut.bind(py);
            // Cancelled meanwhile: nobody waits for it.
            if fut.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true) {
                continue;
            }
            let _ = match convert(py) {
                Ok(value) => fut.call_method1("set_result", (value,)),
                Err(e) => fut.call_method1("set_exception", (e.into_value(py),)),
            };
        }
    }
}

impl Completer {
    /// Queues `fut`'s result; wakes the loop if nothing was queued before.
    pub(crate) fn push(&self, fut: Py<PyAny>, convert: Conversion) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let wake = done.is_empty();
        done.push((fut, convert));
        drop(done);
        if wake {
            // Full buffer: the loop has wake-ups pending already.
            let _ = (&self.wake).write(&[1]);
        }
    }
}
