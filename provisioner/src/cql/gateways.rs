//! The `provision gateway` calls on a tenant's registry, through the
//! statements every writer shares ([`tenant_schema::registry`]): commission
//! is a lightweight transaction (a new id, or a revoked one, whose token
//! hash is null), revoke clears the token hash, so either path can
//! re-commission what either revoked, and a race with the panel has one
//! winner.

use scylla::client::session::Session;
use serde::Serialize;
use tenant_schema::model::{hash_gateway_token, new_gateway_token, DisplayName, GatewayId};
use tenant_schema::registry;

use super::{statement_error, CqlError, Result};
use crate::domain::ProviderId;

/// One commissioned gateway.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GatewayInfo {
    pub gateway: String,
    pub display_name: Option<String>,
    pub created_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Whether its token works (a token hash, not revoked).
    pub live: bool,
}

/// Commissions `gateway` and returns its token (shown once; only its hash
/// is stored). A revoked gateway gets a new token; a live one is refused.
pub async fn add(
    session: &Session,
    id: &ProviderId,
    gateway: &GatewayId,
    name: &DisplayName,
) -> Result<String> {
    let token = new_gateway_token();
    let hash = hash_gateway_token(&token);
    let now = chrono::Utc::now();
    let keyspace = id.keyspace();
    let failed = |e: &dyn std::fmt::Display| statement_error(id, "add gateway", e);
    let inserted = session
        .query_unpaged(
            registry::insert_gateway(&keyspace),
            (gateway.as_str(), &hash, name.as_str(), now),
        )
        .await
        .map_err(|e| failed(&e))?;
    if registry::lwt_applied(inserted).map_err(|e| failed(&e))? {
        return Ok(token);
    }
    let renewed = session
        .query_unpaged(
            registry::recommission_gateway(&keyspace),
            (&hash, name.as_str(), now, gateway.as_str()),
        )
        .await
        .map_err(|e| failed(&e))?;
    if registry::lwt_applied(renewed).map_err(|e| failed(&e))? {
        Ok(token)
    } else {
        Err(CqlError::GatewayExists {
            tenant: id.to_string(),
            gateway: gateway.to_string(),
        })
    }
}

/// Revokes `gateway`: the token hash is deleted, so the token stops working
/// and ingest closes the gateway's open connection; the readings stay.
pub async fn revoke(session: &Session, id: &ProviderId, gateway: &GatewayId) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| statement_error(id, "revoke gateway", e);
    let result = session
        .query_unpaged(
            registry::revoke_gateway(&id.keyspace()),
            (chrono::Utc::now(), gateway.as_str()),
        )
        .await
        .map_err(|e| failed(&e))?;
    if registry::lwt_applied(result).map_err(|e| failed(&e))? {
        Ok(())
    } else {
        Err(CqlError::UnknownGateway {
            tenant: id.to_string(),
            gateway: gateway.to_string(),
        })
    }
}

/// Every gateway of the tenant, by id (all pages; a row that cannot be
/// read is an error, not skipped).
pub async fn list(session: &Session, id: &ProviderId) -> Result<Vec<GatewayInfo>> {
    use futures::TryStreamExt;
    let failed = |e: &dyn std::fmt::Display| statement_error(id, "list gateways", e);
    let rows: Vec<registry::GatewayRow> = session
        .query_iter(registry::list_gateways(&id.keyspace()), ())
        .await
        .map_err(|e| failed(&e))?
        .rows_stream::<registry::GatewayRow>()
        .map_err(|e| failed(&e))?
        .try_collect()
        .await
        .map_err(|e| failed(&e))?;
    let mut out: Vec<GatewayInfo> = rows
        .into_iter()
        .map(registry::GatewayEntry::from_row)
        .map(|g| GatewayInfo {
            live: g.is_live(),
            gateway: g.gateway_id,
            display_name: g.display_name,
            created_at: g.created_at.map(|t| t.to_rfc3339()),
            revoked_at: g.revoked_at.map(|t| t.to_rfc3339()),
        })
        .collect();
    out.sort_by(|a, b| a.gateway.cmp(&b.gateway));
    Ok(out)
}
