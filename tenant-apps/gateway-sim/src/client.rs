//! One gateway connection: connect, say hello, send frames, read answers.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

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
}

/// Reads the server's answers, one per line.
pub struct AnswerReader {
    inner: BufReader<OwnedReadHalf>,
    line: String,
}

impl AnswerReader {
    /// The next answer; `None` once the server closed the connection.
    pub async fn next(&mut self) -> Result<Option<Answer>, ClientError> {
        loop {
            self.line.clear();
            if self.inner.read_line(&mut self.line).await? == 0 {
                return Ok(None);
            }
            if !self.line.trim().is_empty() {
                return Ok(Some(Answer::parse(&self.line)?));
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
    inner: OwnedWriteHalf,
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
    /// Opens a TCP connection (no hello yet).
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Self::from_stream(stream))
    }

    /// Opens a TCP connection from the local address `source` (e.g. one of
    /// the many loopback addresses 127.0.0.0/8 offers, to look like many
    /// hosts).
    pub async fn connect_from(addr: &str, source: std::net::IpAddr) -> Result<Self, ClientError> {
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
        Ok(Self::from_stream(stream))
    }

    fn from_stream(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Self {
            answers: AnswerReader {
                inner: BufReader::new(rd),
                line: String::new(),
            },
            frames: FrameWriter { inner: wr },
        }
    }

    /// Connects and says hello; Ok only on `<welcome/>`.
    pub async fn login(addr: &str, gateway: &str, token: &str) -> Result<Self, ClientError> {
        let mut gw = Self::connect(addr).await?;
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
