//! Operator tokens for the daemon's TCP listener (`provision token
//! create|list|revoke`): a token is 32 random bytes, shown once; the store
//! keeps its SHA-256, which is what a request's bearer token is checked
//! against.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Provisioner;
use crate::error::{Error, Result};
use crate::store::tokens::TokenRecord;

/// The prefix of every operator token (so a leaked one is recognizable).
const PREFIX: &str = "pvd_";

/// A token just made: its name and the token, shown once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    pub name: String,
    pub token: String,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token's name: 1-64 of letters, digits, `-`, `_`, `.` and `@`.
fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    match ok {
        true => Ok(()),
        false => Err(Error::Usage(format!(
            "invalid token name {name:?}: use 1-64 letters, digits, '-', '_', '.' or '@'"
        ))),
    }
}

impl Provisioner {
    /// Makes a token named `name`; a live token of that name is a conflict.
    pub async fn token_create(&self, name: &str) -> Result<TokenCreated> {
        valid_name(name)?;
        let token = format!("{PREFIX}{}", crate::store::new_secret());
        if !self
            .store
            .create_token(name, &hash(&token), &self.requested_by)
            .await?
        {
            return Err(Error::TokenExists(name.to_owned()));
        }
        Ok(TokenCreated {
            name: name.to_owned(),
            token,
        })
    }

    pub async fn token_list(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.store.tokens().await?)
    }

    /// Revokes the live token `name`; an unknown one is a usage error.
    pub async fn token_revoke(&self, name: &str) -> Result<()> {
        match self.store.revoke_token(name).await? {
            true => Ok(()),
            false => Err(Error::Usage(format!(
                "no live token named {name:?}; `provision token list` shows them"
            ))),
        }
    }

    /// The name of the live token `token`, if it is one.
    pub async fn authenticate(&self, token: &str) -> Result<Option<String>> {
        if !token.starts_with(PREFIX) {
            return Ok(None);
        }
        Ok(self.store.token_named_by_hash(&hash(token)).await?)
    }
}
