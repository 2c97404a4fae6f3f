//! The provisioner library: gives IoT service providers (tenants) their
//! own stack on a container platform. Layers, each depending only on those
//! listed before it:
//!
//! - [`config`] and [`domain`], the base, with no I/O but reading the
//!   config file: the TOML configuration, and ids, the tenant container
//!   spec and its hash, desired and observed state, port choice and the
//!   pure planner (they share their types: a config holds port ranges, a
//!   spec is made from the config).
//! - [`store`]: the SQLite state store (tenants, leases, operations).
//! - [`backend`]: the container platform seam, and its Docker engine and
//!   in-memory implementations.
//! - [`cql`]: Cassandra as a superuser: session, keyspaces, roles,
//!   migrations, the gateway registry's calls.
//! - [`ops`]: the operations (start, stop, destroy, reconcile, status,
//!   gateways, history), each observe → plan → apply, and the executor.
//!
//! [`front`] renders the HAProxy configuration of the front that owns the
//! tenants' public ports (a pure function; nothing runs the front yet).
//!
//! [`error`] wraps each layer's error and maps kinds to exit codes.

pub mod backend;
pub mod config;
pub mod cql;
pub mod domain;
pub mod error;
pub mod front;
pub mod labels;
pub mod lock;
pub mod ops;
pub mod pki;
pub mod secrets;
pub mod store;

pub use config::Config;
pub use domain::{InvalidProviderId, ProviderId, Role};
pub use error::{Error, ErrorInfo, ErrorKind};
pub use ops::{Provisioner, StartOptions, StartReport};
