//! `gateway add`, `gateway list`, `gateway revoke`, `gateway ca`: the
//! tenant's registry
//! through a superuser session, with the statements the panel uses
//! ([`crate::cql::gateways`]), under the tenant's lock, so a destroy that
//! drops the keyspace never runs in the middle of one.

use scylla::client::session::Session;
use tenant_schema::model::{DisplayName, GatewayId};

use super::Provisioner;
use crate::cql::gateways::{self, GatewayInfo};
use crate::domain::ProviderId;
use crate::error::{Error, Result};
use crate::lock::{self, FileLock};

impl Provisioner {
    pub(super) async fn registry_session(&self, id: &ProviderId) -> Result<(FileLock, Session)> {
        let lock = lock::acquire(self.data_dir(), id.as_str()).await?;
        if self.known(id).await?.schema_version == 0 {
            return Err(Error::NoKeyspace(id.clone()));
        }
        let cluster = self.cluster_config(id).await?;
        let session = crate::cql::session::admin_session(&cluster, &self.store).await?;
        Ok((lock, session))
    }

    /// Commissions a gateway; returns its token (shown once).
    pub async fn gateway_add(
        &self,
        id: &ProviderId,
        gateway: &str,
        display_name: Option<&str>,
    ) -> Result<String> {
        let gateway = GatewayId::parse(gateway)?;
        let name = DisplayName::parse(display_name.unwrap_or(gateway.as_str()))?;
        let (_lock, session) = self.registry_session(id).await?;
        Ok(gateways::add(&session, id, &gateway, &name).await?)
    }

    pub async fn gateway_list(&self, id: &ProviderId) -> Result<Vec<GatewayInfo>> {
        let (_lock, session) = self.registry_session(id).await?;
        Ok(gateways::list(&session, id).await?)
    }

    /// The certificate (PEM) `id`'s gateways must trust for TLS: the
    /// provisioner's CA (created on first use), or the top of the
    /// operator's chain.
    pub async fn gateway_ca(&self, id: &ProviderId) -> Result<String> {
        self.known(id).await?;
        Ok(self.pki().trust_pem()?)
    }

    /// Revokes a gateway: its token hash is cleared.
    pub async fn gateway_revoke(&self, id: &ProviderId, gateway: &str) -> Result<()> {
        let gateway = GatewayId::parse(gateway)?;
        let (_lock, session) = self.registry_session(id).await?;
        Ok(gateways::revoke(&session, id, &gateway).await?)
    }
}
