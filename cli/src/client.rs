//! The daemon's client: `--server unix:///run/provision/provisiond.sock`,
//! `http://host:7070` or `https://host:7070` (or `PROVISION_SERVER`), with
//! an operator token on TCP (`PROVISION_TOKEN`). One HTTP/1.1 request per
//! connection (hyper); a problem document comes back as a
//! [`RemoteError`] with the daemon's error kind and exit code, so the CLI
//! ends the same way it would have locally. For `https`, the server's
//! certificate is checked against `PROVISION_CACERT` (a PEM file) or the
//! public roots.

use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use provisioner::{ErrorInfo, ErrorKind};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

/// An error the daemon answered (or failing to reach it).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub message: String,
    pub exit_code: u8,
}

impl From<ErrorInfo> for RemoteError {
    fn from(e: ErrorInfo) -> RemoteError {
        RemoteError {
            kind: e.kind,
            message: e.message,
            exit_code: e.exit_code,
        }
    }
}

impl RemoteError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> RemoteError {
        ErrorInfo::new(kind, message).into()
    }

    fn unreachable(server: &str, why: impl std::fmt::Display) -> RemoteError {
        RemoteError::new(
            ErrorKind::DaemonUnreachable,
            format!("provisiond at {server} is not reachable: {why}"),
        )
    }
}

#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    Tcp {
        addr: String,
        host: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

/// A connection to the daemon.
#[derive(Debug, Clone)]
pub struct Client {
    server: String,
    target: Target,
    token: Option<String>,
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os("PROVISION_CACERT") {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("PROVISION_CACERT {}: {e}", PathBuf::from(&path).display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("PROVISION_CACERT: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Client {
    /// A client of `server`; `token` is sent as the bearer token.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, RemoteError> {
        let usage = |why: &str| {
            RemoteError::new(
                ErrorKind::Usage,
                format!(
                    "--server {server:?}: {why}; use unix:///path/to/provisiond.sock, \
                     http://host:port or https://host:port"
                ),
            )
        };
        let target = if let Some(path) = server.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(usage("no socket path"));
            }
            Target::Unix(PathBuf::from(path))
        } else {
            let (tls, rest) = match (
                server.strip_prefix("http://"),
                server.strip_prefix("https://"),
            ) {
                (Some(rest), _) => (false, rest),
                (_, Some(rest)) => (true, rest),
                _ => return Err(usage("unknown scheme")),
            };
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(usage("expected only host:port after the scheme"));
            }
            let (host, addr) = match authority.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => (
                    host.trim_matches(['[', ']']).to_owned(),
                    authority.to_owned(),
                ),
                _ => {
                    let port = if tls { 443 } else { 80 };
                    (authority.to_owned(), format!("{authority}:{port}"))
                }
            };
            let tls = match tls {
                true => Some(tls_config().map_err(|e| RemoteError::new(ErrorKind::Usage, e))?),
                false => None,
            };
            Target::Tcp { addr, host, tls }
        };
        Ok(Client {
            server: server.to_owned(),
            target,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    async fn exchange<S>(
        &self,
        io: S,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, RemoteError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| RemoteError::unreachable(&self.server, e))?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| RemoteError::unreachable(&self.server, e))
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, RemoteError> {
        let unreachable = |e: std::io::Error| RemoteError::unreachable(&self.server, e);
        match &self.target {
            Target::Unix(path) => {
                let io = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                self.exchange(io, request).await
            }
            Target::Tcp { addr, host, tls } => {
                let io = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(unreachable)?;
                let _ = io.set_nodelay(true);
                match tls {
                    None => self.exchange(io, request).await,
                    Some(config) => {
                        let name = rustls::pki_types::ServerName::try_from(host.clone())
                            .map_err(|e| RemoteError::unreachable(&self.server, e))?;
                        let io = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name, io)
                            .await
                            .map_err(unreachable)?;
                        self.exchange(io, request).await
                    }
                }
            }
        }
    }

    /// Sends one request; answers the response's status and body, or the
    /// daemon's problem as an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(StatusCode, Response<Incoming>), RemoteError> {
        let host = match &self.target {
            Target::Unix(_) => "provisiond".to_owned(),
            Target::Tcp { addr, .. } => addr.clone(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(
                hyper::header::USER_AGENT,
                concat!("provision/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body).expect("a request body serializes"))
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| RemoteError::new(ErrorKind::Usage, e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok((status, response));
        }
        let body = read(response, &self.server).await?;
        Err(problem(status, &body))
    }

    /// A request whose answer is JSON.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, RemoteError> {
        let (_, response) = self.call(method, path, body).await?;
        let bytes = read(response, &self.server).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RemoteError::unreachable(
                &self.server,
                format!("an answer that is not the API's: {e}"),
            )
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        self.json(Method::GET, path, None::<&()>).await
    }

    /// A GET whose answer is text (a PEM file).
    pub async fn text(&self, path: &str) -> Result<String, RemoteError> {
        let (_, response) = self.call(Method::GET, path, None::<&()>).await?;
        let bytes = read(response, &self.server).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            RemoteError::unreachable(&self.server, format!("an answer that is not text: {e}"))
        })
    }
}

/// The whole body of a response.
pub async fn read(response: Response<Incoming>, server: &str) -> Result<Bytes, RemoteError> {
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(|e| RemoteError::unreachable(server, e))?
        .to_bytes())
}

/// The error a problem document names (or, for an answer that is not one,
/// the status).
fn problem(status: StatusCode, body: &[u8]) -> RemoteError {
    #[derive(serde::Deserialize)]
    struct Problem {
        detail: String,
        kind: ErrorKind,
        exit_code: u8,
    }
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => RemoteError {
            kind: p.kind,
            message: p.detail,
            exit_code: p.exit_code,
        },
        Err(_) => RemoteError::new(
            ErrorKind::DaemonUnreachable,
            format!(
                "the daemon answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_by_scheme_and_a_bad_one_is_a_usage_error() {
        assert!(matches!(
            Client::new("unix:///run/p.sock", None).unwrap().target,
            Target::Unix(p) if p == std::path::Path::new("/run/p.sock")
        ));
        match Client::new("http://127.0.0.1:7070", Some("t".into()))
            .unwrap()
            .target
        {
            Target::Tcp { addr, host, tls } => {
                assert_eq!(
                    (addr.as_str(), host.as_str(), tls.is_none()),
                    ("127.0.0.1:7070", "127.0.0.1", true)
                );
            }
            other => panic!("{other:?}"),
        }
        for bad in ["ftp://x", "unix://", "http://", "http://h:1/path"] {
            assert_eq!(
                Client::new(bad, None).unwrap_err().kind,
                ErrorKind::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_problem_document_keeps_its_kind_and_exit_code() {
        let body = br#"{"type":"urn:provision:error:port_taken","title":"Conflict","status":409,"detail":"port 6001 is taken","kind":"port_taken","exit_code":5}"#;
        let e = problem(StatusCode::CONFLICT, body);
        assert_eq!(
            (e.kind, e.exit_code, e.message.as_str()),
            (ErrorKind::PortTaken, 5, "port 6001 is taken")
        );
        let e = problem(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(e.kind, ErrorKind::DaemonUnreachable);
    }
}
