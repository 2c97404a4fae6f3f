//! The shared data model: validated gateway ids and display names, gateway
//! tokens and their stored hashes, admin password hashes and their
//! verification in bounded, reusable memory ([`PasswordScratch`]).

use std::fmt;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// The argon2id memory cost of new password hashes, in KiB (7 MiB).
///
/// Sized for the admin panel's 128 MiB container: a verification holds
/// this much for its duration, and the panel runs a bounded number at once.
/// With [`PASSWORD_T_COST`] passes it is one of OWASP's equivalent argon2id
/// settings (7 MiB x 5 ~ 19 MiB x 2, the argon2 crate's default that hashes
/// made before used).
pub const PASSWORD_M_COST_KIB: u32 = 7 * 1024;
/// The argon2id passes of new password hashes.
pub const PASSWORD_T_COST: u32 = 5;
/// The largest memory cost a stored hash may ask of a verification, in KiB:
/// the argon2 crate's default (19 MiB), which every hash made before
/// [`PASSWORD_M_COST_KIB`] used. A stored hash asking for more matches
/// nothing, so a corrupt or planted row cannot exhaust a verifier's memory.
pub const MAX_VERIFY_M_COST_KIB: u32 = Params::DEFAULT_M_COST;

/// The parameters of new password hashes.
fn password_params() -> Params {
    Params::new(PASSWORD_M_COST_KIB, PASSWORD_T_COST, 1, None).expect("valid argon2 parameters")
}

fn password_hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, password_params())
}

/// The stored form of an admin password: an argon2id PHC string with
/// [`PASSWORD_M_COST_KIB`] and [`PASSWORD_T_COST`].
pub fn hash_password(password: &str) -> Result<String, ModelError> {
    let salt = SaltString::generate(&mut OsRng);
    password_hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ModelError::PasswordHash(e.to_string()))
}

/// A well-formed argon2id PHC string with the parameters of new hashes and
/// a random salt and output, made without any password work. No password
/// matches it (finding one would mean inverting argon2), but verifying
/// against it costs exactly what verifying a wrong password against a new
/// hash costs: the admin panel verifies unknown usernames against it.
pub fn unmatchable_password_hash() -> String {
    let salt = SaltString::generate(&mut OsRng);
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    rand::thread_rng().fill_bytes(&mut output);
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&password_params()).try_into().expect("params render"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).expect("32 bytes is a valid output")),
    }
    .to_string()
}

/// Whether `password` matches a stored argon2 PHC string (any argon2
/// variant and parameters up to [`MAX_VERIFY_M_COST_KIB`]). A malformed
/// stored hash matches nothing. Allocates the hash's memory for this call;
/// callers that verify often reuse a [`PasswordScratch`] instead.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordScratch::default().verify(password, stored_hash)
}

/// The working memory of argon2 verifications, kept between calls.
///
/// A verification needs its hash's memory cost in one block (7 MiB for new
/// hashes, 19 MiB for older ones). Allocating and freeing that per call lets
/// the process grow with every thread that ever verified (the allocator
/// keeps freed memory per thread arena); a scratch is allocated once, grows
/// only to the largest hash it met (at most [`MAX_VERIFY_M_COST_KIB`]), and
/// is reused, so N scratches bound the memory of N verifications at once.
#[derive(Default)]
pub struct PasswordScratch {
    blocks: Vec<Block>,
}

impl fmt::Debug for PasswordScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordScratch")
            .field("kib", &self.blocks.len())
            .finish()
    }
}

impl PasswordScratch {
    /// A scratch already sized for hashes made by [`hash_password`].
    pub fn for_new_hashes() -> Self {
        PasswordScratch {
            blocks: vec![Block::default(); password_params().block_count()],
        }
    }

    /// [`verify_password`], in this scratch's memory.
    pub fn verify(&mut self, password: &str, stored_hash: &str) -> bool {
        self.try_verify(password, stored_hash).unwrap_or(false)
    }

    fn try_verify(&mut self, password: &str, stored_hash: &str) -> Option<bool> {
        let parsed = PasswordHash::new(stored_hash).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        if params.m_cost() > MAX_VERIFY_M_COST_KIB {
            return None;
        }
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        let mut computed = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut computed,
                &mut self.blocks[..needed],
            )
            .ok()?;
        // `Output`'s equality is constant-time.
        Some(Output::new(&computed).ok()? == expected)
    }
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
        assert!(hash.contains(&format!("m={PASSWORD_M_COST_KIB},t={PASSWORD_T_COST},p=1")));
    }

    #[test]
    fn hashes_made_with_the_old_default_parameters_still_verify() {
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default()
            .hash_password(b"old password", &salt)
            .unwrap()
            .to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        let mut scratch = PasswordScratch::for_new_hashes();
        assert!(scratch.verify("old password", &old));
        assert!(!scratch.verify("other", &old));
        // The scratch grew for the old hash and still verifies new ones.
        let new = hash_password("new password").unwrap();
        assert!(scratch.verify("new password", &new));
        assert!(!scratch.verify("old password", &new));
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_matches_nothing() {
        let params = Params::new(MAX_VERIFY_M_COST_KIB * 2, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let greedy = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password("pw", &greedy));
    }

    #[test]
    fn the_unmatchable_hash_has_the_parameters_of_new_hashes() {
        let dummy = unmatchable_password_hash();
        let real = hash_password("x").unwrap();
        let params = |h: &str| h.split('$').nth(3).unwrap().to_owned();
        assert_eq!(params(&dummy), params(&real));
        assert!(dummy.starts_with("$argon2id$v=19$"), "{dummy}");
        assert_ne!(dummy, unmatchable_password_hash());
        assert!(!verify_password("", &dummy));
        assert!(!verify_password("x", &dummy));
    }

    #[test]
    fn new_passwords_are_long_and_distinct() {
        let a = new_password();
        assert_eq!(a.len(), 24);
        assert_ne!(a, new_password());
    }
}
