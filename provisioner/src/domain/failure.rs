//! The classes of failure ([`ErrorKind`]) a caller may want to tell apart,
//! each with its stable name and the CLI's exit code, and an error as the
//! reports, the operations log and the daemon carry it ([`ErrorInfo`]).
//! Pure data: [`crate::error::Error::kind`] sorts errors into kinds.

use serde::{Deserialize, Serialize};

/// The classes of failure a caller may want to tell apart.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// What should be created exists already (a gateway, a token name).
    Conflict,
    /// The daemon refused the request's credentials (no token, a wrong or
    /// revoked one).
    Unauthorized,
    /// The daemon cannot be reached, or answered something that is not
    /// the API.
    DaemonUnreachable,
    /// Mail is off: the config has no `[mail]` relay (`provision report
    /// send`).
    MailOff,
    /// The start would leave the Swarm unable to absorb the loss of any
    /// one node (`--allow-overcommit` overrides).
    NotNPlusOne,
    /// No Swarm node has that name or id.
    UnknownNode,
    /// A node drain that did not finish: a task did not move, or is not
    /// healthy on its new node.
    DrainIncomplete,
    /// A copy-update-switch whose new app did not become healthy: it was
    /// removed, and the tenant kept serving on the old one.
    RolledBack,
    /// The front (the per-host HAProxy) could not be started, reloaded or
    /// changed.
    Front,
    /// Every Cassandra cluster holds as many tenants as its capacity.
    ClustersFull,
    /// One engine: no subnet of `[docker] tenant_subnets` is free for a
    /// new tenant network.
    SubnetsExhausted,
    /// The engine answers but cannot run tenants as they must run (a
    /// rootless one: the message names the missing capability).
    EngineUnsupported,
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// Every kind, for the documentation and the OpenAPI document.
    pub const ALL: [ErrorKind; 23] = [
        ErrorKind::Other,
        ErrorKind::Usage,
        ErrorKind::InvalidProviderId,
        ErrorKind::PortPoolExhausted,
        ErrorKind::PortTaken,
        ErrorKind::EngineUnreachable,
        ErrorKind::CassandraUnreachable,
        ErrorKind::UnknownProvider,
        ErrorKind::Unhealthy,
        ErrorKind::Insecure,
        ErrorKind::CassandraAuth,
        ErrorKind::Conflict,
        ErrorKind::Unauthorized,
        ErrorKind::DaemonUnreachable,
        ErrorKind::MailOff,
        ErrorKind::NotNPlusOne,
        ErrorKind::UnknownNode,
        ErrorKind::DrainIncomplete,
        ErrorKind::RolledBack,
        ErrorKind::Front,
        ErrorKind::ClustersFull,
        ErrorKind::SubnetsExhausted,
        ErrorKind::EngineUnsupported,
    ];

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
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::DaemonUnreachable => "daemon_unreachable",
            ErrorKind::MailOff => "mail_off",
            ErrorKind::NotNPlusOne => "not_n_plus_one",
            ErrorKind::UnknownNode => "unknown_node",
            ErrorKind::DrainIncomplete => "drain_incomplete",
            ErrorKind::RolledBack => "rolled_back",
            ErrorKind::Front => "front",
            ErrorKind::ClustersFull => "clusters_full",
            ErrorKind::SubnetsExhausted => "subnets_exhausted",
            ErrorKind::EngineUnsupported => "engine_unsupported",
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
            ErrorKind::Conflict => 12,
            ErrorKind::Unauthorized => 13,
            ErrorKind::DaemonUnreachable => 14,
            ErrorKind::MailOff => 15,
            ErrorKind::NotNPlusOne => 16,
            ErrorKind::UnknownNode => 17,
            ErrorKind::DrainIncomplete => 18,
            ErrorKind::RolledBack => 19,
            ErrorKind::Front => 20,
            ErrorKind::ClustersFull => 21,
            ErrorKind::SubnetsExhausted => 22,
            ErrorKind::EngineUnsupported => 23,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as reports, the operations log and the daemon carry it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    pub message: String,
    pub exit_code: u8,
}

impl ErrorInfo {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            kind,
            message: message.into(),
            exit_code: kind.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name_and_exit_code() {
        let names: std::collections::HashSet<_> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        let codes: std::collections::HashSet<_> =
            ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(
            (names.len(), codes.len()),
            (ErrorKind::ALL.len(), ErrorKind::ALL.len())
        );
        for kind in ErrorKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
            assert_eq!(serde_json::from_value::<ErrorKind>(json).unwrap(), kind);
        }
        assert_eq!(
            serde_json::from_str::<ErrorKind>("\"from_the_future\"").unwrap(),
            ErrorKind::Other
        );
    }
}
