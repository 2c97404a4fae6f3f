//! What the tenant apps (ingest, admin, notifier) share: configuration read from the
//! environment ([`config`]), logging setup ([`logging`]), the Cassandra
//! session ([`cassandra`]), the shutdown signal ([`signal`]) and a tiny HTTP
//! GET for the `healthcheck` subcommands of scratch images and the request
//! line and answer of their internal endpoints ([`health`]), and the proxies
//! trusted to name the client they forward, `default-gateway` included
//! ([`trusted_proxies`]).
//!
//! The API here is used by two apps written separately: add freely, but keep
//! what exists stable.

pub mod cassandra;
pub mod config;
pub mod health;
pub mod logging;
pub mod signal;
pub mod trusted_proxies;

pub use cassandra::{
    connect_cassandra, connect_cassandra_lean, connect_cassandra_until, prepare_statement,
    CassandraError, PrepareFailed,
};
pub use config::{env_or, env_parse, env_required, ConfigError, TenantConfig};
pub use health::{http_get, http_healthcheck, HealthcheckError};
pub use logging::init_logging;
pub use signal::shutdown_signal;
pub use trusted_proxies::TrustedProxies;
