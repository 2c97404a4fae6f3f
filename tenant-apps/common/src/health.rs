//! A tiny blocking HTTP/1.0 GET, for the `healthcheck` subcommands that
//! Docker's HEALTHCHECK runs inside scratch images (which have no curl),
//! and the two halves of the internal endpoints' HTTP/1.x (request line in,
//! one answer out) that ingest and the notifier serve.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no valid HTTP answer from {addr}{path}: {why}")]
    BadAnswer {
        addr: String,
        path: String,
        why: String,
    },
    #[error("{addr}{path} answered {status_line:?}")]
    Unhealthy {
        addr: String,
        path: String,
        status_line: String,
    },
}

/// `GET path` on `addr` (`host:port`; `0.0.0.0` is replaced by `127.0.0.1`,
/// so a listen address can be passed as is). Ok only on a 2xx answer within
/// a few seconds.
pub fn http_healthcheck(addr: &str, path: &str) -> Result<(), HealthcheckError> {
    http_get(addr, path).map(|_| ())
}

/// [`http_healthcheck`], answering the body of the 2xx answer (at most
/// 64 KiB of it, lossily decoded as UTF-8).
pub fn http_get(addr: &str, path: &str) -> Result<String, HealthcheckError> {
    let timeout = Duration::from_secs(3);
    let target = addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let sockaddrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|source| HealthcheckError::Resolve {
            addr: addr.to_owned(),
            source,
        })?
        .collect();
    let first = sockaddrs.first().ok_or_else(|| HealthcheckError::Resolve {
        addr: addr.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })?;
    let connect_err = |source| HealthcheckError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let mut stream = TcpStream::connect_timeout(first, timeout).map_err(connect_err)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(connect_err)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(connect_err)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(connect_err)?;
    let mut answer = Vec::new();
    // The server closes after its answer; read until EOF (or 64 KiB).
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > 64 * 1024 {
                    break;
                }
            }
            // a server that keeps the connection open: what came is the answer
            Err(_) if answer.contains(&b'\n') => break,
            Err(e) => {
                return Err(HealthcheckError::BadAnswer {
                    addr: addr.to_owned(),
                    path: path.to_owned(),
                    why: e.to_string(),
                })
            }
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or("").trim().to_owned();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| HealthcheckError::BadAnswer {
            addr: addr.to_owned(),
            path: path.to_owned(),
            why: format!("status line {status_line:?}"),
        })?;
    if (200..300).contains(&code) {
        let body = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .map_or("", |(_, body)| body);
        Ok(body.to_owned())
    } else {
        Err(HealthcheckError::Unhealthy {
            addr: addr.to_owned(),
            path: path.to_owned(),
            status_line,
        })
    }
}

/// The server side of the internal endpoints: the request line of one
/// HTTP/1.x request on `stream` (headers read and dropped, at most 8 KiB),
/// as `(method, path without query)`; empty strings for a request that
/// ends early.
pub async fn read_request_target(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<(String, String)> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n")
    {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > 8192 {
            break;
        }
    }
    let line = request.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned();
    Ok((method, path))
}

/// Writes one complete answer (`status` such as `200 OK`) and closes.
pub async fn write_response(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(answer.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn a_200_answer_is_healthy() {
        let addr = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        http_healthcheck(&addr, "/healthz").unwrap();
    }

    #[test]
    fn the_body_of_a_200_answer_is_returned() {
        let addr = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nok 1 2 3\n");
        assert_eq!(http_get(&addr, "/healthz").unwrap(), "ok 1 2 3\n");
    }

    #[test]
    fn a_503_answer_is_unhealthy() {
        let addr = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = http_healthcheck(&addr, "/healthz").unwrap_err();
        assert!(matches!(err, HealthcheckError::Unhealthy { .. }), "{err}");
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = http_healthcheck(&addr, "/healthz").unwrap_err();
        assert!(matches!(err, HealthcheckError::Connect { .. }), "{err}");
    }
}
