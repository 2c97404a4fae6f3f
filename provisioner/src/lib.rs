//! The provisioner: config, state store, port pool, Docker driver, Cassandra
//! admin, and the start/stop/destroy/reconcile logic behind the `provision`
//! CLI. Each operation observes (store + Docker), plans with pure functions
//! ([`plan`]), then executes ([`execute`]).

pub mod cassandra;
pub mod config;
pub mod docker;
pub mod error;
pub mod execute;
pub mod labels;
pub mod lock;
pub mod plan;
pub mod ports;
pub mod provider_id;
pub mod secrets;
pub mod session;
pub mod state;

pub use config::Config;
pub use error::{Error, ErrorKind};
pub use execute::{Provisioner, StartOptions, StartReport};
pub use provider_id::{InvalidProviderId, ProviderId};
