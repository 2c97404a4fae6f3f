//! The shared data model: validated gateway ids, gateway tokens and their
//! stored hashes, admin password hashes.

use std::fmt;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why a value was refused by the data model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error(
        "invalid gateway id {0:?}: use 1-64 characters from letters, digits, '.', '_' and '-'"
    )]
    InvalidGatewayId(String),
    #[error("cannot hash password: {0}")]
    PasswordHash(String),
    #[error("invalid display name: {0}")]
    InvalidDisplayName(&'static str),
}

/// A gateway id as a gateway sends it in its hello and as the tables key it:
/// 1 to 64 characters from ASCII letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayId(String);

impl GatewayId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ModelError::InvalidGatewayId(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GatewayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A gateway's display name as the admin panel and the CLI accept it: 1 to
/// [`DisplayName::MAX_CHARS`] characters after trimming, none of them a
/// control character (so a name can never carry terminal escapes or break
/// a line of a listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ModelError::InvalidDisplayName("must not be empty"));
        }
        if name.chars().any(char::is_control) {
            return Err(ModelError::InvalidDisplayName(
                "must not contain control characters (tabs, line breaks, escapes)",
            ));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(ModelError::InvalidDisplayName(
                "must be at most 100 characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` with every control character replaced by U+FFFD, for printing
/// something stored (a name written before [`DisplayName`] existed, or by
/// another client) to a terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// A new gateway token: 256 random bits, hex encoded. Shown once when the
/// gateway is commissioned; only [`hash_gateway_token`] of it is stored.
pub fn new_gateway_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a gateway token: its SHA-256, hex encoded. Tokens are
/// 256-bit random values, so a fast hash is enough (no dictionary to guess).
pub fn hash_gateway_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` matches a stored hash, compared in constant time.
pub fn gateway_token_matches(token: &str, stored_hash: &str) -> bool {
    let computed = hash_gateway_token(token);
    computed.len() == stored_hash.len()
        && computed
            .bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The stored form of an admin password: an argon2id PHC string.
pub fn hash_password(password: &str) -> Result<String, ModelError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ModelError::PasswordHash(e.to_string()))
}

/// Whether `password` matches a stored argon2 PHC string. A malformed stored
/// hash matches nothing.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for a tenant's first admin user or Cassandra role:
/// 24 characters from an unambiguous alphabet.
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_ids_allow_only_the_documented_characters() {
        assert!(GatewayId::parse("gw-17").is_ok());
        assert!(GatewayId::parse("site_3.inverter-1").is_ok());
        assert!(GatewayId::parse("").is_err());
        assert!(GatewayId::parse("gw 17").is_err());
        assert!(GatewayId::parse("gw/17").is_err());
        assert!(GatewayId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn display_names_refuse_control_characters_and_length_with_the_right_reason() {
        assert_eq!(DisplayName::parse("  Roof  ").unwrap().as_str(), "Roof");
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        let too_long = DisplayName::parse(&"a".repeat(101)).unwrap_err();
        assert!(too_long.to_string().contains("at most 100"), "{too_long}");
        let escape = DisplayName::parse("x\u{1b}[2Jy\u{7}").unwrap_err();
        assert!(escape.to_string().contains("control"), "{escape}");
        assert!(DisplayName::parse("   ").is_err());
    }

    #[test]
    fn printable_replaces_control_characters() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\u{1b}[31mb\u{7}"), "a\u{fffd}[31mb\u{fffd}");
    }

    #[test]
    fn a_token_matches_only_its_own_hash() {
        let token = new_gateway_token();
        assert_eq!(token.len(), 64);
        let hash = hash_gateway_token(&token);
        assert_ne!(hash, token);
        assert!(gateway_token_matches(&token, &hash));
        assert!(!gateway_token_matches(&new_gateway_token(), &hash));
        assert!(!gateway_token_matches(&token, "short"));
    }

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a phc string"));
    }

    #[test]
    fn new_passwords_are_long_and_distinct() {
        let a = new_password();
        assert_eq!(a.len(), 24);
        assert_ne!(a, new_password());
    }
}
