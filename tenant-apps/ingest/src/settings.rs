//! The ingest-specific settings, read from the environment next to the
//! shared [`tenant_common::TenantConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tenant_common::{trusted_proxies, ConfigError};

use crate::tls::TlsMode;
use crate::trusted_proxies::TrustedProxies;

/// How one ingest process listens and limits itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `INGEST_LISTEN` (default `0.0.0.0:6000`): the gateway port.
    pub listen: SocketAddr,
    /// `INGEST_HTTP_LISTEN` (default `0.0.0.0:9100`): `/healthz`, `/metrics`.
    pub http_listen: SocketAddr,
    /// `INGEST_IDLE_TIMEOUT_SECS` (default 300): a logged-in connection
    /// with no complete frame for this long is closed (bytes that do not
    /// complete a frame do not count).
    pub idle_timeout: Duration,
    /// `INGEST_HELLO_TIMEOUT_SECS` (default 10): how long a connection has,
    /// from accept, to complete its hello; bytes do not extend it.
    pub hello_timeout: Duration,
    /// `INGEST_MAX_CONNECTIONS` (default 5000): logged-in gateway
    /// connections at once for this tenant.
    pub max_connections: usize,
    /// `INGEST_MAX_UNAUTHENTICATED` (default 256): connections that have not
    /// completed their hello, at once. When full, a new connection evicts
    /// the oldest one still waiting for its hello, so it gets its chance;
    /// these never take the slots of logged-in gateways.
    pub max_unauthenticated: usize,
    /// `INGEST_MAX_UNAUTHENTICATED_PER_ADDRESS` (default 32): connections
    /// without a completed hello from one source address (IPv4 address, or
    /// IPv6 /64) at once; the next one gets `<error code="busy">`.
    pub max_unauthenticated_per_address: usize,
    /// `INGEST_MAX_READING_AGE_DAYS` (default 30): readings older than this
    /// are refused with a nack (as are readings over 10 minutes ahead).
    pub max_reading_age: chrono::TimeDelta,
    /// `INGEST_REVOCATION_CHECK_SECS` (default 5): how often the gateways of
    /// open connections are checked for a revoked or replaced token; a
    /// revoked gateway's connection closes within about this long.
    pub revocation_check: Duration,
    /// `INGEST_WRITE_CONCURRENCY` (default 8): write requests to Cassandra
    /// in flight at once, across all connections.
    pub write_concurrency: usize,
    /// `INGEST_BATCH_FRAMES` (default 128): frames one write request
    /// carries at most, from any connections (1: one request per frame).
    /// Requests are also capped at 32 KiB.
    pub batch_frames: usize,
    /// `INGEST_BATCH_LINGER_MS` (default 5; 0 turns it off): while other
    /// write requests are in flight, how long the next one may wait, from
    /// its first frame's arrival, for more frames; it stops waiting once
    /// nothing else is in flight. With nothing in flight a frame goes at
    /// once.
    pub batch_linger: Duration,
    /// `INGEST_MAX_PIPELINE` (default 128): unacked frames per connection
    /// before ingest stops reading from it.
    pub max_pipeline: usize,
    /// `INGEST_MAX_FRAMES_IN_FLIGHT` (default 16384): unacked frames over
    /// all connections before connections stop being read, so that a fleet
    /// that sends faster than Cassandra takes holds ingest's memory at a
    /// bound (backpressure, as the rate limit's: nothing is refused).
    pub max_frames_in_flight: usize,
    /// `INGEST_MAX_READINGS_PER_SEC` (default 0: unlimited): readings per
    /// second this tenant's ingest takes in at most, over all its
    /// connections (a batch counts its readings); held by backpressure,
    /// never by refusing ([`crate::rate_limit`]).
    pub max_readings_per_sec: u32,
    /// `INGEST_TLS` (`off`, `optional` or `required`; default `off`): TLS on
    /// the gateway port. Anything but `off` needs the two files below.
    pub tls: TlsMode,
    /// `INGEST_TLS_CERT_FILE`: the server certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// `INGEST_TLS_KEY_FILE`: its private key (PEM). Both files are read
    /// again when they change (a renewal needs no restart).
    pub tls_key: Option<PathBuf>,
    /// `INGEST_WRITE_CONSISTENCY` (default `local_quorum`; see
    /// [`crate::store::parse_consistency`]): how many replicas hold a frame
    /// before it is acked.
    pub write_consistency: scylla::statement::Consistency,
    /// `INGEST_TRUSTED_PROXIES` (comma-separated IP addresses and/or
    /// `default-gateway`; default none): the fronts whose connections start
    /// with a PROXY protocol v2 header, whose source address then stands
    /// for the connection's ([`crate::trusted_proxies`]). From any other
    /// address a header is refused; with none set, no header is expected at
    /// all. `default-gateway` is the gateway of the default route in
    /// `/proc/net/route`, read when the settings are (no such route: an
    /// error).
    pub trusted_proxies: TrustedProxies,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:6000";
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:9100";

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            http_listen: DEFAULT_HTTP_LISTEN.parse().expect("valid default"),
            idle_timeout: Duration::from_secs(300),
            hello_timeout: Duration::from_secs(10),
            max_connections: 5000,
            max_unauthenticated: 256,
            max_unauthenticated_per_address: 32,
            max_reading_age: chrono::TimeDelta::days(30),
            revocation_check: Duration::from_secs(5),
            write_concurrency: 8,
            batch_frames: 128,
            batch_linger: Duration::from_millis(5),
            max_pipeline: 128,
            max_frames_in_flight: 16384,
            max_readings_per_sec: 0,
            tls: TlsMode::Off,
            tls_cert: None,
            tls_key: None,
            write_consistency: scylla::statement::Consistency::LocalQuorum,
            trusted_proxies: TrustedProxies::none(),
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (and `default-gateway`, if
    /// asked, from this host's `/proc/net/route`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_and_routes(lookup, trusted_proxies::read_route_table)
    }

    /// Reads the settings through `lookup`, with `route_table` reading the
    /// text of `/proc/net/route` when `INGEST_TRUSTED_PROXIES` lists
    /// `default-gateway`.
    pub fn from_lookup_and_routes(
        lookup: impl Fn(&str) -> Option<String>,
        route_table: impl FnOnce() -> std::io::Result<String>,
    ) -> Result<Self, ConfigError> {
        let d = Self::default();
        let secs = |name, default: Duration| {
            positive(&lookup, name, default.as_secs()).map(Duration::from_secs)
        };
        let max_age_days = positive(
            &lookup,
            "INGEST_MAX_READING_AGE_DAYS",
            d.max_reading_age.num_days(),
        )?;
        Self {
            listen: parse(&lookup, "INGEST_LISTEN", d.listen)?,
            http_listen: parse(&lookup, "INGEST_HTTP_LISTEN", d.http_listen)?,
            idle_timeout: secs("INGEST_IDLE_TIMEOUT_SECS", d.idle_timeout)?,
            hello_timeout: secs("INGEST_HELLO_TIMEOUT_SECS", d.hello_timeout)?,
            max_connections: positive(&lookup, "INGEST_MAX_CONNECTIONS", d.max_connections)?,
            max_unauthenticated: positive(
                &lookup,
                "INGEST_MAX_UNAUTHENTICATED",
                d.max_unauthenticated,
            )?,
            max_unauthenticated_per_address: positive(
                &lookup,
                "INGEST_MAX_UNAUTHENTICATED_PER_ADDRESS",
                d.max_unauthenticated_per_address,
            )?,
            max_reading_age: chrono::TimeDelta::try_days(max_age_days).ok_or_else(|| {
                ConfigError::Invalid {
                    name: "INGEST_MAX_READING_AGE_DAYS",
                    value: max_age_days.to_string(),
                    why: "too large".into(),
                }
            })?,
            revocation_check: secs("INGEST_REVOCATION_CHECK_SECS", d.revocation_check)?,
            write_concurrency: positive(&lookup, "INGEST_WRITE_CONCURRENCY", d.write_concurrency)?,
            batch_frames: positive(&lookup, "INGEST_BATCH_FRAMES", d.batch_frames)?,
            batch_linger: Duration::from_millis(parse(
                &lookup,
                "INGEST_BATCH_LINGER_MS",
                d.batch_linger.as_millis() as u64,
            )?),
            max_pipeline: positive(&lookup, "INGEST_MAX_PIPELINE", d.max_pipeline)?,
            max_frames_in_flight: positive(
                &lookup,
                "INGEST_MAX_FRAMES_IN_FLIGHT",
                d.max_frames_in_flight,
            )?,
            max_readings_per_sec: parse(
                &lookup,
                "INGEST_MAX_READINGS_PER_SEC",
                d.max_readings_per_sec,
            )?,
            tls: tls_mode(&lookup)?,
            tls_cert: path(&lookup, "INGEST_TLS_CERT_FILE"),
            tls_key: path(&lookup, "INGEST_TLS_KEY_FILE"),
            write_consistency: match lookup("INGEST_WRITE_CONSISTENCY") {
                Some(v) if !v.trim().is_empty() => {
                    crate::store::parse_consistency(&v).map_err(|why| ConfigError::Invalid {
                        name: "INGEST_WRITE_CONSISTENCY",
                        value: v.clone(),
                        why,
                    })?
                }
                _ => d.write_consistency,
            },
            trusted_proxies: trusted_proxies::from_lookup(
                &lookup,
                "INGEST_TRUSTED_PROXIES",
                route_table,
            )?,
        }
        .checked()
    }

    /// TLS on needs both of its files.
    fn checked(self) -> Result<Self, ConfigError> {
        if self.tls != TlsMode::Off {
            for (name, file) in [
                ("INGEST_TLS_CERT_FILE", &self.tls_cert),
                ("INGEST_TLS_KEY_FILE", &self.tls_key),
            ] {
                if file.is_none() {
                    return Err(ConfigError::Invalid {
                        name,
                        value: String::new(),
                        why: format!("INGEST_TLS={} needs it", self.tls.as_str()),
                    });
                }
            }
        }
        Ok(self)
    }
}

fn tls_mode(lookup: &impl Fn(&str) -> Option<String>) -> Result<TlsMode, ConfigError> {
    match lookup("INGEST_TLS") {
        Some(v) if !v.trim().is_empty() => v.trim().parse().map_err(|why| ConfigError::Invalid {
            name: "INGEST_TLS",
            value: v.clone(),
            why,
        }),
        _ => Ok(TlsMode::Off),
    }
}

fn path(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<PathBuf> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .map(|v| PathBuf::from(v.trim()))
}

fn parse<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                value: v.clone(),
                why: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

fn positive<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default + Copy,
    T::Err: std::fmt::Display,
{
    let value = parse(lookup, name, default)?;
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            value: lookup(name).unwrap_or_default(),
            why: "must be greater than 0".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|n| map.get(n).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        assert_eq!(read(&[]).unwrap(), Settings::default());
        let blank = read(&[("INGEST_TRUSTED_PROXIES", " ")]).unwrap();
        assert!(blank.trusted_proxies.is_empty(), "no front trusted");
    }

    #[test]
    fn set_values_are_used() {
        let s = read(&[
            ("INGEST_LISTEN", "127.0.0.1:7000"),
            ("INGEST_IDLE_TIMEOUT_SECS", "5"),
            ("INGEST_MAX_CONNECTIONS", "3"),
            ("INGEST_WRITE_CONCURRENCY", "5"),
            ("INGEST_BATCH_FRAMES", "1"),
            ("INGEST_BATCH_LINGER_MS", "0"),
            ("INGEST_HELLO_TIMEOUT_SECS", "3"),
            ("INGEST_MAX_UNAUTHENTICATED", "50"),
            ("INGEST_MAX_UNAUTHENTICATED_PER_ADDRESS", "4"),
            ("INGEST_MAX_READING_AGE_DAYS", "7"),
            ("INGEST_REVOCATION_CHECK_SECS", "2"),
            ("INGEST_WRITE_CONSISTENCY", "ONE"),
            ("INGEST_MAX_READINGS_PER_SEC", "500"),
            ("INGEST_TRUSTED_PROXIES", "10.0.1.5, 10.0.2.5"),
        ])
        .unwrap();
        assert!(s.trusted_proxies.trusts("10.0.2.5".parse().unwrap()));
        assert!(!s.trusted_proxies.trusts("10.0.3.5".parse().unwrap()));
        assert_eq!(s.max_readings_per_sec, 500);
        assert_eq!(s.write_consistency, scylla::statement::Consistency::One);
        assert_eq!(s.hello_timeout, Duration::from_secs(3));
        assert_eq!(s.max_unauthenticated, 50);
        assert_eq!(s.max_unauthenticated_per_address, 4);
        assert_eq!(s.max_reading_age, chrono::TimeDelta::days(7));
        assert_eq!(s.revocation_check, Duration::from_secs(2));
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.write_concurrency, 5);
        assert_eq!(s.batch_frames, 1);
        assert_eq!(s.batch_linger, Duration::ZERO);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn default_gateway_is_read_from_the_route_table() {
        let map: HashMap<String, String> = HashMap::from([(
            "INGEST_TRUSTED_PROXIES".to_string(),
            "default-gateway, 10.0.1.5".to_string(),
        )]);
        let routes =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                      eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                      eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let s = Settings::from_lookup_and_routes(|n| map.get(n).cloned(), || Ok(routes.into()))
            .unwrap();
        assert!(s.trusted_proxies.trusts("172.18.0.1".parse().unwrap()));
        assert!(s.trusted_proxies.trusts("10.0.1.5".parse().unwrap()));
        assert_eq!(s.trusted_proxies.to_string(), "10.0.1.5,172.18.0.1");
        // no default route: the start fails, naming the variable
        let err = Settings::from_lookup_and_routes(
            |n| map.get(n).cloned(),
            || Ok("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n".into()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("INGEST_TRUSTED_PROXIES"), "{err}");
        assert!(err.to_string().contains("no IPv4 default route"), "{err}");
    }

    #[test]
    fn tls_needs_both_files() {
        let err = read(&[
            ("INGEST_TLS", "optional"),
            ("INGEST_TLS_CERT_FILE", "/c.pem"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("INGEST_TLS_KEY_FILE"), "{err}");
        let s = read(&[
            ("INGEST_TLS", "required"),
            ("INGEST_TLS_CERT_FILE", "/c.pem"),
            ("INGEST_TLS_KEY_FILE", "/k.pem"),
        ])
        .unwrap();
        assert_eq!(s.tls, TlsMode::Required);
        assert_eq!(s.tls_key, Some(PathBuf::from("/k.pem")));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("INGEST_LISTEN", "localhost"),
            ("INGEST_HTTP_LISTEN", "0.0.0.0"),
            ("INGEST_IDLE_TIMEOUT_SECS", "0"),
            ("INGEST_MAX_CONNECTIONS", "-4"),
            ("INGEST_WRITE_CONCURRENCY", "many"),
            ("INGEST_BATCH_FRAMES", "0"),
            ("INGEST_BATCH_LINGER_MS", "-1"),
            ("INGEST_HELLO_TIMEOUT_SECS", "0"),
            ("INGEST_MAX_UNAUTHENTICATED", "0"),
            ("INGEST_MAX_UNAUTHENTICATED_PER_ADDRESS", "none"),
            ("INGEST_MAX_READING_AGE_DAYS", "0"),
            ("INGEST_MAX_READING_AGE_DAYS", "99999999999999"),
            ("INGEST_REVOCATION_CHECK_SECS", "0"),
            ("INGEST_TLS", "on"),
            ("INGEST_TLS", "required"),
            ("INGEST_WRITE_CONSISTENCY", "serial"),
            ("INGEST_MAX_READINGS_PER_SEC", "-1"),
            ("INGEST_MAX_READINGS_PER_SEC", "fast"),
            ("INGEST_MAX_READINGS_PER_SEC", "5000000000"),
            ("INGEST_TRUSTED_PROXIES", "front-1"),
            ("INGEST_TRUSTED_PROXIES", "10.0.1.5,"),
            ("INGEST_TRUSTED_PROXIES", "10.0.0.0/0"),
        ] {
            let err = read(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
