//! The provisioner: config, state store, port pool, Docker driver, Cassandra
//! admin, and the start/stop/destroy/reconcile logic behind the `provision`
//! CLI.

pub mod cassandra;
pub mod provider_id;

pub use provider_id::{InvalidProviderId, ProviderId};
