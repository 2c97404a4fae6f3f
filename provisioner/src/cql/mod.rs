//! Cassandra as the provisioner's superuser: the session ([`session`]),
//! the managed node's default superuser ([`superuser`]), each tenant's
//! keyspace, schema migrations, role and first admin user ([`tenant`]),
//! the gateway registry's calls for the CLI ([`gateways`]), and the alert
//! rules, report requests, mails and report settings ([`alerts`]).
//!
//! [`TenantStorage`] is the seam the executor sees: what a plan's
//! storage steps need. [`CqlConnector`] opens the real one; the executor's
//! unit tests use one in memory.

pub mod alerts;
pub mod gateways;
pub mod session;
pub mod superuser;
pub mod tenant;

use std::sync::Arc;

use async_trait::async_trait;
use scylla::client::session::Session;

pub use tenant::Replication;
pub use tenant_schema::cql::{connect_published, PublishedPortTranslator};

use crate::config::Config;
use crate::domain::ProviderId;
use crate::store::Store;

/// What can go wrong talking to Cassandra.
#[derive(Debug, thiserror::Error)]
pub enum CqlError {
    #[error("cassandra at {contact_points} cannot be reached ({why}); check [cassandra] in the config or that the cassandra container is running")]
    Unreachable { contact_points: String, why: String },
    #[error("cassandra at {contact_points} refused the login of {user} ({why}); check [cassandra].admin_user and admin_password in the config")]
    AuthenticationFailed {
        user: String,
        contact_points: String,
        why: String,
    },
    #[error("the default superuser cassandra/cassandra still logs in on the managed node {container} ({why}); nothing was started: check `docker logs {container}`, then run start again")]
    DefaultSuperuserActive { container: String, why: String },
    #[error("the state store failed while setting up the managed superuser: {0}")]
    Store(String),
    #[error("cassandra statement for tenant {tenant} failed ({what}): {why}")]
    Statement {
        tenant: String,
        what: String,
        why: String,
    },
    #[error(
        "gateway {gateway} of tenant {tenant} already exists; revoke it first or pick another id"
    )]
    GatewayExists { tenant: String, gateway: String },
    #[error("unknown gateway {gateway} of tenant {tenant}")]
    UnknownGateway { tenant: String, gateway: String },
    #[error("unknown alert rule {rule} of tenant {tenant}; `provision alert list {tenant}` shows its rules")]
    UnknownRule { tenant: String, rule: String },
    #[error("the alerts of tenant {tenant}: {source}")]
    Alerts {
        tenant: String,
        #[source]
        source: notifier::store::StoreError,
    },
    #[error(transparent)]
    InvalidModel(#[from] tenant_schema::model::ModelError),
}

pub type Result<T, E = CqlError> = std::result::Result<T, E>;

/// A failed statement of `tenant`.
pub(crate) fn statement_error(
    tenant: &ProviderId,
    what: &str,
    why: impl std::fmt::Display,
) -> CqlError {
    CqlError::Statement {
        tenant: tenant.to_string(),
        what: what.to_owned(),
        why: why.to_string(),
    }
}

/// What a plan's storage steps need from Cassandra. Every call is
/// idempotent: running it again after a crash halfway converges.
#[async_trait]
pub trait TenantStorage: Send + Sync {
    /// Managed mode: the default superuser loses login and superuser
    /// status, and its login is then refused.
    async fn retire_default_superuser(&self, container: &str) -> Result<()>;
    /// Creates the keyspace, migrates its schema; returns the version now
    /// applied.
    async fn ensure_keyspace(&self, id: &ProviderId) -> Result<u32>;
    async fn ensure_role(&self, id: &ProviderId, password: &str) -> Result<()>;
    async fn create_admin_user(
        &self,
        id: &ProviderId,
        username: &str,
        password: &str,
    ) -> Result<()>;
    /// Drops the keyspace (all its data) and the role.
    async fn drop_tenant(&self, id: &ProviderId) -> Result<()>;
}

/// Opens a [`TenantStorage`] on a cluster when a plan first needs one,
/// and asks the managed node whether its default superuser logs in (an
/// observation). Each call gets the config as that cluster sees it
/// ([`Config::for_cluster`]).
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, cluster: &Config, store: &Store) -> Result<Arc<dyn TenantStorage>>;
    async fn default_login_works(&self, managed: &Config) -> bool;
}

/// The real connector: a superuser session ([`session::admin_session`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CqlConnector;

#[async_trait]
impl Connector for CqlConnector {
    async fn connect(&self, cluster: &Config, store: &Store) -> Result<Arc<dyn TenantStorage>> {
        let session = session::admin_session(cluster, store).await?;
        Ok(Arc::new(CqlAdmin {
            session,
            config: cluster.clone(),
        }))
    }

    async fn default_login_works(&self, managed: &Config) -> bool {
        superuser::default_login_works(managed).await
    }
}

/// Cassandra administered through a superuser session.
pub struct CqlAdmin {
    pub session: Session,
    config: Config,
}

#[async_trait]
impl TenantStorage for CqlAdmin {
    async fn retire_default_superuser(&self, container: &str) -> Result<()> {
        superuser::retire_and_check(&self.session, &self.config, container).await
    }

    async fn ensure_keyspace(&self, id: &ProviderId) -> Result<u32> {
        tenant::ensure_keyspace(&self.session, id, &self.config.replication()).await
    }

    async fn ensure_role(&self, id: &ProviderId, password: &str) -> Result<()> {
        tenant::ensure_role(&self.session, id, password).await
    }

    async fn create_admin_user(
        &self,
        id: &ProviderId,
        username: &str,
        password: &str,
    ) -> Result<()> {
        tenant::create_admin_user(&self.session, id, username, password).await
    }

    async fn drop_tenant(&self, id: &ProviderId) -> Result<()> {
        tenant::drop_tenant(&self.session, id).await
    }
}
