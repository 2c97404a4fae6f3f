//! The panel's configuration, only from the environment: the shared
//! [`TenantConfig`] plus `ADMIN_LISTEN`, the session secret
//! (`ADMIN_SESSION_SECRET_FILE` or `ADMIN_SESSION_SECRET`) and the login
//! limits (`ADMIN_LOGIN_WINDOW_SECS`, `ADMIN_LOGIN_FAILURES_PER_USERNAME`,
//! `ADMIN_LOGIN_FAILURES_PER_ADDRESS`), `ADMIN_BEHIND_TLS` and
//! `ADMIN_TRUSTED_PROXIES`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tenant_common::{ConfigError, TenantConfig, TrustedProxies};

use crate::ratelimit::LoginLimits;

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
    /// The contents of the file `ADMIN_SESSION_SECRET_FILE` names, else
    /// `ADMIN_SESSION_SECRET` (hex, at least 16 bytes). `None` when neither
    /// is set: the binary then makes a random one, and sessions end at a
    /// restart.
    pub session_secret: Option<Vec<u8>>,
    /// `ADMIN_LOGIN_WINDOW_SECS` (default 900),
    /// `ADMIN_LOGIN_FAILURES_PER_USERNAME` (5),
    /// `ADMIN_LOGIN_FAILURES_PER_ADDRESS` (20).
    pub login_limits: LoginLimits,
    /// `ADMIN_BEHIND_TLS` (`true` or `false`, default `false`): the
    /// operator says browsers reach the panel over TLS (a proxy in front
    /// terminates it), so every cookie is `Secure`.
    pub behind_tls: bool,
    /// `ADMIN_TRUSTED_PROXIES` (comma-separated IP addresses and/or
    /// `default-gateway`, as ingest's `INGEST_TRUSTED_PROXIES`; default
    /// none): the proxies whose requests name their client in the last
    /// `X-Forwarded-For` entry ([`crate::client`]). `default-gateway` is
    /// the gateway of the container's default route, read from
    /// `/proc/net/route` at startup (none: an error).
    pub trusted_proxies: TrustedProxies,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("tenant", &self.tenant)
            .field("listen", &self.listen)
            .field("login_limits", &self.login_limits)
            .field("behind_tls", &self.behind_tls)
            .field("trusted_proxies", &self.trusted_proxies)
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
            session_secret: session_secret(
                std::env::var_os("ADMIN_SESSION_SECRET_FILE").as_deref(),
                std::env::var("ADMIN_SESSION_SECRET").ok().as_deref(),
            )?,
            login_limits: login_limits_from_env()?,
            behind_tls: tenant_common::env_parse("ADMIN_BEHIND_TLS", false)?,
            trusted_proxies: tenant_common::trusted_proxies::from_env("ADMIN_TRUSTED_PROXIES")?,
        })
    }
}

/// The session secret: from the file named by `file` if given (it takes
/// precedence, so a secret can stay out of the container's environment),
/// else from `value`.
fn session_secret(
    file: Option<&std::ffi::OsStr>,
    value: Option<&str>,
) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(path) = file.filter(|p| !p.is_empty()) else {
        return parse_secret("ADMIN_SESSION_SECRET", value);
    };
    // The same reading (and refusals) as the tenant role's password file.
    let contents = tenant_common::config::secret_file(
        "ADMIN_SESSION_SECRET_FILE",
        &Path::new(path).display().to_string(),
    )?;
    parse_secret("ADMIN_SESSION_SECRET_FILE", Some(&contents))
}

fn login_limits_from_env() -> Result<LoginLimits, ConfigError> {
    let defaults = LoginLimits::default();
    let positive = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        let value: u64 = tenant_common::env_parse(name, default)?;
        if value == 0 {
            return Err(ConfigError::Invalid {
                name,
                value: value.to_string(),
                why: "use a whole number of at least 1".into(),
            });
        }
        Ok(value)
    };
    let count = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
        let value = positive(name, default.into())?;
        u32::try_from(value).map_err(|_| ConfigError::Invalid {
            name,
            value: value.to_string(),
            why: "too large".into(),
        })
    };
    Ok(LoginLimits {
        window: Duration::from_secs(positive(
            "ADMIN_LOGIN_WINDOW_SECS",
            defaults.window.as_secs(),
        )?),
        per_username: count("ADMIN_LOGIN_FAILURES_PER_USERNAME", defaults.per_username)?,
        per_address: count("ADMIN_LOGIN_FAILURES_PER_ADDRESS", defaults.per_address)?,
    })
}

/// `ADMIN_LISTEN` alone (the `healthcheck` subcommand needs nothing else).
pub fn listen_from_env() -> Result<SocketAddr, ConfigError> {
    tenant_common::env_parse(
        "ADMIN_LISTEN",
        DEFAULT_LISTEN.parse().expect("valid default"),
    )
}

/// A hex secret as `name` gives it; `None` when empty.
fn parse_secret(name: &'static str, raw: Option<&str>) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let invalid = |why: &str| ConfigError::Invalid {
        name,
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
        let parse = |raw: Option<&str>| session_secret(None, raw);
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some("  ")).unwrap(), None);
        assert_eq!(parse(Some(&"ab".repeat(16))).unwrap(), Some(vec![0xab; 16]));
        let short = parse(Some("abcd")).unwrap_err();
        assert!(short.to_string().contains("ADMIN_SESSION_SECRET"));
        assert!(
            !short.to_string().contains("abcd"),
            "the secret is not echoed"
        );
        assert!(parse(Some(&"zz".repeat(16))).is_err());
    }

    /// A file of its own in the system's temp dir, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn with(contents: &str) -> TempFile {
            use rand::Rng;
            let path = std::env::temp_dir().join(format!(
                "admin-secret-test-{}",
                rand::thread_rng().gen::<u64>()
            ));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_secret_file_takes_precedence_over_the_variable() {
        let file = TempFile::with(&format!("{}\n", "cd".repeat(32)));
        let secret = session_secret(Some(file.0.as_os_str()), Some(&"ab".repeat(16))).unwrap();
        assert_eq!(secret, Some(vec![0xcd; 32]));
    }

    #[test]
    fn a_bad_secret_file_is_refused_naming_the_variable_not_the_secret() {
        let missing = std::env::temp_dir().join("admin-secret-test-does-not-exist");
        let e = session_secret(Some(missing.as_os_str()), Some(&"ab".repeat(16))).unwrap_err();
        assert!(e.to_string().contains("ADMIN_SESSION_SECRET_FILE"), "{e}");
        assert!(e.to_string().contains("cannot read"), "{e}");
        let empty = TempFile::with("\n");
        let e = session_secret(Some(empty.0.as_os_str()), None).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let short = TempFile::with("abcd1234");
        let e = session_secret(Some(short.0.as_os_str()), None).unwrap_err();
        assert!(e.to_string().contains("ADMIN_SESSION_SECRET_FILE"), "{e}");
        assert!(!e.to_string().contains("abcd1234"), "{e}");
    }
}
