//! The label keys every Docker object the provisioner creates carries, so
//! that reality can be listed by label and compared with the state store.

/// The tenant (provider id) a container belongs to.
pub const TENANT: &str = "io.provision.tenant";
/// What the container is: [`ROLE_INGEST`], [`ROLE_ADMIN`], [`ROLE_NOTIFIER`]
/// or [`ROLE_CASSANDRA`].
pub const ROLE: &str = "io.provision.role";
/// The hash of the container's desired configuration: a different hash
/// means drift, and the container is recreated.
pub const CONFIG_HASH: &str = "io.provision.config-hash";
/// Marks every object managed by the provisioner (containers, the network,
/// the managed Cassandra and its volume).
pub const MANAGED: &str = "io.provision.managed";

pub const ROLE_INGEST: &str = "ingest";
pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_NOTIFIER: &str = "notifier";
pub const ROLE_CASSANDRA: &str = "cassandra";
pub const ROLE_NETWORK: &str = "network";
/// The front, the per-host HAProxy (`[front]`).
pub const ROLE_FRONT: &str = "front";
/// On a Swarm secret: the service that mounts it.
pub const SERVICE: &str = "io.provision.service";
