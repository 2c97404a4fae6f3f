//! Desired and observed state, as types: what the store says a tenant
//! should be ([`Desired`], [`TenantRecord`]) and what the container
//! platform shows ([`ObservedContainer`], [`ObservedInfra`]). The planner
//! compares the two; nothing here does I/O.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::ids::{ProviderId, Role};

/// What a provider should be.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
    /// Containers removed and ports released; data kept.
    Destroyed,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Destroyed => "destroyed",
        }
    }

    /// `None` for anything else: the caller decides that an unknown value
    /// is an error (it never defaults).
    pub fn parse(s: &str) -> Option<Desired> {
        [Desired::Running, Desired::Stopped, Desired::Destroyed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which transports a tenant's gateway port takes (`--gateway-tls`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GatewayTls {
    /// Plain TCP only.
    Off,
    /// Plain and TLS on the one port (told apart by the first byte).
    #[default]
    Optional,
    /// TLS only; a plain connection gets `<error code="tls">`.
    Required,
}

impl GatewayTls {
    pub const ALL: [GatewayTls; 3] = [GatewayTls::Off, GatewayTls::Optional, GatewayTls::Required];

    pub fn as_str(self) -> &'static str {
        match self {
            GatewayTls::Off => "off",
            GatewayTls::Optional => "optional",
            GatewayTls::Required => "required",
        }
    }

    /// `None` for anything else.
    pub fn parse(s: &str) -> Option<GatewayTls> {
        GatewayTls::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for GatewayTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A tenant's noisy-neighbour limits (`start --max-readings-per-sec`,
/// `--max-gateways`), kept in its desired state. `None` is the default:
/// no rate limit, and ingest's own cap on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TenantLimits {
    /// Readings per second the tenant's ingest takes in at most (held by
    /// backpressure); `null`: unlimited.
    pub max_readings_per_sec: Option<NonZeroU32>,
    /// Gateway connections at once (`INGEST_MAX_CONNECTIONS`); `null`:
    /// ingest's default (1000).
    pub max_gateways: Option<NonZeroU32>,
}

impl TenantLimits {
    /// These limits changed as `start` asks: `Some(0)` goes back to the
    /// default, `Some(n)` sets `n`, `None` keeps what is there.
    pub fn changed(self, max_readings_per_sec: Option<u32>, max_gateways: Option<u32>) -> Self {
        Self {
            max_readings_per_sec: max_readings_per_sec
                .map_or(self.max_readings_per_sec, NonZeroU32::new),
            max_gateways: max_gateways.map_or(self.max_gateways, NonZeroU32::new),
        }
    }
}

impl fmt::Display for TenantLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_readings_per_sec {
            Some(n) => write!(f, "max {n} readings/s")?,
            None => f.write_str("readings/s unlimited")?,
        }
        match self.max_gateways {
            Some(n) => write!(f, ", max {n} gateways"),
            None => f.write_str(", max gateways as ingest's default"),
        }
    }
}

/// A tenant's gateway certificate as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateObserved {
    /// The operator's own certificate (`[gateway_tls]`): nothing to issue.
    Operator,
    Missing,
    /// Issued by a CA of the provisioner's.
    Issued {
        /// Whole days until it expires (negative: expired).
        days_left: i64,
        /// It names `[ports] public_host`.
        host_matches: bool,
        /// The CA in the data directory now issued it.
        by_current_ca: bool,
    },
}

/// A container's state as the platform reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// Anything the platform reports that is none of the above.
    #[default]
    Unknown,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Unknown => "unknown",
        }
    }

    pub fn is_running(self) -> bool {
        self == ContainerState::Running
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A container's health as the platform reports it, or the provisioner's own
/// probe where the platform has run no check.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    /// No healthcheck, or not running.
    #[default]
    #[serde(rename = "-")]
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => "starting",
            Health::Unknown => "-",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A tenant container found by our labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub name: String,
    /// The tenant label, if it holds a valid provider id.
    pub tenant: Option<ProviderId>,
    pub state: ContainerState,
    pub health: Health,
    /// The hash of the [`crate::domain::spec::ContainerSpec`] it was
    /// created from (a label).
    pub spec_hash: Option<String>,
    /// Its address on its tenant network while it runs (one engine; what
    /// the front forwards to).
    pub address: Option<std::net::IpAddr>,
}

impl ObservedContainer {
    pub fn running(&self) -> bool {
        self.state.is_running()
    }
}

/// The managed Cassandra container as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CassandraObserved {
    /// External cluster: nothing to manage.
    External,
    Missing,
    Stopped,
    Running,
}

/// A network as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkObserved {
    pub exists: bool,
    /// Whether [`ObservedInfra::attach_container`] is attached to it.
    pub cassandra_attached: bool,
}

/// The shared infrastructure, and the network of the tenant being planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInfra {
    /// The shared network (the managed Cassandra's own).
    pub network: String,
    pub network_exists: bool,
    pub cassandra_container: String,
    pub cassandra: CassandraObserved,
    /// Managed mode: the container was created from another build than the
    /// one `cassandra.image` names now. Reported, never acted on:
    /// recreating the node stops every tenant's storage, so the operator
    /// chooses when.
    pub cassandra_outdated: bool,
    /// Managed mode: the container was created before its hardening.
    /// Reported like [`ObservedInfra::cassandra_outdated`].
    pub cassandra_unhardened: bool,
    /// Managed mode: the default superuser `cassandra`/`cassandra` logged
    /// in when tried (only tried while the node runs).
    pub default_superuser_login: bool,
    /// The Cassandra container to attach to every tenant network (managed
    /// mode, or an external node that runs as a container on this engine).
    pub attach_container: Option<String>,
    /// The network of the tenant being planned.
    pub tenant_network: NetworkObserved,
    /// The front, when `[front] enabled`.
    pub front: FrontObserved,
}

/// The front (the per-host HAProxy that owns the tenant ports) as
/// observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontObserved {
    /// `[front] enabled = false`: each tenant app publishes its own port.
    #[default]
    Off,
    Missing,
    Stopped,
    /// Running; `routes_current`: its routes for the tenant being planned
    /// are what the tenant's leases and containers say now.
    Running {
        routes_current: bool,
    },
}

impl FrontObserved {
    pub fn enabled(self) -> bool {
        self != FrontObserved::Off
    }
}

/// One tenant as the state store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: ProviderId,
    pub desired: Desired,
    pub cassandra_password: String,
    pub session_secret: String,
    pub schema_version: u32,
    pub role_ready: bool,
    pub admin_user_created: bool,
    pub gateway_port: Option<u16>,
    pub admin_port: Option<u16>,
    pub created_at: String,
    /// TLS on the gateway port, as last asked by `start`.
    pub gateway_tls: GatewayTls,
    /// The rate limit and the cap on gateways, as last asked by `start`.
    pub limits: TenantLimits,
    /// The tag of the images the tenant's apps run, as `provision upgrade
    /// --image-tag` last set it; `None`: the configured images.
    pub image_tag: Option<String>,
    /// The Cassandra cluster it is on (`[[cassandra.clusters]]`'s name, or
    /// `default`).
    pub cluster: String,
}

impl TenantRecord {
    /// The port leased for `role`'s pool (`None` for the notifier, which
    /// publishes none).
    pub fn port(&self, role: Role) -> Option<u16> {
        match role {
            Role::Ingest => self.gateway_port,
            Role::Admin => self.admin_port,
            Role::Notifier => None,
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        [self.gateway_port, self.admin_port]
            .into_iter()
            .flatten()
            .collect()
    }
}
