//! TLS on the gateway port. Protocol v1 is unchanged inside it.
//!
//! - [`TlsMode`]: `off` (plain only), `optional` (plain and TLS on the one
//!   port, told apart by the first byte: a TLS ClientHello record starts
//!   with 0x16, a v1 hello with `<` or whitespace) and `required` (a plain
//!   connection gets `<error code="tls">` and is closed).
//! - [`CertificateFiles`]: the server certificate chain and key, as PEM
//!   files the provisioner writes; looked at again before a handshake (at
//!   most once a second) and read again when they changed, so a renewal
//!   needs no restart and open connections keep their session.
//! - [`GatewayTls`]: the two together, and the first-byte look that sorts
//!   an accepted connection.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS record that carries a handshake (a ClientHello).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// How often, at most, the certificate files are looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// Which transports the gateway port takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP only.
    Off,
    /// Plain and TLS on the same port.
    #[default]
    Optional,
    /// TLS only.
    Required,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::Optional => "optional",
            TlsMode::Required => "required",
        }
    }
}

impl FromStr for TlsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(TlsMode::Off),
            "optional" => Ok(TlsMode::Optional),
            "required" => Ok(TlsMode::Required),
            other => Err(format!(
                "`{other}` is not a TLS mode (off, optional or required)"
            )),
        }
    }
}

/// Why the certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {why}")]
    Certificate { path: String, why: String },
    #[error("TLS key {path}: {why}")]
    Key { path: String, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// How an accepted connection speaks, by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// What the first byte says, under `mode`. `None` (the peer closed
/// before sending anything) is plain: the connection code handles EOF.
pub fn sort(mode: TlsMode, first: Option<u8>) -> Transport {
    match (mode, first) {
        (TlsMode::Off, _) | (_, None) => Transport::Plain,
        (_, Some(TLS_HANDSHAKE_RECORD)) => Transport::Tls,
        (_, Some(_)) => Transport::Plain,
    }
}

/// The chain and key files, and what was read from them last.
#[derive(Debug)]
pub struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
    /// When the files were last looked at.
    checked: Mutex<Instant>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: (Option<SystemTime>, Option<SystemTime>),
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certificate = |why: String| TlsError::Certificate {
        path: cert.display().to_string(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate("no certificate in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        why: e.to_string(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            why: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        why: format!("does not match the certificate: {e}"),
    })?;
    Ok(Arc::new(certified))
}

impl CertificateFiles {
    /// Reads both files; an error names the file at fault.
    pub fn open(cert: PathBuf, key: PathBuf) -> Result<Arc<CertificateFiles>, TlsError> {
        let loaded = Loaded {
            key: load(&cert, &key)?,
            modified: (modified(&cert), modified(&key)),
        };
        Ok(Arc::new(CertificateFiles {
            cert,
            key,
            current: RwLock::new(loaded),
            checked: Mutex::new(Instant::now()),
        }))
    }

    /// Before a handshake: reads the files again if they changed, looking
    /// at most once every [`RECHECK`]. A renewal that cannot be read yet is
    /// logged and the certificate in use stays.
    pub fn refresh(&self) {
        {
            let mut checked = self.checked.lock().expect("not poisoned");
            if checked.elapsed() < RECHECK {
                return;
            }
            *checked = Instant::now();
        }
        match self.reload_if_changed() {
            Ok(true) => {
                tracing::info!(cert = %self.cert.display(), "gateway TLS certificate reloaded")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "renewed TLS certificate not usable yet; serving the previous one")
            }
        }
    }

    /// Reads the files again if either changed since the last read. On an
    /// error the certificate in use stays (a half-written renewal is read
    /// at the next check). Returns whether a new one is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (modified(&self.cert), modified(&self.key));
        if self.current.read().expect("not poisoned").modified == now {
            return Ok(false);
        }
        let key = load(&self.cert, &self.key)?;
        *self.current.write().expect("not poisoned") = Loaded { key, modified: now };
        Ok(true)
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("not poisoned").key.clone()
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The gateway port's TLS: its mode, and its acceptor unless it is off.
#[derive(Clone)]
pub struct GatewayTls {
    pub mode: TlsMode,
    acceptor: Option<TlsAcceptor>,
    files: Option<Arc<CertificateFiles>>,
}

impl GatewayTls {
    /// Plain TCP only.
    pub fn off() -> GatewayTls {
        GatewayTls {
            mode: TlsMode::Off,
            acceptor: None,
            files: None,
        }
    }

    /// `mode` with the certificate in `files`.
    pub fn new(mode: TlsMode, files: Arc<CertificateFiles>) -> Result<GatewayTls, TlsError> {
        if mode == TlsMode::Off {
            return Ok(GatewayTls::off());
        }
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(files.clone());
        Ok(GatewayTls {
            mode,
            acceptor: Some(TlsAcceptor::from(Arc::new(config))),
            files: Some(files),
        })
    }

    /// The acceptor (none when TLS is off).
    pub fn acceptor(&self) -> Option<&TlsAcceptor> {
        self.acceptor.as_ref()
    }

    /// The certificate files (none when TLS is off).
    pub fn files(&self) -> Option<&Arc<CertificateFiles>> {
        self.files.as_ref()
    }

    /// How `stream` speaks, from its first byte, without consuming it.
    /// Waits for that byte: the caller bounds the wait.
    pub async fn transport(&self, stream: &TcpStream) -> std::io::Result<Transport> {
        if self.mode == TlsMode::Off {
            return Ok(Transport::Plain);
        }
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await?;
        Ok(sort(self.mode, (n == 1).then_some(first[0])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [TlsMode::Off, TlsMode::Optional, TlsMode::Required] {
            assert_eq!(mode.as_str().parse::<TlsMode>(), Ok(mode));
        }
        assert!("on"
            .parse::<TlsMode>()
            .unwrap_err()
            .contains("off, optional or required"));
    }

    #[test]
    fn the_first_byte_sorts_a_connection() {
        // A v1 hello starts with `<` or whitespace; a ClientHello with 0x16.
        for first in [b'<', b' ', b'\n', b'\t'] {
            assert_eq!(sort(TlsMode::Optional, Some(first)), Transport::Plain);
            assert_eq!(sort(TlsMode::Required, Some(first)), Transport::Plain);
        }
        assert_eq!(sort(TlsMode::Optional, Some(0x16)), Transport::Tls);
        assert_eq!(sort(TlsMode::Required, Some(0x16)), Transport::Tls);
        // Off: everything is plain (a ClientHello is a protocol error there).
        assert_eq!(sort(TlsMode::Off, Some(0x16)), Transport::Plain);
        assert_eq!(sort(TlsMode::Optional, None), Transport::Plain);
    }
}
