//! The domain: identifiers, the tenant container spec and its hash, the
//! cluster's N+1 capacity, the choice of a new tenant's Cassandra cluster,
//! desired and observed state, port choice, a tenant network's subnet, and the pure planner that
//! turns them into a [`plan::Plan`]. No I/O happens here; everything else
//! depends on it, it depends on nothing of the crate but the config's data.

pub mod capacity;
pub mod failure;
pub mod ids;
pub mod placement;
pub mod plan;
pub mod planner;
pub mod ports;
pub mod spec;
pub mod state;
pub mod subnets;

pub use failure::{ErrorInfo, ErrorKind};
pub use ids::{InvalidProviderId, Pool, ProviderId, Role};
pub use plan::{Plan, Step};
pub use state::{ContainerState, Desired, GatewayTls, Health, TenantLimits};
