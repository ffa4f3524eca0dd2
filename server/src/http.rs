//! The HTTP listener beside the gRPC port (`--metrics-listen`, default 127.0.0.1:5557):
//! `GET /metrics` (Prometheus/OpenMetrics text, RocketMQ 5's metric names) and `GET /health`
//! (200 once the broker serves, 503 while it starts or stops).

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use orbitmq_core::broker::Broker;

/// What `/health` and `/metrics` answer from: empty until the broker serves.
#[derive(Debug, Clone, Default)]
pub struct Health {
    broker: Arc<RwLock<Option<Broker>>>,
}

impl Health {
    /// The broker serves clients from now on.
    pub fn ready(&self, broker: &Broker) {
        *self.broker.write().unwrap_or_else(PoisonError::into_inner) = Some(broker.clone());
    }

    /// The broker stopped serving (a restart: `/health` answers 503 until it is back).
    pub fn down(&self) {
        *self.broker.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The broker, while it serves.
    pub fn broker(&self) -> Option<Broker> {
        self.broker.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Binds `addr` now (so a taken port fails the start), then serves until `shutdown`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "binding the metrics listener {addr} (is another server using it? \
             --metrics-listen picks another address, `off` disables it)"
        )
    })
}

/// Serves `/metrics` and `/health` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health_check))
        .with_state(health);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn health_check(State(health): State<Health>) -> Response {
    match health.broker() {
        Some(b) if b.is_stopping() => {
            (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
        }
        Some(_) => (StatusCode::OK, "ready\n").into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response(),
    }
}

async fn metrics(State(health): State<Health>) -> Response {
    let Some(broker) = health.broker() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    // Scrapes read consumer and storage state: off the async threads.
    match tokio::task::spawn_blocking(move || broker.render_metrics()).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering metrics failed: {e}\n"))
            .into_response(),
    }
}
