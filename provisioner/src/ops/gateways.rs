//! `gateway add`, `gateway list`, `gateway revoke`: the tenant's registry
//! through a superuser session, with the statements the panel uses
//! ([`crate::cql::gateways`]).

use scylla::client::session::Session;
use tenant_schema::model::{DisplayName, GatewayId};

use super::Provisioner;
use crate::cql::gateways::{self, GatewayInfo};
use crate::domain::ProviderId;
use crate::error::{Error, Result};

impl Provisioner {
    async fn registry_session(&self, id: &ProviderId) -> Result<Session> {
        if self.known(id).await?.schema_version == 0 {
            return Err(Error::NoKeyspace(id.clone()));
        }
        Ok(crate::cql::session::admin_session(&self.config, &self.store).await?)
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
        let session = self.registry_session(id).await?;
        Ok(gateways::add(&session, id, &gateway, &name).await?)
    }

    pub async fn gateway_list(&self, id: &ProviderId) -> Result<Vec<GatewayInfo>> {
        let session = self.registry_session(id).await?;
        Ok(gateways::list(&session, id).await?)
    }

    /// Revokes a gateway: its token hash is cleared.
    pub async fn gateway_revoke(&self, id: &ProviderId, gateway: &str) -> Result<()> {
        let gateway = GatewayId::parse(gateway)?;
        let session = self.registry_session(id).await?;
        Ok(gateways::revoke(&session, id, &gateway).await?)
    }
}
