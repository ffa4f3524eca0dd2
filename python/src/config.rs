//! `ClientConfig`, and the keyword arguments every client takes instead of one
//! (`endpoints=`, `namespace=`, `credentials=`, `tls=`, `request_timeout=`).

use std::path::PathBuf;
use std::time::Duration;

use orbitmq_core::client::{self as core, ClientTls, Credentials};
use pyo3::prelude::*;

use crate::error::bad_arg;

/// Seconds (a float) as a `Duration`; `name` says which argument was wrong.
pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| bad_arg(format!("{name} must be a number of seconds >= 0, not {value}")))
}

/// `tls=`: `False`/`None` plaintext, `True` TLS accepting any certificate, a path: TLS
/// verified against the CA certificates in that PEM file.
#[derive(FromPyObject)]
pub(crate) enum TlsArg {
    Flag(bool),
    Ca(PathBuf),
}

impl TlsArg {
    fn to_core(&self) -> ClientTls {
        match self {
            TlsArg::Flag(false) => ClientTls::Off,
            TlsArg::Flag(true) => ClientTls::AcceptAny,
            TlsArg::Ca(path) => ClientTls::Ca(path.clone()),
        }
    }
}

/// Where the servers are and how to talk to them; shared by every client.
#[pyclass(frozen, module = "orbitmq", from_py_object)]
#[derive(Clone)]
pub(crate) struct ClientConfig {
    pub(crate) inner: core::ClientConfig,
}

#[pymethods]
impl ClientConfig {
    #[new]
    #[pyo3(signature = (endpoints, *, namespace = String::new(), credentials = None, request_timeout = 3.0, tls = None))]
    fn new(
        endpoints: String,
        namespace: String,
        credentials: Option<(String, String)>,
        request_timeout: f64,
        tls: Option<TlsArg>,
    ) -> PyResult<ClientConfig> {
        let mut c = core::ClientConfig::new(endpoints)
            .namespace(namespace)
            .request_timeout(seconds("request_timeout", request_timeout)?);
        if let Some((access_key, secret_key)) = credentials {
            c = c.credentials(Credentials::new(access_key, secret_key));
        }
        if let Some(tls) = tls {
            c = c.tls(tls.to_core());
        }
        c.validate().map_err(crate::error::to_py)?;
        Ok(ClientConfig { inner: c })
    }

    #[getter]
    fn endpoints(&self) -> &str {
        &self.inner.endpoints
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    #[getter]
    fn request_timeout(&self) -> f64 {
        self.inner.request_timeout.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "ClientConfig(endpoints={:?}, namespace={:?})",
            self.inner.endpoints, self.inner.namespace
        )
    }
}

/// The config a client was given: `config=`, or built from `endpoints=` and the rest.
pub(crate) fn resolve(
    config: Option<ClientConfig>,
    endpoints: Option<String>,
    namespace: String,
    credentials: Option<(String, String)>,
    request_timeout: f64,
    tls: Option<TlsArg>,
) -> PyResult<core::ClientConfig> {
    match (config, endpoints) {
        (Some(c), None) => Ok(c.inner),
        (None, Some(e)) => {
            ClientConfig::new(e, namespace, credentials, request_timeout, tls).map(|c| c.inner)
        }
        (Some(_), Some(_)) => Err(bad_arg("give either config or endpoints, not both")),
        (None, None) => Err(bad_arg("give config=ClientConfig(...) or endpoints=\"host:port\"")),
    }
}
