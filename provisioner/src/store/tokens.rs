//! Operator tokens for the daemon's TCP listener: a name, the SHA-256 of
//! the token (the token itself is shown once and never stored), who made
//! it, and when it was revoked. A revoked name stays listed, and may be
//! given to a new token.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{now, Result, Store};

/// One token as `provision token list` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub name: String,
    pub created_at: String,
    pub created_by: Option<String>,
    pub revoked_at: Option<String>,
}

impl Store {
    /// Stores a new token's hash under `name`; false if a live token has
    /// that name (a revoked one is replaced).
    pub async fn create_token(&self, name: &str, hash: &str, created_by: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO api_tokens (name, hash, created_at, created_by) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET hash = ?2, created_at = ?3, created_by = ?4, \
             revoked_at = NULL WHERE revoked_at IS NOT NULL",
        )
        .bind(name)
        .bind(hash)
        .bind(now())
        .bind(created_by)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "SELECT name, created_at, created_by, revoked_at FROM api_tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| TokenRecord {
                name: r.get("name"),
                created_at: r.get("created_at"),
                created_by: r.get("created_by"),
                revoked_at: r.get("revoked_at"),
            })
            .collect())
    }

    /// Revokes the live token `name`; false if there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(done.rows_affected() == 1)
    }

    /// The name of the live token whose hash is `hash`.
    pub async fn token_named_by_hash(&self, hash: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT name FROM api_tokens WHERE hash = ? AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_revoked_token_no_longer_names_anyone_and_its_name_is_free_again() {
        let dir = std::env::temp_dir().join(format!("pv-tokens-{}", std::process::id()));
        let store = Store::open(&dir.join("state.db")).await.unwrap();
        assert!(store.create_token("ci", "h1", "root").await.unwrap());
        assert!(!store.create_token("ci", "h2", "root").await.unwrap());
        assert_eq!(
            store.token_named_by_hash("h1").await.unwrap().as_deref(),
            Some("ci")
        );
        assert!(store.revoke_token("ci").await.unwrap());
        assert!(!store.revoke_token("ci").await.unwrap());
        assert_eq!(store.token_named_by_hash("h1").await.unwrap(), None);
        assert!(store.create_token("ci", "h3", "root").await.unwrap());
        assert_eq!(
            store.token_named_by_hash("h3").await.unwrap().as_deref(),
            Some("ci")
        );
        assert_eq!(store.tokens().await.unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
