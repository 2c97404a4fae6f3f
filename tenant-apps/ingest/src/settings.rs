//! The ingest-specific settings, read from the environment next to the
//! shared [`tenant_common::TenantConfig`].

use std::net::SocketAddr;
use std::time::Duration;

use tenant_common::ConfigError;

/// How one ingest process listens and limits itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `INGEST_LISTEN` (default `0.0.0.0:6000`): the gateway port.
    pub listen: SocketAddr,
    /// `INGEST_HTTP_LISTEN` (default `0.0.0.0:9100`): `/healthz`, `/metrics`.
    pub http_listen: SocketAddr,
    /// `INGEST_IDLE_TIMEOUT_SECS` (default 300).
    pub idle_timeout: Duration,
    /// `INGEST_MAX_CONNECTIONS` (default 1000): the cap for this tenant.
    pub max_connections: usize,
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
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:6000";
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:9100";

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            http_listen: DEFAULT_HTTP_LISTEN.parse().expect("valid default"),
            idle_timeout: Duration::from_secs(300),
            max_connections: 1000,
            write_concurrency: 8,
            batch_frames: 128,
            batch_linger: Duration::from_millis(5),
            max_pipeline: 128,
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let idle: u64 = positive(&lookup, "INGEST_IDLE_TIMEOUT_SECS", 300)?;
        Ok(Self {
            listen: parse(&lookup, "INGEST_LISTEN", d.listen)?,
            http_listen: parse(&lookup, "INGEST_HTTP_LISTEN", d.http_listen)?,
            idle_timeout: Duration::from_secs(idle),
            max_connections: positive(&lookup, "INGEST_MAX_CONNECTIONS", d.max_connections)?,
            write_concurrency: positive(&lookup, "INGEST_WRITE_CONCURRENCY", d.write_concurrency)?,
            batch_frames: positive(&lookup, "INGEST_BATCH_FRAMES", d.batch_frames)?,
            batch_linger: Duration::from_millis(parse(
                &lookup,
                "INGEST_BATCH_LINGER_MS",
                d.batch_linger.as_millis() as u64,
            )?),
            max_pipeline: positive(&lookup, "INGEST_MAX_PIPELINE", d.max_pipeline)?,
        })
    }
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
        ])
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.write_concurrency, 5);
        assert_eq!(s.batch_frames, 1);
        assert_eq!(s.batch_linger, Duration::ZERO);
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
        ] {
            let err = read(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
