//! SDK errors as Python exceptions: one class per `ErrorKind`, all under `OrbitMQError`
//! (`orbitmq/exceptions.py` defines them; `_make` picks the class by the kind's stable name).

use orbitmq_core::client::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static MAKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The Python exception for `e`: its kind's class, with `.kind`, `.code` (the RocketMQ status
/// code, when a server answered one), `.operation` and `.endpoint`.
#[allow(clippy::needless_pass_by_value)] // the shape `map_err` calls
pub(crate) fn to_py(e: Error) -> PyErr {
    Python::attach(|py| {
        let made = MAKE.import(py, "orbitmq.exceptions", "_make").and_then(|make| {
            make.call1((
                e.kind().as_str(),
                e.to_string(),
                e.status_code(),
                e.operation(),
                e.endpoint(),
            ))
        });
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        }
    })
}

/// A `BadRequestError` saying `message`: an argument Python handed over does not convert.
pub(crate) fn bad_arg(message: impl Into<String>) -> PyErr {
    to_py(Error::new(ErrorKind::BadRequest, message))
}

/// The stable names of every error kind, in number order (the tests check each has a class).
#[pyfunction]
pub(crate) fn error_kinds() -> Vec<(&'static str, u16)> {
    ErrorKind::ALL.iter().map(|k| (k.as_str(), k.code())).collect()
}
