//! What every client class has in common, written once: `start`/`close` (and their `_async`
//! twins) and the context-manager protocol, `with` and `async with`. The class's own methods
//! go in the same `#[pymethods]` block (`PyO3` allows one per class).

/// `#[pymethods] impl $ty { <lifecycle methods> $methods }` for a client with fields `inner`
/// (a core handle with `start` and `shutdown`) and `lease` (its [`crate::runtime::ClientLease`]).
macro_rules! client_methods {
    ($ty:ident, $what:literal, { $($methods:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($methods)*

            /// Connects (and, for a push consumer, starts consuming). `with` does it too.
            fn start(&self, py: Python<'_>) -> PyResult<()> {
                $crate::runtime::wait(py, &self.lease.handle($what)?, self.inner.start())
            }

            fn start_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.lease.handle($what)?;
                let c = self.inner.clone();
                $crate::runtime::awaitable(py, async move { c.start().await })
            }

            /// Shuts the client down; later calls raise `ClosedError`. Idempotent.
            fn close(&self, py: Python<'_>) -> PyResult<()> {
                if let Some(lease) = self.lease.take() {
                    let c = self.inner.clone();
                    let stop = async move { c.shutdown().await; Ok::<(), orbitmq_core::client::Error>(()) };
                    $crate::runtime::wait(py, lease.handle(), stop)?;
                }
                Ok(())
            }

            fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let (c, lease) = (self.inner.clone(), self.lease.take());
                $crate::runtime::awaitable(py, async move {
                    if lease.is_some() {
                        c.shutdown().await;
                    }
                    drop(lease);
                    Ok(())
                })
            }

            fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
                slf.get().start(slf.py())?;
                Ok(slf)
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
                self.close(py)
            }

            fn __aenter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
                slf.get().lease.handle($what)?;
                let (c, me) = (slf.get().inner.clone(), slf.clone().unbind());
                $crate::runtime::awaitable(slf.py(), async move { c.start().await.map(|()| me) })
            }

            #[pyo3(signature = (*_args))]
            fn __aexit__<'py>(
                &self,
                py: Python<'py>,
                _args: &Bound<'py, pyo3::types::PyTuple>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.close_async(py)
            }
        }
    };
}

pub(crate) use client_methods;
