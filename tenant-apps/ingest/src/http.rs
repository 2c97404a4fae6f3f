//! The internal HTTP endpoint: `GET /healthz` (200 when Cassandra answers a
//! read on the tenant keyspace, with the line of
//! [`tenant_schema::health::IngestHealth`]: open connections by transport
//! and the limits; else 503) and `GET /metrics` (Prometheus
//! text). Two routes, no body parsing: a few lines of HTTP/1.x over tokio
//! keep the binary small instead of pulling in a web framework.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown`.
pub async fn serve_http(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let store = store.clone();
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        handle(stream, &store, &metrics),
                    )
                    .await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, store: &Store, metrics: &Metrics) -> std::io::Result<()> {
    let (method, path) = tenant_common::health::read_request_target(&mut stream).await?;
    let (status, content_type, body) = match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => match store.ping().await {
            // the live counters, for the health log (tenant_schema::health)
            Ok(()) => ("200 OK", "text/plain", format!("{}\n", metrics.health())),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "use GET\n".to_owned(),
        ),
    };
    tenant_common::health::write_response(&mut stream, status, content_type, &body).await
}
