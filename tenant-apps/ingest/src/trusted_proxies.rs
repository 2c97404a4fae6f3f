//! The fronts (HAProxy with `send-proxy-v2`) trusted to tell who a gateway
//! is, and the PROXY protocol v2 header ([`crate::proxy_protocol`]) on an
//! accepted connection:
//!
//! - [`TrustedProxies`]: `INGEST_TRUSTED_PROXIES`, the fronts' addresses
//!   (comma-separated IP addresses and/or `default-gateway`, the gateway of
//!   the container's default route, which on a Docker bridge network is the
//!   host, where a front with host networking connects from; resolved once
//!   at startup). Parsed by [`tenant_common::trusted_proxies`], which the
//!   admin panel's `ADMIN_TRUSTED_PROXIES` shares. Empty (the default),
//!   nothing changes: no header is expected, and one sent anyway is a
//!   protocol v1 framing error like any other bytes.
//! - [`read_header`]: a connection from a trusted front must start with a
//!   header; it is read off the stream, exactly its bytes (16 fixed, then
//!   the length they announce), before anything else looks at the stream,
//!   so the TLS ClientHello or the v1 hello after it stays unread.
//! - [`starts_with_signature`]: from any other address, a connection whose
//!   first bytes are the header's signature is refused; it is looked at
//!   without consuming anything.
//!
//! The server ([`crate::server`]) does both within the hello deadline, and
//! admits a proxied connection under the address its header names.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::proxy_protocol::{
    classify, decode_rest, parse_fixed, Header, ProxyHeaderError, Start, FIXED_LEN, SIGNATURE,
};

/// The fronts trusted to send a header (shared with the admin panel).
pub use tenant_common::trusted_proxies::TrustedProxies;

/// How long to wait before looking again at a connection whose first bytes
/// are only a part of the signature (a v1 gateway may start with `\r\n`).
const PEEK_AGAIN: Duration = Duration::from_millis(10);

/// Why a connection was closed for its PROXY header
/// (`<error code="protocol">`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyRefusal {
    /// A header from an address not in [`TrustedProxies`].
    Untrusted = 0,
    /// No header from a trusted front (other bytes, or none in time).
    Missing = 1,
    /// A header from a trusted front that cannot be decoded.
    Invalid = 2,
}

impl ProxyRefusal {
    pub const ALL: [ProxyRefusal; 3] = [
        ProxyRefusal::Untrusted,
        ProxyRefusal::Missing,
        ProxyRefusal::Invalid,
    ];

    /// The `reason` label in `/metrics` and the logs.
    pub fn label(self) -> &'static str {
        match self {
            ProxyRefusal::Untrusted => "untrusted",
            ProxyRefusal::Missing => "missing",
            ProxyRefusal::Invalid => "invalid",
        }
    }
}

/// Why no header could be taken off a trusted front's connection.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Closed before its first byte: a front's TCP health check, which
    /// sends no header unless told to (`check-send-proxy`).
    #[error("the connection closed before its first byte")]
    Closed,
    #[error("the connection closed inside its PROXY header")]
    ClosedInside,
    #[error(transparent)]
    Header(#[from] ProxyHeaderError),
    #[error("read failed: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ReadError::ClosedInside
        } else {
            ReadError::Io(e)
        }
    }
}

impl ReadError {
    /// How a refusal for it is counted (`None`: nothing to refuse).
    pub fn refusal(&self) -> Option<ProxyRefusal> {
        match self {
            ReadError::Closed | ReadError::Io(_) => None,
            ReadError::Header(ProxyHeaderError::Signature) => Some(ProxyRefusal::Missing),
            ReadError::ClosedInside | ReadError::Header(_) => Some(ProxyRefusal::Invalid),
        }
    }
}

/// Reads the PROXY protocol v2 header at the start of `stream`: exactly its
/// bytes, none of what follows. Its first byte is read alone, so that a
/// connection closed at once or starting with anything else is told at
/// once; then the rest of the 16 fixed bytes, then the length they
/// announce (at most [`crate::proxy_protocol::MAX_REST_LEN`]). Waits for
/// the bytes: the caller bounds the wait.
pub async fn read_header<R>(stream: &mut R) -> Result<Header, ReadError>
where
    R: AsyncRead + Unpin,
{
    let mut fixed = [0u8; FIXED_LEN];
    if stream.read(&mut fixed[..1]).await? == 0 {
        return Err(ReadError::Closed);
    }
    if fixed[0] != SIGNATURE[0] {
        return Err(ProxyHeaderError::Signature.into());
    }
    stream.read_exact(&mut fixed[1..]).await?;
    let parsed = parse_fixed(&fixed)?;
    let mut rest = vec![0u8; parsed.rest_len];
    stream.read_exact(&mut rest).await?;
    Ok(decode_rest(&parsed, &rest)?)
}

/// What a trusted front's connection started with.
#[derive(Debug)]
pub enum FrontConnection {
    /// A header: the connection is the gateway's at `peer` (the front's
    /// own address for `LOCAL` and `UNSPEC`).
    Header { peer: SocketAddr, header: Header },
    /// Closed before its first byte, or broken: nothing to answer.
    Gone(ReadError),
    /// No valid header: `<error code="protocol">{line}</error>` and close.
    Refused { why: ProxyRefusal, line: String },
}

/// Takes the header off a connection from the trusted front at `front`,
/// by `deadline` (the hello deadline, `hello_timeout` after accept).
pub async fn take_header<R>(
    stream: &mut R,
    front: SocketAddr,
    deadline: tokio::time::Instant,
    hello_timeout: Duration,
) -> FrontConnection
where
    R: AsyncRead + Unpin,
{
    match tokio::time::timeout_at(deadline, read_header(stream)).await {
        Ok(Ok(header)) => FrontConnection::Header {
            peer: header.source_or(front),
            header,
        },
        Ok(Err(e)) => match e.refusal() {
            None => FrontConnection::Gone(e),
            Some(why) => FrontConnection::Refused {
                why,
                line: format!("a PROXY protocol v2 header was expected: {e}"),
            },
        },
        Err(_) => FrontConnection::Refused {
            why: ProxyRefusal::Missing,
            line: format!(
                "a PROXY protocol v2 header was expected within {} s of connecting",
                hello_timeout.as_secs()
            ),
        },
    }
}

/// Whether `stream` starts with the PROXY protocol v2 signature, without
/// consuming anything. While its first bytes are only a part of the
/// signature (a v1 gateway may start with `\r\n`), it looks again every
/// [`PEEK_AGAIN`]: the caller bounds the wait. A connection closed before
/// its first byte does not.
pub async fn starts_with_signature(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; SIGNATURE.len()];
    loop {
        let n = stream.peek(&mut first).await?;
        match classify(&first[..n]) {
            Start::Proxy => return Ok(true),
            Start::NotProxy => return Ok(false),
            Start::Undecided => tokio::time::sleep(PEEK_AGAIN).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_protocol::Command;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A PROXY header for TCP over IPv4 from `10.9.8.7:4321`, with an ALPN TLV.
    fn v4_header() -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0x00, 0x11]);
        h.extend_from_slice(&[10, 9, 8, 7, 10, 0, 0, 1, 0x10, 0xe1, 0x17, 0x71]);
        h.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        h
    }

    #[tokio::test]
    async fn a_header_is_read_to_its_last_byte_and_no_further() {
        let mut bytes = v4_header();
        bytes.extend_from_slice(b"<hello gateway=\"gw-1\" token=\"t\"/>");
        let mut stream = &bytes[..];
        let header = read_header(&mut stream).await.unwrap();
        assert_eq!(header.command, Command::Proxy);
        assert_eq!(
            header.addresses.unwrap().source,
            "10.9.8.7:4321".parse().unwrap()
        );
        assert_eq!(stream, b"<hello gateway=\"gw-1\" token=\"t\"/>");
    }

    #[tokio::test]
    async fn a_missing_truncated_or_bad_header_is_told_apart() {
        let read = |bytes: Vec<u8>| async move {
            let mut stream = &bytes[..];
            read_header(&mut stream).await.unwrap_err()
        };
        assert!(matches!(read(vec![]).await, ReadError::Closed));
        let err = read(b"<hello gateway=\"gw-1\" token=\"t\"/>".to_vec()).await;
        assert_eq!(err.refusal(), Some(ProxyRefusal::Missing));
        let mut cut = v4_header();
        cut.truncate(20);
        let err = read(cut).await;
        assert!(matches!(err, ReadError::ClosedInside), "{err}");
        assert_eq!(err.refusal(), Some(ProxyRefusal::Invalid));
        let mut v1 = v4_header();
        v1[12] = 0x11;
        let err = read(v1).await;
        assert_eq!(err.refusal(), Some(ProxyRefusal::Invalid));
        assert!(err.to_string().contains("version 1"), "{err}");
        assert_eq!(ReadError::Closed.refusal(), None);
    }

    #[tokio::test]
    async fn a_front_connection_is_the_gateways_the_fronts_or_refused() {
        let front: SocketAddr = "10.0.1.5:33000".parse().unwrap();
        let timeout = Duration::from_millis(50);
        let take = |bytes: Vec<u8>| async move {
            let deadline = tokio::time::Instant::now() + timeout;
            take_header(&mut &bytes[..], front, deadline, timeout).await
        };
        match take(v4_header()).await {
            FrontConnection::Header { peer, header } => {
                assert_eq!(peer, "10.9.8.7:4321".parse().unwrap());
                assert_eq!(header.command, Command::Proxy);
            }
            other => panic!("{other:?}"),
        }
        // LOCAL (a health check): the front itself
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        match take(local).await {
            FrontConnection::Header { peer, header } => {
                assert_eq!((peer, header.command), (front, Command::Local));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            take(vec![]).await,
            FrontConnection::Gone(ReadError::Closed)
        ));
        match take(b"<hello gateway=\"gw-1\" token=\"t\"/>".to_vec()).await {
            FrontConnection::Refused { why, line } => {
                assert_eq!(why, ProxyRefusal::Missing);
                assert_eq!(
                    line,
                    "a PROXY protocol v2 header was expected: no PROXY protocol v2 signature at the start of the connection"
                );
            }
            other => panic!("{other:?}"),
        }
        // nothing within the deadline (the writing half stays open)
        let (mut server, _client) = tokio::io::duplex(64);
        let deadline = tokio::time::Instant::now() + timeout;
        match take_header(&mut server, front, deadline, Duration::from_secs(10)).await {
            FrontConnection::Refused { why, line } => {
                assert_eq!(why, ProxyRefusal::Missing);
                assert_eq!(
                    line,
                    "a PROXY protocol v2 header was expected within 10 s of connecting"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_signature_is_spotted_without_consuming_a_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (sent, proxy) in [
            (v4_header(), true),
            (b"<hello gateway=\"gw-1\" token=\"t\"/>".to_vec(), false),
            (vec![0x16, 0x03, 0x01, 0x00, 0x05], false),
            (b"\r\n<hello/>".to_vec(), false),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // a signature arriving in two parts is waited for
            client.write_all(&sent[..2]).await.unwrap();
            client.flush().await.unwrap();
            let writer = tokio::spawn({
                let rest = sent[2..].to_vec();
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    client.write_all(&rest).await.unwrap();
                    client
                }
            });
            let told = tokio::time::timeout(Duration::from_secs(5), starts_with_signature(&server))
                .await
                .expect("told within 5 s")
                .unwrap();
            assert_eq!(told, proxy, "{sent:?}");
            let _client = writer.await.unwrap();
            let mut got = vec![0u8; sent.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, sent, "nothing was consumed");
        }
        // closed before its first byte
        drop(TcpStream::connect(addr).await.unwrap());
        let (server, _) = listener.accept().await.unwrap();
        assert!(!starts_with_signature(&server).await.unwrap());
    }
}
