//! The tenant configuration, read only from the environment: the variables
//! the provisioner sets on every tenant container. Each missing or invalid
//! variable gives one error that names it. The `env_*` helpers let each app
//! read its own extra variables with the same error type.

use std::str::FromStr;
use std::time::Duration;

/// Why the environment does not make a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// What every tenant app needs: who it serves and how to reach its keyspace.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// `TENANT_ID`: the provider id (lowercase ASCII, letters/digits/underscore).
    pub tenant_id: String,
    /// `TENANT_KEYSPACE`: the tenant's Cassandra keyspace.
    pub keyspace: String,
    /// `CASSANDRA_CONTACT_POINTS`: comma-separated `host:port` list.
    pub contact_points: Vec<String>,
    /// `CASSANDRA_USERNAME`: the tenant's Cassandra role.
    pub username: String,
    /// The role's password: the content of the file `CASSANDRA_PASSWORD_FILE`
    /// names (how the provisioner passes it: a read-only mount, so it is not
    /// in the container's environment for `docker inspect` to show), or
    /// else `CASSANDRA_PASSWORD`.
    pub password: String,
    /// `CASSANDRA_TRANSLATE_TO_CONTACT_POINT` (`true`/`false`, default
    /// false): reach every node the cluster advertises at the one contact
    /// point instead. For a single node that sits on several Docker networks
    /// (one per tenant) but advertises its address on only one of them.
    pub translate_to_contact_point: bool,
    /// `LOG_FORMAT`: `json` or `text` (default `text`).
    pub log_json: bool,
    /// `CASSANDRA_CONNECT_TIMEOUT_SECS` (default 300): how long the first
    /// connection is retried before the app gives up.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConfig")
            .field("tenant_id", &self.tenant_id)
            .field("keyspace", &self.keyspace)
            .field("contact_points", &self.contact_points)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "translate_to_contact_point",
                &self.translate_to_contact_point,
            )
            .field("log_json", &self.log_json)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl TenantConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a map in tests, the
    /// environment in [`TenantConfig::from_env`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| -> Result<String, ConfigError> {
            match lookup(name) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                _ => Err(ConfigError::Missing { name }),
            }
        };
        let tenant_id = get("TENANT_ID")?;
        check_identifier("TENANT_ID", &tenant_id, 32)?;
        let keyspace = get("TENANT_KEYSPACE")?;
        check_identifier("TENANT_KEYSPACE", &keyspace, 48)?;
        let raw_points = get("CASSANDRA_CONTACT_POINTS")?;
        let contact_points = parse_contact_points(&raw_points)?;
        let username = get("CASSANDRA_USERNAME")?;
        let password = match lookup("CASSANDRA_PASSWORD_FILE").filter(|p| !p.trim().is_empty()) {
            Some(path) => secret_file("CASSANDRA_PASSWORD_FILE", path.trim())?,
            None => get("CASSANDRA_PASSWORD")?,
        };
        let translate_to_contact_point =
            parse_with(&lookup, "CASSANDRA_TRANSLATE_TO_CONTACT_POINT", false)?;
        if translate_to_contact_point && contact_points.len() != 1 {
            return Err(ConfigError::Invalid {
                name: "CASSANDRA_TRANSLATE_TO_CONTACT_POINT",
                value: "true".into(),
                why: "needs exactly one contact point".into(),
            });
        }
        let log_json = match lookup("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("") | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    value: other.to_owned(),
                    why: "use json or text".into(),
                })
            }
        };
        let connect_secs: u64 = parse_with(&lookup, "CASSANDRA_CONNECT_TIMEOUT_SECS", 300)?;
        Ok(Self {
            tenant_id,
            keyspace,
            contact_points,
            username,
            password,
            translate_to_contact_point,
            log_json,
            connect_timeout: Duration::from_secs(connect_secs),
        })
    }
}

/// A secret read from a file (a read-only mount): its content with the
/// trailing line break trimmed. `name` is the variable that named the file.
pub fn secret_file(name: &'static str, path: &str) -> Result<String, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        name,
        value: path.to_owned(),
        why,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    Ok(secret.to_owned())
}

/// Lowercase ASCII, starting with a letter, then letters, digits and
/// underscores: safe as a keyspace, a role and a label.
fn check_identifier(name: &'static str, value: &str, max: usize) -> Result<(), ConfigError> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            why: format!(
                "use at most {max} lowercase letters, digits and underscores, starting with a letter"
            ),
        })
    }
}

fn parse_contact_points(raw: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        name: "CASSANDRA_CONTACT_POINTS",
        value: raw.to_owned(),
        why,
    };
    let mut points = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (host, port) = part
            .rsplit_once(':')
            .ok_or_else(|| invalid(format!("{part:?} is not host:port")))?;
        if host.is_empty() {
            return Err(invalid(format!("{part:?} has no host")));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(invalid(format!("{part:?} has no valid port"))),
        }
        points.push(part.to_owned());
    }
    if points.is_empty() {
        return Err(invalid("give at least one host:port".into()));
    }
    Ok(points)
}

fn parse_with<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value: v.clone(),
            why: e.to_string(),
        }),
    }
}

/// A required variable of the process environment.
pub fn env_required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ConfigError::Missing { name }),
    }
}

/// An optional variable of the process environment, or `default`.
pub fn env_or(name: &'static str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => default.to_owned(),
    }
}

/// An optional variable of the process environment parsed as `T`, or
/// `default` when it is unset or empty.
pub fn env_parse<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse_with(&|n: &str| std::env::var(n).ok(), name, default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TENANT_ID", "acme"),
            ("TENANT_KEYSPACE", "tenant_acme"),
            ("CASSANDRA_CONTACT_POINTS", "cassandra:9042, 10.0.0.2:9043"),
            ("CASSANDRA_USERNAME", "tenant_acme"),
            ("CASSANDRA_PASSWORD", "secret"),
        ])
    }

    fn read(map: &HashMap<&'static str, &'static str>) -> Result<TenantConfig, ConfigError> {
        TenantConfig::from_lookup(|n| map.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn a_full_environment_makes_a_config() {
        let cfg = read(&full()).unwrap();
        assert_eq!(cfg.tenant_id, "acme");
        assert_eq!(cfg.keyspace, "tenant_acme");
        assert_eq!(cfg.contact_points, vec!["cassandra:9042", "10.0.0.2:9043"]);
        assert!(!cfg.log_json);
        assert_eq!(cfg.connect_timeout, Duration::from_secs(300));
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn each_missing_variable_is_named() {
        for name in [
            "TENANT_ID",
            "TENANT_KEYSPACE",
            "CASSANDRA_CONTACT_POINTS",
            "CASSANDRA_USERNAME",
            "CASSANDRA_PASSWORD",
        ] {
            let mut env = full();
            env.remove(name);
            let err = read(&env).unwrap_err();
            assert_eq!(err, ConfigError::Missing { name });
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn invalid_values_are_refused_with_their_name() {
        for (name, value) in [
            ("TENANT_ID", "Acme"),
            ("TENANT_KEYSPACE", "a-b"),
            ("CASSANDRA_CONTACT_POINTS", "cassandra"),
            ("CASSANDRA_CONTACT_POINTS", "cassandra:notaport"),
            ("CASSANDRA_CONTACT_POINTS", ":9042"),
            ("LOG_FORMAT", "xml"),
            ("CASSANDRA_CONNECT_TIMEOUT_SECS", "-1"),
        ] {
            let mut env = full();
            env.insert(name, value);
            let err = read(&env).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {err}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn log_format_json_is_recognised() {
        let mut env = full();
        env.insert("LOG_FORMAT", "json");
        assert!(read(&env).unwrap().log_json);
    }

    #[test]
    fn the_password_file_wins_over_the_variable_and_its_line_break_is_trimmed() {
        let path = std::env::temp_dir().join(format!("tenant-common-pw-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let path_text: &'static str = Box::leak(path.display().to_string().into_boxed_str());
        let mut env = full();
        env.insert("CASSANDRA_PASSWORD_FILE", path_text);
        assert_eq!(read(&env).unwrap().password, "from-file");
        env.remove("CASSANDRA_PASSWORD");
        assert_eq!(read(&env).unwrap().password, "from-file");
        std::fs::write(&path, "\n").unwrap();
        let empty = read(&env).unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
        std::fs::remove_file(&path).unwrap();
        let missing = read(&env).unwrap_err();
        assert!(
            missing.to_string().contains("CASSANDRA_PASSWORD_FILE"),
            "{missing}"
        );
    }

    #[test]
    fn translating_to_the_contact_point_needs_exactly_one() {
        let mut env = full();
        env.insert("CASSANDRA_TRANSLATE_TO_CONTACT_POINT", "true");
        let err = read(&env).unwrap_err();
        assert!(
            err.to_string().contains("exactly one contact point"),
            "{err}"
        );
        env.insert("CASSANDRA_CONTACT_POINTS", "cassandra:9042");
        assert!(read(&env).unwrap().translate_to_contact_point);
        assert!(!read(&full()).unwrap().translate_to_contact_point);
    }
}
