//! The PROXY protocol version 2 header, as pure functions over bytes: the
//! binary header a front (HAProxy with `send-proxy-v2`) puts before the
//! bytes of a connection it forwards, telling who the client really is.
//! This module only decodes; who is trusted to send one and how it is read
//! off a connection is [`crate::trusted_proxies`].
//!
//! The header (HAProxy's `doc/proxy-protocol.txt`, section 2.2): the
//! 12-byte [`SIGNATURE`], a version/command byte (version 2; `LOCAL` or
//! `PROXY`), an address family/protocol byte, a 2-byte big-endian length,
//! then that many bytes: the addresses and ports, then TLVs. The fixed part
//! ([`FIXED_LEN`] bytes) says how long the rest is, so a reader takes
//! exactly the header's bytes and nothing of the stream after it
//! ([`parse_fixed`], then [`decode_rest`]).
//!
//! What is taken:
//! - `PROXY` with TCP over IPv4 (`0x11`) or IPv6 (`0x21`): the source and
//!   destination addresses and ports;
//! - `LOCAL` (the front's own connections, e.g. HAProxy's health checks):
//!   no address, the socket's peer stands (the family byte and address
//!   block are ignored, as the spec says);
//! - `PROXY` with `UNSPEC` (`0x00`): the front does not know the client's
//!   address (the spec's mandatory fallback mode): no address either, the
//!   socket's peer stands;
//! - TLVs (ALPN, authority, CRC32C, NOOP, SSL, ...) are skipped: each must
//!   fit in the header, but none is interpreted (a CRC32C is not checked).
//!
//! What is refused: a wrong signature, a version other than 2, a command
//! other than `LOCAL` or `PROXY`, an unassigned family/protocol byte, an
//! address block shorter than its family's, a header announcing more than
//! [`MAX_REST_LEN`] bytes after its fixed part (HAProxy sends a few dozen,
//! a few hundred with every TLV option), and, with `PROXY`, UDP (`0x12`,
//! `0x22`) and UNIX sockets (`0x31`, `0x32`). The spec lets a receiver
//! reject those or fall back to the socket's peer; the gateway port carries
//! TCP from IP networks only, so such a header means the front is set up
//! for something else, and refusing says so at once, where falling back
//! would count every such client under the front's own address (its caps
//! per address and its back-off).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every version 2 header starts with (section 2.2).
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part: signature, version/command, family/protocol, length.
pub const FIXED_LEN: usize = 16;
/// The most bytes accepted after the fixed part (addresses and TLVs).
pub const MAX_REST_LEN: usize = 1024;

/// Bytes of the address block of TCP over IPv4: 2 × 4 + 2 × 2.
const INET_LEN: usize = 12;
/// Bytes of the address block of TCP over IPv6: 2 × 16 + 2 × 2.
const INET6_LEN: usize = 36;

/// Why a PROXY header is refused. The connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol v2 signature at the start of the connection")]
    Signature,
    #[error("PROXY protocol version {version} is not supported (only version 2)")]
    Version { version: u8 },
    #[error("unknown PROXY command {command:#x} (0x0 LOCAL or 0x1 PROXY)")]
    Command { command: u8 },
    #[error("unknown PROXY address family and protocol {byte:#04x}")]
    Family { byte: u8 },
    #[error(
        "PROXY header for {what}: the gateway port takes TCP over IPv4 or IPv6 only (check the front's configuration)"
    )]
    Unsupported { what: &'static str },
    #[error(
        "PROXY header announces {len} bytes after its fixed part; at most {max} are accepted",
        max = MAX_REST_LEN
    )]
    TooLong { len: usize },
    #[error("PROXY address block of {len} bytes is too short for {family} ({need} bytes)")]
    ShortAddresses {
        family: &'static str,
        len: usize,
        need: usize,
    },
    #[error("PROXY header truncated: {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
    #[error("PROXY header TLV of type {kind:#04x} runs past the end of the header")]
    Tlv { kind: u8 },
}

/// The version/command byte's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The front's own connection (a health check): use the socket's peer.
    Local,
    /// A connection relayed for a client.
    Proxy,
}

/// The original connection's endpoints, as the front saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The client (the gateway).
    pub source: SocketAddr,
    /// Where the client connected to (the front's public port).
    pub destination: SocketAddr,
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command: Command,
    /// `None` for `LOCAL`, and for `PROXY` over `UNSPEC`: the socket's peer
    /// stands.
    pub addresses: Option<Addresses>,
}

impl Header {
    /// The client's address: the header's source, or `peer` (the socket's)
    /// when the header carries none.
    pub fn source_or(&self, peer: SocketAddr) -> SocketAddr {
        self.addresses.map_or(peer, |a| a.source)
    }
}

/// What the fixed part says: the command, the family/protocol byte, and
/// how many bytes follow (at most [`MAX_REST_LEN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub command: Command,
    pub family: u8,
    pub rest_len: usize,
}

/// Whether a connection's first bytes are a PROXY v2 header's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The whole signature is there.
    Proxy,
    /// They are not (or no byte at all came).
    NotProxy,
    /// A proper prefix of the signature so far: more bytes will tell.
    Undecided,
}

/// Sorts the first bytes received on a connection.
pub fn classify(first: &[u8]) -> Start {
    if first.is_empty() {
        return Start::NotProxy;
    }
    let n = first.len().min(SIGNATURE.len());
    if first[..n] != SIGNATURE[..n] {
        Start::NotProxy
    } else if n == SIGNATURE.len() {
        Start::Proxy
    } else {
        Start::Undecided
    }
}

/// Checks the fixed part and returns what it says. Checks the signature,
/// then the version, the command, the family/protocol byte (not for
/// `LOCAL`, where it is ignored) and the length bound.
pub fn parse_fixed(fixed: &[u8; FIXED_LEN]) -> Result<Fixed, ProxyHeaderError> {
    if fixed[..SIGNATURE.len()] != SIGNATURE {
        return Err(ProxyHeaderError::Signature);
    }
    let version_command = fixed[12];
    let version = version_command >> 4;
    if version != 2 {
        return Err(ProxyHeaderError::Version { version });
    }
    let command = match version_command & 0x0f {
        0x0 => Command::Local,
        0x1 => Command::Proxy,
        command => return Err(ProxyHeaderError::Command { command }),
    };
    let family = fixed[13];
    if command == Command::Proxy {
        match family {
            0x00 | 0x11 | 0x21 => {}
            0x12 => {
                return Err(ProxyHeaderError::Unsupported {
                    what: "UDP over IPv4",
                })
            }
            0x22 => {
                return Err(ProxyHeaderError::Unsupported {
                    what: "UDP over IPv6",
                })
            }
            0x31 => {
                return Err(ProxyHeaderError::Unsupported {
                    what: "a UNIX stream socket",
                })
            }
            0x32 => {
                return Err(ProxyHeaderError::Unsupported {
                    what: "a UNIX datagram socket",
                })
            }
            byte => return Err(ProxyHeaderError::Family { byte }),
        }
    }
    let rest_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if rest_len > MAX_REST_LEN {
        return Err(ProxyHeaderError::TooLong { len: rest_len });
    }
    Ok(Fixed {
        command,
        family,
        rest_len,
    })
}

/// Decodes the bytes after the fixed part (exactly `fixed.rest_len` of
/// them): the addresses, then the TLVs, which are only checked to fit.
pub fn decode_rest(fixed: &Fixed, rest: &[u8]) -> Result<Header, ProxyHeaderError> {
    if rest.len() != fixed.rest_len {
        return Err(ProxyHeaderError::Truncated {
            have: FIXED_LEN + rest.len(),
            need: FIXED_LEN + fixed.rest_len,
        });
    }
    let local = Header {
        command: fixed.command,
        addresses: None,
    };
    let (addresses, tlvs) = match (fixed.command, fixed.family) {
        // LOCAL: the block, family included, is ignored; UNSPEC: the
        // address information is ignored (section 2.2)
        (Command::Local, _) | (Command::Proxy, 0x00) => return Ok(local),
        (Command::Proxy, 0x11) => {
            let (block, tlvs) = split(rest, "TCP over IPv4", INET_LEN)?;
            let ip =
                |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            let addresses = Addresses {
                source: SocketAddr::from((ip(0), port(8))),
                destination: SocketAddr::from((ip(4), port(10))),
            };
            (addresses, tlvs)
        }
        (Command::Proxy, 0x21) => {
            let (block, tlvs) = split(rest, "TCP over IPv6", INET6_LEN)?;
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            let addresses = Addresses {
                source: SocketAddr::from((ip(0), port(32))),
                destination: SocketAddr::from((ip(16), port(34))),
            };
            (addresses, tlvs)
        }
        // parse_fixed let no other family through with PROXY
        (Command::Proxy, byte) => return Err(ProxyHeaderError::Family { byte }),
    };
    skip_tlvs(tlvs)?;
    Ok(Header {
        command: fixed.command,
        addresses: Some(addresses),
    })
}

/// Decodes a whole header at the start of `bytes`; returns it and its
/// length (the bytes after it are the connection's own).
pub fn decode(bytes: &[u8]) -> Result<(Header, usize), ProxyHeaderError> {
    let truncated = |need: usize| ProxyHeaderError::Truncated {
        have: bytes.len(),
        need,
    };
    let Some(fixed) = bytes.first_chunk::<FIXED_LEN>() else {
        if !bytes.is_empty() && classify(bytes) == Start::NotProxy {
            return Err(ProxyHeaderError::Signature);
        }
        return Err(truncated(FIXED_LEN));
    };
    let fixed = parse_fixed(fixed)?;
    let total = FIXED_LEN + fixed.rest_len;
    let rest = bytes
        .get(FIXED_LEN..total)
        .ok_or_else(|| truncated(total))?;
    Ok((decode_rest(&fixed, rest)?, total))
}

/// The address block of `family` (`need` bytes) and the TLVs after it.
fn split<'a>(
    rest: &'a [u8],
    family: &'static str,
    need: usize,
) -> Result<(&'a [u8], &'a [u8]), ProxyHeaderError> {
    if rest.len() < need {
        return Err(ProxyHeaderError::ShortAddresses {
            family,
            len: rest.len(),
            need,
        });
    }
    Ok(rest.split_at(need))
}

/// Walks the TLVs (type, 2-byte big-endian length, value), checking that
/// each fits; their values are not looked at.
fn skip_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyHeaderError> {
    while let Some(&kind) = tlvs.first() {
        let Some(&[hi, lo]) = tlvs.get(1..3).and_then(|l| l.first_chunk::<2>()) else {
            return Err(ProxyHeaderError::Tlv { kind });
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        tlvs = tlvs.get(end..).ok_or(ProxyHeaderError::Tlv { kind })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with `version_command`, `family` and `rest` after the
    /// signature, its length taken from `rest`.
    fn header(version_command: u8, family: u8, rest: &[u8]) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.push(version_command);
        h.push(family);
        h.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        h.extend_from_slice(rest);
        h
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_tcp_over_ipv4_header_gives_both_endpoints_and_its_length() {
        // 192.0.2.7:51000 -> 203.0.113.9:6001
        let block = [
            192, 0, 2, 7, 203, 0, 113, 9, 0xc7, 0x38, 0x17, 0x71, // 51000, 6001
        ];
        let mut bytes = header(0x21, 0x11, &block);
        bytes.extend_from_slice(b"<hello");
        let (h, len) = decode(&bytes).unwrap();
        assert_eq!(len, 28, "the gateway's own bytes are not the header's");
        assert_eq!(&bytes[len..], b"<hello");
        assert_eq!(h.command, Command::Proxy);
        let a = h.addresses.unwrap();
        assert_eq!(a.source, addr("192.0.2.7:51000"));
        assert_eq!(a.destination, addr("203.0.113.9:6001"));
        assert_eq!(h.source_or(addr("10.0.0.2:40000")), a.source);
    }

    #[test]
    fn a_tcp_over_ipv6_header_gives_both_endpoints() {
        let src: Ipv6Addr = "2001:db8::17".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let mut block = Vec::new();
        block.extend_from_slice(&src.octets());
        block.extend_from_slice(&dst.octets());
        block.extend_from_slice(&40000u16.to_be_bytes());
        block.extend_from_slice(&6001u16.to_be_bytes());
        let (h, len) = decode(&header(0x21, 0x21, &block)).unwrap();
        assert_eq!(len, 16 + 36);
        let a = h.addresses.unwrap();
        assert_eq!(a.source, addr("[2001:db8::17]:40000"));
        assert_eq!(a.destination, addr("[2001:db8:1::1]:6001"));
    }

    #[test]
    fn local_keeps_the_sockets_peer_whatever_its_block_holds() {
        let peer = addr("10.0.0.2:40000");
        // as HAProxy sends it for a health check: UNSPEC, no address
        let (h, len) = decode(&header(0x20, 0x00, &[])).unwrap();
        assert_eq!((h.command, h.addresses, len), (Command::Local, None, 16));
        assert_eq!(h.source_or(peer), peer);
        // the family is ignored and the block skipped, whatever is in it
        let (h, len) = decode(&header(0x20, 0x11, &[1; 12])).unwrap();
        assert_eq!((h.addresses, len), (None, 28));
        assert_eq!(decode(&header(0x20, 0x99, &[])).unwrap().0.addresses, None);
    }

    #[test]
    fn proxy_over_unspec_keeps_the_sockets_peer_and_udp_or_unix_are_refused() {
        let (h, len) = decode(&header(0x21, 0x00, &[7; 20])).unwrap();
        assert_eq!((h.command, h.addresses, len), (Command::Proxy, None, 36));
        for (family, what) in [
            (0x12, "UDP over IPv4"),
            (0x22, "UDP"),
            (0x31, "UNIX stream"),
        ] {
            let err = decode(&header(0x21, family, &[0; 216])).unwrap_err();
            assert!(matches!(err, ProxyHeaderError::Unsupported { .. }), "{err}");
            assert!(err.to_string().contains(what), "{err}");
        }
        let err = decode(&header(0x21, 0x13, &[0; 12])).unwrap_err();
        assert_eq!(err, ProxyHeaderError::Family { byte: 0x13 });
        assert_eq!(
            err.to_string(),
            "unknown PROXY address family and protocol 0x13"
        );
    }

    #[test]
    fn tlvs_after_the_addresses_are_skipped() {
        let mut rest = vec![10, 0, 0, 5, 10, 0, 0, 1, 0x9c, 0x40, 0x17, 0x71];
        rest.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // ALPN "h2"
        rest.extend_from_slice(&[0x04, 0x00, 0x00]); // NOOP, empty
        rest.extend_from_slice(&[0x03, 0x00, 0x04, 1, 2, 3, 4]); // CRC32C, not checked
        let mut bytes = header(0x21, 0x11, &rest);
        let whole = bytes.len();
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (h, len) = decode(&bytes).unwrap();
        assert_eq!(len, whole);
        assert_eq!(h.addresses.unwrap().source, addr("10.0.0.5:40000"));
        // a TLV running past the header's end
        let mut bad = rest[..12].to_vec();
        bad.extend_from_slice(&[0x02, 0x00, 0x09, b'a']);
        assert_eq!(
            decode(&header(0x21, 0x11, &bad)).unwrap_err(),
            ProxyHeaderError::Tlv { kind: 0x02 }
        );
        let mut bad = rest[..12].to_vec();
        bad.extend_from_slice(&[0x20, 0x00]);
        assert_eq!(
            decode(&header(0x21, 0x11, &bad)).unwrap_err(),
            ProxyHeaderError::Tlv { kind: 0x20 }
        );
    }

    #[test]
    fn a_truncated_header_is_refused_with_what_it_lacks() {
        let whole = header(0x21, 0x11, &[10, 0, 0, 5, 10, 0, 0, 1, 0, 1, 0, 2]);
        for cut in [0, 5, 12, 15, 16, 27] {
            let err = decode(&whole[..cut]).unwrap_err();
            let need = if cut < 16 { 16 } else { 28 };
            assert_eq!(
                err,
                ProxyHeaderError::Truncated { have: cut, need },
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode(&whole[..20]).unwrap_err().to_string(),
            "PROXY header truncated: 20 of 28 bytes"
        );
        // an address block shorter than its family's
        let short = header(0x21, 0x21, &[0; 12]);
        assert_eq!(
            decode(&short).unwrap_err().to_string(),
            "PROXY address block of 12 bytes is too short for TCP over IPv6 (36 bytes)"
        );
        let fixed = parse_fixed(whole[..16].try_into().unwrap()).unwrap();
        assert!(matches!(
            decode_rest(&fixed, &whole[16..20]),
            Err(ProxyHeaderError::Truncated { .. })
        ));
    }

    #[test]
    fn a_wrong_signature_is_not_a_proxy_header() {
        let mut bytes = header(0x21, 0x11, &[0; 12]);
        bytes[7] = b'q';
        assert_eq!(decode(&bytes).unwrap_err(), ProxyHeaderError::Signature);
        assert_eq!(
            decode(b"<hello gateway=\"gw-1\" token=\"t\"/>").unwrap_err(),
            ProxyHeaderError::Signature
        );
        assert_eq!(decode(b"<hel").unwrap_err(), ProxyHeaderError::Signature);
        // PROXY protocol version 1 (text) is not taken either
        assert_eq!(
            decode(b"PROXY TCP4 192.0.2.7 203.0.113.9 51000 6001\r\n").unwrap_err(),
            ProxyHeaderError::Signature
        );
    }

    #[test]
    fn a_wrong_version_or_command_is_refused() {
        let err = decode(&header(0x11, 0x11, &[0; 12])).unwrap_err();
        assert_eq!(err, ProxyHeaderError::Version { version: 1 });
        assert_eq!(
            err.to_string(),
            "PROXY protocol version 1 is not supported (only version 2)"
        );
        assert_eq!(
            decode(&header(0x31, 0x11, &[0; 12])).unwrap_err(),
            ProxyHeaderError::Version { version: 3 }
        );
        assert_eq!(
            decode(&header(0x22, 0x11, &[0; 12])).unwrap_err(),
            ProxyHeaderError::Command { command: 2 }
        );
    }

    #[test]
    fn an_oversize_length_is_refused_before_reading_it() {
        let mut fixed = [0u8; FIXED_LEN];
        fixed[..12].copy_from_slice(&SIGNATURE);
        fixed[12] = 0x21;
        fixed[13] = 0x11;
        fixed[14..].copy_from_slice(&1025u16.to_be_bytes());
        let err = parse_fixed(&fixed).unwrap_err();
        assert_eq!(err, ProxyHeaderError::TooLong { len: 1025 });
        assert_eq!(
            err.to_string(),
            "PROXY header announces 1025 bytes after its fixed part; at most 1024 are accepted"
        );
        fixed[14..].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(parse_fixed(&fixed).is_err());
        // the bound itself is taken
        let mut rest = vec![10, 0, 0, 5, 10, 0, 0, 1, 0, 1, 0, 2];
        rest.extend_from_slice(&[0x04, 0x03, 0xf1]); // NOOP of 1009 bytes
        rest.resize(MAX_REST_LEN, 0);
        assert_eq!(decode(&header(0x21, 0x11, &rest)).unwrap().1, 16 + 1024);
    }

    #[test]
    fn the_first_bytes_sort_a_connection() {
        assert_eq!(classify(&SIGNATURE), Start::Proxy);
        assert_eq!(classify(&header(0x21, 0x11, &[0; 12])), Start::Proxy);
        assert_eq!(classify(&SIGNATURE[..5]), Start::Undecided);
        assert_eq!(classify(b"\r\n"), Start::Undecided, "v1 whitespace, so far");
        assert_eq!(classify(b"\r\n<hello/>"), Start::NotProxy);
        assert_eq!(classify(b"<hello/>"), Start::NotProxy);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Start::NotProxy);
        assert_eq!(classify(b""), Start::NotProxy);
    }

    /// Headers byte for byte as HAProxy emits them with `send-proxy-v2`
    /// (no `proxy-v2-options`, so no TLV), written from
    /// `doc/proxy-protocol.txt` section 2.2: the signature, then 0x21
    /// (version 2, PROXY), 0x11 (TCP over IPv4) or 0x21 (TCP over IPv6),
    /// the length 0x000c (2*4 + 2*2) or 0x0024 (2*16 + 2*2), the source and
    /// destination addresses, then the source and destination ports, all
    /// in network byte order.
    #[test]
    fn headers_as_haproxy_emits_them_decode_byte_for_byte() {
        // TCP over IPv4, 172.19.0.1:42578 -> 172.19.0.3:80, followed by the
        // client's first bytes
        let v4: [u8; 32] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // PROXY, TCP over IPv4, 12 bytes
            0xac, 0x13, 0x00, 0x01, // source 172.19.0.1
            0xac, 0x13, 0x00, 0x03, // destination 172.19.0.3
            0xa6, 0x52, 0x00, 0x50, // ports 42578, 80
            0x47, 0x45, 0x54, 0x20, // "GET ": the client's, not the header's
        ];
        let (h, len) = decode(&v4).unwrap();
        assert_eq!(len, 28);
        assert_eq!(
            h.addresses,
            Some(Addresses {
                source: addr("172.19.0.1:42578"),
                destination: addr("172.19.0.3:80"),
            })
        );
        // TCP over IPv6, [2001:db8::1]:1234 -> [2001:db8::2]:6001
        let v6: [u8; 52] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x21, 0x00, 0x24, // PROXY, TCP over IPv6, 36 bytes
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // source
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // destination
            0x04, 0xd2, 0x17, 0x71, // ports 1234, 6001
        ];
        let (h, len) = decode(&v6).unwrap();
        assert_eq!(len, 52);
        assert_eq!(h.addresses.unwrap().source, addr("[2001:db8::1]:1234"));
        assert_eq!(h.addresses.unwrap().destination, addr("[2001:db8::2]:6001"));
        // LOCAL, as a health check with `check-send-proxy` sends it:
        // UNSPEC, no address block
        let local: [u8; 16] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00,
            0x00, 0x00,
        ];
        assert_eq!(
            decode(&local).unwrap(),
            (
                Header {
                    command: Command::Local,
                    addresses: None
                },
                16
            )
        );
    }
}
