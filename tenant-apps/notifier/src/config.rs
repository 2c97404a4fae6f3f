//! The notifier's own environment (besides the tenant configuration every
//! tenant app reads with `tenant_common::TenantConfig`): how often it
//! checks, where its health endpoint listens, and the operator's mail
//! relay. The relay's variables are the contract with the provisioner,
//! which sets them from the `[mail]` section of its config:
//!
//! | variable | meaning |
//! |---|---|
//! | `NOTIFIER_SMTP_HOST` | the relay; absent or empty: mail is off |
//! | `NOTIFIER_SMTP_PORT` | default 25 (`none`), 587 (`starttls`), 465 (`tls`) |
//! | `NOTIFIER_SMTP_TLS` | `none`, `starttls` (default) or `tls` (implicit TLS) |
//! | `NOTIFIER_SMTP_USER` | optional; needs the password file |
//! | `NOTIFIER_SMTP_PASSWORD_FILE` | a file holding the password (a secret mount) |
//! | `NOTIFIER_MAIL_FROM` | the `From` mailbox, required with a relay |
//! | `NOTIFIER_SMTP_CA_FILE` | optional PEM roots added to webpki's, for a relay with a private CA |
//!
//! Every missing or invalid variable is one error naming it.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use tenant_common::ConfigError;

/// Where `/healthz` and `/metrics` listen by default.
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:9100";

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or a trusted network).
    None,
    /// STARTTLS, required: a relay that does not offer it is an error.
    StartTls,
    /// Implicit TLS (SMTPS, usually port 465).
    Tls,
}

impl SmtpTls {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "none" => Some(SmtpTls::None),
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// The operator's relay.
#[derive(Clone, PartialEq)]
pub struct MailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `(user, password)`.
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    /// Extra roots (PEM), read at start.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("from", &self.from.to_string())
            .field("ca_file", &self.ca_pem.is_some())
            .finish()
    }
}

/// The notifier's settings from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `NOTIFIER_CHECK_INTERVAL_SECS` (default 30, 1 to 60): an alert fires
    /// at most one interval after its condition held for its duration.
    pub check_interval: Duration,
    /// `NOTIFIER_REQUEST_POLL_SECS` (default 5): how often report requests
    /// (`provision report send`) are looked for.
    pub request_poll: Duration,
    /// `NOTIFIER_HTTP_LISTEN` (default `0.0.0.0:9100`).
    pub http_listen: SocketAddr,
    /// `None`: mail is off.
    pub mail: Option<MailConfig>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let invalid = |name: &'static str, value: &str, why: &str| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let secs = |name: &'static str, default: u64, max: u64| match get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Duration::from_secs(n)),
                _ => Err(invalid(
                    name,
                    &v,
                    &format!("use a whole number of seconds from 1 to {max}"),
                )),
            },
        };
        let check_interval = secs("NOTIFIER_CHECK_INTERVAL_SECS", 30, 60)?;
        let request_poll = secs("NOTIFIER_REQUEST_POLL_SECS", 5, 60)?;
        let raw_listen = get("NOTIFIER_HTTP_LISTEN").unwrap_or_else(|| DEFAULT_HTTP_LISTEN.into());
        let http_listen = raw_listen.parse().map_err(|_| {
            invalid(
                "NOTIFIER_HTTP_LISTEN",
                &raw_listen,
                "use an address such as 0.0.0.0:9100",
            )
        })?;
        let mail = match get("NOTIFIER_SMTP_HOST") {
            None => None,
            Some(host) => Some(mail_config(host, &get)?),
        };
        Ok(Self {
            check_interval,
            request_poll,
            http_listen,
            mail,
        })
    }
}

fn mail_config(
    host: String,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<MailConfig, ConfigError> {
    let invalid = |name: &'static str, value: &str, why: &str| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        why: why.to_owned(),
    };
    let tls = match get("NOTIFIER_SMTP_TLS") {
        None => SmtpTls::StartTls,
        Some(raw) => SmtpTls::parse(&raw)
            .ok_or_else(|| invalid("NOTIFIER_SMTP_TLS", &raw, "use none, starttls or tls"))?,
    };
    let port = match get("NOTIFIER_SMTP_PORT") {
        None => tls.default_port(),
        Some(raw) => match raw.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(invalid(
                    "NOTIFIER_SMTP_PORT",
                    &raw,
                    "use a port from 1 to 65535",
                ))
            }
        },
    };
    let password = match get("NOTIFIER_SMTP_PASSWORD_FILE") {
        Some(path) => Some(tenant_common::config::secret_file(
            "NOTIFIER_SMTP_PASSWORD_FILE",
            &path,
        )?),
        None => None,
    };
    let credentials = match (get("NOTIFIER_SMTP_USER"), password) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                name: "NOTIFIER_SMTP_PASSWORD_FILE",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                name: "NOTIFIER_SMTP_USER",
            })
        }
    };
    let raw_from = get("NOTIFIER_MAIL_FROM").ok_or(ConfigError::Missing {
        name: "NOTIFIER_MAIL_FROM",
    })?;
    let from: Mailbox = raw_from.parse().map_err(|_| {
        invalid(
            "NOTIFIER_MAIL_FROM",
            &raw_from,
            "use an address such as alerts@example.com or \"Alerts <alerts@example.com>\"",
        )
    })?;
    let ca_pem = match get("NOTIFIER_SMTP_CA_FILE") {
        None => None,
        Some(path) => {
            let pem = std::fs::read(&path).map_err(|e| {
                invalid(
                    "NOTIFIER_SMTP_CA_FILE",
                    &path,
                    &format!("cannot read it: {e}"),
                )
            })?;
            if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() {
                return Err(invalid(
                    "NOTIFIER_SMTP_CA_FILE",
                    &path,
                    "it holds no PEM certificate",
                ));
            }
            Some(pem)
        }
    };
    Ok(MailConfig {
        host,
        port,
        tls,
        credentials,
        from,
        ca_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|n| map.get(n).cloned())
    }

    #[test]
    fn no_relay_means_mail_off_and_defaults() {
        let s = read(&[]).unwrap();
        assert_eq!(s.mail, None);
        assert_eq!(s.check_interval, Duration::from_secs(30));
        assert_eq!(s.request_poll, Duration::from_secs(5));
        assert_eq!(s.http_listen.port(), 9100);
        assert_eq!(read(&[("NOTIFIER_SMTP_HOST", " ")]).unwrap().mail, None);
    }

    #[test]
    fn a_relay_needs_a_sender_and_takes_its_port_from_the_tls_mode() {
        let err = read(&[("NOTIFIER_SMTP_HOST", "relay")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "NOTIFIER_MAIL_FROM"
            }
        );
        let s = read(&[
            ("NOTIFIER_SMTP_HOST", "relay"),
            ("NOTIFIER_MAIL_FROM", "Alerts <alerts@example.com>"),
        ])
        .unwrap();
        let mail = s.mail.unwrap();
        assert_eq!((mail.tls, mail.port), (SmtpTls::StartTls, 587));
        assert_eq!(mail.from.email.to_string(), "alerts@example.com");
        for (tls, port) in [("none", 25), ("tls", 465)] {
            let s = read(&[
                ("NOTIFIER_SMTP_HOST", "relay"),
                ("NOTIFIER_SMTP_TLS", tls),
                ("NOTIFIER_MAIL_FROM", "a@example.com"),
            ])
            .unwrap();
            assert_eq!(s.mail.unwrap().port, port);
        }
    }

    #[test]
    fn bad_values_are_named() {
        let base = [
            ("NOTIFIER_SMTP_HOST", "relay"),
            ("NOTIFIER_MAIL_FROM", "a@example.com"),
        ];
        for (name, value) in [
            ("NOTIFIER_SMTP_TLS", "ssl"),
            ("NOTIFIER_SMTP_PORT", "0"),
            ("NOTIFIER_MAIL_FROM", "not an address"),
            ("NOTIFIER_CHECK_INTERVAL_SECS", "0"),
            ("NOTIFIER_CHECK_INTERVAL_SECS", "61"),
            ("NOTIFIER_HTTP_LISTEN", "nowhere"),
            ("NOTIFIER_SMTP_CA_FILE", "/nonexistent/ca.pem"),
            ("NOTIFIER_SMTP_PASSWORD_FILE", "/nonexistent/password"),
        ] {
            let mut env: Vec<(&str, &str)> = base.to_vec();
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
            let err = read(&env).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        let err = read(&[
            ("NOTIFIER_SMTP_HOST", "relay"),
            ("NOTIFIER_MAIL_FROM", "a@example.com"),
            ("NOTIFIER_SMTP_USER", "u"),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "NOTIFIER_SMTP_PASSWORD_FILE"
            }
        );
    }
}
