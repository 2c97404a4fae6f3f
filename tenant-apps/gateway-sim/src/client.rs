//! One gateway connection: connect (plain TCP, or TLS with a [`Connector`]
//! that trusts one CA), say hello, send frames, read answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::answer::{Answer, AnswerError};
use crate::frames;

/// Why a gateway connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to ingest failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("hello refused: {0:?}")]
    Refused(Answer),
    #[error("ingest closed the connection")]
    Closed,
    #[error("TLS to {addr}: {source}")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {path}: {why}")]
    Ca { path: String, why: String },
}

/// How a gateway reaches ingest: plain TCP, or TLS.
#[derive(Clone, Default)]
pub enum Connector {
    #[default]
    Plain,
    Tls {
        connector: TlsConnector,
        /// The name the server's certificate must carry.
        server_name: ServerName<'static>,
    },
}

impl Connector {
    /// TLS trusting only the CA certificates in `ca_file` (PEM), checking
    /// that the server's certificate names `server_name`.
    pub fn tls(ca_file: &Path, server_name: &str) -> Result<Connector, ClientError> {
        let bad = |why: String| ClientError::Ca {
            path: ca_file.display().to_string(),
            why,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(e.to_string()))? {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| bad(format!("{server_name:?} is not a server name: {e}")))?;
        Ok(Connector::Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The gateway connection over `stream`, after the handshake if TLS.
    async fn over(&self, stream: TcpStream, addr: &str) -> Result<Gateway, ClientError> {
        let _ = stream.set_nodelay(true);
        match self {
            Connector::Plain => {
                let (rd, wr) = stream.into_split();
                Ok(Gateway::from_halves(Box::new(rd), Box::new(wr)))
            }
            Connector::Tls {
                connector,
                server_name,
            } => {
                let tls = connector
                    .connect(server_name.clone(), stream)
                    .await
                    .map_err(|source| ClientError::Tls {
                        addr: addr.to_owned(),
                        source,
                    })?;
                let (rd, wr) = tokio::io::split(tls);
                Ok(Gateway::from_halves(Box::new(rd), Box::new(wr)))
            }
        }
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connector::Plain => f.write_str("Plain"),
            Connector::Tls { server_name, .. } => write!(f, "Tls({server_name:?})"),
        }
    }
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Reads the server's answers, one per line.
pub struct AnswerReader {
    inner: BufReader<Reader>,
    /// The bytes of a line not complete yet: kept here, not in a future,
    /// so that [`AnswerReader::next`] can be cancelled without losing them.
    line: Vec<u8>,
}

/// The read buffer of a connection. Answers are lines of well under 1 KiB
/// (longer ones are read in pieces all the same); a small buffer keeps
/// thousands of connections in one process cheap.
const READ_BUFFER: usize = 1024;

impl AnswerReader {
    /// The next answer; `None` once the server closed the connection.
    ///
    /// Cancel safe: dropped before it returns (a `select!` that took
    /// another branch), it loses nothing, and the next call goes on with
    /// the line it had begun.
    pub async fn next(&mut self) -> Result<Option<Answer>, ClientError> {
        loop {
            // `fill_buf` is cancel safe, and nothing below awaits: a
            // cancelled call leaves the bytes in `inner` or in `line`.
            let buf = self.inner.fill_buf().await?;
            let complete = if buf.is_empty() {
                if self.line.is_empty() {
                    return Ok(None);
                }
                // the last line, without its newline
                true
            } else {
                let (chunk, complete) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..=i], true),
                    None => (buf, false),
                };
                let n = chunk.len();
                self.line.extend_from_slice(chunk);
                self.inner.consume(n);
                complete
            };
            if !complete {
                continue;
            }
            let parsed = match std::str::from_utf8(&self.line) {
                Ok(line) if line.trim().is_empty() => None,
                Ok(line) => Some(Answer::parse(line).map_err(ClientError::from)),
                Err(_) => Some(Err(ClientError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                )))),
            };
            self.line.clear();
            if let Some(answer) = parsed {
                return answer.map(Some);
            }
        }
    }

    /// The next answer within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<Option<Answer>, ClientError> {
        tokio::time::timeout(timeout, self.next())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }
}

/// Sends frames.
pub struct FrameWriter {
    inner: Writer,
}

impl FrameWriter {
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.inner.write_all(frame).await?;
        Ok(())
    }

    /// Half-closes: the server answers what it has, then closes.
    pub async fn finish(&mut self) -> Result<(), ClientError> {
        self.inner.shutdown().await?;
        Ok(())
    }
}

/// A gateway connection.
pub struct Gateway {
    pub answers: AnswerReader,
    pub frames: FrameWriter,
}

impl Gateway {
    /// Opens a plain TCP connection (no hello yet).
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Self::connect_with(addr, &Connector::Plain).await
    }

    /// Opens a connection as `connector` says (no hello yet).
    pub async fn connect_with(addr: &str, connector: &Connector) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        connector.over(stream, addr).await
    }

    /// Opens a TCP connection from the local address `source` (e.g. one of
    /// the many loopback addresses 127.0.0.0/8 offers, to look like many
    /// hosts).
    pub async fn connect_from(addr: &str, source: std::net::IpAddr) -> Result<Self, ClientError> {
        Self::connect_with_from(addr, &Connector::Plain, Some(source)).await
    }

    /// Opens a connection as `connector` says (no hello yet), from the
    /// local address `source` if one is given (the socket is bound to it,
    /// port chosen by the kernel, before it connects), else from whatever
    /// address the route gives.
    pub async fn connect_with_from(
        addr: &str,
        connector: &Connector,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self, ClientError> {
        let Some(source) = source else {
            return Self::connect_with(addr, connector).await;
        };
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let target: std::net::SocketAddr = tokio::net::lookup_host(addr)
            .await
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| connect_err(std::io::Error::other("resolves to no address")))?;
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(connect_err)?;
        socket
            .bind(std::net::SocketAddr::new(source, 0))
            .map_err(connect_err)?;
        let stream = socket.connect(target).await.map_err(connect_err)?;
        connector.over(stream, addr).await
    }

    fn from_halves(rd: Reader, wr: Writer) -> Self {
        Self {
            answers: AnswerReader {
                inner: BufReader::with_capacity(READ_BUFFER, rd),
                line: Vec::new(),
            },
            frames: FrameWriter { inner: wr },
        }
    }

    /// Connects in plain TCP and says hello; Ok only on `<welcome/>`.
    pub async fn login(addr: &str, gateway: &str, token: &str) -> Result<Self, ClientError> {
        Self::login_with(addr, &Connector::Plain, gateway, token).await
    }

    /// Connects as `connector` says and says hello; Ok only on `<welcome/>`.
    pub async fn login_with(
        addr: &str,
        connector: &Connector,
        gateway: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        let mut gw = Self::connect_with(addr, connector).await?;
        match gw.hello(gateway, token).await? {
            Answer::Welcome => Ok(gw),
            other => Err(ClientError::Refused(other)),
        }
    }

    /// Sends a hello and returns the answer to it.
    pub async fn hello(&mut self, gateway: &str, token: &str) -> Result<Answer, ClientError> {
        self.send(frames::hello(gateway, token).as_bytes()).await?;
        self.answer().await?.ok_or(ClientError::Closed)
    }

    pub async fn send(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.frames.send(frame).await
    }

    /// The next answer within 30 s; `None` once the server closed.
    pub async fn answer(&mut self) -> Result<Option<Answer>, ClientError> {
        self.answers.next_within(Duration::from_secs(30)).await
    }

    pub fn split(self) -> (AnswerReader, FrameWriter) {
        (self.answers, self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_read_in_pieces_survives_a_cancelled_read() {
        let (client, mut server) = tokio::io::duplex(64);
        let (rd, wr) = tokio::io::split(client);
        let mut gw = Gateway::from_halves(Box::new(rd), Box::new(wr));
        server.write_all(b"<ack seq=\"4").await.unwrap();
        // half an answer, then the read is dropped (a select! went elsewhere)
        let early = tokio::time::timeout(Duration::from_millis(50), gw.answers.next()).await;
        assert!(early.is_err(), "{early:?}");
        server
            .write_all(b"2\"/>\n\n<welcome/>\n<ack seq=\"43\"/>")
            .await
            .unwrap();
        assert_eq!(
            gw.answers.next().await.unwrap(),
            Some(Answer::Ack { seq: 42 })
        );
        assert_eq!(gw.answers.next().await.unwrap(), Some(Answer::Welcome));
        drop(server);
        // the last answer needs no newline; then the end
        assert_eq!(
            gw.answers.next().await.unwrap(),
            Some(Answer::Ack { seq: 43 })
        );
        assert_eq!(gw.answers.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_buffer_reads_whole() {
        let (client, mut server) = tokio::io::duplex(256);
        let (rd, wr) = tokio::io::split(client);
        let mut gw = Gateway::from_halves(Box::new(rd), Box::new(wr));
        let why = "x".repeat(3 * READ_BUFFER);
        let line = format!("<error code=\"auth\">{why}</error>\n");
        tokio::spawn(async move { server.write_all(line.as_bytes()).await });
        assert_eq!(
            gw.answers.next().await.unwrap(),
            Some(Answer::Error {
                code: "auth".into(),
                why
            })
        );
    }
}
