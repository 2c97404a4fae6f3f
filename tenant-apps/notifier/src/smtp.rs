//! Sending a stored mail to the operator's relay with lettre
//! (`AsyncSmtpTransport<Tokio1Executor>`, TLS through rustls with
//! webpki-roots, plus the roots of `NOTIFIER_SMTP_CA_FILE`: the image is
//! scratch, with no system store), and what the relay's answer means for
//! the outbox ([`SendOutcome`]).
//!
//! The outbox keeps the formatted bytes of each mail, so the envelope is
//! read back from them: `From` is the sender, `To` and `Cc` the
//! recipients. Each send opens one connection and quits it; a notifier
//! sends a handful of mails a day.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{MailConfig, SmtpTls};
use crate::outbox::SendOutcome;

/// Why the relay's transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot set up TLS for relay {host}: {source}")]
    Tls {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// How long one SMTP exchange may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The relay, ready to send.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    relay: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("relay", &self.relay)
            .finish()
    }
}

impl Mailer {
    pub fn new(cfg: &MailConfig) -> Result<Self, SmtpError> {
        let tls_error = |source| SmtpError::Tls {
            host: cfg.host.clone(),
            source,
        };
        let tls = match cfg.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(cfg.host.clone())
                    .certificate_store(CertificateStore::WebpkiRoots);
                if let Some(pem) = &cfg.ca_pem {
                    params =
                        params.add_root_certificate(Certificate::from_pem(pem).map_err(tls_error)?);
                }
                let params = params.build_rustls().map_err(tls_error)?;
                if mode == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        if let Some((user, password)) = &cfg.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            relay: format!("{}:{} ({})", cfg.host, cfg.port, cfg.tls.as_str()),
        })
    }

    /// The relay as logs show it: `host:port (tls)`.
    pub fn relay(&self) -> &str {
        &self.relay
    }

    /// Sends one stored mail; the relay's answer as the outbox reads it.
    pub async fn send(&self, message: &[u8]) -> SendOutcome {
        let envelope = match envelope_of(message) {
            Ok(envelope) => envelope,
            Err(reason) => return SendOutcome::Permanent(reason),
        };
        match self.transport.send_raw(&envelope, message).await {
            Ok(response) => {
                SendOutcome::from_reply(u16::from(response.code()), &response_text(&response))
            }
            Err(e) => classify(&e),
        }
    }
}

fn response_text(response: &lettre::transport::smtp::response::Response) -> String {
    response.message().collect::<Vec<_>>().join(" ")
}

/// A failed exchange as the outbox reads it: a 5xx reply is permanent; a
/// 4xx, a refused or broken connection, a timeout or a TLS failure is
/// transient (the relay may be back later).
pub fn classify(e: &lettre::transport::smtp::Error) -> SendOutcome {
    match e.status() {
        Some(code) => {
            let text = e.to_string();
            SendOutcome::from_reply(u16::from(code), &text)
        }
        None if e.is_permanent() => SendOutcome::Permanent(e.to_string()),
        None => SendOutcome::Transient(error_chain(e)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The envelope of a formatted mail: `From`, and `To` and `Cc`.
pub fn envelope_of(message: &[u8]) -> Result<Envelope, String> {
    let (headers, _) = mailparse::parse_headers(message)
        .map_err(|e| format!("the stored mail's headers do not parse: {e}"))?;
    let addresses = |name: &str| -> Result<Vec<Address>, String> {
        let mut out = Vec::new();
        for header in headers
            .iter()
            .filter(|h| h.get_key_ref().eq_ignore_ascii_case(name))
        {
            let list = mailparse::addrparse_header(header)
                .map_err(|e| format!("the stored mail's {name} header does not parse: {e}"))?;
            for addr in list.iter() {
                let singles = match addr {
                    mailparse::MailAddr::Single(s) => vec![s.addr.clone()],
                    mailparse::MailAddr::Group(g) => {
                        g.addrs.iter().map(|s| s.addr.clone()).collect()
                    }
                };
                for single in singles {
                    out.push(single.parse().map_err(|e| {
                        format!("the stored mail's {name} address {single:?} is invalid: {e}")
                    })?);
                }
            }
        }
        Ok(out)
    };
    let from = addresses("From")?.into_iter().next();
    let mut to = addresses("To")?;
    to.extend(addresses("Cc")?);
    Envelope::new(from, to).map_err(|e| format!("the stored mail has no valid envelope: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_comes_from_the_headers() {
        let message = b"From: Alerts <alerts@example.com>\r\nTo: a@example.com, \"B\" <b@example.org>\r\nSubject: x\r\n\r\nbody\r\n";
        let envelope = envelope_of(message).unwrap();
        assert_eq!(
            envelope.from().map(ToString::to_string).as_deref(),
            Some("alerts@example.com")
        );
        let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["a@example.com", "b@example.org"]);
        assert!(envelope_of(b"From: a@example.com\r\n\r\nno recipients").is_err());
    }
}
