//! The panel's configuration, only from the environment: the shared
//! [`TenantConfig`] plus `ADMIN_LISTEN` and `ADMIN_SESSION_SECRET`.

use std::net::SocketAddr;

use tenant_common::{ConfigError, TenantConfig};

/// The default listen address (the container port the provisioner
/// publishes).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// The shortest session secret accepted, in bytes.
const MIN_SECRET_BYTES: usize = 16;

#[derive(Clone)]
pub struct AdminConfig {
    pub tenant: TenantConfig,
    /// `ADMIN_LISTEN` (default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// `ADMIN_SESSION_SECRET` (hex, at least 16 bytes). `None` when unset:
    /// the binary then makes a random one, and sessions end at a restart.
    pub session_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("tenant", &self.tenant)
            .field("listen", &self.listen)
            .field(
                "session_secret",
                &self.session_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AdminConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(AdminConfig {
            tenant: TenantConfig::from_env()?,
            listen: listen_from_env()?,
            session_secret: parse_secret(std::env::var("ADMIN_SESSION_SECRET").ok().as_deref())?,
        })
    }
}

/// `ADMIN_LISTEN` alone (the `healthcheck` subcommand needs nothing else).
pub fn listen_from_env() -> Result<SocketAddr, ConfigError> {
    tenant_common::env_parse(
        "ADMIN_LISTEN",
        DEFAULT_LISTEN.parse().expect("valid default"),
    )
}

fn parse_secret(raw: Option<&str>) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let invalid = |why: &str| ConfigError::Invalid {
        name: "ADMIN_SESSION_SECRET",
        value: "<redacted>".into(),
        why: why.into(),
    };
    let bytes = hex::decode(raw).map_err(|_| invalid("use hex digits"))?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(invalid("use at least 32 hex digits (16 bytes)"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hex_and_long_enough() {
        assert_eq!(parse_secret(None).unwrap(), None);
        assert_eq!(parse_secret(Some("  ")).unwrap(), None);
        assert_eq!(
            parse_secret(Some(&"ab".repeat(16))).unwrap(),
            Some(vec![0xab; 16])
        );
        let short = parse_secret(Some("abcd")).unwrap_err();
        assert!(short.to_string().contains("ADMIN_SESSION_SECRET"));
        assert!(
            !short.to_string().contains("abcd"),
            "the secret is not echoed"
        );
        assert!(parse_secret(Some(&"zz".repeat(16))).is_err());
    }
}
