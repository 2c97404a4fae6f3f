//! The proxies (the front, HAProxy) a tenant app trusts to name the client
//! they forward: ingest's `INGEST_TRUSTED_PROXIES` (a PROXY protocol v2
//! header) and the admin panel's `ADMIN_TRUSTED_PROXIES`
//! (`X-Forwarded-For`). One syntax for both, parsed here:
//!
//! - comma-separated IP addresses, e.g. `10.0.1.5,10.0.2.5,fd00::5` (no
//!   names, no unspecified address);
//! - and/or networks in CIDR notation, e.g. `10.231.0.0/24`: every address
//!   in it (the nodes of a Swarm, whose fronts connect from their own
//!   addresses; `/0` is refused: it would trust everyone);
//! - and/or the entry `default-gateway`: the gateway of the container's
//!   IPv4 default route, read once at startup from `/proc/net/route`. In a
//!   container on a Docker bridge network that is the host's address on
//!   the bridge, which is where a front running with host networking
//!   connects from. No default route (or one without a gateway) stops the
//!   start with an error naming the variable.
//!
//! [`ProxyList`] is the variable as written (pure [`FromStr`]);
//! [`ProxyList::resolve`] turns it into the [`TrustedProxies`] the apps ask,
//! given the route table's text; [`default_gateway`] reads that text, a
//! pure function. [`from_lookup`] does the three for a variable.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::ConfigError;

/// Where the kernel lists the IPv4 routes.
pub const ROUTE_TABLE: &str = "/proc/net/route";

/// The entry that stands for the default route's gateway.
pub const DEFAULT_GATEWAY: &str = "default-gateway";

/// The addresses whose connections (or requests) may name the client they
/// forward. IPv4 addresses mapped into IPv6 are stored and asked as their
/// IPv4 address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    addresses: BTreeSet<IpAddr>,
    /// Networks every address of which is trusted.
    networks: BTreeSet<Network>,
    /// The address `default-gateway` resolved to, if it was asked (it is
    /// in `addresses` too).
    default_gateway: Option<Ipv4Addr>,
}

impl TrustedProxies {
    /// No proxy trusted.
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.networks.is_empty()
    }

    /// Whether `peer` is a trusted proxy (an IPv4 address mapped into IPv6
    /// is its IPv4 address).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.addresses.contains(&peer) || self.networks.iter().any(|n| n.contains(peer))
    }

    /// The trusted addresses, sorted.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.iter().copied()
    }

    /// The trusted networks, sorted.
    pub fn networks(&self) -> impl Iterator<Item = Network> + '_ {
        self.networks.iter().copied()
    }

    /// What `default-gateway` resolved to, when it was listed.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        self.default_gateway
    }
}

impl FromIterator<IpAddr> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(addresses: I) -> Self {
        TrustedProxies {
            addresses: addresses.into_iter().map(|a| a.to_canonical()).collect(),
            networks: BTreeSet::new(),
            default_gateway: None,
        }
    }
}

/// IP addresses only (`default-gateway` needs the route table: parse a
/// [`ProxyList`] and [`ProxyList::resolve`] it).
impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let list: ProxyList = s.parse()?;
        if list.default_gateway {
            return Err(format!(
                "`{DEFAULT_GATEWAY}` needs the route table: resolve a ProxyList"
            ));
        }
        Ok(TrustedProxies {
            addresses: list.addresses,
            networks: list.networks,
            default_gateway: None,
        })
    }
}

/// Comma-separated addresses, then networks (`none` when empty); the
/// default gateway is one of the addresses, not named.
impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let addresses = self.addresses.iter().map(|ip| ip.to_string());
        let networks = self.networks.iter().map(|n| n.to_string());
        for (i, entry) in addresses.chain(networks).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&entry)?;
        }
        Ok(())
    }
}

/// A network in CIDR notation (`10.231.0.0/24`, `fd00::/64`): its address
/// with the host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` (canonical: an IPv4-mapped address is its IPv4
    /// address) is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & v4_mask(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & v6_mask(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The network's address (host bits cleared).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the two networks share an address (one holds the other's
    /// first address).
    pub fn overlaps(&self, other: &Network) -> bool {
        self.contains(other.address) || other.contains(self.address)
    }

    /// An IPv4 network's subnets of length `prefix`, in address order
    /// (none for IPv6, or a `prefix` shorter than the network's own or
    /// longer than 32).
    pub fn subnets_v4(&self, prefix: u8) -> impl Iterator<Item = Network> {
        let (base, count) = match self.address {
            IpAddr::V4(base) if (self.prefix..=32).contains(&prefix) => {
                (u64::from(u32::from(base)), 1u64 << (prefix - self.prefix))
            }
            _ => (0, 0),
        };
        let step = 1u64 << (32 - prefix.min(32));
        (0..count).map(move |i| Network {
            address: IpAddr::V4(Ipv4Addr::from((base + i * step) as u32)),
            prefix,
        })
    }
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// `address/prefix`, the host bits of the address cleared; a prefix of
/// 0 (everyone) is refused.
impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is no network: write address/prefix"))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{s}`: `{address}` is not an IP address"))?;
        let address = address.to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (1..=max).contains(p))
            .ok_or_else(|| format!("`{s}`: the prefix length must be 1 to {max}"))?;
        let address = match address {
            IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(u32::from(ip) & v4_mask(prefix))),
            IpAddr::V6(ip) => {
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(ip) & v6_mask(prefix)))
            }
        };
        Ok(Network { address, prefix })
    }
}

/// A trusted-proxies variable as written: addresses, and whether
/// `default-gateway` was listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyList {
    pub addresses: BTreeSet<IpAddr>,
    pub networks: BTreeSet<Network>,
    pub default_gateway: bool,
}

/// Comma-separated entries, each an IP address, a network or
/// `default-gateway`, e.g. `default-gateway,10.0.1.5,fd00::5,10.231.0.0/24`.
impl FromStr for ProxyList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut list = ProxyList::default();
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!(
                    "an empty entry: list IP addresses (or `{DEFAULT_GATEWAY}`) separated by commas"
                ));
            }
            if item.eq_ignore_ascii_case(DEFAULT_GATEWAY) {
                list.default_gateway = true;
                continue;
            }
            if item.contains('/') {
                list.networks.insert(item.parse()?);
                continue;
            }
            let ip: IpAddr = item.parse().map_err(|_| {
                format!("`{item}` is not an IP address, a network or `{DEFAULT_GATEWAY}`")
            })?;
            if ip.is_unspecified() {
                return Err(format!(
                    "`{item}` is no peer's address: list each proxy's IP address"
                ));
            }
            list.addresses.insert(ip.to_canonical());
        }
        Ok(list)
    }
}

impl ProxyList {
    /// The trusted addresses: the listed ones, and the default route's
    /// gateway when `default-gateway` was listed, found in the text of the
    /// route table that `route_table` reads (only then is it called).
    pub fn resolve(
        self,
        route_table: impl FnOnce() -> std::io::Result<String>,
    ) -> Result<TrustedProxies, String> {
        let mut addresses = self.addresses;
        let mut default_gateway = None;
        if self.default_gateway {
            let text = route_table().map_err(|e| {
                format!("`{DEFAULT_GATEWAY}`: cannot read the route table {ROUTE_TABLE}: {e}")
            })?;
            let gateway = self::default_gateway(&text)
                .map_err(|e| format!("`{DEFAULT_GATEWAY}`: {ROUTE_TABLE}: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "`{DEFAULT_GATEWAY}`: no IPv4 default route with a gateway here (no line \
                         of {ROUTE_TABLE} with Destination 00000000 and a Gateway, as in a \
                         container on an internal network); list the proxy's IP address instead"
                    )
                })?;
            addresses.insert(IpAddr::V4(gateway));
            default_gateway = Some(gateway);
        }
        Ok(TrustedProxies {
            addresses,
            networks: self.networks,
            default_gateway,
        })
    }
}

/// The gateway of the IPv4 default route in the text of `/proc/net/route`:
/// among the lines whose Destination and Mask are `00000000`, that are up
/// (flag `RTF_UP`) and have a gateway (flag `RTF_GATEWAY`, a Gateway other
/// than `00000000`), the one with the lowest Metric (the first of equals).
/// `Ok(None)` when there is none; an error for a default route line that
/// cannot be read.
///
/// The kernel prints each address as the `u32` its four bytes (network
/// order) make in the host's byte order, `%08X`: on a little-endian host
/// `172.17.0.1` is `010011AC`.
pub fn default_gateway(route_table: &str) -> Result<Option<Ipv4Addr>, String> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for route in routes(route_table)? {
        if route.destination != 0 || route.mask != 0 {
            continue;
        }
        if route.flags & RTF_UP == 0 || route.flags & RTF_GATEWAY == 0 || route.gateway == 0 {
            continue;
        }
        // the bytes as the kernel had them, in network order
        let address = Ipv4Addr::from(route.gateway.to_ne_bytes());
        if best.is_none_or(|(m, _)| route.metric < m) {
            best = Some((route.metric, address));
        }
    }
    Ok(best.map(|(_, address)| address))
}

/// The networks the host routes to directly or through a gateway (every
/// route but the default one), from the text of [`ROUTE_TABLE`].
pub fn routed_networks(route_table: &str) -> Result<Vec<Network>, String> {
    Ok(routes(route_table)?
        .into_iter()
        .filter(|r| r.mask != 0)
        .map(|r| Network {
            address: IpAddr::V4(Ipv4Addr::from(r.destination.to_ne_bytes())),
            prefix: r.mask.count_ones() as u8,
        })
        .collect())
}

/// The networks this host reaches on a link of its own, with no router
/// and not through the interface of its default route: bridges (an
/// engine's networks), veth pairs. An address in one of them is on this
/// host; one outside them leaves it. From the text of [`ROUTE_TABLE`].
pub fn local_links(route_table: &str) -> Result<Vec<Network>, String> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let routes = routes(route_table)?;
    let outward: BTreeSet<&str> = routes
        .iter()
        .filter(|r| r.mask == 0)
        .map(|r| r.iface.as_str())
        .collect();
    Ok(routes
        .iter()
        .filter(|r| r.mask != 0 && r.flags & RTF_UP != 0 && r.flags & RTF_GATEWAY == 0)
        .filter(|r| !outward.contains(r.iface.as_str()))
        .map(|r| Network {
            address: IpAddr::V4(Ipv4Addr::from(r.destination.to_ne_bytes())),
            prefix: r.mask.count_ones() as u8,
        })
        .collect())
}

/// One line of [`ROUTE_TABLE`]: addresses as the kernel writes them (in
/// network order, read as a number of this machine's byte order).
struct Route {
    iface: String,
    destination: u32,
    gateway: u32,
    flags: u32,
    metric: u32,
    mask: u32,
}

/// The lines of [`ROUTE_TABLE`], found by its header's column names.
fn routes(route_table: &str) -> Result<Vec<Route>, String> {
    let mut lines = route_table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("no `{name}` column in its header"))
    };
    let (destination, gateway, flags, metric, mask, iface) = (
        column("Destination")?,
        column("Gateway")?,
        column("Flags")?,
        column("Metric")?,
        column("Mask")?,
        column("Iface")?,
    );
    let mut routes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let field = |i: usize, name: &str| {
            fields
                .get(i)
                .ok_or_else(|| format!("a line has no {name}: {line:?}"))
        };
        let hex = |i: usize, name: &str| {
            let text = field(i, name)?;
            u32::from_str_radix(text, 16)
                .map_err(|_| format!("{name} `{text}` is not hexadecimal: {line:?}"))
        };
        let text = field(metric, "Metric")?;
        routes.push(Route {
            iface: field(iface, "Iface")?.to_string(),
            destination: hex(destination, "Destination")?,
            gateway: hex(gateway, "Gateway")?,
            flags: hex(flags, "Flags")?,
            metric: text
                .parse()
                .map_err(|_| format!("Metric `{text}` is not a number: {line:?}"))?,
            mask: hex(mask, "Mask")?,
        });
    }
    Ok(routes)
}

/// The trusted proxies the variable `name` lists (none when unset or
/// blank), `default-gateway` resolved with the route table `route_table`
/// reads. Errors name the variable.
pub fn from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
    route_table: impl FnOnce() -> std::io::Result<String>,
) -> Result<TrustedProxies, ConfigError> {
    let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(TrustedProxies::none());
    };
    let invalid = |why: String| ConfigError::Invalid {
        name,
        value: value.clone(),
        why,
    };
    value
        .trim()
        .parse::<ProxyList>()
        .map_err(invalid)?
        .resolve(route_table)
        .map_err(invalid)
}

/// The text of this host's (this container's) [`ROUTE_TABLE`].
pub fn read_route_table() -> std::io::Result<String> {
    std::fs::read_to_string(ROUTE_TABLE)
}

/// [`from_lookup`] over the process environment and [`ROUTE_TABLE`].
pub fn from_env(name: &'static str) -> Result<TrustedProxies, ConfigError> {
    from_lookup(|n| std::env::var(n).ok(), name, read_route_table)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_routed_networks_are_every_route_but_the_default() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            podman2\t0000F00A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let networks: Vec<String> = routed_networks(table)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(networks, ["10.240.0.0/24", "192.0.2.0/24"]);
        assert_eq!(
            default_gateway(table).unwrap(),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn local_links_are_the_direct_routes_off_the_default_routes_interface() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            br-1\t0000F00A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            wg0\t0000000A\t0100A8C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n\
            br-2\t0001F00A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let links: Vec<String> = local_links(table)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        // not the LAN of eth0 (the default route's), not a routed 10/8, not
        // a route that is down
        assert_eq!(links, ["10.240.0.0/24"]);
    }

    #[test]
    fn a_network_splits_into_subnets_in_address_order() {
        let pool: Network = "10.240.0.0/12".parse().unwrap();
        let mut subnets = pool.subnets_v4(24);
        assert_eq!(subnets.next().unwrap().to_string(), "10.240.0.0/24");
        assert_eq!(subnets.next().unwrap().to_string(), "10.240.1.0/24");
        assert_eq!(pool.subnets_v4(24).count(), 4096);
        assert_eq!(
            pool.subnets_v4(24).last().unwrap().to_string(),
            "10.255.255.0/24"
        );
        assert_eq!(pool.subnets_v4(8).count(), 0, "shorter than the pool");
        assert_eq!(pool.subnets_v4(33).count(), 0);
        let v6: Network = "fd00::/64".parse().unwrap();
        assert_eq!(v6.subnets_v4(80).count(), 0);
        let whole: Network = "0.0.0.0/1".parse().unwrap();
        assert_eq!(
            whole.subnets_v4(32).last().unwrap().to_string(),
            "127.255.255.255/32"
        );
    }

    #[test]
    fn networks_overlap_when_one_holds_the_other() {
        let net = |s: &str| s.parse::<Network>().unwrap();
        assert!(net("10.240.0.0/12").overlaps(&net("10.241.3.0/24")));
        assert!(net("10.241.3.0/24").overlaps(&net("10.240.0.0/12")));
        assert!(!net("10.240.0.0/24").overlaps(&net("10.240.1.0/24")));
        assert!(!net("10.240.0.0/24").overlaps(&net("fd00::/8")));
    }

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// `/proc/net/route` in a container on a Docker bridge network
    /// (172.18.0.0/16, the host at 172.18.0.1), as a little-endian host
    /// writes it.
    const CONTAINER_ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               
eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0                                                                               
";

    fn no_table() -> std::io::Result<String> {
        panic!("the route table is read only for default-gateway")
    }

    #[test]
    fn the_list_parses_into_canonical_addresses() {
        let p: TrustedProxies = " 10.0.1.5, fd00::5 ,::ffff:10.0.2.5".parse().unwrap();
        assert!(p.trusts(ip("10.0.1.5")));
        assert!(p.trusts(ip("10.0.2.5")));
        assert!(
            p.trusts(ip("::ffff:10.0.1.5")),
            "a mapped peer is its IPv4 address"
        );
        assert!(p.trusts(ip("fd00::5")));
        assert!(!p.trusts(ip("10.0.1.6")));
        assert_eq!(p.to_string(), "10.0.1.5,10.0.2.5,fd00::5");
        assert_eq!(p.default_gateway(), None);
        assert!(!TrustedProxies::none().trusts(ip("10.0.1.5")));
        assert_eq!(TrustedProxies::none().to_string(), "none");
        for (bad, why) in [
            ("10.0.1.5,", "an empty entry"),
            ("10.0.1.5,,10.0.1.6", "an empty entry"),
            ("front-1", "`front-1` is not an IP address"),
            (
                "default_gateway",
                "is not an IP address, a network or `default-gateway`",
            ),
            ("0.0.0.0/0", "the prefix length must be 1 to 32"),
            ("10.0.0.0/33", "the prefix length must be 1 to 32"),
            ("fd00::/200", "the prefix length must be 1 to 128"),
            ("front/24", "`front` is not an IP address"),
            ("10.0.1.5:6001", "is not an IP address"),
            ("0.0.0.0", "no peer's address"),
            ("::", "no peer's address"),
            ("default-gateway", "needs the route table"),
        ] {
            let err = bad.parse::<TrustedProxies>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_network_trusts_every_address_in_it_and_no_other() {
        let p: TrustedProxies = "10.231.0.77/24, fd00:1::/64, 172.18.0.1".parse().unwrap();
        for inside in [
            "10.231.0.11",
            "10.231.0.255",
            "::ffff:10.231.0.12",
            "fd00:1::9",
        ] {
            assert!(p.trusts(ip(inside)), "{inside}");
        }
        for outside in ["10.231.1.11", "10.23.0.11", "fd00:2::9", "172.18.0.2"] {
            assert!(!p.trusts(ip(outside)), "{outside}");
        }
        assert!(p.trusts(ip("172.18.0.1")));
        // the host bits are cleared
        assert_eq!(p.to_string(), "172.18.0.1,10.231.0.0/24,fd00:1::/64");
        let host: TrustedProxies = "10.0.0.5/32".parse().unwrap();
        assert!(host.trusts(ip("10.0.0.5")) && !host.trusts(ip("10.0.0.4")));
        assert!(!host.is_empty());
    }

    #[test]
    fn default_gateway_is_an_entry_of_the_list() {
        let list: ProxyList = "10.0.1.5, Default-Gateway".parse().unwrap();
        assert!(list.default_gateway);
        assert_eq!(list.addresses, BTreeSet::from([ip("10.0.1.5")]));
        let plain: ProxyList = "10.0.1.5".parse().unwrap();
        assert!(!plain.default_gateway);
        // without default-gateway the table is never read
        let p = plain.resolve(no_table).unwrap();
        assert_eq!(p.to_string(), "10.0.1.5");
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn the_default_routes_gateway_is_read_from_the_route_table() {
        assert_eq!(
            default_gateway(CONTAINER_ROUTES),
            Ok(Some(Ipv4Addr::new(172, 18, 0, 1)))
        );
        // a host: two default routes, the lower metric wins; a default
        // route that is down or has no gateway does not count
        let host = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth1\t00000000\t0200000A\t0002\t0\t0\t0\t00000000\t0\t0\t0
tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
";
        assert_eq!(default_gateway(host), Ok(Some(Ipv4Addr::new(10, 0, 0, 1))));
        let resolved = "default-gateway,10.0.1.5"
            .parse::<ProxyList>()
            .unwrap()
            .resolve(|| Ok(CONTAINER_ROUTES.to_owned()))
            .unwrap();
        assert!(resolved.trusts(ip("172.18.0.1")));
        assert!(resolved.trusts(ip("::ffff:172.18.0.1")));
        assert!(resolved.trusts(ip("10.0.1.5")));
        assert!(!resolved.trusts(ip("172.18.0.2")));
        assert_eq!(
            resolved.default_gateway(),
            Some(Ipv4Addr::new(172, 18, 0, 1))
        );
        assert_eq!(resolved.to_string(), "10.0.1.5,172.18.0.1");
    }

    #[test]
    fn no_default_route_is_none_and_a_broken_table_an_error() {
        let header =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
        // a container on an internal network: no default route at all
        let internal =
            format!("{header}eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n");
        assert_eq!(default_gateway(&internal), Ok(None));
        assert_eq!(default_gateway(header), Ok(None));
        assert_eq!(
            default_gateway(""),
            Err("no `Destination` column in its header".into())
        );
        let bad = format!("{header}eth0\t00000000\tnothex\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
        let err = default_gateway(&bad).unwrap_err();
        assert!(err.contains("Gateway `nothex` is not hexadecimal"), "{err}");
        let short = format!("{header}eth0\t00000000\n");
        let err = default_gateway(&short).unwrap_err();
        assert!(err.contains("a line has no"), "{err}");

        let err = "default-gateway"
            .parse::<ProxyList>()
            .unwrap()
            .resolve(|| Ok(internal.clone()))
            .unwrap_err();
        assert!(
            err.contains("no IPv4 default route with a gateway"),
            "{err}"
        );
        let err = "default-gateway"
            .parse::<ProxyList>()
            .unwrap()
            .resolve(|| Err(std::io::Error::other("no /proc")))
            .unwrap_err();
        assert!(err.contains("cannot read the route table"), "{err}");
    }

    #[test]
    fn a_variable_resolves_or_names_itself() {
        let lookup =
            |value: &'static str| move |n: &str| (n == "X_PROXIES").then(|| value.to_owned());
        assert_eq!(
            from_lookup(|_| None, "X_PROXIES", no_table).unwrap(),
            TrustedProxies::none()
        );
        assert!(from_lookup(lookup("  "), "X_PROXIES", no_table)
            .unwrap()
            .is_empty());
        let p = from_lookup(lookup("10.0.1.5"), "X_PROXIES", no_table).unwrap();
        assert!(p.trusts(ip("10.0.1.5")));
        for (value, why) in [
            ("front", "not an IP address"),
            ("default-gateway", "no IPv4 default route"),
        ] {
            let err = from_lookup(lookup(value), "X_PROXIES", || {
                Ok("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n".into())
            })
            .unwrap_err();
            assert!(
                matches!(
                    &err,
                    ConfigError::Invalid {
                        name: "X_PROXIES",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains(why), "{err}");
        }
    }
}
