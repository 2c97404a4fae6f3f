//! What ingest's (and the notifier's, [`NotifierHealth`]) health check says about itself, as one line: the contract
//! between ingest (which writes it as the body of `/healthz`, and its
//! `healthcheck` subcommand prints it, so Docker keeps it in the
//! container's health log) and the provisioner (which reads the newest
//! health log line of a tenant's ingest for `status` and `/metrics`, with
//! no port of its own).
//!
//! ```text
//! ok connections plain=3 tls=1 max_connections=1000 max_readings_per_sec=500
//! ```
//!
//! `max_readings_per_sec=unlimited` when there is no rate limit. Fields are
//! `key=value` words after `ok`; their order does not matter and unknown
//! words are skipped, so either side may add fields.

use std::fmt;

/// The live counters and limits of one ingest process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestHealth {
    /// Logged-in gateway connections open now, in plain TCP.
    pub plain: u64,
    /// Logged-in gateway connections open now, over TLS.
    pub tls: u64,
    /// `INGEST_MAX_CONNECTIONS`.
    pub max_connections: u64,
    /// `INGEST_MAX_READINGS_PER_SEC`; `None` when unlimited.
    pub max_readings_per_sec: Option<u64>,
}

impl fmt::Display for IngestHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok connections plain={} tls={} max_connections={} max_readings_per_sec=",
            self.plain, self.tls, self.max_connections
        )?;
        match self.max_readings_per_sec {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unlimited"),
        }
    }
}

impl IngestHealth {
    /// The counters in a health check's output (the first line that
    /// starts with `ok connections`); `None` when there is no such line
    /// (a failing check, or an ingest older than this format).
    pub fn parse(output: &str) -> Option<IngestHealth> {
        let line = output
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("ok connections"))?;
        let mut health = IngestHealth::default();
        let (mut plain, mut tls) = (None, None);
        for word in line.split_whitespace().skip(2) {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "plain" => plain = value.parse().ok(),
                "tls" => tls = value.parse().ok(),
                "max_connections" => health.max_connections = value.parse().ok()?,
                "max_readings_per_sec" if value == "unlimited" => {
                    health.max_readings_per_sec = None
                }
                "max_readings_per_sec" => health.max_readings_per_sec = Some(value.parse().ok()?),
                _ => {}
            }
        }
        health.plain = plain?;
        health.tls = tls?;
        Some(health)
    }
}

/// What the notifier's health check says, as one line:
///
/// ```text
/// ok notifier mail=on rules=3 firing=1 pending=0 failed=0
/// ```
///
/// `mail=off` when the operator configured no relay: alert states are
/// still tracked and shown, and no mail is queued. `pending` counts mails
/// not yet taken by the relay, `failed` the mails refused for good today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifierHealth {
    pub mail_on: bool,
    pub rules: u64,
    pub firing: u64,
    pub pending: u64,
    pub failed: u64,
}

impl fmt::Display for NotifierHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok notifier mail={} rules={} firing={} pending={} failed={}",
            if self.mail_on { "on" } else { "off" },
            self.rules,
            self.firing,
            self.pending,
            self.failed
        )
    }
}

impl NotifierHealth {
    /// The counters in a health check's output (the first line that
    /// starts with `ok notifier`); `None` when there is none.
    pub fn parse(output: &str) -> Option<NotifierHealth> {
        let line = output
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("ok notifier"))?;
        let mut health = NotifierHealth::default();
        let mut mail = None;
        for word in line.split_whitespace().skip(2) {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "mail" => mail = Some(value == "on"),
                "rules" => health.rules = value.parse().ok()?,
                "firing" => health.firing = value.parse().ok()?,
                "pending" => health.pending = value.parse().ok()?,
                "failed" => health.failed = value.parse().ok()?,
                _ => {}
            }
        }
        health.mail_on = mail?;
        Some(health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notifier_line_reads_back() {
        let health = NotifierHealth {
            mail_on: true,
            rules: 3,
            firing: 1,
            pending: 2,
            failed: 0,
        };
        assert_eq!(NotifierHealth::parse(&health.to_string()), Some(health));
        let off = NotifierHealth::parse("ok notifier mail=off rules=0 firing=0 pending=0 failed=0");
        assert_eq!(off.map(|h| h.mail_on), Some(false));
        assert_eq!(NotifierHealth::parse("ok connections plain=1 tls=0"), None);
    }

    #[test]
    fn the_line_reads_back_as_written() {
        for health in [
            IngestHealth {
                plain: 3,
                tls: 1,
                max_connections: 1000,
                max_readings_per_sec: Some(500),
            },
            IngestHealth {
                plain: 0,
                tls: 0,
                max_connections: 2,
                max_readings_per_sec: None,
            },
        ] {
            let line = health.to_string();
            assert!(line.starts_with("ok connections plain="), "{line}");
            assert_eq!(IngestHealth::parse(&line), Some(health), "{line}");
        }
        assert_eq!(
            IngestHealth::parse("x\nok connections plain=3 tls=1 max_connections=1000 max_readings_per_sec=unlimited\n"),
            Some(IngestHealth {
                plain: 3,
                tls: 1,
                max_connections: 1000,
                max_readings_per_sec: None,
            })
        );
    }

    #[test]
    fn other_outputs_have_no_counters() {
        for output in [
            "",
            "healthy",
            "error: cannot reach 127.0.0.1:9100: connection refused",
            "ok connections plain=x tls=1",
            "ok connections tls=1",
        ] {
            assert_eq!(IngestHealth::parse(output), None, "{output}");
        }
    }

    #[test]
    fn order_and_unknown_words_do_not_matter() {
        let h =
            IngestHealth::parse("ok connections tls=2 later=7 plain=5 max_connections=9").unwrap();
        assert_eq!((h.plain, h.tls, h.max_connections), (5, 2, 9));
        assert_eq!(h.max_readings_per_sec, None);
    }
}
