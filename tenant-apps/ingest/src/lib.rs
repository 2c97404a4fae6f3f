//! `ingest`: the gateway ingest server of one tenant. Gateways speak
//! protocol v1 (XML frames over TCP, see DESIGN.md); readings are written to
//! the tenant keyspace and acked in order once durable.
//!
//! - [`protocol`]: the pure frame decoder and the answers' encoding
//! - [`store`]: prepared statements; one request per frame or per group
//! - [`write_queue`]: frames of every connection grouped into requests,
//!   with bounded write concurrency
//! - [`server`]: the TCP accept loop and one task per connection
//! - [`metrics`]: counters and the Prometheus text
//! - [`http`]: the internal `/healthz` and `/metrics` endpoint
//! - [`settings`]: the ingest-specific environment variables
//! - [`app`]: the `serve` command: start, serve, shut down gracefully

pub mod app;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod store;
pub mod write_queue;
