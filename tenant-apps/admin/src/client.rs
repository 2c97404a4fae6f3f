//! Who a request comes from: the TCP peer, or, when the peer is a trusted
//! proxy (`ADMIN_TRUSTED_PROXIES`: the front, HAProxy in HTTP mode with
//! `option forwardfor`), the last address of its `X-Forwarded-For`, the
//! one that proxy added. Anything earlier in the header came from the
//! client and is not believed. From any other peer the header is ignored.
//!
//! The address is what the login logs name (`client=`) and what the
//! per-address login limit counts ([`crate::ratelimit`]).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use tenant_common::TrustedProxies;

/// The header a trusted proxy names the client in.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address: the last `X-Forwarded-For` entry when `peer` is
/// in `trusted` and that entry is an address, else `peer`'s own (`None`
/// when the peer is unknown, as in tests that drive the router without a
/// socket). Addresses are canonical: an IPv4 address mapped into IPv6 is
/// its IPv4 address.
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    if !trusted.trusts(peer) {
        return Some(peer);
    }
    Some(last_forwarded_for(headers).unwrap_or(peer))
}

/// The last entry of the last `X-Forwarded-For` line (a proxy may add a
/// line of its own or append to the one it got), if it is an address:
/// `192.0.2.7`, `2001:db8::7`, or with a port, `192.0.2.7:4711`,
/// `[2001:db8::7]:4711`, or bracketed, `[2001:db8::7]`.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let line = headers.get_all(FORWARDED_FOR).iter().next_back()?;
    let entry = line.to_str().ok()?.rsplit(',').next()?.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn a_trusted_proxy_names_the_client_in_the_last_entry() {
        let front: SocketAddr = "172.18.0.1:40000".parse().unwrap();
        let trusted: TrustedProxies = "172.18.0.1".parse().unwrap();
        let client = |lines: &[&str]| client_address(Some(front), &forwarded(lines), &trusted);
        assert_eq!(client(&["192.0.2.7"]), Some(ip("192.0.2.7")));
        // what the client sent itself comes first and is not believed
        assert_eq!(
            client(&["10.6.6.6, 198.51.100.1 ,192.0.2.7"]),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(client(&["10.6.6.6", "192.0.2.7"]), Some(ip("192.0.2.7")));
        assert_eq!(client(&["2001:db8::7"]), Some(ip("2001:db8::7")));
        assert_eq!(client(&["[2001:db8::7]:4711"]), Some(ip("2001:db8::7")));
        assert_eq!(client(&["[2001:db8::7]"]), Some(ip("2001:db8::7")));
        assert_eq!(client(&["192.0.2.7:4711"]), Some(ip("192.0.2.7")));
        assert_eq!(client(&["::ffff:192.0.2.7"]), Some(ip("192.0.2.7")));
        // no header, or no address in its last entry: the proxy itself
        assert_eq!(client(&[]), Some(ip("172.18.0.1")));
        assert_eq!(client(&["192.0.2.7, unknown"]), Some(ip("172.18.0.1")));
        assert_eq!(client(&["192.0.2.7,"]), Some(ip("172.18.0.1")));
        // a mapped peer is its IPv4 address, trusted as such
        let mapped: SocketAddr = "[::ffff:172.18.0.1]:40000".parse().unwrap();
        assert_eq!(
            client_address(Some(mapped), &forwarded(&["192.0.2.7"]), &trusted),
            Some(ip("192.0.2.7"))
        );
    }

    #[test]
    fn anyone_else_is_the_peer_whatever_it_claims() {
        let headers = forwarded(&["192.0.2.7"]);
        let peer: SocketAddr = "203.0.113.9:50000".parse().unwrap();
        let trusted: TrustedProxies = "172.18.0.1".parse().unwrap();
        assert_eq!(
            client_address(Some(peer), &headers, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(Some(peer), &headers, &TrustedProxies::none()),
            Some(ip("203.0.113.9"))
        );
        let mapped: SocketAddr = "[::ffff:203.0.113.9]:50000".parse().unwrap();
        assert_eq!(
            client_address(Some(mapped), &headers, &TrustedProxies::none()),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(client_address(None, &headers, &trusted), None);
    }
}
