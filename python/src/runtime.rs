//! The package's own Tokio runtime, and the two ways Python waits on it: blocking (the GIL
//! released) and awaitable (an asyncio future completed from the runtime).
//!
//! Why not pyo3-async-runtimes' global runtime: it is never shut down, so its worker threads
//! may still touch Python while the interpreter finalises, and a process that awaits a future
//! and exits straight away aborts or segfaults now and then (PyO3/pyo3-async-runtimes#40).
//! Here every client holds a [`Lease`] on the runtime: the first lease starts it, the last one
//! released shuts it down and waits for its threads, and `shutdown_all` (registered with
//! `atexit` by `orbitmq/__init__.py`) closes the clients still open and shuts the runtime down
//! before the interpreter finalises. Afterwards the package refuses new work with
//! `ClosedError` instead of touching a runtime that is gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orbitmq_core::client::{Error, ErrorKind};
use pyo3::IntoPyObjectExt as _;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::runtime::{Handle, Runtime};

use crate::bridge::{Completer, Conversion};
use crate::error::to_py;

/// How long a shutdown waits for the runtime's threads (a listener still running, say).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

type Closer = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
struct State {
    runtime: Option<Runtime>,
    /// Leases held: open clients and awaitables in flight.
    users: usize,
    /// How open clients are shut down at exit, by lease id.
    closers: BTreeMap<u64, Closer>,
    next_id: u64,
    /// Set at exit: no runtime any more.
    finished: bool,
    /// Threads shutting a runtime down (a lease released on one of its own workers).
    retiring: Vec<std::thread::JoinHandle<()>>,
    /// Bumped in a child after `fork()`: leases of an earlier generation name a runtime whose
    /// threads the child does not have.
    generation: u64,
}

static STATE: Mutex<State> = Mutex::new(State {
    runtime: None,
    users: 0,
    closers: BTreeMap::new(),
    next_id: 0,
    finished: false,
    retiring: Vec::new(),
    generation: 0,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the orbitmq runtime was shut down (the interpreter is exiting)")
}

/// A hold on the runtime: it runs while any lease is held.
pub(crate) struct Lease {
    id: u64,
    generation: u64,
    handle: Handle,
}

impl Lease {
    /// A lease for one awaitable in flight.
    fn task() -> Result<Lease, Error> {
        Lease::acquire(None)
    }

    fn acquire(closer: Option<Closer>) -> Result<Lease, Error> {
        let mut st = state();
        if st.finished {
            return Err(closed());
        }
        if st.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("orbitmq-rt")
                .thread_keep_alive(Duration::from_secs(2))
                .enable_all()
                .build()
                .map_err(|e| {
                    Error::new(ErrorKind::Internal, format!("starting the runtime: {e}"))
                })?;
            crate::logging::start_forwarding(rt.handle());
            st.runtime = Some(rt);
        }
        let handle = st.runtime.as_ref().map(|rt| rt.handle().clone()).ok_or_else(closed)?;
        st.users += 1;
        st.next_id += 1;
        let id = st.next_id;
        if let Some(c) = closer {
            st.closers.insert(id, c);
        }
        Ok(Lease { id, generation: st.generation, handle })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Sets how the client is closed at exit.
    pub(crate) fn set_closer(&self, closer: Closer) {
        state().closers.insert(self.id, closer);
    }
}

/// A client's lease: held from construction to `close()` (or garbage collection).
pub(crate) struct ClientLease(Mutex<Option<Lease>>);

impl ClientLease {
    /// A new lease, and the runtime handle to build the client on.
    pub(crate) fn new() -> PyResult<(ClientLease, Handle)> {
        let lease = Lease::acquire(None).map_err(to_py)?;
        let handle = lease.handle.clone();
        Ok((ClientLease(Mutex::new(Some(lease))), handle))
    }

    /// Has `close` shut the client down at exit (when it is still open then).
    pub(crate) fn on_exit<F, Fut>(&self, close: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(l) = self.0.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            l.set_closer(Arc::new(move || Box::pin(close())));
        }
    }

    /// The runtime, or `ClosedError` once the client is closed or the interpreter exits.
    pub(crate) fn handle(&self, what: &str) -> PyResult<Handle> {
        // The locks are released before an exception is made: making it runs Python, whose
        // garbage collector may drop another client, whose lease takes the state lock.
        let found = {
            let lease = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let st = state();
            lease.as_ref().map(|l| (l.handle.clone(), st.generation == l.generation, st.finished))
        };
        match found {
            Some((handle, true, false)) => Ok(handle),
            Some((_, false, _)) => Err(to_py(Error::new(
                ErrorKind::Closed,
                format!("the {what} was made before os.fork(): make a new one in this process"),
            ))),
            Some(_) => Err(to_py(closed())),
            None => Err(to_py(Error::new(ErrorKind::Closed, format!("the {what} was closed")))),
        }
    }

    /// The lease, taken by `close` (`None` when closed already).
    pub(crate) fn take(&self) -> Option<Lease> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let rt = {
            let mut st = state();
            if st.generation != self.generation {
                return; // made before fork(): the runtime is not this process's
            }
            st.closers.remove(&self.id);
            st.users -= 1;
            if st.users > 0 {
                return;
            }
            st.runtime.take()
        };
        let Some(rt) = rt else { return };
        if Handle::try_current().is_ok() {
            // On one of the runtime's own threads (an awaitable's task ending): it cannot wait
            // for itself, so another thread does; exit waits for that thread.
            let t = std::thread::Builder::new()
                .name("orbitmq-retire".to_owned())
                .spawn(move || rt.shutdown_timeout(SHUTDOWN_WAIT));
            let Ok(t) = t else { return };
            let mut st = state();
            st.retiring.retain(|t| !t.is_finished());
            st.retiring.push(t);
        } else {
            // A Python thread, maybe holding the GIL that a worker waits for: release it.
            let mut rt = Some(rt);
            Python::try_attach(|py| {
                py.detach(|| rt.take().map(|rt| rt.shutdown_timeout(SHUTDOWN_WAIT)));
            });
            if let Some(rt) = rt {
                rt.shutdown_timeout(SHUTDOWN_WAIT);
            }
        }
    }
}

/// Closes every client still open, then shuts the runtime down and waits for its threads;
/// afterwards nothing new starts. Registered with `atexit`; safe to call twice.
#[pyfunction]
pub(crate) fn shutdown_all(py: Python<'_>) {
    let (closers, handle) = {
        let mut st = state();
        st.finished = true;
        let closers: Vec<Closer> = st.closers.values().cloned().collect();
        (closers, st.runtime.as_ref().map(|rt| rt.handle().clone()))
    };
    py.detach(|| {
        if let Some(h) = handle {
            h.block_on(async {
                let all = closers.iter().map(|c| c());
                let _ = tokio::time::timeout(SHUTDOWN_WAIT, futures_join_all(all)).await;
            });
        }
        let (rt, retiring) = {
            let mut st = state();
            (st.runtime.take(), std::mem::take(&mut st.retiring))
        };
        if let Some(rt) = rt {
            rt.shutdown_timeout(SHUTDOWN_WAIT);
        }
        for t in retiring {
            let _ = t.join();
        }
    });
}

/// In a child after `fork()`: forgets the parent's runtime (its threads were not copied, so it
/// can neither run nor be shut down) and the parent's clients, which now raise `ClosedError`;
/// new clients start a runtime of the child's own. Registered with `os.register_at_fork`.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    let mut st = state();
    std::mem::forget(st.runtime.take());
    std::mem::forget(std::mem::take(&mut st.closers));
    std::mem::forget(std::mem::take(&mut st.retiring));
    st.users = 0;
    st.generation += 1;
    crate::logging::stop_forwarding();
}

/// Awaits every future, concurrently, on the current task.
async fn futures_join_all<F: Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    // Few clients: poll them together with a select-free join.
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
}

/// Runs `fut` on the runtime and waits for it with the GIL released.
pub(crate) fn wait<T, F>(py: Python<'_>, handle: &Handle, fut: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = Result<T, Error>> + Send,
{
    py.detach(|| handle.block_on(fut)).map_err(to_py)
}

/// An asyncio future of the running loop that `fut`, spawned on the runtime, completes.
/// Cancelling the asyncio future aborts the task.
pub(crate) fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let prepare = PREPARE.import(py, "orbitmq._bridge", "prepare")?;
    let (py_fut, completer, event_loop): (Bound<'py, PyAny>, Option<Py<Completer>>, Py<PyAny>) =
        prepare.call0()?.extract()?;
    let lease = Lease::task().map_err(to_py)?;
    let target = py_fut.clone().unbind();
    let handle = lease.handle().clone();
    let task = handle.spawn(async move {
        let out = fut.await;
        let convert: Conversion = Box::new(move |py| match out {
            Ok(v) => v.into_py_any(py),
            Err(e) => Err(to_py(e)),
        });
        match completer {
            Some(c) => c.get().push(target, convert),
            None => call_soon(&event_loop, target, convert),
        }
        drop(lease);
    });
    let abort = AbortOnCancel { task: task.abort_handle() };
    py_fut.call_method1("add_done_callback", (abort,))?;
    Ok(py_fut)
}

static COMPLETE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PREPARE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Resolves `target` through `call_soon_threadsafe` (loops that cannot watch a descriptor).
fn call_soon(event_loop: &Py<PyAny>, target: Py<PyAny>, convert: Conversion) {
    Python::try_attach(|py| {
        let (ok, value) = match convert(py) {
            Ok(v) => (true, v),
            Err(e) => (false, e.into_value(py).into_any()),
        };
        let complete = COMPLETE
            .get_or_try_init(py, || wrap_pyfunction!(complete, py).map(|f| f.into_any().unbind()));
        if let Ok(complete) = complete {
            // A closed loop refuses: nobody is waiting any more.
            let _ =
                event_loop.call_method1(py, "call_soon_threadsafe", (complete, target, ok, value));
        }
    });
}

/// Sets the result or exception of `fut` unless it is done (cancelled) already.
#[pyfunction]
fn complete(fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        fut.call_method1("set_result", (value,))?;
    } else {
        fut.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Aborts an awaitable's task when its asyncio future is cancelled.
#[pyclass(frozen)]
struct AbortOnCancel {
    task: tokio::task::AbortHandle,
}

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.task.abort();
        }
        Ok(())
    }
}

/// Whether the runtime runs now (a client is open or an awaitable in flight), for the tests.
#[pyfunction]
pub(crate) fn runtime_running() -> bool {
    state().runtime.is_some()
}
