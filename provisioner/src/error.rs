//! The operations' error: each layer's own error (config, ports, store,
//! backend, CQL) wrapped as it is, plus what only an operation can say (an
//! unknown tenant, a container that never got healthy). [`Error::kind`]
//! sorts them into [`ErrorKind`]s, and [`ErrorKind::exit_code`] is the one
//! place a kind becomes the CLI's exit code.

use std::path::PathBuf;

use crate::backend::BackendError;
use crate::config::ConfigError;
use crate::cql::CqlError;
use crate::domain::ports::PortError;
use crate::domain::{InvalidProviderId, ProviderId, Role};
use crate::store::StoreError;

/// The classes of failure a caller may want to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
    /// Cassandra refused the configured superuser's credentials.
    CassandraAuth,
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
            ErrorKind::CassandraAuth => "cassandra_auth",
            ErrorKind::Other => "other",
        }
    }

    /// The exit code of the `provision` CLI (README, "Exit codes").
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::InvalidProviderId => 3,
            ErrorKind::PortPoolExhausted => 4,
            ErrorKind::PortTaken => 5,
            ErrorKind::EngineUnreachable => 6,
            ErrorKind::CassandraUnreachable => 7,
            ErrorKind::UnknownProvider => 8,
            ErrorKind::Unhealthy => 9,
            ErrorKind::Insecure => 10,
            ErrorKind::CassandraAuth => 11,
        }
    }
}

/// Everything an operation of the provisioner can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidProviderId(#[from] InvalidProviderId),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Cql(#[from] CqlError),
    #[error("unknown provider {0}; `provision list` shows the known ones, `provision start {0}` creates it")]
    UnknownProvider(ProviderId),
    #[error("tenant {0} has no keyspace yet; run `provision start {0}` first")]
    NoKeyspace(ProviderId),
    #[error(transparent)]
    InvalidModel(#[from] tenant_schema::model::ModelError),
    #[error("tenant {tenant}: container {container} did not become healthy within {secs} s ({why}); see `provision logs {tenant} --role {role}`")]
    Unhealthy {
        tenant: ProviderId,
        role: Role,
        container: String,
        secs: u64,
        why: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The test hook `PROVISION_TEST_FAIL_AFTER_STEP` stopped the run.
    #[error("stopped by the test hook right after step {0}")]
    Injected(usize),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidProviderId(_) => ErrorKind::InvalidProviderId,
            Error::Usage(_) | Error::Config(_) | Error::InvalidModel(_) | Error::NoKeyspace(_) => {
                ErrorKind::Usage
            }
            Error::Ports(PortError::Exhausted { .. }) => ErrorKind::PortPoolExhausted,
            Error::Ports(_) => ErrorKind::PortTaken,
            Error::Backend(BackendError::Unreachable { .. }) => ErrorKind::EngineUnreachable,
            Error::Cql(CqlError::Unreachable { .. }) => ErrorKind::CassandraUnreachable,
            Error::Cql(CqlError::AuthenticationFailed { .. }) => ErrorKind::CassandraAuth,
            Error::Cql(CqlError::DefaultSuperuserActive { .. }) => ErrorKind::Insecure,
            Error::Cql(CqlError::InvalidModel(_)) => ErrorKind::Usage,
            Error::UnknownProvider(_) | Error::Cql(CqlError::UnknownGateway { .. }) => {
                ErrorKind::UnknownProvider
            }
            Error::Unhealthy { .. } => ErrorKind::Unhealthy,
            _ => ErrorKind::Other,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
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
