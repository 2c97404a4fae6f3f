//! The provisioner's typed errors. Each variant names the thing involved
//! (tenant, port, container, address) so the CLI can print one clear line,
//! and [`Error::kind`] sorts them into the classes the CLI maps to exit
//! codes.

use std::path::PathBuf;

use crate::cassandra::CassandraError;
use crate::provider_id::InvalidProviderId;

/// The classes of failure a caller may want to tell apart (the CLI maps
/// each to its own exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Usage,
    InvalidProviderId,
    PortPoolExhausted,
    PortTaken,
    EngineUnreachable,
    CassandraUnreachable,
    UnknownProvider,
    Unhealthy,
    /// The managed node's default superuser still logs in.
    Insecure,
    Other,
}

impl ErrorKind {
    /// The kind's stable name (the `kind` of the CLI's JSON errors).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::InvalidProviderId => "invalid_provider_id",
            ErrorKind::PortPoolExhausted => "port_pool_exhausted",
            ErrorKind::PortTaken => "port_taken",
            ErrorKind::EngineUnreachable => "engine_unreachable",
            ErrorKind::CassandraUnreachable => "cassandra_unreachable",
            ErrorKind::UnknownProvider => "unknown_provider",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::Insecure => "insecure",
            ErrorKind::Other => "other",
        }
    }
}

/// Everything that can go wrong in the provisioner library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidProviderId(#[from] InvalidProviderId),
    #[error("invalid configuration in {path}: {why}")]
    Config { path: PathBuf, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("the {pool} port pool {range} is exhausted: every port is leased or held on the host; destroy unused tenants or widen [ports].{pool} in the config")]
    PortPoolExhausted { pool: &'static str, range: String },
    #[error("{pool} port {port} is already leased to tenant {holder}; pick another port or omit it to get one from the pool")]
    PortLeased {
        pool: &'static str,
        port: u16,
        holder: String,
    },
    #[error("{pool} port {port} is held by another process on this host ({why}); pick another port or free it")]
    PortHeld {
        pool: &'static str,
        port: u16,
        why: String,
    },
    #[error("tenant {tenant} already has {pool} port {leased}; it keeps it until destroyed (asked for {requested})")]
    PortMismatch {
        tenant: String,
        pool: &'static str,
        leased: u16,
        requested: u16,
    },
    #[error("no Docker engine answers at {host} ({why}); start Docker or set [docker].host / DOCKER_HOST")]
    EngineUnreachable { host: String, why: String },
    #[error("docker {what} failed: {source}")]
    Docker {
        what: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error("docker image {image} is missing; run scripts/setup (or set [images] in the config)")]
    ImageMissing { image: String },
    #[error("cassandra at {contact_points} cannot be reached ({why}); check [cassandra] in the config or that the cassandra container is running")]
    CassandraUnreachable { contact_points: String, why: String },
    #[error("the default superuser cassandra/cassandra still logs in on the managed node {container} ({why}); nothing was started: check `docker logs {container}`, then run start again")]
    DefaultSuperuserActive { container: String, why: String },
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error("cassandra query for tenant {tenant} failed ({what}): {why}")]
    CassandraQuery {
        tenant: String,
        what: String,
        why: String,
    },
    #[error("unknown provider {0}; `provision list` shows the known ones, `provision start {0}` creates it")]
    UnknownProvider(String),
    #[error(
        "gateway {gateway} of tenant {tenant} already exists; revoke it first or pick another id"
    )]
    GatewayExists { tenant: String, gateway: String },
    #[error("unknown gateway {gateway} of tenant {tenant}")]
    UnknownGateway { tenant: String, gateway: String },
    #[error(transparent)]
    InvalidModel(#[from] tenant_schema::model::ModelError),
    #[error("tenant {tenant}: container {container} did not become healthy within {secs} s ({why}); see `provision logs {tenant} --role {role}`")]
    Unhealthy {
        tenant: String,
        role: String,
        container: String,
        secs: u64,
        why: String,
    },
    #[error("state store {url}: {source}")]
    State {
        url: String,
        #[source]
        source: Box<sqlx::Error>,
    },
    #[error("state store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidProviderId(_) => ErrorKind::InvalidProviderId,
            Error::Usage(_) | Error::Config { .. } | Error::InvalidModel(_) => ErrorKind::Usage,
            Error::PortPoolExhausted { .. } => ErrorKind::PortPoolExhausted,
            Error::PortLeased { .. } | Error::PortHeld { .. } | Error::PortMismatch { .. } => {
                ErrorKind::PortTaken
            }
            Error::EngineUnreachable { .. } => ErrorKind::EngineUnreachable,
            Error::CassandraUnreachable { .. } => ErrorKind::CassandraUnreachable,
            Error::UnknownProvider(_) | Error::UnknownGateway { .. } => ErrorKind::UnknownProvider,
            Error::Unhealthy { .. } => ErrorKind::Unhealthy,
            Error::DefaultSuperuserActive { .. } => ErrorKind::Insecure,
            _ => ErrorKind::Other,
        }
    }

    pub(crate) fn docker(what: impl Into<String>, source: bollard::errors::Error) -> Error {
        Error::Docker {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            what: what.into(),
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
