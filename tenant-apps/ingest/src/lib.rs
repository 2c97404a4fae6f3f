//! `ingest`: the gateway ingest server of one tenant. Gateways speak
//! protocol v1 (XML frames over TCP, see DESIGN.md); readings are written to
//! the tenant keyspace and acked in order once durable (in the commit log,
//! synced, of `INGEST_WRITE_CONSISTENCY` replicas).
//!
//! - [`protocol`]: the pure frame decoder (with the bounds of a reading)
//!   and the answers' encoding
//! - [`store`]: prepared statements; one request per frame or per group
//! - [`write_queue`]: frames of every connection grouped into requests,
//!   with bounded write concurrency
//! - [`server`]: the TCP accept loop and one task per connection
//! - [`rate_limit`]: the tenant's readings per second, held by backpressure
//! - [`tls`]: TLS on the gateway port (off, optional, required) and its
//!   certificate, reloaded when renewed
//! - [`proxy_protocol`]: the pure decoder of the PROXY protocol v2 header
//!   a front puts before a gateway's bytes
//! - [`trusted_proxies`]: the fronts trusted to send it
//!   (`INGEST_TRUSTED_PROXIES`), reading it off a connection, refusing it
//!   from anyone else
//! - [`admission`]: the connection caps (logged in, without a hello, per
//!   address) and the back-off of addresses whose hellos fail
//! - [`auth`]: checking a hello, with a short negative cache
//! - [`revocation`]: closing connections of gateways revoked meanwhile
//! - [`sampled_log`]: at most a few log lines per second per kind
//! - [`metrics`]: counters and the Prometheus text
//! - [`http`]: the internal `/healthz` and `/metrics` endpoint
//! - [`settings`]: the ingest-specific environment variables
//! - [`app`]: the `serve` command: start, serve, shut down gracefully

pub mod admission;
pub mod app;
pub mod auth;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod proxy_protocol;
pub mod rate_limit;
pub mod revocation;
pub mod sampled_log;
pub mod server;
pub mod settings;
pub mod store;
pub mod tls;
pub mod trusted_proxies;
pub mod write_queue;
