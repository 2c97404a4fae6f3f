//! The gateway registry (the `gateways` table): one definition of its
//! reads and writes for everyone who uses it, the admin panel, the
//! `provision gateway` CLI and ingest's token check, so that all of them
//! read a row the same way and the writers leave the same state and never
//! race each other.
//!
//! - Commission: `INSERT .. IF NOT EXISTS` for a new id; for a revoked id
//!   (no token hash), `UPDATE .. IF token_hash = null`. An id whose token
//!   is live is refused by both.
//! - Revoke: the token hash is deleted and `revoked_at` set, `IF EXISTS`.
//!   Ingest closes an open connection of a gateway whose row is revoked.
//! - Read: [`gateway`] (one row) and [`list_gateways`] (the whole table)
//!   select [`COLUMNS`], which [`GatewayEntry::from_row`] decodes; whether a
//!   token works is [`GatewayEntry::is_live`].

use chrono::{DateTime, Utc};
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};

/// `(gateway_id, token_hash, display_name, created_at)`: a new gateway.
pub fn insert_gateway(keyspace: &str) -> String {
    format!(
        "INSERT INTO {keyspace}.gateways (gateway_id, token_hash, display_name, created_at) \
         VALUES (?, ?, ?, ?) IF NOT EXISTS"
    )
}

/// `(token_hash, display_name, created_at, gateway_id)`: a new token for a
/// revoked gateway.
pub fn recommission_gateway(keyspace: &str) -> String {
    format!(
        "UPDATE {keyspace}.gateways SET token_hash = ?, display_name = ?, created_at = ?, \
         revoked_at = null WHERE gateway_id = ? IF token_hash = null"
    )
}

/// `(revoked_at, gateway_id)`: the token stops working.
pub fn revoke_gateway(keyspace: &str) -> String {
    format!(
        "UPDATE {keyspace}.gateways SET revoked_at = ?, token_hash = null \
         WHERE gateway_id = ? IF EXISTS"
    )
}

/// The columns [`gateway`] and [`list_gateways`] select, in the order of
/// [`GatewayRow`].
pub const COLUMNS: &str = "gateway_id, display_name, created_at, revoked_at, token_hash";

/// A row of [`COLUMNS`] as the driver decodes it.
pub type GatewayRow = (
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

/// `(gateway_id)`: one gateway's row, if it was ever commissioned.
pub fn gateway(keyspace: &str) -> String {
    format!("{} WHERE gateway_id = ?", list_gateways(keyspace))
}

/// `()`: every gateway's row (page through it).
pub fn list_gateways(keyspace: &str) -> String {
    format!("SELECT {COLUMNS} FROM {keyspace}.gateways")
}

/// A row of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEntry {
    pub gateway_id: String,
    pub display_name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// SHA-256 of the token ([`crate::model::hash_gateway_token`]); deleted
    /// by a revoke.
    pub token_hash: Option<String>,
}

impl GatewayEntry {
    pub fn from_row(
        (gateway_id, display_name, created_at, revoked_at, token_hash): GatewayRow,
    ) -> Self {
        Self {
            gateway_id,
            display_name,
            created_at,
            revoked_at,
            token_hash,
        }
    }

    /// Whether a token hash is stored. Commissioning the id again is refused
    /// while one is (the recommission is `IF token_hash = null`), so a row
    /// revoked by an older CLI, which set `revoked_at` and kept the hash,
    /// still has one to delete.
    pub fn has_token_hash(&self) -> bool {
        self.token_hash.as_deref().is_some_and(|h| !h.is_empty())
    }

    /// Whether the gateway's token works: a hash is stored and the gateway
    /// is not revoked.
    pub fn is_live(&self) -> bool {
        self.has_token_hash() && self.revoked_at.is_none()
    }
}

/// A lightweight transaction's answer that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the answer of a lightweight transaction: {0}")]
pub struct UnreadableAnswer(String);

/// Whether a lightweight transaction was applied (its first column,
/// `[applied]`).
pub fn lwt_applied(result: QueryResult) -> Result<bool, UnreadableAnswer> {
    let rows = result
        .into_rows_result()
        .map_err(|e| UnreadableAnswer(e.to_string()))?;
    let row = rows
        .maybe_first_row::<Row>()
        .map_err(|e| UnreadableAnswer(e.to_string()))?;
    Ok(matches!(
        row.and_then(|r| r.columns.into_iter().next().flatten()),
        Some(CqlValue::Boolean(true))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token_hash: Option<&str>, revoked: bool) -> GatewayEntry {
        GatewayEntry {
            gateway_id: "gw-1".into(),
            display_name: None,
            created_at: None,
            revoked_at: revoked.then(Utc::now),
            token_hash: token_hash.map(str::to_owned),
        }
    }

    #[test]
    fn reads_select_the_columns_of_a_row_in_its_order() {
        assert_eq!(
            list_gateways("tenant_acme"),
            "SELECT gateway_id, display_name, created_at, revoked_at, token_hash \
             FROM tenant_acme.gateways"
        );
        assert_eq!(
            gateway("tenant_acme"),
            format!("{} WHERE gateway_id = ?", list_gateways("tenant_acme"))
        );
        let at = |s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let row: GatewayRow = (
            "gw-1".into(),
            Some("Roof".into()),
            Some(at("2024-05-01T10:00:00Z")),
            Some(at("2024-05-02T10:00:00Z")),
            Some("ab".into()),
        );
        let e = GatewayEntry::from_row(row);
        assert_eq!(
            (
                e.gateway_id.as_str(),
                e.display_name.as_deref(),
                e.created_at,
                e.revoked_at,
                e.token_hash.as_deref()
            ),
            (
                "gw-1",
                Some("Roof"),
                Some(at("2024-05-01T10:00:00Z")),
                Some(at("2024-05-02T10:00:00Z")),
                Some("ab")
            )
        );
    }

    #[test]
    fn a_token_is_live_with_a_hash_and_no_revocation() {
        assert!(entry(Some("ab"), false).is_live());
        for dead in [
            entry(None, true),
            entry(None, false),
            entry(Some(""), false),
            // revoked by an older CLI, which kept the hash
            entry(Some("ab"), true),
        ] {
            assert!(!dead.is_live(), "{dead:?}");
        }
        assert!(entry(Some("ab"), true).has_token_hash());
        assert!(!entry(Some(""), false).has_token_hash());
        assert!(!entry(None, true).has_token_hash());
    }

    #[test]
    fn writes_name_the_keyspace() {
        for cql in [
            insert_gateway("k"),
            recommission_gateway("k"),
            revoke_gateway("k"),
        ] {
            assert!(cql.contains(" k.gateways "), "{cql}");
        }
    }
}
