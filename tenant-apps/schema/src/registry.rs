//! The gateway registry's writes, one definition for every writer (the
//! admin panel and the `provision gateway` CLI), so that both leave the same
//! state and neither races the other: commissioning and revoking are
//! lightweight transactions on the `gateways` row.
//!
//! - Commission: `INSERT .. IF NOT EXISTS` for a new id; for a revoked id
//!   (no token hash), `UPDATE .. IF token_hash = null`. An id whose token
//!   is live is refused by both.
//! - Revoke: the token hash is deleted and `revoked_at` set, `IF EXISTS`.
//!   Ingest closes an open connection of a gateway whose row is revoked.

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
