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

pub use crate::domain::failure::{ErrorInfo, ErrorKind};

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
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("an operator token named {0:?} exists; revoke it first or choose another name")]
    TokenExists(String),
    /// A rule, a duration, a window or an address that does not parse.
    #[error(transparent)]
    InvalidRule(#[from] notifier::rules::RuleError),
    #[error("mail is off: the config has no [mail] relay, so no report can be sent; add a [mail] section (README, Configuration) and run `provision reconcile`")]
    MailOff,
    #[error("starting {tenant} would break N+1: if {} failed, the other nodes could not hold its tasks; add a node, free reservations, or pass --allow-overcommit", .losses.join(" or "))]
    NotNPlusOne {
        tenant: ProviderId,
        losses: Vec<String>,
    },
    #[error("node {node} is not drained: {why}")]
    DrainIncomplete { node: String, why: String },
    #[error("{0} works only in Swarm mode; set [docker] mode = \"swarm\" (README, Swarm)")]
    NotSwarmMode(&'static str),
    #[error(transparent)]
    Front(#[from] crate::front::FrontError),
    #[error("tenant {tenant}: the new {role} did not become healthy ({why}); it was removed and {role} keeps running on the old container (rolled back)")]
    RolledBack {
        tenant: ProviderId,
        role: Role,
        why: String,
    },
    #[error("no Cassandra cluster has room for tenant {tenant} (tenants/capacity: {clusters}); raise a cluster's capacity or add a [[cassandra.clusters]] entry")]
    ClustersFull {
        tenant: ProviderId,
        clusters: String,
    },
    #[error("tenant {tenant} is on Cassandra cluster {cluster:?}, which the config does not list; add it back to [[cassandra.clusters]]")]
    UnknownCluster { tenant: ProviderId, cluster: String },
    /// The test hook `PROVISION_TEST_FAIL_AFTER_STEP` stopped the run.
    #[error("stopped by the test hook right after step {0}")]
    Injected(usize),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidProviderId(_) => ErrorKind::InvalidProviderId,
            Error::Usage(_)
            | Error::Config(_)
            | Error::InvalidModel(_)
            | Error::NoKeyspace(_)
            | Error::InvalidRule(_) => ErrorKind::Usage,
            Error::MailOff => ErrorKind::MailOff,
            Error::ClustersFull { .. } => ErrorKind::ClustersFull,
            Error::UnknownCluster { .. } => ErrorKind::Usage,
            Error::NotSwarmMode(_) => ErrorKind::Usage,
            Error::NotNPlusOne { .. } => ErrorKind::NotNPlusOne,
            Error::DrainIncomplete { .. } => ErrorKind::DrainIncomplete,
            Error::Backend(BackendError::NodeUnknown { .. }) => ErrorKind::UnknownNode,
            Error::Backend(BackendError::SubnetsExhausted { .. }) => ErrorKind::SubnetsExhausted,
            Error::Ports(PortError::Exhausted { .. }) => ErrorKind::PortPoolExhausted,
            Error::Ports(_) => ErrorKind::PortTaken,
            Error::Backend(BackendError::Unreachable { .. }) => ErrorKind::EngineUnreachable,
            Error::Backend(BackendError::Unsupported { .. }) => ErrorKind::EngineUnsupported,
            Error::Cql(CqlError::Unreachable { .. }) => ErrorKind::CassandraUnreachable,
            Error::Cql(CqlError::AuthenticationFailed { .. }) => ErrorKind::CassandraAuth,
            Error::Cql(CqlError::DefaultSuperuserActive { .. }) => ErrorKind::Insecure,
            Error::Cql(CqlError::InvalidModel(_)) => ErrorKind::Usage,
            Error::UnknownProvider(_)
            | Error::Cql(CqlError::UnknownGateway { .. })
            | Error::Cql(CqlError::UnknownRule { .. }) => ErrorKind::UnknownProvider,
            Error::Unhealthy { .. } => ErrorKind::Unhealthy,
            Error::RolledBack { .. } => ErrorKind::RolledBack,
            Error::Front(_) => ErrorKind::Front,
            Error::Cql(CqlError::GatewayExists { .. }) | Error::TokenExists(_) => {
                ErrorKind::Conflict
            }
            _ => ErrorKind::Other,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }

    /// The message with its causes, each after a colon (as the CLI prints
    /// an error).
    pub fn full_message(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
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

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> ErrorInfo {
        let kind = e.kind();
        ErrorInfo {
            kind,
            message: e.full_message(),
            exit_code: kind.exit_code(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
