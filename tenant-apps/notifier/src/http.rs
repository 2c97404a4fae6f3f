//! The internal HTTP endpoint on port 9100: `GET /healthz` (200 with the
//! [`tenant_schema::health::NotifierHealth`] line while checks complete,
//! 503 when none has completed for a while, e.g. Cassandra is away) and
//! `GET /metrics` (Prometheus text). The health answer costs no Cassandra
//! request: the loop's own checks are the probe. Two routes, no body
//! parsing, as in ingest: a few lines of HTTP/1.x over tokio instead of a
//! web framework keep the binary and its memory small.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown`.
/// Unhealthy when no check completed within `stale_after`.
pub async fn serve_http(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        handle(stream, &metrics, stale_after),
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

/// The `/healthz` answer: status and body.
pub fn health_answer(metrics: &Metrics, stale_after: Duration) -> (&'static str, String) {
    let last = metrics.last_check_ok.load(Ordering::Relaxed);
    let age = chrono::Utc::now().timestamp() - last;
    if last == 0 {
        (
            "503 Service Unavailable",
            "no check has completed yet\n".into(),
        )
    } else if age > stale_after.as_secs() as i64 {
        (
            "503 Service Unavailable",
            format!("no check has completed for {age} s\n"),
        )
    } else {
        ("200 OK", format!("{}\n", metrics.health()))
    }
}

async fn handle(
    mut stream: TcpStream,
    metrics: &Metrics,
    stale_after: Duration,
) -> std::io::Result<()> {
    let (method, path) = tenant_common::health::read_request_target(&mut stream).await?;
    let (status, content_type, body) = match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => {
            let (status, body) = health_answer(metrics, stale_after);
            (status, "text/plain", body)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_checks_complete() {
        let m = Metrics::default();
        let stale = Duration::from_secs(100);
        assert!(health_answer(&m, stale).0.starts_with("503"));
        m.last_check_ok
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        let (status, body) = health_answer(&m, stale);
        assert_eq!(status, "200 OK");
        assert!(body.starts_with("ok notifier mail=off"), "{body}");
        m.last_check_ok
            .store(chrono::Utc::now().timestamp() - 500, Ordering::Relaxed);
        assert!(health_answer(&m, stale).0.starts_with("503"));
    }
}
